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
    const void *raw() const;
    // A contiguous sub-range of rows [row0, row0 + n) viewed as ne = {ne0, n}.
    Tensor rows(int64_t row0, int64_t n) const;
    // The same storage with another shape of the same element count.
    Tensor reshape(int64_t ne0, int64_t ne1, int64_t ne2 = 1, int64_t ne3 = 1) const;
};

enum class RopeMode { Norm, Neox };  // adjacent pairs (llama) / halves (neox, qwen)

// Elementwise activations (Backend::activation), each as ggml defines it.
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

// The cached cells every query token of a forward pass reads (host arrays, n_tok
// ranges into `cells`; tokens of one sequence usually share one list).
struct KvGather {
    const int32_t *cells = nullptr;
    const int32_t *begin = nullptr;  // n_tok
    const int32_t *end = nullptr;    // n_tok
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
    // x *= sigmoid(g)
    virtual void sigmoid_mul(const Tensor &x, const Tensor &g) = 0;
    // x = c * tanh(x / c)
    virtual void softcap(const Tensor &x, float c) = 0;
    // Writes columns of src [ne0, n] into dst columns cells[i] (dst may be F32 or F16).
    virtual void set_columns(const Tensor &dst, const Tensor &src, const int32_t *cells) = 0;
    // Multi-head causal attention over cached keys/values, reading only the cells each
    // query token may see (no mask over the pool):
    //   q [hd, n_head, n_tok] F32     k, v [hd * n_head_kv, n_cells] F32 or F16 (the layer's cache)
    //   out [hd * n_head, n_tok]
    // Token t attends the cells kv.cells[kv.begin[t] .. kv.end[t]) in that order (the engine
    // lists them by position, so the softmax sums in position order whatever cells they
    // occupy); an empty range gives a zero row. F16 caches are read in place, row by row.
    // GQA: query head h reads kv head h / (n_head / n_head_kv).
    virtual void attention(const Tensor &q, const Tensor &k, const Tensor &v, const KvGather &kv, int n_head_kv,
                           float scale, const Tensor &out) = 0;

    // ---- vision ops (the image encoders of src/vision/); all tensors F32 unless stated
    // Non-overlapping patches of a planar image as columns (im2col of a conv with stride = patch):
    //   img [W, H, C] (element c*W*H + y*W + x), out [patch*patch*C, (W/patch)*(H/patch)];
    //   column py*(W/patch) + px holds, at row c*patch*patch + ky*patch + kx, the pixel
    //   img[c, py*patch + ky, px*patch + kx] -- the order of a ggml conv kernel [patch, patch, C, n_out],
    //   so the kernel reshaped to [patch*patch*C, n_out] is the matmul weight.
    virtual void patches(const Tensor &img, int patch, const Tensor &out) = 0;
    // Bilinear resize of a grid of vectors: src [C, W_in, H_in] -> dst [C, W_out, H_out].
    // Half-pixel centres (align_corners = false), no antialiasing, edges clamped: for an output
    // coordinate d, s = (d + 0.5) * in / out - 0.5; taps floor(s) and floor(s) + 1, each clamped to
    // [0, in - 1]; the second tap weighs s - floor(s) clamped to [0, 1]. Along x first, then y.
    virtual void resize_bilinear(const Tensor &src, const Tensor &dst) = 0;
    // 2D RoPE, adjacent pairs (NORM) within each half of every head: dims [0, hd/2) turn with pos_a,
    // dims [hd/2, hd) with pos_b; pair i of a half (its dims 2i, 2i+1) by the angle
    // pos * freq_base^(-2i / (hd/2)).  x [hd, n_head, n_tok] in place; pos_a, pos_b: n_tok each.
    virtual void rope_2d(const Tensor &x, const int32_t *pos_a, const int32_t *pos_b, float freq_base) = 0;
    // x = f(x), elementwise.
    virtual void activation(const Tensor &x, Activation f) = 0;
    // Swaps the first two axes: src [ne0, ne1, ne2] -> dst [ne1, ne0, ne2] (dst[j, i, n] = src[i, j, n]).
    virtual void transpose(const Tensor &src, const Tensor &dst) = 0;
    // Non-causal attention inside windows: the tokens form consecutive runs of lengths
    // windows[0..n_windows) (summing to n_tok) and a token attends to every token of its own run
    // and to no other -- a block-diagonal mask that is never materialized. One run of n_tok
    // tokens is full bidirectional attention.
    //   q [hd, n_head, n_tok]    k, v [hd * n_head_kv, n_tok]    out [hd * n_head, n_tok]
    // GQA as in attention(): query head h reads kv head h / (n_head / n_head_kv).
    virtual void attention_windows(const Tensor &q, const Tensor &k, const Tensor &v, const int32_t *windows,
                                   int64_t n_windows, int n_head_kv, float scale, const Tensor &out) = 0;
};

// The backend for a muse_backend choice (MUSE_BACKEND_AUTO picks the best built one).
std::unique_ptr<Backend> make_backend(int backend_id, int n_threads);

} // namespace muse
