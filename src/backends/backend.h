// The backend interface: a device, the buffers that live on it, and the runner of
// recorded forward passes (graph.h). Model code records its ops once against Graph; the
// CPU backend (cpu/) is always built, a Vulkan backend (vulkan/, -DMUSE_VULKAN=ON)
// implements the same calls.
//
// Conventions: shapes are in ggml order (ne[0] contiguous). Activations are
// F32; weights keep their GGUF type. Every op names the layout it expects.
#pragma once

#include "core/ggml-types.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace muse {

class Buffer {
public:
    virtual ~Buffer() = default;
    size_t size() const { return size_; }
    // Host address of the storage, or nullptr for device memory.
    virtual void *host() = 0;

protected:
    size_t size_ = 0;
};

// How a weight's rows are laid out in storage.
enum class WeightLayout : uint8_t {
    ggml,        // as in the GGUF file: row after row
    rows16  // Q8_0 / Q4_0 / Q4_K repacked by the CPU backend in groups of 16 interleaved rows
            // (cpu/cpu-int8-matmul.h); views may start and end only at group boundaries
            // (or at the last row)
};

// A view into a buffer (or into read-only mapped weights): type, shape, storage.
struct Tensor {
    GgmlType type = GgmlType::F32;
    WeightLayout layout = WeightLayout::ggml;
    int64_t ne[4] = {1, 1, 1, 1};
    Buffer *buffer = nullptr;      // owned elsewhere; nullptr for mapped weights
    const void *mapped = nullptr;  // read-only host memory (mmap'd weights)
    size_t offset = 0;             // bytes from the start of buffer/mapped

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const;
    size_t n_bytes() const { return row_bytes() * static_cast<size_t>(n_rows()); }
    bool valid() const { return buffer || mapped; }
    // Host pointers (CPU backend only).
    float *f32() const;
    const int32_t *i32() const;
    const void *raw() const;
    // A contiguous sub-range of rows [row0, row0 + n) viewed as ne = {ne0, n}.
    Tensor rows(int64_t row0, int64_t n) const;
    // The same storage with another shape of the same element count.
    Tensor reshape(int64_t ne0, int64_t ne1, int64_t ne2 = 1, int64_t ne3 = 1) const;
};

enum class RopeMode { Norm, Neox };  // adjacent pairs (llama) / halves (neox, qwen)

// Elementwise activations (Graph::activation), each as ggml defines it.
enum class Activation {
    GeluErf,    // 0.5 x (1 + erf(x / sqrt 2))
    GeluTanh,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (ggml_gelu)
    GeluQuick,  // x sigmoid(1.702 x)                                 (ggml_gelu_quick)
    Silu,       // x sigmoid(x)
};

struct RopeParams {
    int n_rot = 0;  // dimensions rotated (from 0); the rest pass through
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;
    RopeMode mode = RopeMode::Norm;
};

// The cached cells every query token of a forward pass reads (Graph::attention): I32
// tensors, n_tok ranges [begin[t], end[t]) into `cells`; tokens of one sequence usually
// share one list.
struct KvRanges {
    Tensor cells, begin, end;
};

// What a backend runs on, for logs, the C API's system info and device selection.
struct DeviceInfo {
    enum class Kind { cpu, integrated_gpu, discrete_gpu, other };
    std::string name;         // "cpu (avx512, vnni, amx)", a GPU's product name
    Kind kind = Kind::cpu;
    size_t memory_total = 0;  // bytes the device can hold (0: unknown)
    size_t memory_free = 0;
    std::vector<std::string> capabilities;  // e.g. "avx512", "amx", "fp16", "subgroups"
};

// The weights of one model (a decoder or a vision tower), in one place: tensors are added
// while the model loads and committed once, so a device backend uploads them in one go.
// The buffer owns what the backend made of them (repacked copies, device memory); the
// tensors it returns stay valid while it lives. Mapped host data must outlive it too.
class WeightBuffer {
public:
    virtual ~WeightBuffer() = default;
    virtual Tensor add(GgmlType type, const int64_t ne[4], const void *host_data) = 0;
    // Ends loading: after this the tensors are usable by ops.
    virtual void commit() {}
    // Called by a backend that copies host data in parts (repacking at load) for each part it
    // is done with, so the loader can drop those file pages at once: otherwise the largest
    // copied tensor (a 150 MB embedding table) is resident twice at the load's peak.
    void on_host_data_done(std::function<void(const void *data, size_t n)> done) { host_data_done_ = std::move(done); }

protected:
    void host_data_done(const void *data, size_t n) const {
        if (host_data_done_) host_data_done_(data, n);
    }

private:
    std::function<void(const void *, size_t)> host_data_done_;
};

struct OpNode;
class Graph;

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual DeviceInfo device() const = 0;

    // ---- memory
    // Zero-filled memory (the KV cache: its cells are read only once written, but stay defined).
    virtual std::unique_ptr<Buffer> alloc(size_t bytes) = 0;
    // Memory whose contents are undefined until written: a decoder's activations and staged inputs, which
    // every pass writes before it reads them. Zeroing them only costs page faults up front
    // (16 activation rows of the widest layer per token: 650 MB for a 512-token prompt of
    // Muse Glimmer's width).
    virtual std::unique_ptr<Buffer> alloc_scratch(size_t bytes) { return alloc(bytes); }
    virtual std::unique_ptr<WeightBuffer> weight_buffer() = 0;
    virtual void upload(const Tensor &dst, const void *src, size_t bytes) = 0;
    virtual void download(const Tensor &src, void *dst, size_t bytes) = 0;

    // ---- ops
    // Whether this backend runs the op with these operand types and layouts.
    virtual bool supports_op(const OpNode &node) const = 0;
    // Whether the device itself runs it (false: the backend hands it to its CPU fallback).
    virtual bool runs_on_device(const OpNode &node) const { return supports_op(node); }
    // Uploads the graph's inputs, then runs its ops in order; returns when the results are
    // readable by download. Consecutive ops that share an input may be fused (matmuls of one
    // activation, for instance); the results are those of running them one by one.
    virtual void compute(const Graph &graph) = 0;
};

// The backend for a muse_backend choice (MUSE_BACKEND_AUTO picks the best built one).
std::unique_ptr<Backend> make_backend(int backend_id, int n_threads);

} // namespace muse
