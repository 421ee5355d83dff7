// One Vulkan device for the backend: instance, the chosen physical device, a compute
// queue, memory types, and the pipeline cache that is kept across runs (a file per device and
// driver in MUSE_VULKAN_CACHE_DIR, else $XDG_CACHE_HOME/muse, else ~/.cache/muse).
//
// Device choice: `selector` (the model parameter) or else MUSE_VULKAN_DEVICE, as an index
// into the list of devices or a case-insensitive substring of a device's name. Without one,
// the first discrete GPU, else the first integrated one; CPU-type devices (lavapipe) only
// when named, since the CPU backend is faster on the same cores.
#pragma once

#include <vulkan/vulkan.h>

#include <memory>
#include <string>
#include <vector>

namespace muse::vk {

// Throws MUSE_ERR_BACKEND-style muse errors (MUSE_ERR_UNSUPPORTED) naming the call.
void check(VkResult r, const char *what);

class Context {
public:
    // Throws MUSE_ERR_UNSUPPORTED with the reason when no device can be used.
    static std::unique_ptr<Context> create(const std::string &selector);
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    VkDevice device() const { return device_; }
    VkQueue queue() const { return queue_; }
    uint32_t queue_family() const { return queue_family_; }
    const VkPhysicalDeviceProperties &properties() const { return props_; }
    VkPipelineCache pipeline_cache() const { return cache_; }
    // Host-visible, coherent memory of the allowed types (device-local preferred).
    uint32_t host_visible_memory(uint32_t type_bits) const;
    size_t device_memory_bytes() const;  // the largest device-local heap
    const std::vector<std::string> &capabilities() const { return caps_; }
    // Whether the subgroup-arithmetic shader variants are used (capability "subgroups").
    bool subgroups() const { return subgroups_; }

    // Writes the pipeline cache file if the cache has grown since it was read or written (also
    // done at destruction); failures are silent (MUSE_VULKAN_DEBUG=1 reports them).
    void save_pipeline_cache();

    // Names of every device the loader reports, in index order (for error messages and logs).
    static std::vector<std::string> device_names();
    // Whether a discrete or integrated GPU is there (what MUSE_BACKEND_AUTO takes); false
    // when Vulkan cannot start at all.
    static bool has_gpu();

private:
    Context() = default;

    VkInstance instance_ = VK_NULL_HANDLE;
    VkPhysicalDevice physical_ = VK_NULL_HANDLE;
    VkDevice device_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t queue_family_ = 0;
    VkPhysicalDeviceProperties props_{};
    VkPhysicalDeviceMemoryProperties memory_{};
    VkPipelineCache cache_ = VK_NULL_HANDLE;
    std::string cache_path_;
    std::vector<char> cache_saved_;  // what the file holds (as read or last written)
    std::vector<std::string> caps_;
    bool subgroups_ = false;
};

} // namespace muse::vk
