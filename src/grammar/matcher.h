// Matching text against compiled rules, and token masks.
//
// The recognizer is a pushdown automaton: a parser state is a set of stacks of
// positions in the rules (each stack's top a byte-set element). Stacks are
// hash-consed into a tree of nodes, so equal stacks are equal ids and a state is a
// sorted vector of ids; states are interned too, and each (state, byte) transition
// is computed once and cached. The result is a DFA built lazily over the pushdown
// states: re-visited states cost one table lookup per byte, which is what makes a
// mask walk over a whole vocabulary trie fast. A reference in tail position does
// not push (tail call), so repetitions (x*, right recursion) run in constant stack.
//
// Left recursion is refused when the rules are built (RulesBuilder::finish), so
// expanding a state always terminates. Stack depth and the number of states are
// bounded; past them a step fails with a clear error instead of growing.
#pragma once

#include "grammar/rules.h"
#include "grammar/token-trie.h"

#include <bit>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace muse::grammar {

struct MatcherLimits {
    size_t max_stack_depth = 4096;  // nesting (e.g. JSON arrays in arrays) deeper than this fails
    size_t max_states = 100000;     // distinct parser states cached per grammar
    // Ambiguity bounds. Nested counted repetitions ("(a{0,999}){0,999}") make a state
    // hold one stack per way of splitting the input so far (here up to a million), and
    // every step costs as much: past these a step fails with a clear error instead of
    // running for minutes. JSON Schema grammars stay far below them (a few dozen stacks
    // per state; walking the 1,000 bench-dev schemas expands at most ~1M positions each).
    size_t max_stacks_per_state = 65536;
    size_t max_expansions = size_t(1) << 24;  // positions expanded over the grammar's lifetime
    size_t max_mask_cache_bytes = size_t(256) << 20;
    // Token masks use the trie's slices where they provably apply (off: always
    // walk the whole trie; the tests compare the two).
    bool use_slices = true;
    // Masks of states deep inside a counted repetition are computed once, for the state
    // with the count cut to what the longest token can reach (off: each count its own
    // walk; the tests compare the two).
    bool cut_counts = true;
};

// What mask computations cost so far (for tests and benchmarks).
struct MaskStats {
    size_t computed = 0;      // masks computed (not served from the cache)
    size_t sliced = 0;        // of which a slice's bitset plus its rest trie
    size_t nodes_walked = 0;  // trie nodes stepped through
    size_t covered = 0;       // subtrees of a walk whose slice tokens were set en bloc
    size_t cut = 0;           // masks taken from the state with its counts cut (MatcherLimits::cut_counts)
    size_t states = 0;        // parser states built so far
    size_t expansions = 0;    // rule positions expanded so far (bounded by max_expansions)
};

// A hash map from 64-bit keys to ids, open addressing (the automaton looks up a
// stack node per expanded position, which std::unordered_map makes the bulk of a
// new state's cost). `clear` is O(1): entries of older generations count as empty.
class IdMap {
public:
    // The id stored under key, or -1.
    int32_t find(uint64_t key) const {
        if (slots_.empty()) return -1;
        for (size_t h = hash(key);; h = (h + 1) & (slots_.size() - 1)) {
            const Slot &s = slots_[h];
            if (s.gen != gen_) return -1;
            if (s.key == key) return s.id;
        }
    }
    // Stores key -> id unless key is there; returns false when it was.
    bool insert(uint64_t key, int32_t id) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        for (size_t h = hash(key);; h = (h + 1) & (slots_.size() - 1)) {
            Slot &s = slots_[h];
            if (s.gen != gen_) {
                s = {key, id, gen_};
                ++size_;
                return true;
            }
            if (s.key == key) return false;
        }
    }
    void clear() {
        size_ = 0;
        if (++gen_ == 0) {  // wrapped: really clear
            for (auto &s : slots_) s.gen = 0;
            gen_ = 1;
        }
    }

private:
    struct Slot {
        uint64_t key;
        int32_t id;
        uint32_t gen;
    };
    size_t hash(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }
    void grow() {
        std::vector<Slot> old;
        old.swap(slots_);
        const size_t n = old.empty() ? 64 : old.size() * 2;
        slots_.assign(n, Slot{0, 0, 0});
        shift_ = 64 - std::countr_zero(n);
        const uint32_t g = gen_;
        gen_ = 1;
        size_ = 0;
        for (const Slot &s : old)
            if (s.gen == g) insert(s.key, s.id);
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
    uint32_t gen_ = 1;
    int shift_ = 58;
};

