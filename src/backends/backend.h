// The backend interface: where tensors live and how the decoder's ops run.
// Model code is written once against it; the CPU backend (cpu/) is always
// built, a Vulkan backend (vulkan/, -DMUSE_VULKAN=ON) implements the same calls.
//
// Conventions: shapes are in ggml order (ne[0] contiguous). Activations are
// F32; weights keep their GGUF type. Every op names the layout it expects.
#pragma once

#include "core/ggml-types.h"

#include <cstddef>
#include <cstdint>
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

// A view into a buffer (or into read-only mapped weights): type, shape, storage.
struct Tensor {
    GgmlType type = GgmlType::F32;
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
    const void *raw() const;
    // A contiguous sub-range of rows [row0, row0 + n) viewed as ne = {ne0, n}.
    Tensor rows(int64_t row0, int64_t n) const;
    // The same storage with another shape of the same element count.
    Tensor reshape(int64_t ne0, int64_t ne1, int64_t ne2 = 1, int64_t ne3 = 1) const;
};

enum class RopeMode { Norm, Neox };  // adjacent pairs (llama) / halves (neox, qwen)

struct RopeParams {
    int n_rot = 0;  // dimensions rotated (from 0); the rest pass through
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;
    RopeMode mode = RopeMode::Norm;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;

    // ---- memory
    virtual std::unique_ptr<Buffer> alloc(size_t bytes) = 0;
    // Makes mapped GGUF weights usable by this backend (CPU: a view; GPU: an upload).
    virtual Tensor weights(GgmlType type, const int64_t ne[4], const void *host_data) = 0;
    virtual void upload(const Tensor &dst, const void *src, size_t bytes) = 0;
    virtual void download(const Tensor &src, void *dst, size_t bytes) = 0;
    virtual void synchronize() {}

    // ---- ops (F32 activations)
    // out[:, i] = w[:, ids[i]] (rows of any weight type, dequantized). out: [ne0, n]
    virtual void get_rows(const Tensor &w, const int32_t *ids, int64_t n, const Tensor &out) = 0;
    // y = W·x per column: w [in, out] any type, x [in, n] F32, y [out, n] F32.
    virtual void matmul(const Tensor &w, const Tensor &x, const Tensor &y) = 0;
    // x += b, with b either the same shape or one row [ne0] broadcast over rows.
    virtual void add(const Tensor &x, const Tensor &b) = 0;
    // x *= w, w one row [ne0] broadcast over rows (weight may be any float type).
    virtual void mul_row(const Tensor &x, const Tensor &w) = 0;
    virtual void scale(const Tensor &x, float s) = 0;
    // y = x / sqrt(mean(x^2) + eps) per row of ne0, then * w if w.valid(). In place allowed.
    virtual void rms_norm(const Tensor &x, const Tensor &w, float eps, const Tensor &y) = 0;
    // LayerNorm per row, then * w + b (each optional).
    virtual void layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, const Tensor &y) = 0;
    // x: [head_dim, n_head, n_tokens]; pos: n_tokens positions.
    virtual void rope(const Tensor &x, const int32_t *pos, const RopeParams &p) = 0;
    // gate = silu(gate) * up
    virtual void swiglu(const Tensor &gate, const Tensor &up) = 0;
    // x = gelu_erf(x)
    virtual void gelu(const Tensor &x) = 0;
    // x *= sigmoid(g)
    virtual void sigmoid_mul(const Tensor &x, const Tensor &g) = 0;
    // x = c * tanh(x / c)
    virtual void softcap(const Tensor &x, float c) = 0;
    // Writes columns of src [ne0, n] into dst columns cells[i] (dst may be F32 or F16).
    virtual void set_columns(const Tensor &dst, const Tensor &src, const int32_t *cells) = 0;
    // Multi-head attention over cached keys/values.
    //   q   [hd, n_head, n_tok] F32      k, v [hd * n_head_kv, n_kv] F32 or F16
    //   mask [n_kv, n_tok] F32 (0 or -inf)  out [hd * n_head, n_tok]
    // GQA: query head h reads kv head h / (n_head / n_head_kv).
    virtual void attention(const Tensor &q, const Tensor &k, const Tensor &v, const Tensor &mask, int n_head_kv,
                           float scale, const Tensor &out) = 0;
};

// The backend for a muse_backend choice (MUSE_BACKEND_AUTO picks the best built one).
std::unique_ptr<Backend> make_backend(int backend_id, int n_threads);

} // namespace muse
