#include "backends/vulkan/vulkan-context.h"

#include "core/error.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace muse::vk {

void check(VkResult r, const char *what) {
    if (r != VK_SUCCESS) fail(MUSE_ERR_UNSUPPORTED, "vulkan: ", what, " failed (VkResult ", static_cast<int>(r), ")");
}

namespace {

VkInstance make_instance() {
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "muse";
    app.pEngineName = "muse";
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ci.pApplicationInfo = &app;
    VkInstance instance = VK_NULL_HANDLE;
    const VkResult r = vkCreateInstance(&ci, nullptr, &instance);
    if (r != VK_SUCCESS)
        fail(MUSE_ERR_UNSUPPORTED, "vulkan: no Vulkan driver could be loaded (vkCreateInstance: ", static_cast<int>(r),
             "); install a driver (mesa-vulkan-drivers for lavapipe) or use the CPU backend");
    return instance;
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
    uint32_t n = 0;
    check(vkEnumeratePhysicalDevices(instance, &n, nullptr), "vkEnumeratePhysicalDevices");
    std::vector<VkPhysicalDevice> out(n);
    if (n) check(vkEnumeratePhysicalDevices(instance, &n, out.data()), "vkEnumeratePhysicalDevices");
    return out;
}

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::filesystem::path cache_dir() {
    if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "muse";
    if (const char *h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "muse";
    return {};
}

} // namespace

std::vector<std::string> Context::device_names() {
    VkInstance instance = make_instance();
    std::vector<std::string> names;
    for (VkPhysicalDevice d : physical_devices(instance)) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(d, &p);
        names.emplace_back(p.deviceName);
    }
    vkDestroyInstance(instance, nullptr);
    return names;
}

std::unique_ptr<Context> Context::create(const std::string &selector_param) {
    std::unique_ptr<Context> c(new Context());
    c->instance_ = make_instance();
    const std::vector<VkPhysicalDevice> devices = physical_devices(c->instance_);
    std::string selector = selector_param;
    if (selector.empty())
        if (const char *e = std::getenv("MUSE_VULKAN_DEVICE")) selector = e;
    std::string listed;
    std::vector<VkPhysicalDeviceProperties> props(devices.size());
    for (size_t i = 0; i < devices.size(); ++i) {
        vkGetPhysicalDeviceProperties(devices[i], &props[i]);
        listed += (i ? ", " : "") + std::to_string(i) + ": " + props[i].deviceName;
    }
    int chosen = -1;
    if (!selector.empty()) {
        const bool numeric = std::all_of(selector.begin(), selector.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
        for (size_t i = 0; i < devices.size() && chosen < 0; ++i)
            if (numeric ? std::to_string(i) == selector : lower(props[i].deviceName).find(lower(selector)) != std::string::npos)
                chosen = static_cast<int>(i);
        if (chosen < 0)
            fail(MUSE_ERR_UNSUPPORTED, "vulkan: no device matches '", selector, "' (devices: ", listed.empty() ? "none" : listed, ")");
    } else {
        for (VkPhysicalDeviceType want : {VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU})
            for (size_t i = 0; i < devices.size() && chosen < 0; ++i)
                if (props[i].deviceType == want) chosen = static_cast<int>(i);
        if (chosen < 0)
            fail(MUSE_ERR_UNSUPPORTED, "vulkan: no GPU device (devices: ", listed.empty() ? "none" : listed,
                 "); name one with MUSE_VULKAN_DEVICE (e.g. llvmpipe) to use a CPU-type device");
    }
    c->physical_ = devices[static_cast<size_t>(chosen)];
    c->props_ = props[static_cast<size_t>(chosen)];
    vkGetPhysicalDeviceMemoryProperties(c->physical_, &c->memory_);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &nq, nullptr);
    std::vector<VkQueueFamilyProperties> qf(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &nq, qf.data());
    bool found = false;
    for (uint32_t i = 0; i < nq && !found; ++i)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            c->queue_family_ = i;
            found = true;
        }
    if (!found) fail(MUSE_ERR_UNSUPPORTED, "vulkan: device '", c->props_.deviceName, "' has no compute queue");
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = c->queue_family_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    check(vkCreateDevice(c->physical_, &dci, nullptr, &c->device_), "vkCreateDevice");
    vkGetDeviceQueue(c->device_, c->queue_family_, 0, &c->queue_);

    switch (c->props_.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: c->caps_.push_back("discrete-gpu"); break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: c->caps_.push_back("integrated-gpu"); break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: c->caps_.push_back("cpu-device"); break;
    default: c->caps_.push_back("other-device"); break;
    }
    c->caps_.push_back("vulkan-" + std::to_string(VK_API_VERSION_MAJOR(c->props_.apiVersion)) + "." +
                       std::to_string(VK_API_VERSION_MINOR(c->props_.apiVersion)));

    // The pipeline cache, per device (vendor, device id and the driver's cache UUID).
    std::vector<char> blob;
    if (const auto dir = cache_dir(); !dir.empty()) {
        char uuid[2 * VK_UUID_SIZE + 1];
        for (int i = 0; i < VK_UUID_SIZE; ++i) std::snprintf(uuid + 2 * i, 3, "%02x", c->props_.pipelineCacheUUID[i]);
        c->cache_path_ = (dir / ("vulkan-" + std::to_string(c->props_.vendorID) + "-" +
                                 std::to_string(c->props_.deviceID) + "-" + uuid + ".cache"))
                             .string();
        std::ifstream in(c->cache_path_, std::ios::binary);
        if (in) blob.assign(std::istreambuf_iterator<char>(in), {});
    }
    VkPipelineCacheCreateInfo pci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    pci.initialDataSize = blob.size();
    pci.pInitialData = blob.empty() ? nullptr : blob.data();
    if (vkCreatePipelineCache(c->device_, &pci, nullptr, &c->cache_) != VK_SUCCESS) {
        pci.initialDataSize = 0;  // a stale or foreign blob: start empty
        pci.pInitialData = nullptr;
        check(vkCreatePipelineCache(c->device_, &pci, nullptr, &c->cache_), "vkCreatePipelineCache");
    }
    return c;
}

