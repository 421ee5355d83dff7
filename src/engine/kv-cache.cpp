#include "engine/kv-cache.h"

#include "core/error.h"

#include <algorithm>
#include <limits>

namespace muse {

namespace {
constexpr int32_t kPosMax = std::numeric_limits<int32_t>::max();
}

// --------------------------------------------------------------- KvBlockPool

KvBlockPool::KvBlockPool(int64_t capacity, int n_seq_max, int32_t window)
    : seq_blocks_(static_cast<size_t>(n_seq_max)), floor_(static_cast<size_t>(n_seq_max), 0),
      capacity_(capacity), window_(window) {
    if (capacity <= 0) return;
    const int64_t blocks = (capacity + kBlockSize - 1) / kBlockSize;
    const int64_t spare = std::min<int64_t>(n_seq_max, blocks);  // one partly filled block per sequence
    cells_.resize(static_cast<size_t>((blocks + spare) * kBlockSize));
    block_refs_.assign(static_cast<size_t>(blocks + spare), 0);
    block_used_.assign(static_cast<size_t>(blocks + spare), 0);
    for (int64_t b = blocks + spare; b > 0; --b) free_blocks_.push_back(static_cast<int32_t>(b - 1));
}

bool KvBlockPool::block_has_seq(int32_t block, int seq) const {
    const Cell *c = &cells_[static_cast<size_t>(block) * kBlockSize];
    for (int32_t i = 0; i < kBlockSize; ++i)
        if (c[i].seqs >> seq & 1) return true;
    return false;
}

void KvBlockPool::list_block(int32_t block, int seq) {
    std::vector<int32_t> &list = seq_blocks_[static_cast<size_t>(seq)];
    if (std::find(list.begin(), list.end(), block) != list.end()) return;
    list.push_back(block);
    ++block_refs_[static_cast<size_t>(block)];
}

void KvBlockPool::free_cell(Cell &c, int32_t block) {
    c = Cell{};
    --block_used_[static_cast<size_t>(block)];
    --used_;
}

template <typename Drop> void KvBlockPool::remove_where(int seq, Drop drop) {
    for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? static_cast<int>(seq_blocks_.size()) : seq + 1); ++s) {
        std::vector<int32_t> &list = seq_blocks_[static_cast<size_t>(s)];
        const uint64_t bit = uint64_t(1) << s;
        size_t keep = 0;
        for (int32_t b : list) {
            Cell *c = &cells_[static_cast<size_t>(b) * kBlockSize];
            bool still = false;
            for (int32_t i = 0; i < kBlockSize; ++i) {
                if (!(c[i].seqs & bit)) continue;
                if (drop(c[i], s)) {
                    c[i].seqs &= ~bit;
                    if (c[i].seqs == 0) free_cell(c[i], b);
                } else {
                    still = true;
                }
            }
            if (still) {
                list[keep++] = b;
            } else if (--block_refs_[static_cast<size_t>(b)] == 0) {
                free_blocks_.push_back(b);
            }
        }
        list.resize(keep);
    }
}

void KvBlockPool::drop_invisible() {
    // A token at position q sees p only if q - p < window, and new tokens of a
    // sequence only come after its last position: p <= next - window is dead.
    for (int s = 0; s < static_cast<int>(seq_blocks_.size()); ++s) {
        if (seq_blocks_[static_cast<size_t>(s)].empty()) continue;
        const int32_t next = seq_next_pos(s);
        remove_where(s, [&](const Cell &c, int) {
            if (c.pos > next - window_) return false;
            floor_[static_cast<size_t>(s)] = std::max(floor_[static_cast<size_t>(s)], c.pos + 1);
            return true;
        });
    }
}

int32_t KvBlockPool::claim_one(int seq) {
    std::vector<int32_t> &list = seq_blocks_[static_cast<size_t>(seq)];
    auto free_in = [&](int32_t b) -> int32_t {
        if (block_used_[static_cast<size_t>(b)] == kBlockSize) return -1;
        for (int32_t i = 0; i < kBlockSize; ++i)
            if (cells_[static_cast<size_t>(b) * kBlockSize + i].seqs == 0) return b * kBlockSize + i;
        return -1;
    };
    // The sequence's last block when it owns it alone, else a fresh block.
    if (!list.empty() && block_refs_[static_cast<size_t>(list.back())] == 1)
        if (int32_t c = free_in(list.back()); c >= 0) return c;
    if (!free_blocks_.empty()) {
        const int32_t b = free_blocks_.back();
        free_blocks_.pop_back();
        list.push_back(b);
        block_refs_[static_cast<size_t>(b)] = 1;
        return b * kBlockSize;
    }
    // Fragmented (holes left by removals): any block of its own, then any block at all;
    // cells carry their sequences, so sharing a block stays correct, only less isolated.
    for (int32_t b : list)
        if (block_refs_[static_cast<size_t>(b)] == 1)
            if (int32_t c = free_in(b); c >= 0) return c;
    for (int32_t b = 0; b < static_cast<int32_t>(block_used_.size()); ++b)
        if (int32_t c = free_in(b); c >= 0) {
            list_block(b, seq);
            return c;
        }
    return -1;
}