// The lazily built automaton of one grammar, shared by its matchers (guarded by
// its mutex; Matcher locks it per call).
class Automaton {
public:
    static constexpr int32_t kDead = 0;      // no stack left, not complete
    static constexpr int32_t kTooDeep = 1;   // a stack exceeded max_stack_depth
    static constexpr int32_t kTooMany = 2;   // more states than max_states
    static constexpr int32_t kTooAmbiguous = 3;  // past max_stacks_per_state or max_expansions
    static constexpr int32_t kFirstLive = 4;

    explicit Automaton(std::shared_ptr<const Rules> rules, MatcherLimits limits = {});

    int32_t initial() const { return initial_; }
    int32_t step(int32_t state, uint8_t byte) {
        int32_t &slot = row(state)[class_of_[byte]];
        int32_t t = slot;
        if (t < 0) {
            t = compute(state, byte);  // adds states, never moves rows
            slot = t;
        }
        return t;
    }
    bool accepting(int32_t s) const { return s >= kFirstLive && accepting_[s]; }
    bool can_continue(int32_t s) const { return s >= kFirstLive && has_stacks_[s]; }
    size_t n_states() const { return states_.size(); }
    std::mutex &mutex() const { return mu_; }
    const Rules &rules() const { return *rules_; }
    static std::string describe_failure(int32_t s, const MatcherLimits &limits);
    const MatcherLimits &limits() const { return limits_; }

    // The mask of a state for a trie (bit per token id), cached per state.
    std::shared_ptr<const std::vector<uint64_t>> mask(int32_t state, const TokenTrie &trie);
    MaskStats mask_stats() const {
        std::lock_guard lock(mu_);
        MaskStats s = stats_;
        s.states = states_.size();
        s.expansions = expansions_;
        return s;
    }

private:
    struct Node {
        uint32_t pos;
        int32_t parent;
        uint32_t depth;
    };
    int32_t compute(int32_t state, uint8_t byte);
    bool survives(int32_t state, const TokenTrie::Slice &slice, size_t max_pairs, size_t max_new_states,
                  uint8_t q0 = 0);
    void walk(int32_t state, const TokenTrie::Layout &trie, std::vector<uint64_t> &bits,
              const std::vector<const TokenTrie::Slice *> *covers = nullptr);
    bool survives_cached(int32_t state, size_t cover, const TokenTrie::Slice &slice, uint8_t q);
    // The bytes a search over a slice's DFA state q tries: one per byte class of the
    // grammar and next DFA state (the rest lead to the same pairs), per slice.
    const std::vector<uint8_t> &byte_reps(const TokenTrie::Slice &slice, uint8_t q);
    // Whether slice checks may build states speculatively (under 3/4 of the bound,
    // so that they never push a grammar that fits into the state limit).
    bool speculate() const { return states_.size() < limits_.max_states / 4 * 3; }
    // A state whose counted repetitions with more than `level` repeats left are cut
    // to `level` (see Rules::count_chains): it takes the same strings of fewer than
    // level - 1 bytes, so for a trie of tokens that short it has the same mask. The
    // positions of a counted string (maxLength 1024) then share one mask until its
    // last characters, where each would be a new state with a walk of its own.
    int32_t canonical(int32_t state, size_t level);
    int32_t canonical_node(int32_t id);
    // Whether a stack of the state is inside a counted repetition (its top or the frame below).
    bool in_counted(int32_t state) const;
    int32_t intern_node(uint32_t pos, int32_t parent, bool &too_deep);
    int32_t intern_state(std::vector<int32_t> &stacks, bool accepting, bool too_deep);
    void expand(uint32_t pos, int32_t parent, bool &accepting, bool &too_deep);
    bool over_budget() const {
        return expansions_ > limits_.max_expansions || out_.size() > limits_.max_stacks_per_state;
    }

