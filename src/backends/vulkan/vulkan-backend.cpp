#include "backends/vulkan/vulkan-backend.h"

#include "backends/cpu/cpu-backend.h"
#include "backends/graph.h"
#include "backends/vulkan/vulkan-context.h"
#include "backends/vulkan/vulkan-shaders.h"
#include "core/error.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace muse {
namespace {

using vk::check;

// Device memory that the host can also address (mapped once): activations, the KV cache,
// integer inputs and, in one buffer per model, the weights. Host visibility is what lets
// the CPU run the ops the device lacks on the same tensors without copies. A buffer may
// be created empty and given its storage later (the weight buffer, at commit).
class DeviceBuffer final : public Buffer {
public:
    explicit DeviceBuffer(vk::Context &ctx) : ctx_(ctx) {}
    DeviceBuffer(vk::Context &ctx, size_t bytes) : ctx_(ctx) { allocate(bytes); }
    ~DeviceBuffer() override {
        VkDevice d = ctx_.device();
        if (mapped_) vkUnmapMemory(d, memory_);
        if (buffer_) vkDestroyBuffer(d, buffer_, nullptr);
        if (memory_) vkFreeMemory(d, memory_, nullptr);
    }
    void *host() override { return mapped_; }
    VkBuffer handle() const { return buffer_; }

    void allocate(size_t bytes) {
        size_ = bytes;
        VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bi.size = std::max<size_t>(bytes, 16);
        bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
        bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
        check(vkCreateBuffer(ctx_.device(), &bi, nullptr, &buffer_), "vkCreateBuffer");
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(ctx_.device(), buffer_, &req);
        VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
        ai.allocationSize = req.size;
        ai.memoryTypeIndex = ctx_.host_visible_memory(req.memoryTypeBits);
        const VkResult r = vkAllocateMemory(ctx_.device(), &ai, nullptr, &memory_);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            fail(MUSE_ERR_OUT_OF_MEMORY, "vulkan: out of device memory allocating ", bytes, " bytes");
        check(r, "vkAllocateMemory");
        check(vkBindBufferMemory(ctx_.device(), buffer_, memory_, 0), "vkBindBufferMemory");
        check(vkMapMemory(ctx_.device(), memory_, 0, VK_WHOLE_SIZE, 0, &mapped_), "vkMapMemory");
        std::memset(mapped_, 0, bytes);
    }

private:
    vk::Context &ctx_;
    VkBuffer buffer_ = VK_NULL_HANDLE;
    VkDeviceMemory memory_ = VK_NULL_HANDLE;
    void *mapped_ = nullptr;
};

// A model's weights: placed at 256-byte aligned offsets while the family loads, then
// copied into one device buffer at commit (one allocation, one upload).
class DeviceWeightBuffer final : public WeightBuffer {
public:
    explicit DeviceWeightBuffer(vk::Context &ctx) : buffer_(std::make_unique<DeviceBuffer>(ctx)) {}

    Tensor add(GgmlType type, const int64_t ne[4], const void *host_data) override {
        if (committed_) fail(MUSE_ERR_INTERNAL, "vulkan: weights added after commit");
        Tensor t;
        t.type = type;
        for (int d = 0; d < 4; ++d) t.ne[d] = ne[d];
        t.buffer = buffer_.get();
        t.offset = size_;
        pending_.push_back({host_data, t.n_bytes(), size_});
        size_ = (size_ + t.n_bytes() + 255) / 256 * 256;
        return t;
    }