std::vector<int32_t> KvBlockPool::claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq) {
    const int64_t n = static_cast<int64_t>(pos.size());
    if (window_ > 0 && n_free() < n) drop_invisible();
    if (n_free() < n)
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", n, " more tokens do not fit in ", capacity_,
             " cells (remove tokens or create the session with a larger n_ctx)");
    std::vector<int32_t> out;
    out.reserve(pos.size());
    for (size_t i = 0; i < pos.size(); ++i) {
        const int32_t c = claim_one(seq[i]);
        if (c < 0) {
            release(out);
            fail(MUSE_ERR_INTERNAL, "KV cache blocks exhausted with ", n_free(), " cells free");
        }
        Cell &cell = cells_[static_cast<size_t>(c)];
        cell.pos = pos[i];
        cell.seqs = uint64_t(1) << seq[i];
        ++block_used_[static_cast<size_t>(c / kBlockSize)];
        ++used_;
        out.push_back(c);
    }
    return out;
}

void KvBlockPool::release(const std::vector<int32_t> &cells) {
    std::vector<int> seqs;
    for (int32_t c : cells) {
        Cell &cell = cells_[static_cast<size_t>(c)];
        for (int s = 0; s < static_cast<int>(seq_blocks_.size()); ++s)
            if (cell.seqs >> s & 1) seqs.push_back(s);
        if (cell.seqs != 0) free_cell(cell, c / kBlockSize);
    }
    // Unlist blocks that no longer hold their sequence (nothing else is dropped).
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    for (int s : seqs) remove_where(s, [](const Cell &, int) { return false; });
}

int32_t KvBlockPool::seq_next_pos(int seq) const { return seq_next_pos_without(seq, 0, 0); }

int32_t KvBlockPool::seq_next_pos_without(int seq, int32_t p0, int32_t p1) const {
    int32_t next = 0;
    for (int32_t b : seq_blocks_[static_cast<size_t>(seq)])
        for (int32_t i = 0; i < kBlockSize; ++i) {
            const Cell &c = cells_[static_cast<size_t>(b) * kBlockSize + i];
            if ((c.seqs >> seq & 1) && (c.pos < p0 || c.pos >= p1)) next = std::max(next, c.pos + 1);
        }
    return next;
}

int32_t KvBlockPool::seq_range_end(int seq, int32_t p0, int32_t p1) const {
    int32_t end = 0;
    for (int32_t b : seq_blocks_[static_cast<size_t>(seq)])
        for (int32_t i = 0; i < kBlockSize; ++i) {
            const Cell &c = cells_[static_cast<size_t>(b) * kBlockSize + i];
            if ((c.seqs >> seq & 1) && c.pos >= p0 && c.pos < p1) end = std::max(end, c.pos + 1);
        }
    return end;
}

int64_t KvBlockPool::seq_length(int seq) const {
    int64_t n = 0;
    for (int32_t b : seq_blocks_[static_cast<size_t>(seq)])
        for (int32_t i = 0; i < kBlockSize; ++i) n += cells_[static_cast<size_t>(b) * kBlockSize + i].seqs >> seq & 1;
    return n;
}

void KvBlockPool::seq_remove(int seq, int32_t p0, int32_t p1) {
    remove_where(seq, [&](const Cell &c, int) { return c.pos >= p0 && c.pos < p1; });
}

void KvBlockPool::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    const uint64_t bit = uint64_t(1) << dst;
    for (int32_t b : std::vector<int32_t>(seq_blocks_[static_cast<size_t>(src)])) {
        bool any = false;
        for (int32_t i = 0; i < kBlockSize; ++i) {
            Cell &c = cells_[static_cast<size_t>(b) * kBlockSize + i];
            if ((c.seqs >> src & 1) && c.pos >= p0 && c.pos < p1) {
                c.seqs |= bit;
                any = true;
            }
        }
        if (any) list_block(b, dst);
    }
}

void KvBlockPool::clear() {
    for (Cell &c : cells_) c = Cell{};
    std::fill(block_refs_.begin(), block_refs_.end(), 0);
    std::fill(block_used_.begin(), block_used_.end(), 0);
    free_blocks_.clear();
    for (size_t b = block_refs_.size(); b > 0; --b) free_blocks_.push_back(static_cast<int32_t>(b - 1));
    for (auto &list : seq_blocks_) list.clear();
    std::fill(floor_.begin(), floor_.end(), 0);
    used_ = 0;
}

