// The KV cache: n_ctx cells shared by every layer, each cell holding one token
// position of one or more sequences (a forked agent shares its prefix cells
// with its parent). Per layer, K and V are [n_embd_gqa, n_ctx] tensors in F16
// (default, as llama.cpp) or F32.
#pragma once

#include "backends/backend.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace muse {

class KvCache {
public:
    static constexpr int kMaxSeqs = 64;

    KvCache(Backend &backend, int n_layer, int64_t n_embd_k_gqa, int64_t n_embd_v_gqa, int64_t n_ctx, int n_seq_max,
            GgmlType type);

    int64_t n_ctx() const { return n_ctx_; }
    int n_seq_max() const { return n_seq_max_; }
    GgmlType type() const { return type_; }

    // Finds n free cells for new tokens (throws MUSE_ERR_OUT_OF_RANGE when full)
    // and claims them for (pos[i], seq[i]). Returns the cell indices.
    std::vector<int32_t> claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq);
    // Frees cells claimed by a batch that failed.
    void release(const std::vector<int32_t> &cells);
    // One past the highest used cell: attention reads cells [0, used_extent()).
    int64_t used_extent() const;
    // Next position of a sequence (max pos + 1, 0 if empty).
    int32_t seq_next_pos(int seq) const;
    int64_t seq_length(int seq) const;

    // Removes positions [p0, p1) of seq (p1 < 0: to the end; seq < 0: every sequence).
    void seq_remove(int seq, int32_t p0, int32_t p1);
    // Makes positions [p0, p1) of src also belong to dst (shared cells, no copy).
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    void clear();

    // Mask [n_kv, n_tok]: 0 where token i (pos[i], seq[i]) may see cell c, -inf elsewhere.
    // window > 0 adds the sliding-window rule pos_q - pos_k < window.
    void build_mask(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, int64_t n_kv, int32_t window,
                    float *mask) const;

    const Tensor &k(int layer) const { return k_[static_cast<size_t>(layer)]; }
    const Tensor &v(int layer) const { return v_[static_cast<size_t>(layer)]; }

private:
    struct Cell {
        int32_t pos = -1;
        uint64_t seqs = 0;  // bit s: belongs to sequence s
    };
    void check_seq(int seq) const;

    int64_t n_ctx_;
    int n_seq_max_;
    GgmlType type_;
    std::vector<Cell> cells_;
    std::vector<std::unique_ptr<Buffer>> buffers_;
    std::vector<Tensor> k_, v_;
};

} // namespace muse
