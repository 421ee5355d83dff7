// The compiled form of every grammar: context-free rules over *bytes*.
//
// Front ends (GBNF, regex, JSON Schema) describe text in code points; they lower
// each character class to UTF-8 byte sequences here, so the matcher never holds a
// half-decoded character and a token that ends inside a character is judged by
// its bytes alone. Output the grammar allows is valid UTF-8 by construction.
//
// Layout: one flat element array. A rule's alternatives are runs of elements, each
// ending in an `end` element; a position (index into the array) is what the
// matcher keeps on its stacks.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace muse::grammar {

struct ByteSet {
    uint64_t w[4] = {0, 0, 0, 0};
    bool test(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
    void set(uint8_t b) { w[b >> 6] |= uint64_t(1) << (b & 63); }
    void set_range(uint8_t lo, uint8_t hi) {
        for (unsigned b = lo; b <= hi; ++b) set(static_cast<uint8_t>(b));
    }
    bool operator<(const ByteSet &o) const {
        for (int i = 0; i < 4; ++i)
            if (w[i] != o.w[i]) return w[i] < o.w[i];
        return false;
    }
};

// A code-point range, inclusive.
struct CodeRange {
    uint32_t lo, hi;
};

// Element encoding: the top two bits say the kind, the rest the operand.
enum : uint32_t { kElemEnd = 0u << 30, kElemBytes = 1u << 30, kElemRef = 2u << 30, kElemKindMask = 3u << 30 };
inline uint32_t elem_kind(uint32_t e) { return e & kElemKindMask; }
inline uint32_t elem_arg(uint32_t e) { return e & ~kElemKindMask; }

struct Rules {
    std::vector<ByteSet> sets;
    std::vector<uint32_t> elems;                   // flat: alternatives, each closed by kElemEnd
    std::vector<std::vector<uint32_t>> alt_starts;  // per rule: start position of each alternative
    std::vector<std::string> names;
    uint32_t root = 0;
    // Counted repetitions: x{m,n} ends in a reference to O_(n-m), where O_j ::= x O_(j-1)
    // | (empty) and O_1 ::= x | (empty). count_chains[c][j] is O_j of chain c (index 0
    // unused). A chain is listed only when x cannot match the empty string: then every
    // further x takes a byte, and O_j and O_k with j, k > L + 1 take the same strings of
    // at most L bytes (the matcher's token masks use this).
    std::vector<std::vector<uint32_t>> count_chains;
};

// Limits that keep hostile grammars bounded.
struct Limits {
    size_t max_elements = 4u << 20;  // after expanding repetitions and UTF-8 classes
    uint32_t max_repetition = 100000;  // the largest {m,n} bound accepted
};

// Builds Rules. Front ends add rules (by name or anonymous) whose alternatives are
// sequences of elements made with bytes()/ref()/chars(), then finish().
class RulesBuilder {
public:
    using Seq = std::vector<uint32_t>;
    explicit RulesBuilder(Limits limits = {}) : limits_(limits) {}

    // The id of a named rule (created empty on first mention).
    uint32_t named(const std::string &name);
    uint32_t fresh(const std::string &hint);  // a new helper rule
    void add_alt(uint32_t rule, Seq seq);
    bool defined(uint32_t rule) const { return defined_[rule]; }
    void mark_defined(uint32_t rule) { defined_[rule] = true; }
    const std::string &name(uint32_t rule) const { return names_[rule]; }
    size_t n_rules() const { return names_.size(); }

    uint32_t bytes(const ByteSet &set);
    static uint32_t ref(uint32_t rule) { return kElemRef | rule; }
    // One element matching exactly one character of the class (ranges of code
    // points; negated: every valid code point outside them). May add a helper rule.
    uint32_t chars(std::vector<CodeRange> ranges, bool negated);
    // Appends the bytes of a UTF-8 string literal as single-byte elements.
    void literal(Seq &seq, const std::string &utf8);
    // x{min,max} (max < 0: unbounded) of one element, as elements appended to seq.
    void repeat(Seq &seq, uint32_t elem, uint32_t min, int64_t max);

    // Checks (undefined rules, left recursion) and lays the rules out. Throws
    // muse::Error (MUSE_ERR_INVALID_ARGUMENT) naming the rule.
    Rules finish(uint32_t root);

    size_t elements() const { return n_elems_; }

private:
    void count(size_t n);
    Limits limits_;
    std::vector<std::string> names_;
    std::vector<std::vector<Seq>> alts_;
    std::vector<bool> defined_;
    std::map<std::string, uint32_t> by_name_;
    std::vector<ByteSet> sets_;
    std::map<ByteSet, uint32_t> set_ids_;
    std::map<std::string, uint32_t> class_rules_;  // deduplicated class helpers
    std::map<std::pair<uint32_t, int64_t>, uint32_t> star_rules_;
    size_t n_elems_ = 0;
};

// Normalizes ranges (sorted, merged), complements them when negated, and drops the
// surrogates (never valid in UTF-8).
std::vector<CodeRange> normalize_ranges(std::vector<CodeRange> ranges, bool negated);
// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string &out, uint32_t cp);
// Decodes one code point at s[i]; advances i. Returns false on invalid UTF-8.
bool decode_utf8(const std::string &s, size_t &i, uint32_t &cp);

}  // namespace muse::grammar
