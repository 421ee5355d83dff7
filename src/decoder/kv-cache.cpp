#include "decoder/kv-cache.h"

#include "core/error.h"

#include <algorithm>
#include <limits>

namespace muse {

KvCache::KvCache(Backend &backend, int n_layer, int64_t n_embd_k_gqa, int64_t n_embd_v_gqa, int64_t n_ctx,
                 int n_seq_max, GgmlType type)
    : n_ctx_(n_ctx), n_seq_max_(n_seq_max), type_(type), cells_(static_cast<size_t>(n_ctx)) {
    if (n_ctx <= 0) fail(MUSE_ERR_INVALID_ARGUMENT, "n_ctx must be positive");
    if (n_seq_max < 1 || n_seq_max > kMaxSeqs)
        fail(MUSE_ERR_INVALID_ARGUMENT, "n_seq_max must be in 1..", kMaxSeqs, " (got ", n_seq_max, ")");
    if (type != GgmlType::F32 && type != GgmlType::F16) fail(MUSE_ERR_UNSUPPORTED, "KV cache type must be F32 or F16");
    const size_t elem = type == GgmlType::F32 ? 4 : 2;
    auto make = [&](int64_t width) {
        auto buf = backend.alloc(static_cast<size_t>(width) * static_cast<size_t>(n_ctx) * elem);
        Tensor t;
        t.type = type;
        t.ne[0] = width;
        t.ne[1] = n_ctx;
        t.buffer = buf.get();
        buffers_.push_back(std::move(buf));
        return t;
    };
    for (int l = 0; l < n_layer; ++l) {
        k_.push_back(make(n_embd_k_gqa));
        v_.push_back(make(n_embd_v_gqa));
    }
}

void KvCache::check_seq(int seq) const {
    if (seq < 0 || seq >= n_seq_max_)
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", n_seq_max_, ")");
}

std::vector<int32_t> KvCache::claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq) {
    std::vector<int32_t> out;
    out.reserve(pos.size());
    for (int s : seq) check_seq(s);
    for (size_t c = 0; c < cells_.size() && out.size() < pos.size(); ++c)
        if (cells_[c].seqs == 0) out.push_back(static_cast<int32_t>(c));
    if (out.size() < pos.size())
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", pos.size(), " more tokens do not fit in n_ctx = ", n_ctx_,
             " (remove tokens or create the session with a larger n_ctx)");
    for (size_t i = 0; i < out.size(); ++i) {
        Cell &cell = cells_[static_cast<size_t>(out[i])];
        cell.pos = pos[i];
        cell.seqs = uint64_t(1) << seq[i];
    }
    return out;
}

void KvCache::release(const std::vector<int32_t> &cells) {
    for (int32_t c : cells) cells_[static_cast<size_t>(c)] = Cell{};
}

int64_t KvCache::used_extent() const {
    for (int64_t c = n_ctx_; c > 0; --c)
        if (cells_[static_cast<size_t>(c - 1)].seqs != 0) return c;
    return 0;
}

int32_t KvCache::seq_next_pos(int seq) const {
    check_seq(seq);
    int32_t next = 0;
    for (const Cell &c : cells_)
        if (c.seqs >> seq & 1) next = std::max(next, c.pos + 1);
    return next;
}

int64_t KvCache::seq_length(int seq) const {
    check_seq(seq);
    int64_t n = 0;
    for (const Cell &c : cells_) n += (c.seqs >> seq) & 1;
    return n;
}

void KvCache::seq_remove(int seq, int32_t p0, int32_t p1) {
    if (seq >= 0) check_seq(seq);
    if (p1 < 0) p1 = std::numeric_limits<int32_t>::max();
    for (Cell &c : cells_) {
        if (c.seqs == 0 || c.pos < p0 || c.pos >= p1) continue;
        if (seq < 0) c.seqs = 0;
        else c.seqs &= ~(uint64_t(1) << seq);
        if (c.seqs == 0) c.pos = -1;
    }
}

void KvCache::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    check_seq(src);
    check_seq(dst);
    if (p1 < 0) p1 = std::numeric_limits<int32_t>::max();
    for (Cell &c : cells_)
        if ((c.seqs >> src & 1) && c.pos >= p0 && c.pos < p1) c.seqs |= uint64_t(1) << dst;
}

void KvCache::clear() {
    for (Cell &c : cells_) c = Cell{};
}

void KvCache::build_mask(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, int64_t n_kv,
                         int32_t window, float *mask) const {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < pos.size(); ++i) {
        float *row = mask + static_cast<int64_t>(i) * n_kv;
        for (int64_t c = 0; c < n_kv; ++c) {
            const Cell &cell = cells_[static_cast<size_t>(c)];
            const bool visible = (cell.seqs >> seq[i] & 1) && cell.pos <= pos[i] &&
                                 (window <= 0 || pos[i] - cell.pos < window);
            row[c] = visible ? 0.0f : neg_inf;
        }
    }
}

} // namespace muse
