#include "tokenizer/split-regex.h"

#include "core/error.h"
#include "tokenizer/unicode.h"

#include <limits>

namespace muse {

namespace {

struct ClassItem {
    enum Kind { RANGE, HAS_FLAGS, LACKS_FLAGS } kind = RANGE;
    uint32_t lo = 0, hi = 0;  // RANGE, inclusive
    uint16_t mask = 0;        // HAS_FLAGS / LACKS_FLAGS
};

struct CharClass {
    std::vector<ClassItem> items;
    bool negated = false;

    bool matches(uint32_t cp, uint16_t flags) const {
        bool hit = false;
        for (const ClassItem &item : items) {
            switch (item.kind) {
            case ClassItem::RANGE: hit = cp >= item.lo && cp <= item.hi; break;
            case ClassItem::HAS_FLAGS: hit = (flags & item.mask) != 0; break;
            case ClassItem::LACKS_FLAGS: hit = (flags & item.mask) == 0; break;
            }
            if (hit) break;
        }
        return hit != negated;
    }
};

constexpr uint32_t kUnbounded = std::numeric_limits<uint32_t>::max();

} // namespace

struct SplitRegex::Sequence {
    std::vector<Node> nodes;
};

struct SplitRegex::Node {
    enum Kind { CHAR, GROUP, LOOKAHEAD, END } kind = CHAR;
    CharClass cls;                      // CHAR: one code point out of this class,
    uint32_t min = 1, max = 1;          //       repeated min..max times (greedy)
    std::vector<Sequence> alternatives; // GROUP / LOOKAHEAD
    bool negative = false;              // LOOKAHEAD: (?!...) rather than (?=...)
};

namespace {

using Node = SplitRegex::Node;
using Sequence = SplitRegex::Sequence;

[[noreturn]] void bad_pattern(std::string_view pattern, const char *why) {
    fail(MUSE_ERR_INTERNAL, "pre-tokenizer pattern '", pattern, "': ", why);
}

class Parser {
public:
    explicit Parser(std::string_view pattern) : source_(pattern), p_(unicode::decode(pattern)) {}

    Sequence parse() {
        std::vector<Sequence> alternatives = parse_alternatives();
        if (pos_ != p_.size()) bad_pattern(source_, "unbalanced ')'");
        return wrap(std::move(alternatives));
    }

private:
    static Sequence wrap(std::vector<Sequence> alternatives) {
        if (alternatives.size() == 1) return std::move(alternatives[0]);
        Node group;
        group.kind = Node::GROUP;
        group.alternatives = std::move(alternatives);
        Sequence s;
        s.nodes.push_back(std::move(group));
        return s;
    }

    bool at_end() const { return pos_ >= p_.size(); }
    uint32_t peek(size_t ahead = 0) const { return pos_ + ahead < p_.size() ? p_[pos_ + ahead] : 0; }
    uint32_t next() {
        if (at_end()) bad_pattern(source_, "unexpected end");
        return p_[pos_++];
    }

    std::vector<Sequence> parse_alternatives() {
        std::vector<Sequence> alternatives;
        alternatives.push_back(parse_sequence());
        while (!at_end() && peek() == '|') {
            ++pos_;
            alternatives.push_back(parse_sequence());
        }
        return alternatives;
    }

    Sequence parse_sequence() {
        Sequence seq;
        while (!at_end() && peek() != '|' && peek() != ')') {
            Node atom = parse_atom();
            parse_quantifier(atom);
            seq.nodes.push_back(std::move(atom));
        }
        return seq;
    }

    Node parse_atom() {
        Node node;
        const uint32_t c = next();
        switch (c) {
        case '(': {
            if (next() != '?') bad_pattern(source_, "capturing groups are not supported");
            const uint32_t kind = next();
            if (kind == ':') {
                node.kind = Node::GROUP;
            } else if (kind == '=' || kind == '!') {
                node.kind = Node::LOOKAHEAD;
                node.negative = kind == '!';
            } else {
                bad_pattern(source_, "unsupported group kind");
            }
            node.alternatives = parse_alternatives();
            if (next() != ')') bad_pattern(source_, "missing ')'");
            return node;
        }
        case '[': node.cls = parse_class(); return node;
        case '\\': node.cls.items.push_back(parse_escape()); return node;
        case '.':
            node.cls.negated = true;
            node.cls.items.push_back({ClassItem::RANGE, '\n', '\n', 0});
            node.cls.items.push_back({ClassItem::RANGE, '\r', '\r', 0});
            return node;
        case '$': node.kind = Node::END; return node;
        default: node.cls.items.push_back({ClassItem::RANGE, c, c, 0}); return node;
        }
    }

