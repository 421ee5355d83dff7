#include "engine/kv-cache.h"

#include "core/error.h"

#include <algorithm>
#include <limits>

namespace muse {

namespace {
constexpr int32_t kPosMax = std::numeric_limits<int32_t>::max();
}

// ---------------------------------------------------------------- KvCellPool

KvCellPool::KvCellPool(int64_t size, int n_seq_max, int32_t window)
    : cells_(static_cast<size_t>(size)), floor_(static_cast<size_t>(n_seq_max), 0), window_(window) {}

int64_t KvCellPool::n_free() const {
    int64_t n = 0;
    for (const Cell &c : cells_) n += c.seqs == 0;
    return n;
}

void KvCellPool::drop_invisible() {
    // A token at position q sees p only if q - p < window, and new tokens of a
    // sequence only come after its last position: p <= next - window is dead.
    std::vector<int32_t> next(floor_.size(), 0);
    for (const Cell &c : cells_)
        for (size_t s = 0; s < next.size(); ++s)
            if (c.seqs >> s & 1) next[s] = std::max(next[s], c.pos + 1);
    for (Cell &c : cells_) {
        for (size_t s = 0; s < next.size(); ++s) {
            if (!(c.seqs >> s & 1) || c.pos > next[s] - window_) continue;
            c.seqs &= ~(uint64_t(1) << s);
            floor_[s] = std::max(floor_[s], c.pos + 1);
        }
        if (c.seqs == 0) c.pos = -1;
    }
}

std::vector<int32_t> KvCellPool::claim(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq) {
    if (window_ > 0 && n_free() < static_cast<int64_t>(pos.size())) drop_invisible();
    std::vector<int32_t> out;
    out.reserve(pos.size());
    for (size_t c = 0; c < cells_.size() && out.size() < pos.size(); ++c)
        if (cells_[c].seqs == 0) out.push_back(static_cast<int32_t>(c));
    if (out.size() < pos.size())
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", pos.size(), " more tokens do not fit in ", cells_.size(),
             " cells (remove tokens or create the session with a larger n_ctx)");
    for (size_t i = 0; i < out.size(); ++i) {
        Cell &cell = cells_[static_cast<size_t>(out[i])];
        cell.pos = pos[i];
        cell.seqs = uint64_t(1) << seq[i];
    }
    return out;
}

void KvCellPool::release(const std::vector<int32_t> &cells) {
    for (int32_t c : cells) cells_[static_cast<size_t>(c)] = Cell{};
}

int64_t KvCellPool::used_extent() const {
    for (size_t c = cells_.size(); c > 0; --c)
        if (cells_[c - 1].seqs != 0) return static_cast<int64_t>(c);
    return 0;
}

int32_t KvCellPool::seq_next_pos(int seq) const { return seq_next_pos_without(seq, 0, 0); }

int32_t KvCellPool::seq_next_pos_without(int seq, int32_t p0, int32_t p1) const {
    int32_t next = 0;
    for (const Cell &c : cells_)
        if ((c.seqs >> seq & 1) && (c.pos < p0 || c.pos >= p1)) next = std::max(next, c.pos + 1);
    return next;
}

int32_t KvCellPool::seq_range_end(int seq, int32_t p0, int32_t p1) const {
    int32_t end = 0;
    for (const Cell &c : cells_)
        if ((c.seqs >> seq & 1) && c.pos >= p0 && c.pos < p1) end = std::max(end, c.pos + 1);
    return end;
}

int64_t KvCellPool::seq_length(int seq) const {
    int64_t n = 0;
    for (const Cell &c : cells_) n += (c.seqs >> seq) & 1;
    return n;
}

void KvCellPool::seq_remove(int seq, int32_t p0, int32_t p1) {
    for (Cell &c : cells_) {
        if (c.seqs == 0 || c.pos < p0 || c.pos >= p1) continue;
        if (seq < 0) c.seqs = 0;
        else c.seqs &= ~(uint64_t(1) << seq);
        if (c.seqs == 0) c.pos = -1;
    }
}

void KvCellPool::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    for (Cell &c : cells_)
        if ((c.seqs >> src & 1) && c.pos >= p0 && c.pos < p1) c.seqs |= uint64_t(1) << dst;
}

void KvCellPool::clear() {
    for (Cell &c : cells_) c = Cell{};
    std::fill(floor_.begin(), floor_.end(), 0);
}

void KvCellPool::build_mask(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq, int64_t n_kv,
                            float *mask) const {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < pos.size(); ++i) {
        float *row = mask + static_cast<int64_t>(i) * n_kv;
        for (int64_t c = 0; c < n_kv; ++c) {
            const Cell &cell = cells_[static_cast<size_t>(c)];
            const bool visible = (cell.seqs >> seq[i] & 1) && cell.pos <= pos[i] &&
                                 (window_ <= 0 || pos[i] - cell.pos < window_);
            row[c] = visible ? 0.0f : neg_inf;
        }
    }
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
      pools_{KvCellPool(std::max<int64_t>(config.n_ctx, 0), std::clamp(config.n_seq_max, 1, kMaxSeqs), 0),
             KvCellPool(std::max<int64_t>(swa_pool_size(config), 0), std::clamp(config.n_seq_max, 1, kMaxSeqs),
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
        const Pool p = config.is_swa[l] && pools_[kSwa].size() > 0 ? kSwa : kFull;
        layer_pool_.push_back(p);
        k_.push_back(make(config.n_embd_k_gqa, pools_[p].size()));
        v_.push_back(make(config.n_embd_v_gqa, pools_[p].size()));
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
    if (pools_[kSwa].size() > 0) {
        try {
            slots.cells[kSwa] = pools_[kSwa].claim(pos, seq);
        } catch (...) {
            pools_[kFull].release(slots.cells[kFull]);
            throw;
        }
    }
    for (int p = 0; p < 2; ++p) slots.n_kv[p] = pools_[p].used_extent();
    return slots;
}

void KvCache::release(const KvSlots &slots) {
    for (int p = 0; p < 2; ++p) pools_[p].release(slots.cells[p]);
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
    return pools_[kSwa].size() == 0 || resumable(pools_[kSwa].seq_floor(seq), next_pos);
}

void KvCache::seq_remove(int seq, int32_t p0, int32_t p1) {
    if (seq >= 0) check_seq(seq);
    if (p0 < 0) p0 = 0;
    if (p1 < 0) p1 = kPosMax;
    if (p0 >= p1) return;
    const bool windowed = pools_[kSwa].size() > 0;
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
    for (KvCellPool &pool : pools_) pool.seq_remove(seq, p0, p1);
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
    const bool windowed = pools_[kSwa].size() > 0;
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
    for (KvCellPool &pool : pools_) pool.seq_copy(src, dst, p0, p1);
    if (windowed && floor > 0) pools_[kSwa].set_seq_floor(dst, floor);
}

void KvCache::clear() {
    for (KvCellPool &pool : pools_) pool.clear();
}

} // namespace muse
