#include "grammar/gbnf.h"

#include "core/error.h"

#include <cstdio>
#include <map>

namespace muse::grammar {
namespace {

// Nested groups beyond this are refused (the parser recurses per group).
constexpr int kMaxNesting = 256;

class Parser {
public:
    Parser(std::string_view text, Limits limits) : s_(text), b_(limits) {}

    Rules run(const std::string &root) {
        check_utf8();
        for (;;) {
            space(true);
            if (at_end()) break;
            parse_rule();
        }
        for (auto &[rule, where] : first_use_)
            if (!b_.defined(rule)) error_at(where, "undefined rule '" + b_.name(rule) + "'");
        auto it = defined_at_.find(root);
        if (it == defined_at_.end()) fail(MUSE_ERR_INVALID_ARGUMENT, "grammar has no '", root, "' rule");
        return b_.finish(it->second);
    }

private:
    using Seq = RulesBuilder::Seq;

    bool at_end() const { return i_ >= s_.size(); }
    char peek(size_t k = 0) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

    [[noreturn]] void error_at(size_t pos, const std::string &what) const {
        size_t line = 1, col = 1;
        for (size_t k = 0; k < pos && k < s_.size(); ++k) {
            if (s_[k] == '\n') {
                ++line;
                col = 1;
            } else if ((static_cast<uint8_t>(s_[k]) & 0xC0) != 0x80) {
                ++col;
            }
        }
        fail(MUSE_ERR_INVALID_ARGUMENT, "grammar: line ", line, ", column ", col, ": ", what);
    }
    [[noreturn]] void error(const std::string &what) const { error_at(i_, what); }

    void check_utf8() {
        std::string str(s_);
        for (size_t k = 0; k < str.size();) {
            uint32_t cp;
            const size_t at = k;
            if (!decode_utf8(str, k, cp)) error_at(at, "invalid UTF-8");
        }
    }

    // Spaces, tabs and comments; newlines too where a rule may continue.
    void space(bool newlines) {
        while (!at_end()) {
            const char c = peek();
            if (c == ' ' || c == '\t') {
                ++i_;
            } else if (c == '#') {
                while (!at_end() && peek() != '\n') ++i_;
            } else if (newlines && (c == '\n' || c == '\r')) {
                ++i_;
            } else if (c == '\r' && peek(1) == '\n' && newlines) {
                i_ += 2;
            } else {
                break;
            }
        }
    }

    static bool word_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }

    std::string name() {
        const size_t start = i_;
        while (!at_end() && word_char(peek())) ++i_;
        if (i_ == start) error("expected a rule name");
        return std::string(s_.substr(start, i_ - start));
    }

    void parse_rule() {
        const size_t at = i_;
        const std::string n = name();
        space(false);
        if (s_.substr(i_, 3) != "::=") error("expected '::=' after rule name '" + n + "'");
        i_ += 3;
        space(true);
        const uint32_t rule = b_.named(n);
        if (b_.defined(rule)) error_at(at, "rule '" + n + "' is defined twice");
        b_.mark_defined(rule);
        defined_at_[n] = rule;
        current_ = n;
        alternates(rule, false, 0);
        space(false);
        if (!at_end() && peek() != '\n' && peek() != '\r') error("expected the end of the rule (a newline), found '" +
                                                                 std::string(1, peek()) + "'");
    }

    void alternates(uint32_t rule, bool nested, int depth) {
        b_.add_alt(rule, sequence(nested, depth));
        while (peek() == '|') {
            ++i_;
            space(true);
            b_.add_alt(rule, sequence(nested, depth));
        }
    }

    uint32_t escape() {
        // at the character after the backslash
        const char c = peek();
        ++i_;
        switch (c) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return static_cast<uint8_t>(c);
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        default: error_at(i_ - 2, std::string("unknown escape '\\") + c + "'");
        }
    }