    uint32_t parse_number() {
        uint32_t n = 0;
        bool any = false;
        while (!at_end() && peek() >= '0' && peek() <= '9') {
            n = n * 10 + (next() - '0');
            any = true;
        }
        if (!any) bad_pattern(source_, "expected a number in {}");
        return n;
    }

    void parse_quantifier(Node &atom) {
        if (at_end()) return;
        uint32_t min, max;
        switch (peek()) {
        case '?': min = 0, max = 1; break;
        case '*': min = 0, max = kUnbounded; break;
        case '+': min = 1, max = kUnbounded; break;
        case '{': break;
        default: return;
        }
        if (peek() == '{') {
            ++pos_;
            min = max = parse_number();
            if (peek() == ',') {
                ++pos_;
                max = peek() == '}' ? kUnbounded : parse_number();
            }
            if (next() != '}' || max < min) bad_pattern(source_, "bad {n,m}");
        } else {
            ++pos_;
        }
        if (peek() == '?' || peek() == '+') bad_pattern(source_, "lazy/possessive quantifiers are not supported");
        if (atom.kind != Node::CHAR) bad_pattern(source_, "quantifiers apply to single characters only");
        atom.min = min;
        atom.max = max;
    }

    // After a backslash: a category, a class shorthand, or an escaped literal.
    ClassItem parse_escape() {
        const uint32_t c = next();
        switch (c) {
        case 'p':
        case 'P': {
            if (next() != '{') bad_pattern(source_, "expected '{' after \\p");
            const uint32_t name = next();
            if (next() != '}') bad_pattern(source_, "only one-letter categories (\\p{L}) are supported");
            uint16_t mask;
            switch (name) {
            case 'L': mask = unicode::LETTER; break;
            case 'N': mask = unicode::NUMBER; break;
            case 'P': mask = unicode::PUNCTUATION; break;
            case 'S': mask = unicode::SYMBOL; break;
            case 'M': mask = unicode::MARK; break;
            case 'Z': mask = unicode::SEPARATOR; break;
            case 'C': mask = unicode::CONTROL; break;
            default: bad_pattern(source_, "unknown category");
            }
            return {c == 'p' ? ClassItem::HAS_FLAGS : ClassItem::LACKS_FLAGS, 0, 0, mask};
        }
        case 's': return {ClassItem::HAS_FLAGS, 0, 0, unicode::WHITESPACE};
        case 'S': return {ClassItem::LACKS_FLAGS, 0, 0, unicode::WHITESPACE};
        case 'd': return {ClassItem::RANGE, '0', '9', 0};
        case 'r': return {ClassItem::RANGE, '\r', '\r', 0};
        case 'n': return {ClassItem::RANGE, '\n', '\n', 0};
        case 't': return {ClassItem::RANGE, '\t', '\t', 0};
        case 'f': return {ClassItem::RANGE, '\f', '\f', 0};
        case 'v': return {ClassItem::RANGE, '\v', '\v', 0};
        default:
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                bad_pattern(source_, "unsupported escape");
            return {ClassItem::RANGE, c, c, 0};
        }
    }

    CharClass parse_class() {
        CharClass cls;
        if (peek() == '^') {
            cls.negated = true;
            ++pos_;
        }
        while (true) {
            const uint32_t c = next();
            if (c == ']') break;
            ClassItem item = c == '\\' ? parse_escape() : ClassItem{ClassItem::RANGE, c, c, 0};
            // A '-' between two single characters makes a range; elsewhere it is literal.
            if (item.kind == ClassItem::RANGE && item.lo == item.hi && peek() == '-' && peek(1) != ']' &&
                pos_ + 1 < p_.size()) {
                ++pos_;
                const uint32_t d = next();
                const ClassItem upper = d == '\\' ? parse_escape() : ClassItem{ClassItem::RANGE, d, d, 0};
                if (upper.kind != ClassItem::RANGE || upper.lo != upper.hi || upper.lo < item.lo)
                    bad_pattern(source_, "bad range in []");
                item.hi = upper.lo;
            }
            cls.items.push_back(item);
        }
        return cls;
    }

