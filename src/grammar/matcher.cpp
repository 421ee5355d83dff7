#include "grammar/matcher.h"

#include "core/error.h"

#include <algorithm>
#include <bit>

namespace muse::grammar {

size_t Automaton::VecHash::operator()(const std::vector<int32_t> &v) const {
    uint64_t h = 1469598103934665603ull ^ v.size();
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
}

Automaton::Automaton(std::shared_ptr<const Rules> rules, MatcherLimits limits)
    : rules_(std::move(rules)), limits_(limits) {
    // Byte classes by partition refinement: split every class by membership in each set.
    for (const ByteSet &set : rules_->sets) {
        int16_t split[2][256];
        std::fill_n(&split[0][0], 512, int16_t(-1));
        uint8_t next[256];
        size_t n = 0;
        for (int b = 0; b < 256; ++b) {
            int16_t &id = split[set.test(static_cast<uint8_t>(b))][class_of_[b]];
            if (id < 0) id = static_cast<int16_t>(n++);
            next[b] = static_cast<uint8_t>(id);
        }
        std::copy(next, next + 256, class_of_);
        n_classes_ = n;
    }
    for (size_t c = 0; c < rules_->count_chains.size(); ++c) {
        const auto &chain = rules_->count_chains[c];
        for (size_t j = 1; j < chain.size(); ++j) {
            const auto &alts = rules_->alt_starts[chain[j]];
            for (size_t a = 0; a < alts.size(); ++a)
                for (uint32_t p = alts[a], off = 0;; ++p, ++off) {
                    count_pos_[p] = {static_cast<uint32_t>(c), static_cast<uint32_t>(j), static_cast<uint32_t>(a), off};
                    if (elem_kind(rules_->elems[p]) == kElemEnd) break;
                }
        }
    }
    // Reserved states: dead, too deep, too many. They have no stacks and every
    // transition stays in them.
    for (int s = 0; s < kFirstLive; ++s) {
        states_.push_back({});
        accepting_.push_back(false);
        has_stacks_.push_back(false);
        add_row(s);
    }
    bool accepting = false, too_deep = false;
    out_.clear();
    visited_.clear();
    for (uint32_t a : rules_->alt_starts[rules_->root]) expand(a, -1, accepting, too_deep);
    initial_ = intern_state(out_, accepting, too_deep);
}

// The row of the state just appended to states_.
void Automaton::add_row(int32_t fill) {
    const size_t id = states_.size() - 1;
    if ((id >> kRowBits) >= trans_.size()) trans_.push_back(std::make_unique<int32_t[]>(n_classes_ << kRowBits));
    std::fill_n(row(static_cast<int32_t>(id)), n_classes_, fill);
}

std::string Automaton::describe_failure(int32_t s, const MatcherLimits &limits) {
    if (s == kTooDeep) return str_cat("nesting deeper than ", limits.max_stack_depth, " levels");
    if (s == kTooMany) return str_cat("more than ", limits.max_states, " parser states");
    if (s == kTooAmbiguous)
        return str_cat("the grammar is too ambiguous (more than ", limits.max_stacks_per_state,
                       " parses at once, or more than ", limits.max_expansions, " expansion steps in all)");
    return "the grammar does not allow this";
}

int32_t Automaton::intern_node(uint32_t pos, int32_t parent, bool &too_deep) {
    const uint64_t key = (uint64_t(pos) << 32) | static_cast<uint32_t>(parent + 1);
    if (const int32_t found = node_ids_.find(key); found >= 0) return found;
    const uint32_t depth = parent < 0 ? 1 : nodes_[parent].depth + 1;
    if (depth > limits_.max_stack_depth) {
        too_deep = true;
        return -1;
    }
    const auto id = static_cast<int32_t>(nodes_.size());
    nodes_.push_back({pos, parent, depth});
    node_ids_.insert(key, id);
    return id;
}

// Closes over a position: references are entered (every alternative), ends of
// alternatives return to the parent, and byte-set positions become stacks.
void Automaton::expand(uint32_t pos0, int32_t parent0, bool &accepting, bool &too_deep) {
    const auto &elems = rules_->elems;
    work_.clear();
    work_.push_back({pos0, parent0});
    while (!work_.empty() && !over_budget()) {
        auto [pos, parent] = work_.back();
        work_.pop_back();
        const uint64_t key = (uint64_t(pos) << 32) | static_cast<uint32_t>(parent + 1);
        if (!visited_.insert(key, 0)) continue;
        ++expansions_;
        const uint32_t e = elems[pos];
        switch (elem_kind(e)) {
        case kElemEnd:
            if (parent < 0)
                accepting = true;
            else
                work_.push_back({nodes_[parent].pos, nodes_[parent].parent});
            break;
        case kElemBytes: {
            const int32_t id = intern_node(pos, parent, too_deep);
            if (id >= 0) out_.push_back(id);
            break;
        }
        default: {
            int32_t np = parent;
            if (elem_kind(elems[pos + 1]) != kElemEnd) {
                np = intern_node(pos + 1, parent, too_deep);
                if (np < 0) break;
            }
            for (uint32_t a : rules_->alt_starts[elem_arg(e)]) work_.push_back({a, np});
        }
        }
    }
}

int32_t Automaton::intern_state(std::vector<int32_t> &stacks, bool accepting, bool too_deep) {
    std::sort(stacks.begin(), stacks.end());
    stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
    // Past the depth bound the whole step fails (even if shallower stacks remain),
    // so the error says why instead of a later byte failing as "not allowed".
    if (too_deep) return kTooDeep;
    if (over_budget()) return kTooAmbiguous;
    if (stacks.empty() && !accepting) return kDead;
    std::vector<int32_t> key = stacks;
    if (accepting) key.insert(key.begin(), -1);
    auto it = state_ids_.find(key);
    if (it != state_ids_.end()) return it->second;
    if (states_.size() >= limits_.max_states) return kTooMany;
    const auto id = static_cast<int32_t>(states_.size());
    states_.push_back(stacks);
    accepting_.push_back(accepting);
    has_stacks_.push_back(!stacks.empty());
    add_row(-1);
    state_ids_.emplace(std::move(key), id);
    return id;
}

int32_t Automaton::compute(int32_t state, uint8_t byte) {
    const auto &elems = rules_->elems;
    const auto &sets = rules_->sets;
    bool accepting = false, too_deep = false;
    out_.clear();
    visited_.clear();
    // Expanding adds stack nodes, not states (intern_state comes after the loop),
    // so the state's vector stays put.
    const std::vector<int32_t> &stacks = states_[state];
    // `same`: the bytes that exactly the same stacks take as `byte` does. They all
    // lead to the same state, so one expansion fills their transitions too (a
    // string's state has a handful of such classes, not 256 bytes to expand).
    ByteSet same;
    for (auto &w : same.w) w = ~uint64_t(0);
    for (int32_t id : stacks) {
        const Node n = nodes_[id];
        const ByteSet &set = sets[elem_arg(elems[n.pos])];
        const bool takes = set.test(byte);
        for (int i = 0; i < 4; ++i) same.w[i] &= takes ? set.w[i] : ~set.w[i];
        if (takes) expand(n.pos + 1, n.parent, accepting, too_deep);
    }
    const int32_t t = intern_state(out_, accepting, too_deep);
    if (t != kTooMany) {  // the state bound may lift for another byte's target: not shared
        int32_t *r = row(state);
        for (int i = 0; i < 4; ++i)
            for (uint64_t w = same.w[i]; w; w &= w - 1) r[class_of_[i * 64 + std::countr_zero(w)]] = t;
    }
    return t;
}

int32_t Automaton::canonical_node(int32_t id) {
    // Iterative (stacks may be thousands deep): the unresolved ancestors first.
    if (canon_node_.size() < nodes_.size()) canon_node_.resize(nodes_.size(), -2);
    std::vector<int32_t> path;
    for (int32_t n = id; n >= 0 && canon_node_[n] == -2; n = nodes_[n].parent) path.push_back(n);
    for (size_t i = path.size(); i-- > 0;) {
        const int32_t n = path[i];
        const Node node = nodes_[n];
        const int32_t parent = node.parent < 0 ? -1 : canon_node_[node.parent];
        uint32_t pos = node.pos;
        if (auto it = count_pos_.find(pos); it != count_pos_.end() && it->second.j > canon_level_) {
            const CountPos &c = it->second;
            pos = rules_->alt_starts[rules_->count_chains[c.chain][canon_level_]][c.alt] + c.offset;
        }
        int32_t cut = n;
        if (pos != node.pos || parent != node.parent) {
            bool too_deep = false;  // the same depth as the node's
            cut = intern_node(pos, parent, too_deep);
        }
        if (canon_node_.size() < nodes_.size()) canon_node_.resize(nodes_.size(), -2);
        canon_node_[n] = cut;
    }
    return id < 0 ? id : canon_node_[id];
}

const std::vector<uint8_t> &Automaton::byte_reps(const TokenTrie::Slice &slice, uint8_t q) {
    auto &per_q = byte_reps_[&slice];
    if (per_q.empty()) {
        per_q.resize(slice.dfa.size());
        for (size_t dq = 0; dq < slice.dfa.size(); ++dq) {
            // One byte per (byte class, next DFA state): the others give the same pair.
            std::vector<bool> seen(n_classes_ * 256, false);
            for (unsigned b = 0; b < 256; ++b) {
                const uint8_t next = slice.dfa[dq][b];
                if (next == TokenTrie::kNoState) continue;
                const size_t key = class_of_[b] * size_t(256) + next;
                if (seen[key]) continue;
                seen[key] = true;
                per_q[dq].push_back(static_cast<uint8_t>(b));
            }
        }
    }
    return per_q[q];
}

bool Automaton::in_counted(int32_t state) const {
    if (count_pos_.empty()) return false;
    for (int32_t id : states_[state])
        for (int32_t n = id, up = 0; n >= 0 && up < 2; n = nodes_[n].parent, ++up)
            if (count_pos_.count(nodes_[n].pos)) return true;
    return false;
}

int32_t Automaton::canonical(int32_t state, size_t level) {
    if (count_pos_.empty() || !limits_.cut_counts || state < kFirstLive) return state;
    if (level != canon_level_) {
        canon_node_.clear();
        canon_level_ = level;
    }
    std::vector<int32_t> stacks;
    stacks.reserve(states_[state].size());
    bool changed = false;
    for (size_t i = 0; i < states_[state].size(); ++i) {
        const int32_t id = states_[state][i];  // canonical_node adds nodes, never states
        const int32_t cut = canonical_node(id);
        changed |= cut != id;
        stacks.push_back(cut);
    }
    if (!changed || !speculate()) return state;
    const int32_t c = intern_state(stacks, accepting_[state], false);
    return c >= kFirstLive ? c : state;
}

std::shared_ptr<const std::vector<uint64_t>> Automaton::mask(int32_t state, const TokenTrie &trie) {
    if (mask_trie_ != &trie) {
        masks_.clear();
        mask_bytes_ = 0;
        mask_trie_ = &trie;
        survives_memo_.clear();
        byte_reps_.clear();
    }
    auto it = masks_.find(state);
    if (it != masks_.end()) return it->second;
    // A walk takes at most max_depth bytes: the state with its counts cut to one more
    // than that (one more again: the next repeat's first byte) has the same mask.
    if (const int32_t c = canonical(state, trie.all().max_depth + 2); c != state) {
        auto m = mask(c, trie);
        masks_.emplace(state, m);
        ++stats_.cut;
        return m;
    }
    const size_t words = (static_cast<size_t>(trie.n_vocab()) + 63) / 64;
    if (mask_bytes_ + words * 8 > limits_.max_mask_cache_bytes) {
        masks_.clear();
        mask_bytes_ = 0;
    }
    std::vector<uint64_t> bits(words, 0);
    ++stats_.computed;
    if (can_continue(state)) {
        const TokenTrie::Layout *rest = &trie.all();
        if (limits_.use_slices) {
            // Cheap checks first: an unbounded slice closing up within a few pairs
            // (a free string), a bounded one (a counted string). Then unbounded ones
            // with room for many pairs: an object's key, which may be any string
            // but the declared names, passes through a state per prefix of those
            // names before it loops like a free string.
            const TokenTrie::Slice *use = nullptr;
            // The search builds parser states the walk might never need: past 3/4 of
            // the bound on states, only the first round, with almost no new states.
            const int rounds = speculate() ? 2 : 1;
            const size_t new_states = speculate() ? 32 : 2;
            const bool counted = in_counted(state);
            for (int round = 0; round < rounds && !use; ++round) {
                for (const auto &slice : trie.slices()) {
                    if (slice.n_tokens == 0 || (round == 1 && slice.max_len) || slice.name == "json-key") continue;
                    const size_t cap = slice.max_len ? 32 * slice.max_len : round == 0 ? 48 : 512;
                    // A counted string builds a state per character and per byte inside
                    // one (~8 per character): the search of a bounded slice needs them
                    // all, as a walk of the whole trie would build them.
                    const bool wide = slice.max_len && counted && speculate();
                    if (survives(state, slice, cap, wide ? 32 * slice.max_len : new_states)) {
                        use = &slice;
                        break;
                    }
                }
            }
            if (use) {
                bits = use->bits;
                rest = &use->rest;
                ++stats_.sliced;
            }
        }
        covers_.clear();
        if (limits_.use_slices && rest == &trie.all())
            for (const auto &slice : trie.slices())
                if (slice.max_len == 0 && slice.n_tokens > 0) covers_.push_back(&slice);
        walk(state, *rest, bits, covers_.empty() ? nullptr : &covers_);
    }
    if (accepting(state))
        for (int32_t id : trie.eog()) bits[id >> 6] |= uint64_t(1) << (id & 63);
    mask_bytes_ += words * 8;
    auto m = std::make_shared<const std::vector<uint64_t>>(std::move(bits));
    masks_.emplace(state, m);
    return m;
}

// Sets the bits of the tokens of `trie` that the automaton takes from `state`.
// With `covers` (slices, trie being the whole trie): where a large subtree starts
// at a node whose bytes a cover slice's DFA takes (in DFA state q), and the state
// there survives every string of the slice from q, the subtree's slice tokens are
// all allowed (a contiguous run of the slice's preorder tokens) and only its paths
// to other tokens are walked. An object's key is the case: past a prefix no
// declared name has, it is a free string ("json-string"); and the subtree of the
// opening quote, when a key may be any string but the declared names ("json-key").
void Automaton::walk(int32_t state, const TokenTrie::Layout &trie, std::vector<uint64_t> &bits,
                     const std::vector<const TokenTrie::Slice *> *covers) {
    const auto &nodes = trie.nodes;
    const auto &toks = trie.tokens;
    walk_.assign(trie.max_depth + 1, kDead);
    walk_[0] = state;
    const auto n = static_cast<uint32_t>(nodes.size());
    size_t visited = 0;
    uint32_t covered_end = 0;  // nodes before it are inside a subtree covered by `active`
    const TokenTrie::Slice *active = nullptr;
    for (uint32_t i = 1; i < n;) {
        const TokenTrie::Node &node = nodes[i];
        if (i < covered_end && !active->has_rest[i]) {
            i = node.end;  // only slice tokens below: already set
            continue;
        }
        const int32_t s = step(walk_[node.depth - 1], node.byte);
        ++visited;
        if (s < kFirstLive) {
            i = node.end;  // the prefix is rejected: skip every token under it
            continue;
        }
        walk_[node.depth] = s;
        for (uint32_t k = node.tok_begin; k < node.tok_end; ++k) bits[toks[k] >> 6] |= uint64_t(1) << (toks[k] & 63);
        if (covers && i >= covered_end && node.end - i > 64 && speculate()) {
            for (size_t c = 0; c < covers->size(); ++c) {
                const TokenTrie::Slice &cover = *(*covers)[c];
                const uint8_t q = cover.node_q[i];
                if (q == TokenTrie::kNoState || cover.pre_begin[i] == cover.pre_begin[node.end]) continue;
                if (!survives_cached(s, c, cover, q)) continue;
                if (cover.pre_begin[node.end] - cover.pre_begin[i] >= TokenTrie::kDenseTokens) {
                    const auto &d = cover.dense_bits[cover.dense_at.at(i)];
                    for (size_t w = 0; w < d.size(); ++w) bits[w] |= d[w];
                } else {
                    for (uint32_t k = cover.pre_begin[i]; k < cover.pre_begin[node.end]; ++k) {
                        const int32_t id = cover.pre_tokens[k];
                        bits[id >> 6] |= uint64_t(1) << (id & 63);
                    }
                }
                covered_end = node.end;
                active = &cover;
                ++stats_.covered;
                break;
            }
        }
        ++i;
    }
    stats_.nodes_walked += visited;
}

// survives() from DFA state q, with a small budget (a larger one from the start
// of a cover that is not a free string's: a key's quote, where the search passes
// through a state per prefix of the declared names), remembered (for walks).
bool Automaton::survives_cached(int32_t state, size_t cover, const TokenTrie::Slice &slice, uint8_t q) {
    const uint64_t k = (uint64_t(static_cast<uint32_t>(state)) << 16) | (uint64_t(cover) << 8) | q;
    auto it = survives_memo_.find(k);
    if (it != survives_memo_.end()) return it->second;
    const bool wide = slice.name == "json-key";
    const bool ok = wide ? survives(state, slice, 512, 48, q) : survives(state, slice, 48, 12, q);
    survives_memo_.emplace(k, ok);
    return ok;
}

// Whether every byte string of the slice keeps the automaton alive from `state`:
// then every token of the slice is allowed there, exactly. A breadth-first search
// over the pairs (automaton state, DFA state) reachable together. For an
// unbounded slice the pairs must close up: in a free string they are the string's
// state and the few states inside a UTF-8 character. A bounded slice (tokens of at
// most max_len bytes) only needs the pairs within max_len bytes, which is what
// makes counted strings (maxLength: a new state per character) cheap while the
// count is far from its end. Given up past a bound on pairs (the caller then walks
// the whole trie) past max_pairs pairs.
bool Automaton::survives(int32_t state, const TokenTrie::Slice &slice, size_t max_pairs, size_t max_new_states,
                         uint8_t q0) {
    constexpr size_t kSeenSlots = 8192;  // a power of two, well above any max_pairs
    max_pairs = std::min(max_pairs, kSeenSlots / 2);
    auto key = [](int32_t s, uint8_t q) { return (uint64_t(static_cast<uint32_t>(s)) << 8) | q; };
    // A small open-addressing set of the pairs seen, cleared by a generation stamp.
    if (seen_keys_.empty()) {
        seen_keys_.assign(kSeenSlots, 0);
        seen_stamp_.assign(kSeenSlots, 0);
    }
    if (++stamp_ == 0) {
        std::fill(seen_stamp_.begin(), seen_stamp_.end(), 0);
        stamp_ = 1;
    }
    auto insert = [&](uint64_t k) {  // false when already there
        size_t h = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 51);
        while (seen_stamp_[h] == stamp_) {
            if (seen_keys_[h] == k) return false;
            h = (h + 1) & (kSeenSlots - 1);
        }
        seen_stamp_[h] = stamp_;
        seen_keys_[h] = k;
        return true;
    };
    const size_t states0 = states_.size();
    pairs_.assign(1, key(state, q0));
    pair_depth_.assign(1, 0);
    insert(pairs_[0]);
    for (size_t i = 0; i < pairs_.size(); ++i) {
        const uint64_t k = pairs_[i];
        const uint16_t depth = pair_depth_[i];
        if (slice.max_len && depth >= slice.max_len) continue;  // no slice token is longer
        const auto s = static_cast<int32_t>(k >> 8);
        const auto &row = slice.dfa[k & 0xFF];
        uint64_t last = ~uint64_t(0);
        for (const uint8_t b : byte_reps(slice, static_cast<uint8_t>(k & 0xFF))) {
            const uint8_t q = row[b];
            const int32_t t = step(s, b);
            if (t < kFirstLive || !has_stacks_[t]) return false;  // a slice token dies (or cannot go on)
            // The search builds states that no token may ever reach; past a budget
            // (an object's key in a large schema: a state per prefix of every
            // declared name, per position in the object) the walk is cheaper.
            if (states_.size() - states0 > max_new_states) return false;
            const uint64_t nk = key(t, q);
            if (nk == last) continue;  // runs of bytes mostly lead to the same pair
            last = nk;
            if (!insert(nk)) continue;
            if (pairs_.size() >= max_pairs) return false;
            pairs_.push_back(nk);
            pair_depth_.push_back(static_cast<uint16_t>(depth + 1));
        }
    }
    return true;
}

