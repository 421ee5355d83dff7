// The KV cache, paged. Each pool of cells is cut into fixed-size blocks; every
// sequence keeps the list of blocks that hold its positions, and attention reads
// only the cells of its own list, so a sequence's step costs the same however
// much other sequences hold. A cell holds one position of one or more sequences:
// a fork (seq_copy) adds the source's blocks to the destination's list and marks
// the copied cells as shared, with no copy of keys or values; a block is
// reference-counted by the sequences that list it and returns to the free list
// when none does. New positions go to a block the sequence owns alone, so forked
// agents never write into each other's blocks.
//
// Two pools:
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
// Per layer, K and V are [n_embd_gqa, physical cells] tensors in F16 (default,
// as llama.cpp) or F32.
#pragma once

#include "backends/backend.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace muse {

// Cell and block bookkeeping of one pool (no tensors).
class KvBlockPool {
public:
    static constexpr int32_t kBlockSize = 16;

    // capacity: cells the pool may hold at once (the context limit). The pool keeps one
    // spare block per sequence on top, so partly filled blocks never cost capacity.
    KvBlockPool(int64_t capacity, int n_seq_max, int32_t window);

    int64_t capacity() const { return capacity_; }
    int64_t n_cells() const { return static_cast<int64_t>(cells_.size()); }  // physical
    int32_t window() const { return window_; }
    int64_t n_free() const { return capacity_ - used_; }
    int64_t n_used() const { return used_; }
    // Claims a cell for each (pos[i], seq[i]), all or nothing; a windowed pool first drops
    // positions no future token can see if it lacks room. Throws MUSE_ERR_OUT_OF_RANGE when full.
    std::vector<int32_t> claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq);
    void release(const std::vector<int32_t> &cells);
    int32_t seq_next_pos(int seq) const;
    // Next position of seq if positions [p0, p1) were removed.
    int32_t seq_next_pos_without(int seq, int32_t p0, int32_t p1) const;
    // Highest position + 1 of seq within [p0, p1) (0 if none).
    int32_t seq_range_end(int seq, int32_t p0, int32_t p1) const;
    int64_t seq_length(int seq) const;
    // Lowest position of seq still guaranteed to be present (0: nothing dropped).
    int32_t seq_floor(int seq) const { return floor_[static_cast<size_t>(seq)]; }
    void set_seq_floor(int seq, int32_t floor) { floor_[static_cast<size_t>(seq)] = floor; }
    void seq_remove(int seq, int32_t p0, int32_t p1);
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    void clear();
    // The cells of seq, ordered by position, and their positions (appended to the vectors).
    void seq_cells(int seq, std::vector<int32_t> &cells, std::vector<int32_t> &pos) const;
    // Blocks in use / blocks listed by a sequence (for tests and statistics).
    int64_t n_blocks_used() const;
    int64_t seq_n_blocks(int seq) const { return static_cast<int64_t>(seq_blocks_[static_cast<size_t>(seq)].size()); }

private:
    struct Cell {
        int32_t pos = -1;
        uint64_t seqs = 0;  // bit s: belongs to sequence s
    };
    bool block_has_seq(int32_t block, int seq) const;
    void list_block(int32_t block, int seq);
    // Clears sequence bits of cells for which drop(cell) holds, in seq's blocks (all
    // sequences when seq < 0), and unlists blocks that no longer hold the sequence.
    template <typename Drop> void remove_where(int seq, Drop drop);
    void free_cell(Cell &c, int32_t block);
    int32_t claim_one(int seq);
    void drop_invisible();

    std::vector<Cell> cells_;
    std::vector<int32_t> block_refs_;  // sequences listing each block
    std::vector<int32_t> block_used_;  // cells in use per block
    std::vector<int32_t> free_blocks_;
    std::vector<std::vector<int32_t>> seq_blocks_;  // per sequence, in the order acquired
    std::vector<int32_t> floor_;                    // per sequence
    int64_t capacity_ = 0, used_ = 0;
    int32_t window_;  // 0: full attention, nothing is ever dropped
};

// The cells a batch was given in each pool.
struct KvSlots {
    std::vector<int32_t> cells[2];
};

// What attention reads in one pool for one forward pass: per token, a range of cells
// (its sequence's visible cells, by position). See Graph::attention.
struct KvGatherLists {
    std::vector<int32_t> cells, begin, end;
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
    const KvBlockPool &pool(Pool p) const { return pools_[p]; }
    bool has_swa_pool() const { return pools_[kSwa].capacity() > 0; }
    Pool layer_pool(int layer) const { return layer_pool_[static_cast<size_t>(layer)]; }
    // Free cells of the full pool (every token needs one).
    int64_t n_free() const { return pools_[kFull].n_free(); }

    // Claims cells for a batch in both pools (throws MUSE_ERR_OUT_OF_RANGE when full;
    // nothing is claimed then).
    KvSlots claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq);
    // Frees the cells of a batch that failed.
    void release(const KvSlots &slots);
    // The cells each token of a batch (already claimed) attends in a pool.
    void gather(Pool p, const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, KvGatherLists &out) const;
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
    KvBlockPool pools_[2];
    std::vector<Pool> layer_pool_;
    std::vector<std::unique_ptr<Buffer>> buffers_;
    std::vector<Tensor> k_, v_;
};

} // namespace muse