    void commit() override {
        if (committed_) return;
        buffer_->allocate(size_);
        auto *dst = static_cast<uint8_t *>(buffer_->host());
        for (const Pending &p : pending_) std::memcpy(dst + p.offset, p.src, p.bytes);
        pending_.clear();
        committed_ = true;
    }

private:
    struct Pending {
        const void *src;
        size_t bytes, offset;
    };
    std::unique_ptr<DeviceBuffer> buffer_;
    std::vector<Pending> pending_;
    size_t size_ = 0;
    bool committed_ = false;
};

constexpr uint32_t kBindings = 8;
constexpr uint32_t kPushBytes = 64;

class VulkanBackend final : public Backend {
public:
    VulkanBackend(int n_threads, const std::string &device)
        : ctx_(vk::Context::create(device)), cpu_(make_cpu_backend(n_threads)) {
        VkDevice d = ctx_->device();
        VkDescriptorSetLayoutBinding b[kBindings];
        for (uint32_t i = 0; i < kBindings; ++i)
            b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
        VkDescriptorSetLayoutCreateInfo dl{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
        dl.bindingCount = kBindings;
        dl.pBindings = b;
        check(vkCreateDescriptorSetLayout(d, &dl, nullptr, &set_layout_), "vkCreateDescriptorSetLayout");
        VkPushConstantRange pc{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushBytes};
        VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
        pl.setLayoutCount = 1;
        pl.pSetLayouts = &set_layout_;
        pl.pushConstantRangeCount = 1;
        pl.pPushConstantRanges = &pc;
        check(vkCreatePipelineLayout(d, &pl, nullptr, &pipeline_layout_), "vkCreatePipelineLayout");
        // Each shader once: its subgroup variant where the device runs those (dispatch() prefers
        // it), else the portable one.
        std::set<std::string> names;
        for (const vk::SpirvModule &m : vk::spirv_modules()) names.insert(m.name);
        for (const vk::SpirvModule &m : vk::spirv_modules()) {
            const std::string name = m.name;
            const bool sg = name.size() > 3 && name.compare(name.size() - 3, 3, "_sg") == 0;
            if (sg ? !ctx_->subgroups() : ctx_->subgroups() && names.count(name + "_sg")) continue;
            pipelines_[name] = make_pipeline(m);
        }
        ctx_->save_pipeline_cache();  // now, not only at exit: a process that never frees its model
        VkCommandPoolCreateInfo cp{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
        cp.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
        cp.queueFamilyIndex = ctx_->queue_family();
        check(vkCreateCommandPool(d, &cp, nullptr, &command_pool_), "vkCreateCommandPool");
        VkCommandBufferAllocateInfo ca{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ca.commandPool = command_pool_;
        ca.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ca.commandBufferCount = 1;
        check(vkAllocateCommandBuffers(d, &ca, &cmd_), "vkAllocateCommandBuffers");
        VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        check(vkCreateFence(d, &fi, nullptr, &fence_), "vkCreateFence");
    }

    ~VulkanBackend() override {
        VkDevice d = ctx_->device();
        vkDeviceWaitIdle(d);
        if (descriptor_pool_) vkDestroyDescriptorPool(d, descriptor_pool_, nullptr);
        vkDestroyFence(d, fence_, nullptr);
        vkDestroyCommandPool(d, command_pool_, nullptr);
        for (auto &[name, p] : pipelines_) vkDestroyPipeline(d, p, nullptr);
        vkDestroyPipelineLayout(d, pipeline_layout_, nullptr);
        vkDestroyDescriptorSetLayout(d, set_layout_, nullptr);
    }

    std::string name() const override { return "vulkan"; }

    DeviceInfo device() const override {
        DeviceInfo info;
        const VkPhysicalDeviceProperties &p = ctx_->properties();
        info.name = p.deviceName;
        info.kind = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU     ? DeviceInfo::Kind::discrete_gpu
                    : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? DeviceInfo::Kind::integrated_gpu
                    : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU            ? DeviceInfo::Kind::cpu
                                                                             : DeviceInfo::Kind::other;
        info.memory_total = ctx_->device_memory_bytes();
        info.capabilities = ctx_->capabilities();
        return info;
    }

    std::unique_ptr<Buffer> alloc(size_t bytes) override { return std::make_unique<DeviceBuffer>(*ctx_, bytes); }
    std::unique_ptr<WeightBuffer> weight_buffer() override { return std::make_unique<DeviceWeightBuffer>(*ctx_); }
    void upload(const Tensor &dst, const void *src, size_t bytes) override {
        std::memcpy(static_cast<uint8_t *>(dst.buffer->host()) + dst.offset, src, bytes);
    }
    void download(const Tensor &src, void *dst, size_t bytes) override { std::memcpy(dst, src.raw(), bytes); }

    // The ops either this device (a shader) or the CPU fallback runs.
    bool supports_op(const OpNode &n) const override { return on_device(n) || cpu_->supports_op(n); }
    bool runs_on_device(const OpNode &n) const override { return on_device(n); }

    void compute(const Graph &graph) override {
        std::lock_guard<std::mutex> lock(mutex_);  // one queue, one command buffer
        for (const GraphInput &in : graph.inputs()) upload(in.dst, graph.staged(in), in.bytes);
        const std::vector<OpNode> &nodes = graph.nodes();
        prepare_descriptors(nodes.size());
        scratch_.clear();  // the previous pass has completed
        rope_tables_.clear();
        bool recording = false;
        for (const OpNode &n : nodes) {
            if (on_device(n)) {
                if (n.op == Op::GetRows) check_ids(n);
                if (!recording) begin();
                recording = true;
                record(n);
                continue;
            }
            if (!cpu_->supports_op(n))
                fail(MUSE_ERR_INTERNAL, "the vulkan backend cannot run ", op_name(n.op), " on these operands");
            if (recording) submit_and_wait();
            recording = false;
            notice_fallback(n);
            Graph one(*cpu_);
            one.append(n);
            cpu_->compute(one);
        }
        if (recording) submit_and_wait();
    }

private:
    bool device_f32(const Tensor &t) const { return t.type == GgmlType::F32 && t.offset % 4 == 0 && device_any(t); }
    bool device_i32(const Tensor &t) const { return t.type == GgmlType::I32 && t.offset % 4 == 0 && device_any(t); }
    // A tensor in a buffer of this device that a shader can bind whole and address: the shaders
    // take 32-bit offsets, and a binding may not exceed maxStorageBufferRange (often 4 GiB), so
    // larger buffers (the weights of a large model) go to the CPU rather than wrap around.
    bool device_any(const Tensor &t) const {
        return t.valid() && t.buffer && !t.mapped && dynamic_cast<const DeviceBuffer *>(t.buffer) != nullptr &&
               t.buffer->size() <= ctx_->properties().limits.maxStorageBufferRange &&
               t.buffer->size() <= UINT32_MAX;
    }

    // The quantized types of shaders/dequant.glsl (matmul and get_rows variants).
    static bool quantized_shader(GgmlType t) {
        return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
               t == GgmlType::Q6_K;
    }
    static const char *type_suffix(GgmlType t) {
        switch (t) {
        case GgmlType::F32: return "f32";
        case GgmlType::F16: return "f16";
        case GgmlType::Q8_0: return "q8_0";
        case GgmlType::Q4_0: return "q4_0";
        case GgmlType::Q4_K: return "q4_k";
        case GgmlType::Q5_K: return "q5_k";
        case GgmlType::Q6_K: return "q6_k";
        default: fail(MUSE_ERR_INTERNAL, "vulkan: no shader for type ", type_traits(t).name);
        }
    }

    // Whether a shader runs the op (the rest goes to the CPU).
    bool on_device(const OpNode &n) const {
        const Tensor *s = n.src;
        switch (n.op) {
        case Op::MatMul: {
            const Tensor &w = s[0];
            if (!device_any(w) || w.layout != WeightLayout::ggml || !device_f32(s[1]) || !device_f32(n.dst)) return false;
            if (w.type == GgmlType::F32 || w.type == GgmlType::F16)
                return w.offset % 4 == 0 && w.row_bytes() % 4 == 0;
            return quantized_shader(w.type) && w.offset % 2 == 0 && w.row_bytes() % 2 == 0;
        }
        case Op::Add:
        case Op::MulRow:
            return device_f32(n.dst) && device_f32(s[1]) &&
                   (s[1].n_elements() == n.dst.n_elements() || s[1].n_elements() == n.dst.ne[0]);
        case Op::Swiglu:
        case Op::SigmoidMul:
            return device_f32(n.dst) && device_f32(s[1]) && s[1].n_elements() == n.dst.n_elements();
        case Op::Scale:
        case Op::Softcap: return device_f32(n.dst);
        case Op::RmsNorm:
            return device_f32(s[0]) && device_f32(n.dst) && (!s[1].valid() || (device_f32(s[1]) && s[1].ne[0] == s[0].ne[0]));
        case Op::LayerNorm:
            return device_f32(s[0]) && device_f32(n.dst) && (!s[1].valid() || (device_f32(s[1]) && s[1].ne[0] == s[0].ne[0])) &&
                   (!s[2].valid() || (device_f32(s[2]) && s[2].ne[0] == s[0].ne[0]));
        case Op::Activation:
            return device_f32(n.dst) && (n.act == Activation::GeluErf || n.act == Activation::GeluTanh ||
                                         n.act == Activation::GeluQuick || n.act == Activation::Silu);
        case Op::Patches:
        case Op::ResizeBilinear:
        case Op::Transpose: return device_f32(s[0]) && device_f32(n.dst);
        case Op::Rope2d: return device_f32(n.dst) && device_i32(s[1]) && device_i32(s[2]);
        case Op::AttentionWindows:
            return device_f32(s[0]) && device_f32(s[1]) && device_f32(s[2]) && device_i32(s[3]) && device_f32(n.dst) &&
                   s[0].ne[0] <= 256 && n.i > 0 && s[0].ne[1] % n.i == 0;
        case Op::GetRows:
            return device_any(s[0]) && s[0].layout == WeightLayout::ggml &&
                   (((s[0].type == GgmlType::F32 || s[0].type == GgmlType::F16) && s[0].offset % 4 == 0) ||
                    (quantized_shader(s[0].type) && s[0].offset % 2 == 0 && s[0].row_bytes() % 2 == 0)) &&
                   s[1].type == GgmlType::I32 && device_any(s[1]) && device_f32(n.dst);
        case Op::SetColumns:
            return device_f32(s[0]) && device_i32(s[1]) && device_any(n.dst) && n.dst.offset % 4 == 0 &&
                   (n.dst.type == GgmlType::F32 || (n.dst.type == GgmlType::F16 && n.dst.ne[0] % 2 == 0));
        case Op::Rope: return device_f32(n.dst) && device_i32(s[1]) && n.rope.n_rot % 2 == 0 && n.rope.n_rot <= n.dst.ne[0];
        case Op::Attention:
            return device_f32(s[0]) && device_any(s[1]) && device_any(s[2]) && s[1].type == s[2].type &&
                   (s[1].type == GgmlType::F32 || s[1].type == GgmlType::F16) && s[1].offset % 4 == 0 &&
                   s[2].offset % 4 == 0 && device_i32(s[3]) && device_i32(s[4]) && device_i32(s[5]) &&
                   device_f32(n.dst) && s[0].ne[0] <= 256 && n.i > 0 && s[0].ne[1] % n.i == 0;
        default: return false;
        }
    }

    // A shader cannot raise an error: ids are checked on the host (the ids are graph
    // inputs, already in host-visible memory).
    static void check_ids(const OpNode &n) {
        const int32_t *ids = n.src[1].i32();
        for (int64_t i = 0; i < n.src[1].ne[0]; ++i)
            if (ids[i] < 0 || ids[i] >= n.src[0].n_rows()) fail(MUSE_ERR_OUT_OF_RANGE, "row id ", ids[i], " out of range");
    }

    void notice_fallback(const OpNode &n) {
        const std::string key = std::string(op_name(n.op)) + "/" + type_traits(n.src[0].type).name;
        if (!noticed_.insert(key).second) return;
        std::fprintf(stderr, "muse: vulkan: %s (%s) runs on the CPU\n", op_name(n.op), type_traits(n.src[0].type).name);
    }

    VkPipeline make_pipeline(const vk::SpirvModule &m) {
        VkShaderModuleCreateInfo si{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
        si.codeSize = m.size;
        si.pCode = reinterpret_cast<const uint32_t *>(m.code);
        VkShaderModule module;
        check(vkCreateShaderModule(ctx_->device(), &si, nullptr, &module), "vkCreateShaderModule");
        VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
        ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
        ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
        ci.stage.module = module;
        ci.stage.pName = "main";
        ci.layout = pipeline_layout_;
        VkPipeline p;
        const VkResult r = vkCreateComputePipelines(ctx_->device(), ctx_->pipeline_cache(), 1, &ci, nullptr, &p);
        vkDestroyShaderModule(ctx_->device(), module, nullptr);
        check(r, "vkCreateComputePipelines");
        return p;
    }

    // One descriptor set per device op of a pass, from a pool reset at every pass.
    void prepare_descriptors(size_t n_nodes) {
        VkDevice d = ctx_->device();
        if (n_nodes > pool_sets_ || !descriptor_pool_) {
            if (descriptor_pool_) vkDestroyDescriptorPool(d, descriptor_pool_, nullptr);
            pool_sets_ = std::max<size_t>(n_nodes, 256);
            VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, static_cast<uint32_t>(pool_sets_ * kBindings)};
            VkDescriptorPoolCreateInfo pi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
            pi.maxSets = static_cast<uint32_t>(pool_sets_);
            pi.poolSizeCount = 1;
            pi.pPoolSizes = &size;
            check(vkCreateDescriptorPool(d, &pi, nullptr, &descriptor_pool_), "vkCreateDescriptorPool");
        } else {
            check(vkResetDescriptorPool(d, descriptor_pool_, 0), "vkResetDescriptorPool");
        }
    }

    void begin() {
        check(vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
        check(vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
    }

    void submit_and_wait() {
        // The host reads (downloads, CPU fallback ops) see the shaders' writes.
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
        vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr,
                             0, nullptr);
        check(vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
        VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = 1;
        si.pCommandBuffers = &cmd_;
        check(vkQueueSubmit(ctx_->queue(), 1, &si, fence_), "vkQueueSubmit");
        check(vkWaitForFences(ctx_->device(), 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
        check(vkResetFences(ctx_->device(), 1, &fence_), "vkResetFences");
    }

    static VkBuffer handle(const Tensor &t) { return static_cast<const DeviceBuffer *>(t.buffer)->handle(); }

    // The cosines and sines of a rope, per token and pair: [n_tok, n_rot / 2, 2], computed on the
    // host in double as the CPU backend does (positions are graph inputs, already written), in a
    // scratch buffer that lives until the next pass. The q and k ropes of a layer, and every
    // layer, share one table.
    Tensor rope_table(const Tensor &pos, const RopeParams &rp, int64_t hd) {
        const int n_rot = rp.n_rot > 0 ? rp.n_rot : static_cast<int>(hd);
        const int64_t n_tok = pos.ne[0];
        char key[160];
        std::snprintf(key, sizeof key, "%p/%zu/%lld/%d/%a/%a", static_cast<const void *>(pos.buffer), pos.offset,
                      static_cast<long long>(n_tok), n_rot, static_cast<double>(rp.freq_base), static_cast<double>(rp.freq_scale));
        if (auto it = rope_tables_.find(key); it != rope_tables_.end()) return it->second;
        const int32_t *ps = pos.i32();
        std::vector<double> inv_freq(static_cast<size_t>(n_rot / 2));  // once, not per token
        for (int i = 0; i < n_rot / 2; ++i)
            inv_freq[static_cast<size_t>(i)] = std::pow(static_cast<double>(rp.freq_base), -2.0 * i / n_rot);
        std::vector<float> cs(static_cast<size_t>(n_tok * n_rot));
        for (int64_t t = 0; t < n_tok; ++t)
            for (int i = 0; i < n_rot / 2; ++i) {
                const double theta = static_cast<double>(ps[t]) * rp.freq_scale * inv_freq[static_cast<size_t>(i)];
                cs[static_cast<size_t>((t * (n_rot / 2) + i) * 2)] = static_cast<float>(std::cos(theta));
                cs[static_cast<size_t>((t * (n_rot / 2) + i) * 2 + 1)] = static_cast<float>(std::sin(theta));
            }
        const Tensor t = scratch(cs.data(), cs.size() * 4, GgmlType::F32);
        rope_tables_.emplace(key, t);
        return t;
    }

    // Host-written constants for one op of this pass (rope tables, resize taps, attention
    // ranges), in a scratch buffer that lives until the next pass.
    Tensor scratch(const void *data, size_t bytes, GgmlType type) {
        scratch_.push_back(std::make_unique<DeviceBuffer>(*ctx_, bytes));
        std::memcpy(scratch_.back()->host(), data, bytes);
        Tensor t;
        t.type = type;
        t.ne[0] = static_cast<int64_t>(bytes / 4);
        t.buffer = scratch_.back().get();
        return t;
    }

    // Binds the buffers of `bound` (missing ones repeat the first), pushes the constants and
    // dispatches, then orders the next op after this one.
    void dispatch(const char *pipeline, std::initializer_list<const Tensor *> bound, const void *push, size_t push_bytes,
                  uint32_t gx, uint32_t gy = 1) {
        VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = descriptor_pool_;
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &set_layout_;
        VkDescriptorSet set;
        check(vkAllocateDescriptorSets(ctx_->device(), &ai, &set), "vkAllocateDescriptorSets");
        VkDescriptorBufferInfo infos[kBindings];
        VkWriteDescriptorSet writes[kBindings];
        const Tensor *first = *bound.begin();
        auto it = bound.begin();
        for (uint32_t i = 0; i < kBindings; ++i) {
            const Tensor *t = it != bound.end() ? *it++ : first;
            if (!t || !t->valid()) t = first;
            infos[i] = {handle(*t), 0, VK_WHOLE_SIZE};
            writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
            writes[i].dstSet = set;
            writes[i].dstBinding = i;
            writes[i].descriptorCount = 1;
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
            writes[i].pBufferInfo = &infos[i];
        }
        vkUpdateDescriptorSets(ctx_->device(), kBindings, writes, 0, nullptr);
        // The subgroup variant of a shader where there is one and the device runs it.
        auto p = ctx_->subgroups() ? pipelines_.find(std::string(pipeline) + "_sg") : pipelines_.end();
        if (p == pipelines_.end()) p = pipelines_.find(pipeline);
        if (p == pipelines_.end()) fail(MUSE_ERR_INTERNAL, "vulkan: no pipeline ", pipeline);
        vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p->second);
        vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_layout_, 0, 1, &set, 0, nullptr);
        vkCmdPushConstants(cmd_, pipeline_layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0, static_cast<uint32_t>(push_bytes), push);
        vkCmdDispatch(cmd_, std::max(gx, 1u), std::max(gy, 1u), 1);
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
        vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                             nullptr, 0, nullptr);
    }

    static uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }
    static uint32_t groups(int64_t n, int64_t per) { return u32(std::min<int64_t>((n + per - 1) / per, 65535)); }

    void elementwise(uint32_t op, const Tensor &x, const Tensor *b, float f) {
        struct {
            uint32_t op, n, nb, x_off, b_off;
            float f;
        } p{op, u32(x.n_elements()), b ? u32(b->n_elements()) : 1u, u32(x.offset / 4), b ? u32(b->offset / 4) : 0u, f};
        dispatch("elementwise", {&x, b}, &p, sizeof p, groups(x.n_elements(), 256));
    }

    void record(const OpNode &n) {
        const Tensor *s = n.src;
        switch (n.op) {
        case Op::MatMul: {
            const Tensor &w = s[0];
            struct {
                uint32_t n_in, n_out, n_tok, w_byte, w_row_bytes, x_off, y_off;
            } p{u32(w.ne[0]), u32(w.ne[1]), u32(s[1].n_rows()), u32(w.offset), u32(w.row_bytes()), u32(s[1].offset / 4),
                u32(n.dst.offset / 4)};
            if (s[1].ne[0] != w.ne[0] || n.dst.ne[0] != w.ne[1] || n.dst.n_rows() != s[1].n_rows())
                fail(MUSE_ERR_INTERNAL, "matmul shape mismatch");
            const std::string name = std::string("matmul_") + type_suffix(w.type);
            dispatch(name.c_str(), {&w, &s[1], &n.dst}, &p, sizeof p, groups(w.ne[1], 1), groups(s[1].n_rows(), 1));
            return;
        }
        case Op::Add: elementwise(0, n.dst, &s[1], 0.0f); return;
        case Op::Scale: elementwise(1, n.dst, nullptr, n.f); return;
        case Op::Swiglu: elementwise(2, n.dst, &s[1], 0.0f); return;
        case Op::SigmoidMul: elementwise(3, n.dst, &s[1], 0.0f); return;
        case Op::Softcap: elementwise(4, n.dst, nullptr, n.f); return;
        case Op::MulRow: elementwise(5, n.dst, &s[1], 0.0f); return;
        case Op::RmsNorm: {
            struct {
                uint32_t ne0, rows, x_off, w_off, y_off, has_w;
                float eps;
            } p{u32(s[0].ne[0]), u32(s[0].n_rows()), u32(s[0].offset / 4), s[1].valid() ? u32(s[1].offset / 4) : 0u,
                u32(n.dst.offset / 4), s[1].valid() ? 1u : 0u, n.f};
            dispatch("rms_norm", {&s[0], s[1].valid() ? &s[1] : &s[0], &n.dst}, &p, sizeof p, groups(s[0].n_rows(), 1));
            return;
        }
        case Op::LayerNorm: {
            struct {
                uint32_t ne0, rows, x_off, w_off, b_off, y_off, has_w, has_b;
                float eps;
            } p{u32(s[0].ne[0]), u32(s[0].n_rows()), u32(s[0].offset / 4), s[1].valid() ? u32(s[1].offset / 4) : 0u,
                s[2].valid() ? u32(s[2].offset / 4) : 0u, u32(n.dst.offset / 4), s[1].valid() ? 1u : 0u,
                s[2].valid() ? 1u : 0u, n.f};
            if (n.dst.n_elements() != s[0].n_elements()) fail(MUSE_ERR_INTERNAL, "layer_norm: shape mismatch");
            dispatch("layer_norm", {&s[0], s[1].valid() ? &s[1] : &s[0], s[2].valid() ? &s[2] : &s[0], &n.dst}, &p, sizeof p,
                     groups(s[0].n_rows(), 1));
            return;
        }
        case Op::Activation: {
            const uint32_t op = n.act == Activation::GeluErf    ? 6u
                                : n.act == Activation::GeluTanh ? 7u
                                : n.act == Activation::GeluQuick ? 8u
                                                                 : 9u;
            elementwise(op, n.dst, nullptr, 0.0f);
            return;
        }
        case Op::Patches: record_patches(n); return;
        case Op::Transpose: {
            const Tensor &src = s[0];
            const int64_t a = src.ne[0], b = src.ne[1];
            if (n.dst.ne[0] != b || n.dst.ne[1] != a || n.dst.n_elements() != src.n_elements())
                fail(MUSE_ERR_INTERNAL, "transpose: [", a, ",", b, "] cannot become [", n.dst.ne[0], ",", n.dst.ne[1], "]");
            struct {
                uint32_t a, b, n, src_off, dst_off;
            } p{u32(a), u32(b), u32(src.n_elements()), u32(src.offset / 4), u32(n.dst.offset / 4)};
            dispatch("transpose", {&src, &n.dst}, &p, sizeof p, groups(src.n_elements(), 256));
            return;
        }
        case Op::ResizeBilinear: record_resize(n); return;
        case Op::Rope2d: {
            // Two NORM ropes of n_rot = hd / 2, one per half of each head: pair i of a half turns by
            // pos * base^(-2i / (hd / 2)), which is the 1D rope's angle for that n_rot.
            const Tensor &x = n.dst;
            if (x.ne[0] % 4 != 0) fail(MUSE_ERR_INTERNAL, "rope_2d: head dim ", x.ne[0], " is not a multiple of 4");
            if (s[1].ne[0] < x.ne[2] || s[2].ne[0] < x.ne[2]) fail(MUSE_ERR_INTERNAL, "rope_2d: a position per token");
            RopeParams rp;
            rp.n_rot = static_cast<int>(x.ne[0] / 2);
            rp.freq_base = n.f;
            for (int part = 0; part < 2; ++part) {
                const Tensor table = rope_table(s[1 + part], rp, rp.n_rot);
                struct {
                    uint32_t hd, n_head, n_tok, n_rot, neox, x_off, table_off;
                } p{u32(x.ne[0]), u32(x.ne[1]), u32(x.ne[2]), u32(rp.n_rot), 0u, u32(x.offset / 4 + part * rp.n_rot),
                    u32(table.offset / 4)};
                dispatch("rope", {&x, &table}, &p, sizeof p, groups(int64_t(rp.n_rot / 2) * x.ne[1] * x.ne[2], 256));
            }
            return;
        }
        case Op::AttentionWindows: record_attention_windows(n); return;
        case Op::GetRows: {
            struct {
                uint32_t ne0, n, t_byte, row_bytes, ids_off, o_off, type;
            } p{u32(s[0].ne[0]), u32(s[1].ne[0]), u32(s[0].offset), u32(s[0].row_bytes()), u32(s[1].offset / 4),
                u32(n.dst.offset / 4), s[0].type == GgmlType::F32 ? 0u : 1u};
            const std::string name = quantized_shader(s[0].type) ? std::string("get_rows_") + type_suffix(s[0].type) : "get_rows";
            dispatch(name.c_str(), {&s[0], &s[1], &n.dst}, &p, sizeof p, groups(s[0].ne[0] * s[1].ne[0], 256));
            return;
        }
        case Op::SetColumns: {
            const bool f16 = n.dst.type == GgmlType::F16;
            struct {
                uint32_t ne0, n, dst_byte, src_off, cells_off, f16;
            } p{u32(s[0].ne[0]), u32(s[0].n_rows()), u32(n.dst.offset), u32(s[0].offset / 4), u32(s[1].offset / 4),
                f16 ? 1u : 0u};
            if (n.dst.ne[0] != s[0].ne[0] || s[1].ne[0] != s[0].n_rows()) fail(MUSE_ERR_INTERNAL, "set_columns: shape mismatch");
            const int32_t *cells = s[1].i32();  // a shader cannot raise: checked here
            for (int64_t c = 0; c < s[1].ne[0]; ++c)
                if (cells[c] < 0 || cells[c] >= n.dst.n_rows()) fail(MUSE_ERR_INTERNAL, "set_columns: cell out of range");
            dispatch("set_columns", {&n.dst, &s[0], &s[1]}, &p, sizeof p,
                     groups(s[0].n_rows() * (f16 ? s[0].ne[0] / 2 : s[0].ne[0]), 256));
            return;
        }
        case Op::Rope: {
            const Tensor &x = n.dst;
            const Tensor table = rope_table(s[1], n.rope, x.ne[0]);
            struct {
                uint32_t hd, n_head, n_tok, n_rot, neox, x_off, table_off;
            } p{u32(x.ne[0]), u32(x.ne[1]), u32(x.ne[2]), u32(n.rope.n_rot > 0 ? n.rope.n_rot : x.ne[0]),
                n.rope.mode == RopeMode::Neox ? 1u : 0u, u32(x.offset / 4), u32(table.offset / 4)};
            if (s[1].ne[0] < x.ne[2]) fail(MUSE_ERR_INTERNAL, "rope: a position per token");
            dispatch("rope", {&x, &table}, &p, sizeof p, groups(int64_t(p.n_rot / 2) * x.ne[1] * x.ne[2], 256));
            return;
        }
        case Op::Attention: {
            const Tensor &q = s[0];
            struct {
                uint32_t hd, n_head, n_tok, group, q_off, k_byte, v_byte, row_elems, cells_off, begin_off, end_off, o_off;
                float scale;
            } p{u32(q.ne[0]), u32(q.ne[1]), u32(q.ne[2]), u32(q.ne[1] / n.i), u32(q.offset / 4), u32(s[1].offset),
                u32(s[2].offset), u32(s[1].ne[0]), u32(s[3].offset / 4), u32(s[4].offset / 4), u32(s[5].offset / 4),
                u32(n.dst.offset / 4), n.f};
            const char *name = s[1].type == GgmlType::F16 ? "attention_f16" : "attention_f32";
            dispatch(name, {&q, &s[1], &s[2], &s[3], &s[4], &s[5], &n.dst}, &p, sizeof p, groups(q.ne[1] * q.ne[2], 1));
            return;
        }
        default: fail(MUSE_ERR_INTERNAL, "vulkan: no shader for ", op_name(n.op));
        }
    }

    void record_patches(const OpNode &n) {
        const Tensor &img = n.src[0];
        const int64_t W = img.ne[0], H = img.ne[1], C = img.ne[2], P = n.i;
        if (P <= 0 || W % P || H % P || img.ne[3] != 1)
            fail(MUSE_ERR_INTERNAL, "patches: image ", W, "x", H, " is not a whole number of ", P, "-pixel patches");
        const int64_t gw = W / P, gh = H / P, rows = P * P * C;
        if (n.dst.ne[0] != rows || n.dst.n_rows() != gw * gh)
            fail(MUSE_ERR_INTERNAL, "patches: output is [", n.dst.ne[0], ",", n.dst.n_rows(), "], expected [", rows, ",",
                 gw * gh, "]");
        struct {
            uint32_t W, H, ps, gw, rows, n, img_off, out_off;
        } p{u32(W), u32(H), u32(P), u32(gw), u32(rows), u32(rows * gw * gh), u32(img.offset / 4), u32(n.dst.offset / 4)};
        dispatch("patches", {&img, &n.dst}, &p, sizeof p, groups(rows * gw * gh, 256));
    }

    // The taps are computed here in double, exactly as the CPU backend does, and handed to the
    // shader as (i0, i1, weight) float triples (indices are small integers: exact in float).
    void record_resize(const OpNode &n) {
        const Tensor &src = n.src[0], &dst = n.dst;
        const int64_t C = src.ne[0], wi = src.ne[1], hi = src.ne[2], wo = dst.ne[1], ho = dst.ne[2];
        if (dst.ne[0] != C || src.ne[3] != 1 || dst.ne[3] != 1 || wi <= 0 || hi <= 0 || wo <= 0 || ho <= 0 ||
            wi >= (1 << 24) || hi >= (1 << 24))
            fail(MUSE_ERR_INTERNAL, "resize_bilinear: shapes [", C, ",", wi, ",", hi, "] -> [", dst.ne[0], ",", wo, ",",
                 ho, "] do not match");
        std::vector<float> taps;
        auto add = [&taps](int64_t in, int64_t out) {
            for (int64_t d = 0; d < out; ++d) {
                const double s = (static_cast<double>(d) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
                const double fl = std::floor(s);
                const auto i = static_cast<int64_t>(fl);
                taps.push_back(static_cast<float>(std::clamp<int64_t>(i, 0, in - 1)));
                taps.push_back(static_cast<float>(std::clamp<int64_t>(i + 1, 0, in - 1)));
                taps.push_back(static_cast<float>(std::clamp(s - fl, 0.0, 1.0)));
            }
        };
        add(wi, wo);
        add(hi, ho);
        const Tensor table = scratch(taps.data(), taps.size() * 4, GgmlType::F32);
        struct {
            uint32_t C, wi, wo, n, src_off, taps_off, dst_off;
        } p{u32(C), u32(wi), u32(wo), u32(dst.n_elements()), u32(src.offset / 4), 0u, u32(dst.offset / 4)};
        dispatch("resize_bilinear", {&src, &table, &dst}, &p, sizeof p, groups(dst.n_elements(), 256));
    }

    // Attention inside windows is the gathered-cells attention with every token's range its own
    // window: cells are the tokens in order, and token t of a window [start, start + len) reads
    // [start, start + len). The windows are a graph input (host-visible, already written), so the
    // ranges are built and checked here.
    void record_attention_windows(const OpNode &n) {
        const Tensor &q = n.src[0], &k = n.src[1], &v = n.src[2], &win = n.src[3];
        const int64_t hd = q.ne[0], n_head = q.ne[1], n_tok = q.ne[2], kvw = hd * n.i;
        if (k.ne[0] != kvw || v.ne[0] != kvw || k.n_rows() != n_tok || v.n_rows() != n_tok ||
            n.dst.ne[0] != hd * n_head || n.dst.n_rows() != n_tok || q.ne[3] != 1)
            fail(MUSE_ERR_INTERNAL, "attention_windows: q/k/v/out shapes do not match");
        const int32_t *w = win.i32();
        std::vector<int32_t> ranges(static_cast<size_t>(3 * n_tok));  // cells, begin, end
        int64_t start = 0;
        for (int64_t i = 0; i < win.ne[0]; ++i) {
            if (w[i] <= 0 || start + w[i] > n_tok)
                fail(MUSE_ERR_INTERNAL, "attention_windows: window ", i, " (", w[i], " tokens) is empty or too long");
            for (int64_t t = start; t < start + w[i]; ++t) {
                ranges[static_cast<size_t>(t)] = static_cast<int32_t>(t);
                ranges[static_cast<size_t>(n_tok + t)] = static_cast<int32_t>(start);
                ranges[static_cast<size_t>(2 * n_tok + t)] = static_cast<int32_t>(start + w[i]);
            }
            start += w[i];
        }
        if (start != n_tok) fail(MUSE_ERR_INTERNAL, "attention_windows: windows cover ", start, " of ", n_tok, " tokens");
        const Tensor r = scratch(ranges.data(), ranges.size() * 4, GgmlType::I32);
        struct {
            uint32_t hd, n_head, n_tok, group, q_off, k_byte, v_byte, row_elems, cells_off, begin_off, end_off, o_off;
            float scale;
        } p{u32(hd), u32(n_head), u32(n_tok), u32(n_head / n.i), u32(q.offset / 4), u32(k.offset), u32(v.offset), u32(kvw),
            0u, u32(n_tok), u32(2 * n_tok), u32(n.dst.offset / 4), n.f};
        dispatch("attention_f32", {&q, &k, &v, &r, &r, &r, &n.dst}, &p, sizeof p, groups(n_head * n_tok, 1));
    }

    std::unique_ptr<vk::Context> ctx_;
    std::unique_ptr<Backend> cpu_;  // the ops without a shader, on the same host-visible memory
    VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
    VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
    std::map<std::string, VkPipeline> pipelines_;
    VkCommandPool command_pool_ = VK_NULL_HANDLE;
    VkCommandBuffer cmd_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
    size_t pool_sets_ = 0;
    std::mutex mutex_;
    std::set<std::string> noticed_;
    std::vector<std::unique_ptr<DeviceBuffer>> scratch_;  // this pass's host-written constants (scratch())
    std::map<std::string, Tensor> rope_tables_;
};

} // namespace

namespace {

// Whether the kernel shows any GPU at all. Creating a Vulkan instance loads every installed
// driver (Debian's mesa-vulkan-drivers brings four, LLVM included for lavapipe): about a
// second and ~50 MB on a machine with no GPU, paid by every default-backend model load. On
// Linux a GPU that Vulkan can drive has a DRM render node (Mesa, AMDVLK) or NVIDIA's control
// device; without either, the probe is skipped.
bool gpu_device_nodes() {
#if defined(__linux__)
    std::error_code ec;
    if (std::filesystem::exists("/dev/nvidiactl", ec)) return true;
    for (const auto &e : std::filesystem::directory_iterator("/dev/dri", ec))
        if (e.path().filename().string().rfind("renderD", 0) == 0) return true;
    return false;
#else
    return true;  // no cheap check elsewhere: ask Vulkan
#endif
}

} // namespace

bool vulkan_gpu_present() {
    static const bool present = gpu_device_nodes() && vk::Context::has_gpu();
    return present;
}

std::unique_ptr<Backend> make_vulkan_backend(int n_threads, const std::string &device) {
    return std::make_unique<VulkanBackend>(n_threads, device);
}

} // namespace muse
