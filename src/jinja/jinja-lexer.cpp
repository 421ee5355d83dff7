#include "jinja/jinja-lexer.h"

#include "core/error.h"

#include <cstring>

namespace muse::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Python's "unicode-escape" decoding, which jinja2 applies to string literals.
std::string unescape(std::string_view body, int line) {
    std::string out;
    out.reserve(body.size());
    for (size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (c != '\\' || i + 1 >= body.size()) {
            out += c;
            continue;
        }
        char e = body[++i];
        switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (size_t k = 0; k < n; ++k) {
                int h = i + 1 + k < body.size() ? hex_value(body[i + 1 + k]) : -1;
                if (h < 0) fail(MUSE_ERR_FORMAT, "template line ", line, ": truncated \\", e, " escape in string literal");
                cp = cp * 16 + static_cast<uint32_t>(h);
            }
            if (cp > 0x10ffff) fail(MUSE_ERR_FORMAT, "template line ", line, ": illegal Unicode character in string literal");
            append_utf8(out, cp);
            i += n;
            break;
        }
        case 'N': fail(MUSE_ERR_UNSUPPORTED, "template line ", line, ": \\N{...} escapes are not supported");
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = 0;
                size_t k = 0;
                while (k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7')
                    cp = cp * 8 + static_cast<uint32_t>(body[i + k++] - '0');
                append_utf8(out, cp);
                i += k - 1;
            } else {
                out += '\\';
                out += e;
            }
        }
    }
    return out;
}

class Lexer {
public:
    explicit Lexer(std::string_view source) {
        // jinja2 normalizes newlines and drops one trailing newline (keep_trailing_newline=False).
        src_.reserve(source.size());
        for (size_t i = 0; i < source.size(); ++i) {
            if (source[i] == '\r') {
                src_ += '\n';
                if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
            } else {
                src_ += source[i];
            }
        }
        if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    }

    std::vector<Token> run() {
        while (pos_ < src_.size()) {
            size_t p = find_opener(pos_);
            if (p == std::string::npos) {
                emit_data(src_.substr(pos_));
                advance_to(src_.size());
                break;
            }
            char kind = src_[p + 1];
            char sign = p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
            size_t raw_end = 0;
            bool raw = kind == '%' && match_raw(p, "raw", raw_end, false);
            std::string text = strip_text(src_.substr(pos_, p - pos_), sign, kind != '{');
            emit_data(std::move(text));
            advance_to(p);
            if (raw) {
                lex_raw(raw_end);
            } else if (kind == '#') {
                lex_comment(p + 2 + (sign ? 1 : 0));
            } else {
                lex_tag(kind, p + 2 + (sign ? 1 : 0));
            }
        }
        out_.push_back({Token::Type::Eof, "", line_});
        return std::move(out_);
    }

private:
    std::string src_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;
    std::vector<Token> out_;

    [[noreturn]] void error(std::string_view what) { fail(MUSE_ERR_FORMAT, "template line ", line_, ": ", what); }

    void advance_to(size_t p) {
        for (size_t i = pos_; i < p; ++i)
            if (src_[i] == '\n') ++line_;
        pos_ = p;
    }

    size_t find_opener(size_t from) const {
        for (size_t i = from; i + 1 < src_.size(); ++i)
            if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
        return std::string::npos;
    }

    void emit_data(std::string text) {
        if (text.empty()) return;
        out_.push_back({Token::Type::Data, std::move(text), line_});
    }

    // jinja2's OptionalLStrip: "-" strips all whitespace before the tag; with
    // lstrip_blocks, spaces and tabs from the line start to a block or comment tag go.
    std::string strip_text(std::string text, char sign, bool block_like) const {
        if (sign == '-') {
            size_t end = text.size();
            while (end > 0 && is_space(text[end - 1])) --end;
            text.resize(end);
        } else if (sign != '+' && block_like) {
            size_t nl = text.rfind('\n');
            size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
            if (l_pos > 0 || line_starting_) {
                bool all_ws = l_pos < text.size();
                for (size_t i = l_pos; i < text.size(); ++i)
                    if (!is_space(text[i])) all_ws = false;
                if (all_ws) text.resize(l_pos);
            }
        }
        return text;
    }

    // Matches `{%[-+]?\s*<word>\s*` + the end of the tag at p; `end` gets the position after it.
    bool match_raw(size_t p, const char *word, size_t &end, bool trim_newline) const {
        size_t i = p + 2;
        if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
        while (i < src_.size() && is_space(src_[i])) ++i;
        size_t wl = std::strlen(word);
        if (src_.compare(i, wl, word) != 0) return false;
        i += wl;
        if (i < src_.size() && is_name_char(src_[i])) return false;
        while (i < src_.size() && is_space(src_[i])) ++i;
        if (trim_newline && src_.compare(i, 3, "+%}") == 0) {
            end = i + 3;
            return true;
        }
        if (src_.compare(i, 3, "-%}") == 0) {
            i += 3;
            while (i < src_.size() && is_space(src_[i])) ++i;
            end = i;
            return true;
        }
        if (src_.compare(i, 2, "%}") == 0) {
            i += 2;
            if (trim_newline && i < src_.size() && src_[i] == '\n') ++i;
            end = i;
            return true;
        }
        return false;
    }