    std::string_view source_;
    std::vector<uint32_t> p_;
    size_t pos_ = 0;
};

// What to match after the current sequence ends (the rest of enclosing groups).
struct Continuation {
    const Sequence *seq;
    size_t index;
    const Continuation *next;
};

class Matcher {
public:
    Matcher(const CodepointText &text, size_t end) : text_(text), end_(end) {}

    // Backtracking search: the first way (in pattern priority order) to match
    // seq[index..] followed by the continuation chain wins. `match_end` gets
    // the position where the whole match ends.
    bool run(const Sequence *seq, size_t index, size_t pos, const Continuation *k, size_t &match_end) const {
        while (true) {
            if (index == seq->nodes.size()) {
                if (k == nullptr) {
                    match_end = pos;
                    return true;
                }
                seq = k->seq;
                index = k->index;
                k = k->next;
                continue;
            }
            const Node &node = seq->nodes[index];
            switch (node.kind) {
            case Node::CHAR: {
                if (node.min == 1 && node.max == 1) {  // the common case: no backtracking point
                    if (!char_matches(node.cls, pos)) return false;
                    ++pos;
                    ++index;
                    continue;
                }
                size_t count = 0;
                while (count < node.max && char_matches(node.cls, pos + count)) ++count;
                if (count < node.min) return false;
                for (size_t take = count + 1; take-- > node.min;) {
                    if (run(seq, index + 1, pos + take, k, match_end)) return true;
                }
                return false;
            }
            case Node::GROUP: {
                const Continuation after{seq, index + 1, k};
                for (const Sequence &alt : node.alternatives) {
                    if (run(&alt, 0, pos, &after, match_end)) return true;
                }
                return false;
            }
            case Node::LOOKAHEAD: {
                bool found = false;
                size_t ignored;
                for (const Sequence &alt : node.alternatives) {
                    if (run(&alt, 0, pos, nullptr, ignored)) {
                        found = true;
                        break;
                    }
                }
                if (found == node.negative) return false;
                ++index;
                continue;
            }
            case Node::END:
                if (pos != end_) return false;
                ++index;
                continue;
            }
        }
    }

private:
    bool char_matches(const CharClass &cls, size_t pos) const {
        return pos < end_ && cls.matches(text_.cps[pos], text_.flags[pos]);
    }

    const CodepointText &text_;
    size_t end_;
};

} // namespace

SplitRegex::SplitRegex(std::string_view pattern)
    : root_(std::make_unique<Sequence>(Parser(pattern).parse())) {
    if (!root_->nodes.empty() && root_->nodes[0].kind == Node::CHAR && root_->nodes[0].max == kUnbounded)
        leading_run_ = &root_->nodes[0];
}
SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex &&) noexcept = default;
// (leading_run_ points into *root_, which moves along with the unique_ptr.)
SplitRegex &SplitRegex::operator=(SplitRegex &&) noexcept = default;

long SplitRegex::match_at(const CodepointText &text, size_t pos, size_t end) const {
    size_t match_end = 0;
    if (!Matcher(text, end).run(root_.get(), 0, pos, nullptr, match_end)) return -1;
    return static_cast<long>(match_end - pos);
}

void SplitRegex::split(const CodepointText &text, size_t begin, size_t end, std::vector<size_t> &lengths) const {
    const Matcher matcher(text, end);
    size_t gap_start = begin;
    size_t pos = begin;
    while (pos < end) {
        size_t match_end = 0;
        if (matcher.run(root_.get(), 0, pos, nullptr, match_end) && match_end > pos) {
            if (pos > gap_start) lengths.push_back(pos - gap_start);
            lengths.push_back(match_end - pos);
            pos = gap_start = match_end;
        } else if (leading_run_ && leading_run_->cls.matches(text.cps[pos], text.flags[pos])) {
            while (pos < end && leading_run_->cls.matches(text.cps[pos], text.flags[pos])) ++pos;
        } else {
            ++pos;  // no (non-empty) match here: this code point joins the gap
        }
    }
    if (end > gap_start) lengths.push_back(end - gap_start);
}

} // namespace muse
