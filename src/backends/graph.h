// A recorded forward pass: the ops of a decoder step or an image encoding, in order,
// with the host data (token ids, positions, KV cells, windows, image rows) that the pass
// reads staged as inputs. Model code records a Graph once per pass and hands it to
// Backend::compute, which uploads the inputs and runs every op with no host round trip
// in between; a backend may fuse what it recognises (backend.h says what it may assume).
//
// Conventions are the ones of backend.h: shapes in ggml order (ne[0] contiguous),
// activations F32, weights in their GGUF type, integer inputs I32 tensors.
#pragma once

#include "backends/backend.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace muse {

enum class Op : uint8_t {
    GetRows,
    MatMul,
    Add,
    MulRow,
    Scale,
    RmsNorm,
    LayerNorm,
    Rope,
    Swiglu,
    SigmoidMul,
    Softcap,
    SetColumns,
    Attention,
    Patches,
    ResizeBilinear,
    Rope2d,
    Activation,
    Transpose,
    AttentionWindows,
};
constexpr int kOpCount = static_cast<int>(Op::AttentionWindows) + 1;
const char *op_name(Op op);

// One op: what it writes (dst; the operand itself for in-place ops) and what it reads
// (src, by position as each Graph method documents), plus its scalar parameters.
struct OpNode {
    Op op = Op::Add;
    Tensor dst;
    Tensor src[7];
    float f = 0.0f;     // eps, scale, softcap, freq_base
    int32_t i = 0;      // patch size, n_head_kv
    RopeParams rope;    // Rope
    Activation act = Activation::Silu;
    // MatMul, AttentionWindows: the products may be rounded to BF16 (sums stay F32). A hint the
    // vision towers give (Graph::allow_bf16); a backend may honour it where the hardware has fast
    // BF16 and must otherwise compute as usual. Decoder ops never carry it: their hint is per
    // column, a MatMul's optional src[2] (Graph::bf16_columns).
    bool bf16_ok = false;
};

// Host bytes copied into a tensor before the first op runs.
struct GraphInput {
    Tensor dst;
    size_t staging_offset = 0, bytes = 0;
};

class Graph {
public:
    // Integer input tensors are carved from buffers of this backend, kept across clear().
    explicit Graph(Backend &backend) : backend_(backend) {}
    Graph(const Graph &) = delete;
    Graph &operator=(const Graph &) = delete;

    // Forgets the ops and inputs (the input buffers are reused by the next pass).
    void clear();
    // Matmuls and windowed attentions recorded from now on carry OpNode::bf16_ok: for passes
    // whose consumers tolerate BF16 products (the vision towers; see docs/PERFORMANCE.md).
    void allow_bf16(bool on) { bf16_ok_ = on; }
    // Matmuls and attentions recorded from now on whose activations (queries) have flags.ne[0]
    // columns carry flags (I32 [n]) -- a MatMul as src[2], an Attention as src[6]: nonzero
    // where that column's products may be rounded to BF16 (a decoder's bulk prompt rows,
    // Batch::bulk). The per-column form of allow_bf16, a hint a backend may honour; whether it
    // does for a column may depend only on that column's flag, its own operands and range,
    // never on the other columns. An invalid tensor ends it.
    void bf16_columns(const Tensor &flags) { bf16_columns_ = flags; }
    // Adds an op recorded elsewhere (a backend handing part of a pass to another one).
    void append(const OpNode &node) { nodes_.push_back(node); }
    const std::vector<OpNode> &nodes() const { return nodes_; }
    const std::vector<GraphInput> &inputs() const { return inputs_; }
    // The staged bytes of an input.
    const void *staged(const GraphInput &in) const { return staging_.data() + in.staging_offset; }

    // ---- inputs
    // A new I32 tensor [n] holding data (copied now, uploaded by compute).
    Tensor input_i32(const int32_t *data, int64_t n);
    Tensor input_i32(const std::vector<int32_t> &v) { return input_i32(v.data(), static_cast<int64_t>(v.size())); }
    // Host bytes written into dst (an existing tensor) before the first op.
    void input(const Tensor &dst, const void *data, size_t bytes);