    void lex_raw(size_t body_start) {
        advance_to(body_start);
        line_starting_ = src_[body_start - 1] == '\n';
        for (size_t i = body_start; i + 1 < src_.size(); ++i) {
            size_t end = 0;
            if (src_[i] == '{' && src_[i + 1] == '%' && match_raw(i, "endraw", end, true)) {
                char sign = src_[i + 2] == '-' || src_[i + 2] == '+' ? src_[i + 2] : 0;
                emit_data(strip_text(src_.substr(body_start, i - body_start), sign, true));
                advance_to(end);
                line_starting_ = src_[end - 1] == '\n';
                return;
            }
        }
        error("missing end of raw directive");
    }

    void lex_comment(size_t start) {
        for (size_t i = start; i + 1 < src_.size(); ++i) {
            size_t next = 0;
            if (src_.compare(i, 3, "+#}") == 0) {
                next = i + 3;
            } else if (src_.compare(i, 3, "-#}") == 0) {
                next = i + 3;
                while (next < src_.size() && is_space(src_[next])) ++next;
            } else if (src_.compare(i, 2, "#}") == 0) {
                next = i + 2;
                if (next < src_.size() && src_[next] == '\n') ++next;
            } else {
                continue;
            }
            advance_to(next);
            line_starting_ = src_[next - 1] == '\n';
            return;
        }
        error("missing end of comment tag");
    }

    void lex_tag(char kind, size_t start) {
        bool block = kind == '%';
        out_.push_back({block ? Token::Type::BlockBegin : Token::Type::VarBegin, "", line_});
        advance_to(start);
        std::vector<char> brackets;
        for (;;) {
            if (pos_ >= src_.size()) error(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
            char c = src_[pos_];
            if (is_space(c)) {
                size_t i = pos_;
                while (i < src_.size() && is_space(src_[i])) ++i;
                advance_to(i);
                continue;
            }
            if (brackets.empty() && end_of_tag(block)) return;
            size_t i = pos_;
            if (is_digit(c)) {
                lex_number();
                continue;
            }
            if (is_name_start(c)) {
                while (i < src_.size() && is_name_char(src_[i])) ++i;
                out_.push_back({Token::Type::Name, src_.substr(pos_, i - pos_), line_});
                advance_to(i);
                continue;
            }
            if (c == '\'' || c == '"') {
                ++i;
                while (i < src_.size() && src_[i] != c) {
                    if (src_[i] == '\\') ++i;
                    ++i;
                }
                if (i >= src_.size()) error("unterminated string literal");
                out_.push_back({Token::Type::String, unescape(std::string_view(src_).substr(pos_ + 1, i - pos_ - 1), line_), line_});
                advance_to(i + 1);
                continue;
            }
            static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
            std::string op;
            for (const char *t : two)
                if (src_.compare(pos_, 2, t) == 0) op = t;
            if (op.empty()) {
                if (!std::strchr("+-/*%~[](){}<>=.:|,;", c)) error(str_cat("unexpected character '", c, "'"));
                op = std::string(1, c);
                if (c == '(' || c == '[' || c == '{') {
                    brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
                } else if (c == ')' || c == ']' || c == '}') {
                    if (brackets.empty()) error(str_cat("unexpected '", c, "'"));
                    if (brackets.back() != c) error(str_cat("unexpected '", c, "', expected '", brackets.back(), "'"));
                    brackets.pop_back();
                }
            }
            out_.push_back({Token::Type::Op, op, line_});
            advance_to(pos_ + op.size());
        }
    }

    bool end_of_tag(bool block) {
        size_t next = 0;
        if (block) {
            if (src_.compare(pos_, 3, "+%}") == 0) {
                next = pos_ + 3;
            } else if (src_.compare(pos_, 3, "-%}") == 0) {
                next = pos_ + 3;
                while (next < src_.size() && is_space(src_[next])) ++next;
            } else if (src_.compare(pos_, 2, "%}") == 0) {
                next = pos_ + 2;
                if (next < src_.size() && src_[next] == '\n') ++next;
            } else {
                return false;
            }
        } else {
            if (src_.compare(pos_, 3, "-}}") == 0) {
                next = pos_ + 3;
                while (next < src_.size() && is_space(src_[next])) ++next;
            } else if (src_.compare(pos_, 2, "}}") == 0) {
                next = pos_ + 2;
            } else {
                return false;
            }
        }
        out_.push_back({block ? Token::Type::BlockEnd : Token::Type::VarEnd, "", line_});
        advance_to(next);
        line_starting_ = src_[next - 1] == '\n';
        return true;
    }

    size_t digits(size_t i) const {
        // (\d+_)*\d+
        size_t start = i;
        while (i < src_.size() && is_digit(src_[i])) {
            ++i;
            if (i + 1 < src_.size() && src_[i] == '_' && is_digit(src_[i + 1])) ++i;
        }
        return i > start ? i : std::string::npos;
    }

    void lex_number() {
        size_t i = digits(pos_);
        bool is_float = false;
        if (i < src_.size() && src_[i] == '.' && i + 1 < src_.size() && is_digit(src_[i + 1])) {
            i = digits(i + 1);
            is_float = true;
        }
        if (i < src_.size() && (src_[i] == 'e' || src_[i] == 'E')) {
            size_t j = i + 1;
            if (j < src_.size() && (src_[j] == '+' || src_[j] == '-')) ++j;
            if (j < src_.size() && is_digit(src_[j])) {
                i = digits(j);
                is_float = true;
            }
        }
        std::string text;
        for (size_t k = pos_; k < i; ++k)
            if (src_[k] != '_') text += src_[k];
        out_.push_back({is_float ? Token::Type::Float : Token::Type::Int, text, line_});
        advance_to(i);
    }
};

} // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

} // namespace muse::jinja