    uint32_t hex(int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            const char c = peek();
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else error("expected " + std::to_string(n) + " hex digits");
            v = v * 16 + d;
            ++i_;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) error_at(i_ - n, "escape is not a valid code point");
        return v;
    }

    // One character of a literal or class, escapes decoded.
    uint32_t character() {
        if (at_end()) error("unexpected end of input");
        if (peek() == '\\') {
            ++i_;
            return escape();
        }
        std::string str(s_.substr(i_, 4));
        size_t k = 0;
        uint32_t cp;
        decode_utf8(str, k, cp);  // the input was checked up front
        i_ += k;
        return cp;
    }

    Seq sequence(bool nested, int depth) {
        Seq seq;
        for (;;) {
            const size_t atom_start = seq.size();
            const size_t at = i_;
            const char c = peek();
            if (at_end() || c == '|' || c == ')' || c == '\n' || c == '\r') break;
            if (c == '"') {
                ++i_;
                std::string lit;
                while (peek() != '"') {
                    if (at_end() || peek() == '\n') error_at(at, "unterminated string literal");
                    append_utf8(lit, character());
                }
                ++i_;
                b_.literal(seq, lit);
            } else if (c == '[') {
                ++i_;
                bool negated = false;
                if (peek() == '^') {
                    negated = true;
                    ++i_;
                }
                std::vector<CodeRange> ranges;
                while (peek() != ']') {
                    if (at_end() || peek() == '\n') error_at(at, "unterminated character class (expected ']')");
                    const uint32_t lo = character();
                    uint32_t hi = lo;
                    if (peek() == '-' && peek(1) != ']' && i_ + 1 < s_.size()) {
                        ++i_;
                        hi = character();
                        if (hi < lo) error("character range is reversed");
                    }
                    ranges.push_back({lo, hi});
                }
                ++i_;
                seq.push_back(b_.chars(std::move(ranges), negated));
            } else if (c == '.') {
                ++i_;
                seq.push_back(b_.chars({}, true));
            } else if (word_char(c)) {
                const std::string n = name();
                const uint32_t r = b_.named(n);
                first_use_.emplace(r, at);
                seq.push_back(RulesBuilder::ref(r));
            } else if (c == '(') {
                if (depth + 1 > kMaxNesting) error("groups nested deeper than " + std::to_string(kMaxNesting));
                ++i_;
                space(true);
                const uint32_t g = b_.fresh(current_);
                alternates(g, true, depth + 1);
                if (peek() != ')') error("expected ')' to close the group opened at " + where(at));
                ++i_;
                seq.push_back(RulesBuilder::ref(g));
            } else if (c == '<') {
                error("token references (<...>) are not supported");
            } else if (c == '*' || c == '+' || c == '?' || c == '{') {
                error(std::string("'") + c + "' with nothing to repeat");
            } else {
                error(std::string("unexpected character '") + c + "'");
            }
            space(nested);
            // Postfix operators apply to the whole atom just parsed (a literal too).
            while (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{') {
                const char op = peek();
                ++i_;
                uint32_t min = 0;
                int64_t max = -1;
                if (op == '+') min = 1;
                if (op == '?') max = 1;
                if (op == '{') {
                    space(nested);
                    min = static_cast<uint32_t>(number());
                    space(nested);
                    max = min;
                    if (peek() == ',') {
                        ++i_;
                        space(nested);
                        max = peek() == '}' ? -1 : number();
                        space(nested);
                        if (max >= 0 && max < min) error("repetition {m,n} with n < m");
                    }
                    if (peek() != '}') error("expected '}' to close the repetition");
                    ++i_;
                }
                uint32_t elem;
                if (seq.size() - atom_start == 1) {
                    elem = seq.back();
                } else {
                    const uint32_t g = b_.fresh(current_);
                    b_.add_alt(g, Seq(seq.begin() + atom_start, seq.end()));
                    elem = RulesBuilder::ref(g);
                }
                seq.resize(atom_start);
                b_.repeat(seq, elem, min, max);
                // A repetition of a repetition applies to the result.
                if (seq.size() - atom_start != 1) {
                    const uint32_t g = b_.fresh(current_);
                    b_.add_alt(g, Seq(seq.begin() + atom_start, seq.end()));
                    seq.resize(atom_start);
                    seq.push_back(RulesBuilder::ref(g));
                }
                space(nested);
            }
        }
        return seq;
    }

    int64_t number() {
        const size_t start = i_;
        int64_t v = 0;
        while (peek() >= '0' && peek() <= '9') {
            v = v * 10 + (peek() - '0');
            if (v > (int64_t(1) << 40)) error_at(start, "repetition count too large");
            ++i_;
        }
        if (i_ == start) error("expected a number in the repetition");
        return v;
    }

    std::string where(size_t pos) const {
        size_t line = 1, col = 1;
        for (size_t k = 0; k < pos; ++k) {
            if (s_[k] == '\n') {
                ++line;
                col = 1;
            } else if ((static_cast<uint8_t>(s_[k]) & 0xC0) != 0x80) {
                ++col;
            }
        }
        return "line " + std::to_string(line) + ", column " + std::to_string(col);
    }

    std::string_view s_;
    size_t i_ = 0;
    RulesBuilder b_;
    std::string current_;
    std::map<uint32_t, size_t> first_use_;
    std::map<std::string, uint32_t> defined_at_;
};

}  // namespace

Rules parse_gbnf(std::string_view text, const std::string &root, Limits limits) {
    return Parser(text, limits).run(root);
}

std::string gbnf_literal(std::string_view text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

}  // namespace muse::grammar