void Context::save_pipeline_cache() {
    if (cache_path_.empty() || !cache_) return;
    size_t size = 0;
    if (vkGetPipelineCacheData(device_, cache_, &size, nullptr) != VK_SUCCESS || size == 0) return;
    std::vector<char> data(size);
    if (vkGetPipelineCacheData(device_, cache_, &size, data.data()) != VK_SUCCESS) return;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(cache_path_).parent_path(), ec);
    const std::string tmp = cache_path_ + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) return;  // a read-only home: the cache is an optimization only
        out.write(data.data(), static_cast<std::streamsize>(size));
    }
    std::filesystem::rename(tmp, cache_path_, ec);
}

Context::~Context() {
    if (device_) {
        vkDeviceWaitIdle(device_);
        save_pipeline_cache();
        if (cache_) vkDestroyPipelineCache(device_, cache_, nullptr);
        vkDestroyDevice(device_, nullptr);
    }
    if (instance_) vkDestroyInstance(instance_, nullptr);
}

uint32_t Context::host_visible_memory(uint32_t type_bits) const {
    const VkMemoryPropertyFlags need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (bool local : {true, false})
        for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
            const VkMemoryPropertyFlags f = memory_.memoryTypes[i].propertyFlags;
            if ((type_bits >> i & 1u) && (f & need) == need &&
                (!local || (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)))
                return i;
        }
    fail(MUSE_ERR_UNSUPPORTED, "vulkan: device '", props_.deviceName, "' has no host-visible coherent memory");
}

size_t Context::device_memory_bytes() const {
    size_t best = 0;
    for (uint32_t i = 0; i < memory_.memoryHeapCount; ++i)
        if (memory_.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            best = std::max<size_t>(best, memory_.memoryHeaps[i].size);
    return best;
}

} // namespace muse::vk
