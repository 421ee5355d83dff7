#include "backends/vulkan/vulkan-context.h"

#include "core/error.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// MUSE_VULKAN_CACHE_DIR (set but empty: no cache file), else $XDG_CACHE_HOME/muse, else
// ~/.cache/muse.
std::filesystem::path cache_dir() {
    if (const char *d = std::getenv("MUSE_VULKAN_CACHE_DIR")) return d;
    if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "muse";
    if (const char *h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "muse";
    return {};
}

// MUSE_VULKAN_DEBUG=1: notices about the pipeline cache file on stderr (the cache is an
// optimization, so its failures are otherwise silent).
void debug(const std::string &msg) {
    static const bool on = [] {
        const char *e = std::getenv("MUSE_VULKAN_DEBUG");
        return e && *e && std::string(e) != "0";
    }();
    if (on) std::fprintf(stderr, "muse: vulkan: %s\n", msg.c_str());
}

// Whether a cache blob was written by this driver for this device: the header Vulkan defines
// (VkPipelineCacheHeaderVersionOne: header size, version, vendor and device id, the driver's
// cache UUID), checked here because not every driver survives a foreign or truncated blob.
bool cache_blob_matches(const std::vector<char> &blob, const VkPhysicalDeviceProperties &props) {
    constexpr size_t kHeader = 16 + VK_UUID_SIZE;
    if (blob.size() < kHeader) return false;
    uint32_t f[4];
    std::memcpy(f, blob.data(), sizeof f);
    return f[0] >= kHeader && f[0] <= blob.size() && f[1] == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
           f[2] == props.vendorID && f[3] == props.deviceID &&
           std::memcmp(blob.data() + 16, props.pipelineCacheUUID, VK_UUID_SIZE) == 0;
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

bool Context::has_gpu() {
    try {
        VkInstance instance = make_instance();
        bool found = false;
        for (VkPhysicalDevice d : physical_devices(instance)) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(d, &p);
            found = found || p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ||
                    p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
        }
        vkDestroyInstance(instance, nullptr);
        return found;
    } catch (const std::exception &) {  // no loader, no driver: no GPU
        return false;
    }
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

    // Subgroup arithmetic in compute shaders (Vulkan 1.1 core properties): the *_sg shader
    // variants. MUSE_VULKAN_SUBGROUPS=0 keeps the portable shared-memory reductions.
    if (c->props_.apiVersion >= VK_API_VERSION_1_1) {
        VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
        VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        p2.pNext = &sg;
        vkGetPhysicalDeviceProperties2(c->physical_, &p2);
        const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
        const char *off = std::getenv("MUSE_VULKAN_SUBGROUPS");
        c->subgroups_ = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sg.supportedOperations & need) == need &&
                        sg.subgroupSize > 0 && !(off && std::string(off) == "0");
    }

    switch (c->props_.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: c->caps_.push_back("discrete-gpu"); break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: c->caps_.push_back("integrated-gpu"); break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: c->caps_.push_back("cpu-device"); break;
    default: c->caps_.push_back("other-device"); break;
    }
    c->caps_.push_back("vulkan-" + std::to_string(VK_API_VERSION_MAJOR(c->props_.apiVersion)) + "." +
                       std::to_string(VK_API_VERSION_MINOR(c->props_.apiVersion)));
    if (c->subgroups_) c->caps_.push_back("subgroups");

    // The pipeline cache, one file per device and driver (vendor and device id, driver version,
    // the driver's cache UUID). A file that is unreadable, too large, or not this driver's is
    // ignored (and replaced at the next save).
    std::vector<char> blob;
    if (const auto dir = cache_dir(); !dir.empty()) {
        char uuid[2 * VK_UUID_SIZE + 1];
        for (int i = 0; i < VK_UUID_SIZE; ++i) std::snprintf(uuid + 2 * i, 3, "%02x", c->props_.pipelineCacheUUID[i]);
        c->cache_path_ = (dir / ("vulkan-" + std::to_string(c->props_.vendorID) + "-" + std::to_string(c->props_.deviceID) +
                                 "-" + std::to_string(c->props_.driverVersion) + "-" + uuid + ".cache"))
                             .string();
        std::error_code ec;
        const auto size = std::filesystem::file_size(c->cache_path_, ec);
        if (ec) {
            debug("pipeline cache: no file " + c->cache_path_);
        } else if (size > (256u << 20)) {
            debug("pipeline cache: ignoring " + c->cache_path_ + " (" + std::to_string(size) + " bytes: too large)");
        } else if (std::ifstream in(c->cache_path_, std::ios::binary); in) {
            blob.assign(std::istreambuf_iterator<char>(in), {});
            if (!cache_blob_matches(blob, c->props_)) {
                debug("pipeline cache: ignoring " + c->cache_path_ + " (not this device's and driver's cache)");
                blob.clear();
            }
        }
    }
    VkPipelineCacheCreateInfo pci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    pci.initialDataSize = blob.size();
    pci.pInitialData = blob.empty() ? nullptr : blob.data();
    if (vkCreatePipelineCache(c->device_, &pci, nullptr, &c->cache_) != VK_SUCCESS) {
        debug("pipeline cache: the driver rejected " + c->cache_path_);
        blob.clear();
        pci.initialDataSize = 0;  // a stale blob: start empty
        pci.pInitialData = nullptr;
        check(vkCreatePipelineCache(c->device_, &pci, nullptr, &c->cache_), "vkCreatePipelineCache");
    } else if (!blob.empty()) {
        debug("pipeline cache: loaded " + std::to_string(blob.size()) + " bytes from " + c->cache_path_);
    }
    c->cache_saved_ = std::move(blob);
    return c;
}

void Context::save_pipeline_cache() {
    if (cache_path_.empty() || !cache_) return;
    size_t size = 0;
    if (vkGetPipelineCacheData(device_, cache_, &size, nullptr) != VK_SUCCESS || size == 0) return;
    std::vector<char> data(size);
    if (vkGetPipelineCacheData(device_, cache_, &size, data.data()) != VK_SUCCESS) return;
    data.resize(size);
    if (data == cache_saved_) return;  // nothing new since the file was read or written
    // A private temporary file renamed over the cache: concurrent processes each write a whole
    // file, and a reader never sees a partial one.
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(cache_path_).parent_path(), ec);
    const std::string tmp = cache_path_ + ".tmp" + std::to_string(static_cast<long>(getpid()));
    bool ok = false;
    {
        std::ofstream out(tmp, std::ios::binary);
        ok = out && out.write(data.data(), static_cast<std::streamsize>(size)) && out.flush();
    }
    if (ok) {
        std::filesystem::rename(tmp, cache_path_, ec);
        ok = !ec;
    }
    if (!ok) {  // a read-only home, a full disk: the cache is an optimization only
        std::filesystem::remove(tmp, ec);
        debug("pipeline cache: could not write " + cache_path_);
        return;
    }
    cache_saved_ = std::move(data);
    debug("pipeline cache: wrote " + std::to_string(size) + " bytes to " + cache_path_);
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
