#include "grammar/regex.h"

#include "core/error.h"
#include "grammar/grammar.h"
#include "grammar/rules.h"

#include <cctype>
#include <cstdio>

namespace muse::grammar {
namespace {

constexpr int kMaxNesting = 256;

std::string gbnf_char(uint32_t cp) {
    char buf[16];
    if (cp > 0xFFFF)
        std::snprintf(buf, sizeof buf, "\\U%08X", cp);
    else
        std::snprintf(buf, sizeof buf, "\\u%04X", cp);
    return buf;
}

std::string gbnf_class(const std::vector<CodeRange> &ranges) {
    if (ranges.empty()) return "[^\\u0000-\\U0010FFFF]";  // matches nothing
    std::string s = "[";
    for (auto r : ranges) {
        s += gbnf_char(r.lo);
        if (r.hi != r.lo) {
            s += '-';
            s += gbnf_char(r.hi);
        }
    }
    return s + "]";
}

class RegexParser {
public:
    RegexParser(std::string_view p, const RegexOptions &o) : s_(p), o_(o) {}

    std::string run() {
        std::string str(s_);
        for (size_t k = 0; k < str.size();) {
            uint32_t cp;
            if (!decode_utf8(str, k, cp)) fail(MUSE_ERR_INVALID_ARGUMENT, "regex: invalid UTF-8");
        }
        // Top-level alternatives may each be anchored (^a$|^b): in search mode an
        // unanchored end of an alternative matches anything there.
        std::string out;
        for (;;) {
            bool start_anchor = false, end_anchor = false;
            if (peek() == '^') {
                start_anchor = true;
                ++i_;
            }
            std::string e = "(";
            e += concat(0);
            e += ')';
            if (peek() == '$') {
                end_anchor = true;
                ++i_;
            }
            if (o_.search) {
                const std::string any = gbnf_class(filter(normalize_ranges({}, true))) + "*";
                if (!start_anchor) e = any + " " + e;
                if (!end_anchor) e = e + " " + any;
            }
            out += (out.empty() ? "" : " | ") + e;
            if (peek() != '|') break;
            ++i_;
        }
        if (i_ < s_.size()) {
            if (s_[i_] == ')') bad("unbalanced ')'");
            std::string what = "'";
            what += s_[i_];
            error(what + "' here");
        }
        return "(" + out + ")";
    }

private:
    [[noreturn]] void error(const std::string &what) const {
        fail(MUSE_ERR_UNSUPPORTED, "regex /", std::string(s_), "/ at offset ", i_, ": ", what, " is not supported");
    }
    [[noreturn]] void bad(const std::string &what) const {
        fail(MUSE_ERR_INVALID_ARGUMENT, "regex /", std::string(s_), "/ at offset ", i_, ": ", what);
    }
    bool more() const { return i_ < s_.size(); }
    char peek() const { return more() ? s_[i_] : '\0'; }

    std::vector<CodeRange> filter(std::vector<CodeRange> r) const {
        if (!o_.json_string) return r;
        // Remove '"', '\' and U+0000..U+001F.
        std::vector<CodeRange> out;
        for (auto x : r) {
            auto cut = [&](uint32_t lo, uint32_t hi) {
                if (lo <= hi) out.push_back({lo, hi});
            };
            uint32_t lo = std::max<uint32_t>(x.lo, 0x20), hi = x.hi;
            if (lo > hi) continue;
            // split around 0x22 and 0x5C
            std::vector<uint32_t> holes{0x22, 0x5C};
            for (uint32_t h : holes) {
                if (h >= lo && h <= hi) {
                    if (h > lo) cut(lo, h - 1);
                    lo = h + 1;
                }
            }
            cut(lo, hi);
        }
        return out;
    }

    std::string alternation(int depth) {
        if (depth > kMaxNesting) bad("groups nested too deeply");
        std::string out = concat(depth);
        while (peek() == '|') {  // (only inside groups: run() splits the top level)
            ++i_;
            out += " | " + concat(depth);
        }
        return out;
    }

    std::string concat(int depth) {
        std::string out;
        while (more() && peek() != '|' && peek() != ')') {
            if (peek() == '$') {
                if (depth == 0 && (i_ + 1 == s_.size() || s_[i_ + 1] == '|')) break;
                error("'$' before the end");
            }
            if (peek() == '^') error("'^' after the start");
            std::string atom = this->atom(depth);
            // quantifiers
            while (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) {
                if (peek() == '{') {
                    const size_t save = i_;
                    ++i_;
                    std::string q = "{";
                    bool ok = false;
                    while (more() && (std::isdigit(static_cast<unsigned char>(peek())) || peek() == ',')) q += s_[i_++];
                    if (peek() == '}' && q.size() > 1 && std::isdigit(static_cast<unsigned char>(q[1]))) {
                        ++i_;
                        ok = true;
                    }
                    if (!ok) {  // a literal '{'
                        i_ = save;
                        break;
                    }
                    atom = "(" + atom + ")" + q + "}";
                } else {
                    atom = "(" + atom + ")" + std::string(1, s_[i_++]);
                }
                if (peek() == '?') ++i_;  // lazy: same language
                if (peek() == '+') error("possessive quantifier");
            }
            out += (out.empty() ? "" : " ") + atom;
        }
        return out.empty() ? "\"\"" : out;
    }