    // ---- ops (F32 activations; see each for the layout it expects)
    // out[:, i] = table[:, ids[i]]: rows of a weight of any type (dequantized), or of an F32
    // activation (the gather of the rows whose logits are wanted). ids: I32 [n], out [ne0, n].
    void get_rows(const Tensor &table, const Tensor &ids, const Tensor &out);
    // y = W·x per column: w [in, out] any type, x [in, n] F32, y [out, n] F32.
    void matmul(const Tensor &w, const Tensor &x, const Tensor &y);
    // x += b, with b either the same shape or one row [ne0] broadcast over rows.
    void add(const Tensor &x, const Tensor &b);
    // x *= w, w one row [ne0] broadcast over rows (weight may be any float type).
    void mul_row(const Tensor &x, const Tensor &w);
    void scale(const Tensor &x, float s);
    // y = x / sqrt(mean(x^2) + eps) per row of ne0, then * w if w.valid(). In place allowed.
    void rms_norm(const Tensor &x, const Tensor &w, float eps, const Tensor &y);
    // LayerNorm per row, then * w + b (each optional).
    void layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, const Tensor &y);
    // x: [head_dim, n_head, n_tokens] in place; pos: I32 [n_tokens].
    void rope(const Tensor &x, const Tensor &pos, const RopeParams &p);
    // gate = silu(gate) * up
    void swiglu(const Tensor &gate, const Tensor &up);
    // x *= sigmoid(g)
    void sigmoid_mul(const Tensor &x, const Tensor &g);
    // x = c * tanh(x / c)
    void softcap(const Tensor &x, float c);
    // Writes columns of src [ne0, n] into dst columns cells[i] (dst F32 or F16; cells I32 [n]).
    void set_columns(const Tensor &dst, const Tensor &src, const Tensor &cells);
    // Multi-head causal attention over cached keys/values, reading only the cells each
    // query token may see (no mask over the pool):
    //   q [hd, n_head, n_tok] F32     k, v [hd * n_head_kv, n_cells] F32 or F16 (the layer's cache)
    //   out [hd * n_head, n_tok]      begin, end I32 [n_tok]     cells I32 [any]
    // Token t attends the cells cells[begin[t] .. end[t]) in that order (the engine lists them
    // by position, so the softmax sums in position order whatever cells they occupy); an empty
    // range gives a zero row. GQA: query head h reads kv head h / (n_head / n_head_kv).
    void attention(const Tensor &q, const Tensor &k, const Tensor &v, const KvRanges &kv, int n_head_kv, float scale,
                   const Tensor &out);

    // ---- vision ops; all tensors F32 unless stated
    // Non-overlapping patches of a planar image as columns (im2col of a conv with stride = patch):
    //   img [W, H, C] (element c*W*H + y*W + x), out [patch*patch*C, (W/patch)*(H/patch)];
    //   column py*(W/patch) + px holds, at row c*patch*patch + ky*patch + kx, the pixel
    //   img[c, py*patch + ky, px*patch + kx] -- the order of a ggml conv kernel [patch, patch, C, n_out],
    //   so the kernel reshaped to [patch*patch*C, n_out] is the matmul weight.
    void patches(const Tensor &img, int patch, const Tensor &out);
    // Bilinear resize of a grid of vectors: src [C, W_in, H_in] -> dst [C, W_out, H_out].
    // Half-pixel centres (align_corners = false), no antialiasing, edges clamped: for an output
    // coordinate d, s = (d + 0.5) * in / out - 0.5; taps floor(s) and floor(s) + 1, each clamped to
    // [0, in - 1]; the second tap weighs s - floor(s) clamped to [0, 1]. Along x first, then y.
    void resize_bilinear(const Tensor &src, const Tensor &dst);
    // 2D RoPE, adjacent pairs (NORM) within each half of every head: dims [0, hd/2) turn with pos_a,
    // dims [hd/2, hd) with pos_b; pair i of a half (its dims 2i, 2i+1) by the angle
    // pos * freq_base^(-2i / (hd/2)).  x [hd, n_head, n_tok] in place; pos_a, pos_b: I32 [n_tok].
    void rope_2d(const Tensor &x, const Tensor &pos_a, const Tensor &pos_b, float freq_base);
    // x = f(x), elementwise.
    void activation(const Tensor &x, Activation f);
    // Swaps the first two axes: src [ne0, ne1, ne2] -> dst [ne1, ne0, ne2] (dst[j, i, n] = src[i, j, n]).
    void transpose(const Tensor &src, const Tensor &dst);
    // Non-causal attention inside windows: the tokens form consecutive runs of lengths
    // windows (I32 [n_windows], summing to n_tok) and a token attends to every token of its
    // own run and to no other -- a block-diagonal mask that is never materialized.
    //   q [hd, n_head, n_tok]    k, v [hd * n_head_kv, n_tok]    out [hd * n_head, n_tok]
    // GQA as in attention().
    void attention_windows(const Tensor &q, const Tensor &k, const Tensor &v, const Tensor &windows, int n_head_kv,
                           float scale, const Tensor &out);

private:
    OpNode &push(Op op, const Tensor &dst);

    Backend &backend_;
    std::vector<OpNode> nodes_;
    std::vector<GraphInput> inputs_;
    std::vector<uint8_t> staging_;
    std::vector<std::unique_ptr<Buffer>> input_buffers_;
    size_t buffer_index_ = 0, buffer_used_ = 0;  // bump position in input_buffers_
    bool bf16_ok_ = false;
    Tensor bf16_columns_;
};

} // namespace muse