void KvBlockPool::seq_cells(int seq, std::vector<int32_t> &cells, std::vector<int32_t> &pos) const {
    const size_t from = cells.size();
    bool sorted = true;
    for (int32_t b : seq_blocks_[static_cast<size_t>(seq)])
        for (int32_t i = 0; i < kBlockSize; ++i) {
            const Cell &c = cells_[static_cast<size_t>(b) * kBlockSize + i];
            if (!(c.seqs >> seq & 1)) continue;
            if (pos.size() > from && pos.back() > c.pos) sorted = false;
            cells.push_back(b * kBlockSize + i);
            pos.push_back(c.pos);
        }
    if (sorted) return;
    std::vector<std::pair<int32_t, int32_t>> by_pos;
    for (size_t i = from; i < cells.size(); ++i) by_pos.emplace_back(pos[i], cells[i]);
    std::sort(by_pos.begin(), by_pos.end());
    for (size_t i = 0; i < by_pos.size(); ++i) {
        pos[from + i] = by_pos[i].first;
        cells[from + i] = by_pos[i].second;
    }
}

int64_t KvBlockPool::n_blocks_used() const {
    int64_t n = 0;
    for (int32_t r : block_refs_) n += r > 0;
    return n;
}

// ------------------------------------------------------------------ KvCache

namespace {
int32_t swa_window(const KvCache::Config &c) {
    return std::any_of(c.is_swa.begin(), c.is_swa.end(), [](bool b) { return b; }) ? c.window : 0;
}
int64_t swa_pool_size(const KvCache::Config &c) {
    if (swa_window(c) <= 0) return 0;
    if (c.swa_full) return c.n_ctx;
    // Each sequence keeps window - 1 past positions, and a batch adds at most n_batch.
    const int64_t need = static_cast<int64_t>(c.n_seq_max) * c.window + std::max<int64_t>(c.n_batch, 1);
    return std::min(c.n_ctx, need);
}
} // namespace

KvCache::KvCache(Backend &backend, const Config &config)
    : n_ctx_(config.n_ctx), n_seq_max_(config.n_seq_max), type_(config.type),
      pools_{KvBlockPool(std::max<int64_t>(config.n_ctx, 0), std::clamp(config.n_seq_max, 1, kMaxSeqs), 0),
             KvBlockPool(std::max<int64_t>(swa_pool_size(config), 0), std::clamp(config.n_seq_max, 1, kMaxSeqs),
                        swa_window(config))} {
    if (config.n_ctx <= 0) fail(MUSE_ERR_INVALID_ARGUMENT, "n_ctx must be positive");
    if (config.n_seq_max < 1 || config.n_seq_max > kMaxSeqs)
        fail(MUSE_ERR_INVALID_ARGUMENT, "n_seq_max must be in 1..", kMaxSeqs, " (got ", config.n_seq_max, ")");
    if (config.type != GgmlType::F32 && config.type != GgmlType::F16)
        fail(MUSE_ERR_UNSUPPORTED, "KV cache type must be F32 or F16");
    const size_t elem = config.type == GgmlType::F32 ? 4 : 2;
    auto make = [&](int64_t width, int64_t n_cells) {
        auto buf = backend.alloc(static_cast<size_t>(width) * static_cast<size_t>(n_cells) * elem);
        Tensor t;
        t.type = config.type;
        t.ne[0] = width;
        t.ne[1] = n_cells;
        t.buffer = buf.get();
        buffers_.push_back(std::move(buf));
        return t;
    };
    for (size_t l = 0; l < config.is_swa.size(); ++l) {
        const Pool p = config.is_swa[l] && has_swa_pool() ? kSwa : kFull;
        layer_pool_.push_back(p);
        k_.push_back(make(config.n_embd_k_gqa, pools_[p].n_cells()));
        v_.push_back(make(config.n_embd_v_gqa, pools_[p].n_cells()));
    }
}

void KvCache::check_seq(int seq) const {
    if (seq < 0 || seq >= n_seq_max_)
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", n_seq_max_, ")");
}

KvSlots KvCache::claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq) {
    for (int s : seq) check_seq(s);
    KvSlots slots;
    slots.cells[kFull] = pools_[kFull].claim(pos, seq);
    if (has_swa_pool()) {
        try {
            slots.cells[kSwa] = pools_[kSwa].claim(pos, seq);
        } catch (...) {
            pools_[kFull].release(slots.cells[kFull]);
            throw;
        }
    }
    return slots;
}

void KvCache::release(const KvSlots &slots) {
    for (int p = 0; p < 2; ++p) pools_[p].release(slots.cells[p]);
}

