// The KV cache. Cells hold one token position of one or more sequences (a forked
// agent shares its prefix cells with its parent). Two pools of cells:
//   full  n_ctx cells, used by full-attention layers; the authority on which
//         positions a sequence holds (seq_next_pos, seq_length, context limit);
//   swa   for sliding-window layers, only as many cells as the windows need
//         (n_seq_max * window + n_batch, like llama.cpp's iSWA cache). When it
//         runs short, positions that no future token of their sequence can see
//         (p <= next_pos - window) are dropped from it.
// Dropped positions cannot come back, so a sequence may no longer be cut back
// to a point whose window reaches below them: seq_remove/seq_copy refuse such a
// change with a clear error and leave the cache as it was. A session created
// with swa_full keeps every position in the swa pool (n_ctx cells) instead.
// Per layer, K and V are [n_embd_gqa, pool size] tensors in F16 (default, as
// llama.cpp) or F32.
#pragma once

#include "backends/backend.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace muse {

// Cell bookkeeping of one pool (no tensors).
class KvCellPool {
public:
    KvCellPool(int64_t size, int n_seq_max, int32_t window);

    int64_t size() const { return static_cast<int64_t>(cells_.size()); }
    int32_t window() const { return window_; }
    int64_t n_free() const;
    // Claims cells for (pos[i], seq[i]); a windowed pool first drops positions no
    // future token can see if it lacks free cells. Throws MUSE_ERR_OUT_OF_RANGE when full.
    std::vector<int32_t> claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq);
    void release(const std::vector<int32_t> &cells);
    int64_t used_extent() const;  // one past the highest used cell
    int32_t seq_next_pos(int seq) const;
    // Next position of seq if positions [p0, p1) were removed.
    int32_t seq_next_pos_without(int seq, int32_t p0, int32_t p1) const;
    // Highest position + 1 of src within [p0, p1) (0 if none).
    int32_t seq_range_end(int seq, int32_t p0, int32_t p1) const;
    int64_t seq_length(int seq) const;
    // Lowest position of seq still guaranteed to be present (0: nothing dropped).
    int32_t seq_floor(int seq) const { return floor_[static_cast<size_t>(seq)]; }
    void set_seq_floor(int seq, int32_t floor) { floor_[static_cast<size_t>(seq)] = floor; }
    void seq_remove(int seq, int32_t p0, int32_t p1);
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    void clear();
    // Mask [n_kv, n_tok]: 0 where token i (pos[i], seq[i]) may see cell c, -inf elsewhere.
    void build_mask(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, int64_t n_kv, float *mask) const;

private:
    struct Cell {
        int32_t pos = -1;
        uint64_t seqs = 0;  // bit s: belongs to sequence s
    };
    void drop_invisible();

    std::vector<Cell> cells_;
    std::vector<int32_t> floor_;  // per sequence
    int32_t window_;              // 0: full attention, nothing is ever dropped
};

// The cells a batch was given in each pool, and how many cells attention reads.
struct KvSlots {
    std::vector<int32_t> cells[2];
    int64_t n_kv[2] = {0, 0};
};

class KvCache {
public:
    static constexpr int kMaxSeqs = 64;
    enum Pool { kFull = 0, kSwa = 1 };

    struct Config {
        int64_t n_ctx = 0;
        int n_seq_max = 1;
        int64_t n_batch = 512;
        GgmlType type = GgmlType::F16;
        int64_t n_embd_k_gqa = 0, n_embd_v_gqa = 0;
        std::vector<bool> is_swa;  // per layer
        int32_t window = 0;        // of the SWA layers
        bool swa_full = false;     // keep every position in the SWA pool too
    };
    KvCache(Backend &backend, const Config &config);

    int64_t n_ctx() const { return n_ctx_; }
    int n_seq_max() const { return n_seq_max_; }
    GgmlType type() const { return type_; }
    int64_t pool_size(Pool p) const { return pools_[p].size(); }
    Pool layer_pool(int layer) const { return layer_pool_[static_cast<size_t>(layer)]; }
    int32_t layer_window(int layer) const { return pools_[layer_pool(layer)].window(); }
    // Free cells of the full pool (every token needs one).
    int64_t n_free() const { return pools_[kFull].n_free(); }

    // Claims cells for a batch in both pools (throws MUSE_ERR_OUT_OF_RANGE when full;
    // nothing is claimed then) and reports how many cells attention reads.
    KvSlots claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq);
    // Frees the cells of a batch that failed.
    void release(const KvSlots &slots);
    // Next position of a sequence (max pos + 1, 0 if empty).
    int32_t seq_next_pos(int seq) const;
    int64_t seq_length(int seq) const;
    // Whether seq could be cut back to end at next_pos (the SWA pool still holds its window).
    bool can_resume_at(int seq, int32_t next_pos) const;

    // Removes positions [p0, p1) of seq (p1 < 0: to the end; seq < 0: every sequence).
    void seq_remove(int seq, int32_t p0, int32_t p1);
    // Makes positions [p0, p1) of src also belong to dst (shared cells, no copy).
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    void clear();

    void build_mask(Pool p, const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, int64_t n_kv,
                    float *mask) const {
        pools_[p].build_mask(pos, seq, n_kv, mask);
    }

    const Tensor &k(int layer) const { return k_[static_cast<size_t>(layer)]; }
    const Tensor &v(int layer) const { return v_[static_cast<size_t>(layer)]; }

private:
    void check_seq(int seq) const;
    // Whether a sequence whose positions below `floor` may be missing from the SWA
    // pool can continue at next_pos.
    bool resumable(int32_t floor, int32_t next_pos) const;

    int64_t n_ctx_;
    int n_seq_max_;
    GgmlType type_;
    KvCellPool pools_[2];
    std::vector<Pool> layer_pool_;
    std::vector<std::unique_ptr<Buffer>> buffers_;
    std::vector<Tensor> k_, v_;
};

} // namespace muse
