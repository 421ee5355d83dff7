#include "backends/graph.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>

namespace muse {

const char *op_name(Op op) {
    switch (op) {
    case Op::GetRows: return "get_rows";
    case Op::MatMul: return "matmul";
    case Op::Add: return "add";
    case Op::MulRow: return "mul_row";
    case Op::Scale: return "scale";
    case Op::RmsNorm: return "rms_norm";
    case Op::LayerNorm: return "layer_norm";
    case Op::Rope: return "rope";
    case Op::Swiglu: return "swiglu";
    case Op::SigmoidMul: return "sigmoid_mul";
    case Op::Softcap: return "softcap";
    case Op::SetColumns: return "set_columns";
    case Op::Attention: return "attention";
    case Op::Patches: return "patches";
    case Op::ResizeBilinear: return "resize_bilinear";
    case Op::Rope2d: return "rope_2d";
    case Op::Activation: return "activation";
    case Op::Transpose: return "transpose";
    case Op::AttentionWindows: return "attention_windows";
    }
    return "?";
}

void Graph::clear() {
    nodes_.clear();
    inputs_.clear();
    staging_.clear();
    buffer_index_ = 0;
    buffer_used_ = 0;
    bf16_columns_ = Tensor();
}

Tensor Graph::input_i32(const int32_t *data, int64_t n) {
    // Integer inputs are small (ids, positions, cells): bump-allocated from 64 KiB buffers
    // that later passes reuse, so a steady decode loop allocates nothing.
    constexpr size_t kChunk = size_t(64) << 10;
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * 4;
    const size_t aligned = (bytes + 63) / 64 * 64;
    while (buffer_index_ < input_buffers_.size() && buffer_used_ + aligned > input_buffers_[buffer_index_]->size()) {
        ++buffer_index_;
        buffer_used_ = 0;
    }
    if (buffer_index_ == input_buffers_.size()) {
        input_buffers_.push_back(backend_.alloc_scratch(std::max(aligned, kChunk)));
        buffer_used_ = 0;
    }
    Tensor t;
    t.type = GgmlType::I32;
    t.ne[0] = n;
    t.buffer = input_buffers_[buffer_index_].get();
    t.offset = buffer_used_;
    buffer_used_ += aligned;
    if (n > 0) input(t, data, static_cast<size_t>(n) * 4);
    return t;
}

void Graph::input(const Tensor &dst, const void *data, size_t bytes) {
    if (!dst.buffer || bytes > dst.n_bytes()) fail(MUSE_ERR_INTERNAL, "graph input larger than its tensor");
    GraphInput in;
    in.dst = dst;
    in.staging_offset = staging_.size();
    in.bytes = bytes;
    staging_.resize(staging_.size() + bytes);
    if (bytes) std::memcpy(staging_.data() + in.staging_offset, data, bytes);
    inputs_.push_back(in);
}

OpNode &Graph::push(Op op, const Tensor &dst) {
    nodes_.emplace_back();
    OpNode &n = nodes_.back();
    n.op = op;
    n.dst = dst;
    return n;
}

void Graph::get_rows(const Tensor &table, const Tensor &ids, const Tensor &out) {
    if (ids.type != GgmlType::I32) fail(MUSE_ERR_INTERNAL, "get_rows: ids must be I32");
    OpNode &n = push(Op::GetRows, out);
    n.src[0] = table;
    n.src[1] = ids;
}

void Graph::matmul(const Tensor &w, const Tensor &x, const Tensor &y) {
    OpNode &n = push(Op::MatMul, y);
    n.bf16_ok = bf16_ok_;
    n.src[0] = w;
    n.src[1] = x;
    if (bf16_columns_.valid() && bf16_columns_.ne[0] == x.n_rows()) n.src[2] = bf16_columns_;
}

void Graph::add(const Tensor &x, const Tensor &b) {
    OpNode &n = push(Op::Add, x);
    n.src[0] = x;
    n.src[1] = b;
}

void Graph::mul_row(const Tensor &x, const Tensor &w) {
    OpNode &n = push(Op::MulRow, x);
    n.src[0] = x;
    n.src[1] = w;
}

void Graph::scale(const Tensor &x, float s) {
    OpNode &n = push(Op::Scale, x);
    n.src[0] = x;
    n.f = s;
}

void Graph::rms_norm(const Tensor &x, const Tensor &w, float eps, const Tensor &y) {
    OpNode &n = push(Op::RmsNorm, y);
    n.src[0] = x;
    n.src[1] = w;
    n.f = eps;
}

void Graph::layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, const Tensor &y) {
    OpNode &n = push(Op::LayerNorm, y);
    n.src[0] = x;
    n.src[1] = w;
    n.src[2] = b;
    n.f = eps;
}