void KvCache::gather(Pool p, const std::vector<int32_t> &pos, const std::vector<int32_t> &seq,
                     KvGatherLists &out) const {
    const KvBlockPool &pool = pools_[p];
    const int32_t window = pool.window();
    const size_t n = pos.size();
    out.cells.clear();
    out.begin.assign(n, 0);
    out.end.assign(n, 0);
    std::vector<int32_t> cell_pos;
    std::vector<char> done(n, 0);
    for (size_t i = 0; i < n; ++i) {
        if (done[i]) continue;
        // One list per sequence of the batch, shared by its tokens.
        const int32_t base = static_cast<int32_t>(out.cells.size());
        cell_pos.resize(out.cells.size());
        pool.seq_cells(seq[i], out.cells, cell_pos);
        const auto first = cell_pos.begin() + base;
        for (size_t j = i; j < n; ++j) {
            if (seq[j] != seq[i]) continue;
            done[j] = 1;
            // Visible: positions in (pos - window, pos], a contiguous run of the sorted list.
            const int32_t lo = window > 0 ? pos[j] - window + 1 : std::numeric_limits<int32_t>::min();
            out.begin[j] = static_cast<int32_t>(std::lower_bound(first, cell_pos.end(), lo) - cell_pos.begin());
            out.end[j] = static_cast<int32_t>(std::upper_bound(first, cell_pos.end(), pos[j]) - cell_pos.begin());
        }
    }
}

int32_t KvCache::seq_next_pos(int seq) const {
    check_seq(seq);
    return pools_[kFull].seq_next_pos(seq);
}

int64_t KvCache::seq_length(int seq) const {
    check_seq(seq);
    return pools_[kFull].seq_length(seq);
}

bool KvCache::resumable(int32_t floor, int32_t next_pos) const {
    // The token at next_pos reads positions [next_pos - window + 1, next_pos).
    return floor == 0 || next_pos == 0 || next_pos - pools_[kSwa].window() + 1 >= floor;
}

bool KvCache::can_resume_at(int seq, int32_t next_pos) const {
    check_seq(seq);
    return !has_swa_pool() || resumable(pools_[kSwa].seq_floor(seq), next_pos);
}

void KvCache::seq_remove(int seq, int32_t p0, int32_t p1) {
    if (seq >= 0) check_seq(seq);
    if (p0 < 0) p0 = 0;
    if (p1 < 0) p1 = kPosMax;
    if (p0 >= p1) return;
    const bool windowed = has_swa_pool();
    if (windowed) {  // vet every affected sequence before changing anything
        for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? n_seq_max_ : seq + 1); ++s) {
            const int32_t next = pools_[kFull].seq_next_pos_without(s, p0, p1);
            const int32_t floor = pools_[kSwa].seq_floor(s);
            if (!resumable(floor, next))
                fail(MUSE_ERR_INVALID_ARGUMENT, "cannot remove positions [", p0, ", ",
                     p1 == kPosMax ? std::string("end") : std::to_string(p1), ") of sequence ", s,
                     ": its sliding-window layers no longer hold positions below ", floor,
                     ", which the next token would need (window ", pools_[kSwa].window(),
                     "); keep at least up to position ", floor + pools_[kSwa].window() - 1,
                     ", remove the whole sequence, or create the session with swa_full");
        }
    }
    for (KvBlockPool &pool : pools_) pool.seq_remove(seq, p0, p1);
    if (windowed)  // an emptied sequence starts over with nothing missing
        for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? n_seq_max_ : seq + 1); ++s)
            if (pools_[kFull].seq_length(s) == 0) pools_[kSwa].set_seq_floor(s, 0);
}

void KvCache::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    check_seq(src);
    check_seq(dst);
    if (p0 < 0) p0 = 0;
    if (p1 < 0) p1 = kPosMax;
    if (src == dst || p0 >= p1) return;
    const bool windowed = has_swa_pool();
    int32_t floor = 0;
    if (windowed && pools_[kFull].seq_range_end(src, p0, p1) > 0) {
        // dst inherits src's missing positions along with the copied ones.
        floor = std::max(pools_[kSwa].seq_floor(dst), pools_[kSwa].seq_floor(src));
        const int32_t next = std::max(pools_[kFull].seq_next_pos(dst), pools_[kFull].seq_range_end(src, p0, p1));
        if (!resumable(floor, next))
            fail(MUSE_ERR_INVALID_ARGUMENT, "cannot copy positions of sequence ", src, " ending at ", next - 1,
                 ": its sliding-window layers no longer hold positions below ", floor, " (window ",
                 pools_[kSwa].window(), "); copy a longer prefix or create the session with swa_full");
    }
    for (KvBlockPool &pool : pools_) pool.seq_copy(src, dst, p0, p1);
    if (windowed && floor > 0) pools_[kSwa].set_seq_floor(dst, floor);
}

void KvCache::clear() {
    for (KvBlockPool &pool : pools_) pool.clear();
}

} // namespace muse