Matcher::Matcher(std::shared_ptr<Automaton> automaton) : a_(std::move(automaton)) { reset(); }

void Matcher::reset() {
    history_.assign(1, a_->initial());
    ended_.assign(1, false);
    error_.clear();
}

bool Matcher::accept_bytes(std::string_view bytes) {
    std::lock_guard lock(a_->mutex());
    if (ended_.back()) {
        error_ = "the match already ended (end-of-generation accepted)";
        return false;
    }
    int32_t s = history_.back();
    for (size_t i = 0; i < bytes.size(); ++i) {
        s = a_->step(s, static_cast<uint8_t>(bytes[i]));
        if (s < Automaton::kFirstLive) {
            error_ = str_cat("rejected at byte ", i, " of the input: ", Automaton::describe_failure(s, a_->limits()));
            return false;
        }
    }
    history_.push_back(s);
    ended_.push_back(false);
    return true;
}

bool Matcher::accept_token(int32_t token, const TokenTrie &trie) {
    if (token < 0 || token >= trie.n_vocab()) {
        error_ = str_cat("token ", token, " is outside the vocabulary");
        return false;
    }
    if (trie.is_eog(token)) {
        if (!is_accepting() || ended_.back()) {
            error_ = "end-of-generation before the grammar is complete";
            return false;
        }
        history_.push_back(history_.back());
        ended_.push_back(true);
        return true;
    }
    if (trie.piece(token).empty()) {
        error_ = str_cat("token ", token, " has no text the grammar could match");
        return false;
    }
    return accept_bytes(trie.piece(token));
}