void Graph::rope(const Tensor &x, const Tensor &pos, const RopeParams &p) {
    if (pos.type != GgmlType::I32) fail(MUSE_ERR_INTERNAL, "rope: positions must be I32");
    OpNode &n = push(Op::Rope, x);
    n.src[0] = x;
    n.src[1] = pos;
    n.rope = p;
}

void Graph::swiglu(const Tensor &gate, const Tensor &up) {
    OpNode &n = push(Op::Swiglu, gate);
    n.src[0] = gate;
    n.src[1] = up;
}

void Graph::sigmoid_mul(const Tensor &x, const Tensor &g) {
    OpNode &n = push(Op::SigmoidMul, x);
    n.src[0] = x;
    n.src[1] = g;
}

void Graph::softcap(const Tensor &x, float c) {
    OpNode &n = push(Op::Softcap, x);
    n.src[0] = x;
    n.f = c;
}

void Graph::set_columns(const Tensor &dst, const Tensor &src, const Tensor &cells) {
    if (cells.type != GgmlType::I32) fail(MUSE_ERR_INTERNAL, "set_columns: cells must be I32");
    OpNode &n = push(Op::SetColumns, dst);
    n.src[0] = src;
    n.src[1] = cells;
}

void Graph::attention(const Tensor &q, const Tensor &k, const Tensor &v, const KvRanges &kv, int n_head_kv,
                      float scale, const Tensor &out) {
    OpNode &n = push(Op::Attention, out);
    n.src[0] = q;
    n.src[1] = k;
    n.src[2] = v;
    n.src[3] = kv.cells;
    n.src[4] = kv.begin;
    n.src[5] = kv.end;
    if (bf16_columns_.valid() && bf16_columns_.ne[0] == q.ne[2]) n.src[6] = bf16_columns_;
    n.i = n_head_kv;
    n.f = scale;
}

void Graph::patches(const Tensor &img, int patch, const Tensor &out) {
    OpNode &n = push(Op::Patches, out);
    n.src[0] = img;
    n.i = patch;
}

void Graph::resize_bilinear(const Tensor &src, const Tensor &dst) {
    OpNode &n = push(Op::ResizeBilinear, dst);
    n.src[0] = src;
}

void Graph::rope_2d(const Tensor &x, const Tensor &pos_a, const Tensor &pos_b, float freq_base) {
    OpNode &n = push(Op::Rope2d, x);
    n.src[0] = x;
    n.src[1] = pos_a;
    n.src[2] = pos_b;
    n.f = freq_base;
}

void Graph::activation(const Tensor &x, Activation f) {
    OpNode &n = push(Op::Activation, x);
    n.src[0] = x;
    n.act = f;
}

void Graph::transpose(const Tensor &src, const Tensor &dst) {
    OpNode &n = push(Op::Transpose, dst);
    n.src[0] = src;
}

void Graph::attention_windows(const Tensor &q, const Tensor &k, const Tensor &v, const Tensor &windows, int n_head_kv,
                              float scale, const Tensor &out) {
    OpNode &n = push(Op::AttentionWindows, out);
    n.bf16_ok = bf16_ok_;
    n.src[0] = q;
    n.src[1] = k;
    n.src[2] = v;
    n.src[3] = windows;
    n.i = n_head_kv;
    n.f = scale;
}

} // namespace muse