    uint32_t next_cp() {
        std::string str(s_.substr(i_, 4));
        size_t k = 0;
        uint32_t cp = 0;
        decode_utf8(str, k, cp);
        i_ += k;
        return cp;
    }

    uint32_t hexn(int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            const char c = peek();
            if (!std::isxdigit(static_cast<unsigned char>(c))) bad("expected hex digits");
            v = v * 16 + (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
            ++i_;
        }
        return v;
    }

    // An escape after '\': a class (\d ...) into ranges, or one character.
    std::vector<CodeRange> escape(bool in_class) {
        if (!more()) bad("trailing backslash");
        const char c = s_[i_++];
        const std::vector<CodeRange> digit{{'0', '9'}}, word{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}},
            space{{'\t', '\r'}, {' ', ' '}};
        switch (c) {
        case 'd': return digit;
        case 'w': return word;
        case 's': return space;
        case 'D': return normalize_ranges(digit, true);
        case 'W': return normalize_ranges(word, true);
        case 'S': return normalize_ranges(space, true);
        case 'n': return {{'\n', '\n'}};
        case 'r': return {{'\r', '\r'}};
        case 't': return {{'\t', '\t'}};
        case 'f': return {{'\f', '\f'}};
        case 'v': return {{'\v', '\v'}};
        case '0': return {{0, 0}};
        case 'x': {
            const uint32_t v = hexn(2);
            return {{v, v}};
        }
        case 'u': {
            uint32_t v;
            if (peek() == '{') {
                ++i_;
                v = 0;
                while (more() && peek() != '}') v = v * 16 + hexn(1);
                ++i_;
            } else {
                v = hexn(4);
            }
            return {{v, v}};
        }
        case 'b':
            if (in_class) return {{8, 8}};
            error("'\\b' (word boundary)");
        case 'B': error("'\\B'");
        case 'p': case 'P': error("Unicode property classes");
        default:
            if (std::isdigit(static_cast<unsigned char>(c))) error("backreferences");
            if (std::isalpha(static_cast<unsigned char>(c))) error(std::string("escape '\\") + c + "'");
            --i_;
            const uint32_t cp = next_cp();
            return {{cp, cp}};
        }
    }

    std::string cls(std::vector<CodeRange> r) { return gbnf_class(filter(normalize_ranges(std::move(r), false))); }

    std::string atom(int depth) {
        const char c = peek();
        if (c == '(') {
            ++i_;
            if (peek() == '?') {
                ++i_;
                if (peek() == ':') ++i_;
                else if (peek() == '<' && i_ + 1 < s_.size() && s_[i_ + 1] != '=' && s_[i_ + 1] != '!') {
                    while (more() && peek() != '>') ++i_;  // named group: the name does not matter
                    ++i_;
                } else error("lookaround or inline flags '(?" + std::string(1, peek()) + "'");
            }
            std::string inner = alternation(depth + 1);
            if (peek() != ')') bad("missing ')'");
            ++i_;
            return "(" + inner + ")";
        }
        if (c == '[') return bracket();
        if (c == '.') {
            ++i_;
            return cls(normalize_ranges({{'\n', '\n'}}, true));
        }
        if (c == '\\') {
            ++i_;
            return cls(escape(false));
        }
        if (c == '*' || c == '+' || c == '?') bad("nothing to repeat");
        const uint32_t cp = next_cp();
        return cls({{cp, cp}});
    }

    std::string bracket() {
        ++i_;
        bool negated = false;
        if (peek() == '^') {
            negated = true;
            ++i_;
        }
        std::vector<CodeRange> r;
        bool first = true;
        while (more() && (peek() != ']' || first)) {
            first = false;
            std::vector<CodeRange> one;
            if (peek() == '[' && i_ + 1 < s_.size() && s_[i_ + 1] == ':') error("POSIX classes");
            if (peek() == '\\') {
                ++i_;
                one = escape(true);
            } else {
                const uint32_t cp = next_cp();
                one = {{cp, cp}};
            }
            if (one.size() == 1 && one[0].lo == one[0].hi && peek() == '-' && i_ + 1 < s_.size() && s_[i_ + 1] != ']') {
                ++i_;
                uint32_t hi;
                if (peek() == '\\') {
                    ++i_;
                    auto e = escape(true);
                    if (e.size() != 1 || e[0].lo != e[0].hi) bad("class in a range");
                    hi = e[0].lo;
                } else {
                    hi = next_cp();
                }
                if (hi < one[0].lo) bad("reversed range");
                one[0].hi = hi;
            }
            r.insert(r.end(), one.begin(), one.end());
        }
        if (peek() != ']') bad("missing ']'");
        ++i_;
        return gbnf_class(filter(normalize_ranges(std::move(r), negated)));
    }

    std::string_view s_;
    RegexOptions o_;
    size_t i_ = 0;
};

}  // namespace

std::string regex_to_gbnf_expr(std::string_view pattern, const RegexOptions &options) {
    if (pattern.size() > kMaxRegexBytes)
        fail(MUSE_ERR_INVALID_ARGUMENT, "regex too large: ", pattern.size(), " bytes (the limit is ", kMaxRegexBytes, ")");
    return RegexParser(pattern, options).run();
}

std::string regex_to_gbnf(std::string_view pattern) { return "root ::= " + regex_to_gbnf_expr(pattern) + "\n"; }

}  // namespace muse::grammar