    std::shared_ptr<const Rules> rules_;
    MatcherLimits limits_;
    mutable std::mutex mu_;
    std::vector<Node> nodes_;
    IdMap node_ids_;
    std::vector<std::vector<int32_t>> states_;
    std::vector<bool> accepting_, has_stacks_;
    struct VecHash {
        size_t operator()(const std::vector<int32_t> &v) const;
    };
    std::unordered_map<std::vector<int32_t>, int32_t, VecHash> state_ids_;
    // Transitions: a row per state with an entry per byte class (-1: not computed yet), in
    // blocks of 2^kRowBits rows so that growing never copies them (a copy of a large table
    // would stall one mask for milliseconds). Byte classes: bytes that every byte set of the
    // grammar takes or refuses together (a JSON grammar has a few dozen), so a row is that
    // many entries instead of 256, and a mask walk, one row per trie node, misses the cache
    // far less.
    static constexpr int kRowBits = 6;
    int32_t *row(int32_t state) {
        return trans_[static_cast<size_t>(state) >> kRowBits].get() +
               (static_cast<size_t>(state) & ((1u << kRowBits) - 1)) * n_classes_;
    }
    uint8_t class_of_[256] = {};
    size_t n_classes_ = 1;
    void add_row(int32_t fill);
    std::vector<std::unique_ptr<int32_t[]>> trans_;
    int32_t initial_ = kDead;
    size_t expansions_ = 0;
    // scratch for compute()
    std::vector<int32_t> out_;
    std::vector<std::pair<uint32_t, int32_t>> work_;
    IdMap visited_;
    // canonical(): the position of each element of a counted rule (its chain, j,
    // alternative, offset), and per stack node its cut for canon_level_ (-2: not yet).
    struct CountPos {
        uint32_t chain, j, alt, offset;
    };
    std::unordered_map<uint32_t, CountPos> count_pos_;
    std::vector<int32_t> canon_node_;
    size_t canon_level_ = 0;
    // mask cache
    const TokenTrie *mask_trie_ = nullptr;
    std::unordered_map<int32_t, std::shared_ptr<const std::vector<uint64_t>>> masks_;
    size_t mask_bytes_ = 0;
    std::vector<int32_t> walk_;
    // scratch for survives()
    std::vector<uint64_t> pairs_, seen_keys_;
    std::vector<uint16_t> pair_depth_;
    std::vector<uint32_t> seen_stamp_;
    uint32_t stamp_ = 0;
    // survives_cached(): per (state, cover slice, DFA state) of one trie's walks
    std::unordered_map<uint64_t, bool> survives_memo_;
    std::unordered_map<const TokenTrie::Slice *, std::vector<std::vector<uint8_t>>> byte_reps_;
    std::vector<const TokenTrie::Slice *> covers_;
    MaskStats stats_;
};

// One position in a grammar: accepts bytes or tokens, rolls back, computes masks.
// Copies are independent positions sharing the grammar's automaton.
class Matcher {
public:
    explicit Matcher(std::shared_ptr<Automaton> automaton);

    // Accepts all the bytes or none: false (and the state unchanged, error() set)
    // when the grammar rejects them. Every successful call is one history entry.
    bool accept_bytes(std::string_view bytes);
    // A token of the trie's vocabulary; an end-of-generation token is accepted only
    // where the grammar is complete (and ends the match).
    bool accept_token(int32_t token, const TokenTrie &trie);
    bool is_accepting() const;  // the text so far is a complete match
    bool can_continue() const;  // more bytes may follow
    // Undoes the last n accepts (bytes calls or tokens), O(1) each.
    void rollback(size_t n);
    size_t n_accepted() const { return history_.size() - 1; }
    void reset();
    const std::string &error() const { return error_; }
    MaskStats mask_stats() const { return a_->mask_stats(); }

    // Bit per token id: the tokens the grammar allows next (EOG ones only when complete).
    std::shared_ptr<const std::vector<uint64_t>> mask(const TokenTrie &trie);
    // The one token allowed next, or -1 when there are several (or none).
    int32_t forced_token(const TokenTrie &trie);

private:
    std::shared_ptr<Automaton> a_;
    std::vector<int32_t> history_;  // state after each accept; front: the initial state
    std::vector<bool> ended_;       // an EOG token was accepted at that entry
    std::string error_;
};

inline bool mask_test(const std::vector<uint64_t> &m, int32_t id) { return (m[id >> 6] >> (id & 63)) & 1; }

}  // namespace muse::grammar