bool Matcher::is_accepting() const {
    std::lock_guard lock(a_->mutex());
    return a_->accepting(history_.back());
}

bool Matcher::can_continue() const {
    std::lock_guard lock(a_->mutex());
    return !ended_.back() && a_->can_continue(history_.back());
}

void Matcher::rollback(size_t n) {
    if (n > n_accepted()) fail(MUSE_ERR_OUT_OF_RANGE, "rollback of ", n, " accepts, only ", n_accepted(), " made");
    history_.resize(history_.size() - n);
    ended_.resize(ended_.size() - n);
}

std::shared_ptr<const std::vector<uint64_t>> Matcher::mask(const TokenTrie &trie) {
    std::lock_guard lock(a_->mutex());
    if (ended_.back())  // after the end nothing is allowed
        return std::make_shared<const std::vector<uint64_t>>((static_cast<size_t>(trie.n_vocab()) + 63) / 64, 0);
    return a_->mask(history_.back(), trie);
}

int32_t Matcher::forced_token(const TokenTrie &trie) {
    const auto mp = mask(trie);
    const auto &m = *mp;
    int32_t found = -1;
    for (size_t w = 0; w < m.size(); ++w) {
        if (!m[w]) continue;
        if (found >= 0 || std::popcount(m[w]) > 1) return -1;
        found = static_cast<int32_t>(w * 64 + std::countr_zero(m[w]));
    }
    return found;
}

}  // namespace muse::grammar
