// Built-in globals, filters, tests and methods, each matching the jinja2 3.x /
// Python 3 behaviour a chat template can observe. transformers overrides
// `tojson` (no HTML escaping, ensure_ascii=False) and adds raise_exception and
// strftime_now; those are the versions implemented here.
#include "jinja/jinja-interpreter.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <ctime>

namespace muse::jinja {

namespace {

constexpr int64_t kMaxRange = 1000000;
// Args::get index for keyword-only parameters.
constexpr size_t kKeywordOnly = SIZE_MAX;
// Widths, counts and results of string filters stay below this.
constexpr int64_t kMaxWidth = 1000000;
constexpr size_t kMaxResult = size_t{1} << 28;

int64_t checked_width(int64_t w) {
    if (w > kMaxWidth) runtime_error("width or count too large (over " + std::to_string(kMaxWidth) + ")");
    return w;
}

// Called as results grow (not charged: the filter's input was, see Interpreter::filter).
void check_result(size_t n) {
    if (n > kMaxResult) runtime_error("string too large (over " + std::to_string(kMaxResult) + " bytes)");
}

// ---- string helpers -------------------------------------------------------

// Byte length of the Python whitespace character at s[i], 0 if none.
size_t space_at(std::string_view s, size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c < 0x80) return 0;
    auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
    if (c == 0xc2 && (b(1) == 0x85 || b(1) == 0xa0)) return 2;
    if (c == 0xe1 && b(1) == 0x9a && b(2) == 0x80) return 3;
    if (c == 0xe2 && b(1) == 0x80 && ((b(2) >= 0x80 && b(2) <= 0x8a) || b(2) == 0xa8 || b(2) == 0xa9 || b(2) == 0xaf))
        return 3;
    if (c == 0xe2 && b(1) == 0x81 && b(2) == 0x9f) return 3;
    if (c == 0xe3 && b(1) == 0x80 && b(2) == 0x80) return 3;
    return 0;
}

// Byte length of the whitespace character ending at s[end-1], 0 if none.
size_t space_before(std::string_view s, size_t end) {
    for (size_t len = 1; len <= 3 && len <= end; ++len)
        if (space_at(s, end - len) == len) return len;
    return 0;
}

std::string strip(std::string_view s, const Value &chars, bool left, bool right) {
    size_t b = 0, e = s.size();
    if (chars.is_none() || chars.is_undefined()) {
        while (left && b < e) {
            size_t n = space_at(s, b);
            if (!n) break;
            b += n;
        }
        while (right && e > b) {
            size_t n = space_before(s.substr(0, e), e);
            if (!n) break;
            e -= n;
        }
    } else {
        if (!chars.is_string()) runtime_error("strip arg must be None or str");
        auto set = utf8_chars(chars.s);
        auto matches_at = [&](size_t i) -> size_t {
            for (const auto &c : set)
                if (s.compare(i, c.size(), c) == 0) return c.size();
            return 0;
        };
        auto matches_before = [&](size_t end) -> size_t {
            for (const auto &c : set)
                if (c.size() <= end && s.compare(end - c.size(), c.size(), c) == 0) return c.size();
            return 0;
        };
        while (left && b < e) {
            size_t n = matches_at(b);
            if (!n) break;
            b += n;
        }
        while (right && e > b) {
            size_t n = matches_before(e);
            if (!n) break;
            e -= n;
        }
    }
    return std::string(s.substr(b, e - b));
}

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic;
// other scripts keep their case (Python maps all of Unicode).
uint32_t to_lower_cp(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
    if (c == 0x178) return 0xff;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}

uint32_t to_upper_cp(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
    if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
    if (c == 0xff) return 0x178;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c : c - 1;
    if (c >= 0x3b1 && c <= 0x3c9) return c == 0x3c2 ? 0x3a3 : c - 32;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}

std::string map_case(const std::string &s, bool up) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out += static_cast<char>(up ? to_upper_cp(c) : to_lower_cp(c));
            ++i;
            continue;
        }
        if ((c >> 5) == 6 && i + 1 < s.size()) {
            uint32_t cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3fu);
            if (up && cp == 0xdf) {
                out += "SS";
            } else {
                uint32_t m = up ? to_upper_cp(cp) : to_lower_cp(cp);
                out += static_cast<char>(0xc0 | (m >> 6));
                out += static_cast<char>(0x80 | (m & 0x3f));
            }
            i += 2;
            continue;
        }
        out += s[i++];
    }
    return out;
}

std::string lower(const std::string &s) { return map_case(s, false); }
std::string upper(const std::string &s) { return map_case(s, true); }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string capitalize(const std::string &s) {
    if (s.empty()) return s;
    size_t n = utf8_chars(s.substr(0, 4)).front().size();
    return upper(s.substr(0, n)) + lower(s.substr(n));
}

// Python's str.title(): a cased letter after an uncased character starts a word.
std::string py_title(const std::string &s) {
    std::string out = s;
    bool prev_cased = false;
    for (char &c : out) {
        if (is_alpha(c)) {
            c = prev_cased ? static_cast<char>(to_lower_cp(static_cast<unsigned char>(c))) : static_cast<char>(to_upper_cp(static_cast<unsigned char>(c)));
            prev_cased = true;
        } else {
            prev_cased = (static_cast<unsigned char>(c) & 0x80) != 0 && prev_cased;
        }
    }
    return out;
}

// jinja2's title filter: words begin after runs of `-`, whitespace, `(`, `{`, `[`, `<`.
std::string jinja_title(const std::string &s) {
    std::string out;
    bool start = true;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || space_at(s, i) == 1;
        if (sep) {
            out += c;
            start = true;
        } else {
            out += start ? upper(std::string(1, c)) : lower(std::string(1, c));
            start = false;
        }
    }
    return out;
}

std::vector<std::string> split(const std::string &s, const Value &sep, int64_t maxsplit) {
    std::vector<std::string> out;
    if (sep.is_none() || sep.is_undefined()) {
        size_t i = 0;
        while (i < s.size()) {
            size_t n;
            while (i < s.size() && (n = space_at(s, i))) i += n;
            if (i >= s.size()) break;
            if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
                std::string rest = s.substr(i);
                size_t e = rest.size();
                while (e > 0 && (n = space_before(rest, e))) e -= n;
                out.push_back(rest.substr(0, e));
                return out;
            }
            size_t j = i;
            while (j < s.size() && !space_at(s, j)) ++j;
            out.push_back(s.substr(i, j - i));
            i = j;
        }
        return out;
    }
    if (!sep.is_string()) runtime_error("must be str or None, not " + type_name(sep));
    if (sep.s.empty()) runtime_error("empty separator");
    size_t start = 0;
    for (;;) {
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) break;
        size_t p = s.find(sep.s, start);
        if (p == std::string::npos) break;
        out.push_back(s.substr(start, p - start));
        start = p + sep.s.size();
    }
    out.push_back(s.substr(start));
    return out;
}

std::vector<std::string> rsplit(const std::string &s, const Value &sep, int64_t maxsplit) {
    if (maxsplit < 0) return split(s, sep, maxsplit);
    std::vector<std::string> out;
    if (sep.is_none() || sep.is_undefined()) {
        size_t e = s.size();
        size_t n;
        while (e > 0) {
            while (e > 0 && (n = space_before(s, e))) e -= n;
            if (e == 0) break;
            if (static_cast<int64_t>(out.size()) >= maxsplit) {
                size_t b = 0;
                while (b < e && (n = space_at(s, b))) b += n;
                out.push_back(s.substr(b, e - b));
                e = 0;
                break;
            }
            size_t b = e;
            while (b > 0 && !space_before(s, b)) --b;
            out.push_back(s.substr(b, e - b));
            e = b;
        }
        std::reverse(out.begin(), out.end());
        return out;
    }
    if (!sep.is_string() || sep.s.empty()) runtime_error("empty separator");
    size_t end = s.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
        if (end < sep.s.size()) break;
        size_t p = s.rfind(sep.s, end - sep.s.size());
        if (p == std::string::npos) break;
        out.push_back(s.substr(p + sep.s.size(), end - p - sep.s.size()));
        end = p;
    }
    out.push_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
}

std::string replace(const std::string &s, const std::string &old, const std::string &with, int64_t count) {
    std::string out;
    if (old.empty()) {
        auto chars = utf8_chars(s);
        int64_t done = 0;
        for (size_t k = 0; k <= chars.size(); ++k) {
            if (count < 0 || done < count) {
                out += with;
                ++done;
                check_result(out.size());
            }
            if (k < chars.size()) out += chars[k];
        }
        return out;
    }
    size_t start = 0;
    int64_t done = 0;
    for (;;) {
        size_t p = count >= 0 && done >= count ? std::string::npos : s.find(old, start);
        if (p == std::string::npos) break;
        out.append(s, start, p - start);
        out += with;
        check_result(out.size());
        start = p + old.size();
        ++done;
    }
    out.append(s, start, std::string::npos);
    return out;
}

Value string_list(const std::vector<std::string> &parts) {
    ValueList out;
    out.reserve(parts.size());
    for (const auto &p : parts) out.push_back(Value::string(p));
    return Value::list(std::move(out));
}

// Python's str.format, enough for templates: {} {0} {name} {!r} {:spec}.
std::string format_spec(const Value &v, const std::string &spec) {
    if (spec.empty()) return to_str(v);
    size_t i = 0;
    char fill = ' ', align = 0;
    if (spec.size() >= 2 && std::strchr("<>^=", spec[1])) {
        fill = spec[0];
        align = spec[1];
        i = 2;
    } else if (std::strchr("<>^=", spec[0])) {
        align = spec[0];
        i = 1;
    }
    if (i < spec.size() && spec[i] == '0' && !align) {
        fill = '0';
        align = '=';
        ++i;
    }
    size_t width = 0;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])))
        width = static_cast<size_t>(checked_width(static_cast<int64_t>(width * 10 + (spec[i++] - '0'))));
    int precision = -1;
    if (i < spec.size() && spec[i] == '.') {
        precision = 0;
        ++i;
        while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])))
            precision = static_cast<int>(checked_width(precision * 10 + (spec[i++] - '0')));
    }
    char type = i < spec.size() ? spec[i] : 0;
    std::string body;
    char buf[512];
    if (type == 'f' || type == 'e' || type == 'g' || type == '%') {
        if (!v.is_number()) runtime_error("Unknown format code '" + std::string(1, type) + "' for object of type '" + type_name(v) + "'");
        double d = v.as_double() * (type == '%' ? 100 : 1);
        std::snprintf(buf, sizeof buf, "%.*f", precision < 0 ? 6 : precision, d);
        if (type != 'f' && type != '%') std::snprintf(buf, sizeof buf, (std::string("%.*") + type).c_str(), precision < 0 ? 6 : precision, d);
        body = buf;
        if (type == '%') body += '%';
    } else if (type == 'd') {
        if (v.kind != Value::Kind::Int && v.kind != Value::Kind::Bool) runtime_error("Unknown format code 'd' for object of type '" + type_name(v) + "'");
        body = std::to_string(v.as_int());
    } else if (type == 0 || type == 's') {
        if (precision >= 0 && v.is_number() && v.kind == Value::Kind::Float) {
            std::snprintf(buf, sizeof buf, "%.*g", precision, v.f);
            body = buf;
        } else {
            body = to_str(v);
            if (precision >= 0) {
                auto chars = utf8_chars(body);
                if (chars.size() > static_cast<size_t>(precision)) {
                    body.clear();
                    for (int k = 0; k < precision; ++k) body += chars[static_cast<size_t>(k)];
                }
            }
        }
    } else {
        runtime_error("unsupported format specification '" + spec + "'");
    }
    size_t len = utf8_length(body);
    if (len >= width) return body;
    size_t pad = width - len;
    if (!align) align = v.is_number() ? '>' : '<';
    std::string f(1, fill);
    auto rep = [&](size_t n) {
        std::string r;
        for (size_t k = 0; k < n; ++k) r += f;
        return r;
    };
    if (align == '<') return body + rep(pad);
    if (align == '>') return rep(pad) + body;
    if (align == '^') return rep(pad / 2) + body + rep(pad - pad / 2);
    if (!body.empty() && (body[0] == '-' || body[0] == '+')) return body.substr(0, 1) + rep(pad) + body.substr(1);
    return rep(pad) + body;
}

std::string str_format(Interpreter &interp, const std::string &fmt, const Args &args) {
    std::string out;
    size_t auto_index = 0;
    bool manual = false, automatic = false;
    for (size_t i = 0; i < fmt.size(); ++i) {
        char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
                out += '}';
                ++i;
                continue;
            }
            runtime_error("Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
            continue;
        }
        size_t close = fmt.find('}', i);
        if (close == std::string::npos) runtime_error("Single '{' encountered in format string");
        std::string field = fmt.substr(i + 1, close - i - 1);
        i = close;
        std::string spec, conv;
        size_t colon = field.find(':');
        if (colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field = field.substr(0, colon);
        }
        size_t bang = field.find('!');
        if (bang != std::string::npos) {
            conv = field.substr(bang + 1);
            field = field.substr(0, bang);
        }
        // field name: index or name, then .attr / [key] parts
        size_t name_end = field.find_first_of(".[");
        std::string head = field.substr(0, name_end);
        Value v;
        if (head.empty()) {
            if (manual) runtime_error("cannot switch from manual field specification to automatic field numbering");
            automatic = true;
            if (auto_index >= args.pos.size()) runtime_error("Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
            v = args.pos[auto_index++];
        } else if (std::all_of(head.begin(), head.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
            if (automatic) runtime_error("cannot switch from automatic field numbering to manual field specification");
            manual = true;
            size_t idx = std::stoul(head);
            if (idx >= args.pos.size()) runtime_error("Replacement index " + head + " out of range for positional args tuple");
            v = args.pos[idx];
        } else {
            const Value *kv = args.kwarg(head);
            if (!kv) runtime_error("KeyError: '" + head + "'");
            v = *kv;
        }
        size_t p = name_end;
        while (p != std::string::npos && p < field.size()) {
            if (field[p] == '.') {
                size_t e = field.find_first_of(".[", p + 1);
                v = interp.getattr(v, field.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1));
                p = e;
            } else {
                size_t e = field.find(']', p);
                if (e == std::string::npos) runtime_error("Missing ']' in format string");
                std::string key = field.substr(p + 1, e - p - 1);
                bool digits = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
                v = interp.getitem(v, digits ? Value::integer(std::stoll(key)) : Value::string(key));
                p = e + 1;
            }
        }
        if (conv == "r") v = Value::string(repr(v));
        else if (conv == "s") v = Value::string(to_str(v));
        else if (!conv.empty()) runtime_error("Unknown conversion specifier " + conv);
        if (v.is_undefined() && !v.s.empty()) runtime_error(v.s);
        out += format_spec(v, spec);
    }
    return out;
}

// ---- sequences ------------------------------------------------------------

// jinja2's make_attrgetter: "a.b.0" looks up each part with getitem.
Value get_attribute(Interpreter &interp, const Value &item, const Value &attribute) {
    if (attribute.kind == Value::Kind::Int) return interp.getitem(item, attribute);
    Value v = item;
    for (const auto &part : split(to_str(attribute), Value::string("."), -1)) {
        bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
        v = interp.getitem(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    }
    return v;
}

Value sort_key(const Value &v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value::string(lower(v.s));
    return v;
}

ValueList sorted(ValueList items, bool reverse, const std::function<Value(const Value &)> &key) {
    std::vector<std::pair<Value, size_t>> keyed;
    keyed.reserve(items.size());
    for (size_t k = 0; k < items.size(); ++k) keyed.emplace_back(key(items[k]), k);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto &a, const auto &b) {
        return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
    });
    ValueList out;
    out.reserve(items.size());
    for (const auto &kv : keyed) out.push_back(items[kv.second]);
    return out;
}

Value dict_items(const Value &v) {
    ValueList out;
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict() || v.map->is_namespace || v.map->is_loop) runtime_error("Can only get item pairs from a mapping.");
    for (const auto &[k, e] : v.map->entries) out.push_back(Value::tuple({key_value(k), e}));
    return Value::list(std::move(out));
}

Value to_int(const Value &v, const Value &fallback, int base) {
    switch (v.kind) {
    case Value::Kind::Int: return v;
    case Value::Kind::Bool: return Value::integer(v.b);
    case Value::Kind::Float:
        if (std::isfinite(v.f)) return Value::integer(static_cast<int64_t>(v.f));
        return fallback;
    case Value::Kind::String: {
        std::string s = strip(v.s, Value::none(), true, true);
        std::string digits;
        for (char c : s)
            if (c != '_') digits += c;
        if (digits.empty()) return fallback;
        char *end = nullptr;
        errno = 0;
        long long r = std::strtoll(digits.c_str(), &end, base);
        if (*end == 0 && errno == 0) return Value::integer(r);
        double d = std::strtod(digits.c_str(), &end);
        if (*end == 0 && std::isfinite(d)) return Value::integer(static_cast<int64_t>(d));
        return fallback;
    }
    default: return fallback;
    }
}

Value to_float(const Value &v, const Value &fallback) {
    switch (v.kind) {
    case Value::Kind::Int:
    case Value::Kind::Bool:
    case Value::Kind::Float: return Value::number(v.as_double());
    case Value::Kind::String: {
        std::string s = lower(strip(v.s, Value::none(), true, true));
        if (s == "inf" || s == "+inf" || s == "infinity") return Value::number(INFINITY);
        if (s == "-inf" || s == "-infinity") return Value::number(-INFINITY);
        if (s == "nan") return Value::number(NAN);
        char *end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && *end == 0) return Value::number(d);
        return fallback;
    }
    default: return fallback;
    }
}

// Python's round(x, n), half to even on the decimal value.
Value py_round(const Value &v, int64_t precision, const std::string &method) {
    if (!v.is_number()) runtime_error("type " + type_name(v) + " doesn't define __round__ method");
    double x = v.as_double();
    double scale = std::pow(10.0, static_cast<double>(precision));
    double y = x * scale;
    double r;
    if (method == "ceil") r = std::ceil(y);
    else if (method == "floor") r = std::floor(y);
    else if (method == "common") {
        r = std::round(y);
        if (std::fabs(y - std::trunc(y)) == 0.5) r = 2.0 * std::round(y / 2.0);
    } else runtime_error("method must be 'common', 'ceil' or 'floor'");
    if (method == "common" && v.kind != Value::Kind::Float) return Value::integer(v.as_int());
    return Value::number(r / scale);
}

// Python's str.splitlines(): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029.
std::vector<std::string> splitlines(const std::string &s, bool keepends) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t len = 0;
        if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') len = 2;
        else if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) len = 1;
        else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) len = 2;
        else if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                 (static_cast<unsigned char>(s[i + 2]) == 0xa8 || static_cast<unsigned char>(s[i + 2]) == 0xa9))
            len = 3;
        if (!len) {
            ++i;
            continue;
        }
        parts.push_back(s.substr(start, (keepends ? i + len : i) - start));
        i += len;
        start = i;
    }
    if (start < s.size()) parts.push_back(s.substr(start));
    return parts;
}

// jinja2's do_indent, quirks included (it appends a newline before splitting).
std::string indent(const std::string &s, const Value &width, bool first, bool blank) {
    std::string ind = width.is_string() ? width.s : std::string(static_cast<size_t>(std::max<int64_t>(0, checked_width(width.as_int()))), ' ');
    std::vector<std::string> lines = splitlines(s + "\n", false);
    std::string rv;
    if (blank) {
        for (size_t k = 0; k < lines.size(); ++k) {
            if (k) rv += "\n" + ind;
            rv += lines[k];
            check_result(rv.size());
        }
    } else if (!lines.empty()) {
        rv = lines[0];
        if (lines.size() > 1) {
            rv += "\n";
            for (size_t k = 1; k < lines.size(); ++k) {
                if (k > 1) rv += "\n";
                if (!lines[k].empty()) rv += ind;
                rv += lines[k];
                check_result(rv.size());
            }
        }
    }
    if (first) rv = ind + rv;
    return rv;
}

std::string strftime_at(std::chrono::system_clock::time_point now, const std::string &fmt) {
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    if (fmt.empty()) return "";
    std::vector<char> buf(fmt.size() * 8 + 256);
    size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    return std::string(buf.data(), n);
}

// jinja2's map, select, unique, items, batch... return one-pass generators:
// truthy even when empty, no len(), not JSON serializable.
Value as_generator(Value v) {
    v.gen = true;
    return v;
}

bool is_int_like(const Value &v) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool; }

Value select_like(Interpreter &interp, const Value &input, Args &args, bool select, bool by_attr) {
    ValueList out;
    size_t first_test = by_attr ? 1 : 0;
    Value attr = by_attr ? args.get(0, "attribute") : Value();
    std::string test_name;
    Args test_args;
    bool has_test = args.pos.size() > first_test;
    if (has_test) {
        test_name = to_str(args.pos[first_test]);
        test_args.pos.assign(args.pos.begin() + static_cast<long>(first_test) + 1, args.pos.end());
        test_args.kw = args.kw;
    }
    if (!truthy(input)) return Value::list();
    for (const auto &item : iterate(input)) {
        Value v = by_attr ? get_attribute(interp, item, attr) : item;
        bool ok = has_test ? interp.test(test_name, v, test_args) : truthy(v);
        if (ok == select) out.push_back(item);
    }
    return Value::list(std::move(out));
}

Value unique(const Value &input, bool case_sensitive, Interpreter &interp, const Value &attr) {
    ValueList out, seen;
    for (const auto &item : iterate(input)) {
        Value key = sort_key(attr.is_undefined() || attr.is_none() ? item : get_attribute(interp, item, attr), case_sensitive);
        bool dup = false;
        for (const auto &s : seen)
            if (equals(s, key)) dup = true;
        if (!dup) {
            seen.push_back(key);
            out.push_back(item);
        }
    }
    return Value::list(std::move(out));
}

Value min_max(Interpreter &interp, const Value &input, Args &args, bool want_max) {
    bool cs = truthy(args.get(0, "case_sensitive", Value::boolean(false)));
    Value attr = args.get(1, "attribute");
    ValueList items = iterate(input);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    auto key = [&](const Value &v) {
        return sort_key(attr.is_undefined() || attr.is_none() ? v : get_attribute(interp, v, attr), cs);
    };
    Value best_key = key(items[0]);
    for (size_t k = 1; k < items.size(); ++k) {
        Value kk = key(items[k]);
        int c = compare(kk, best_key);
        if (want_max ? c > 0 : c < 0) {
            best = k;
            best_key = kk;
        }
    }
    return items[best];
}

} // namespace

// ---- filters ----------------------------------------------------------------

Value builtin_filter(Interpreter &interp, const std::string &name, const Value &input, Args &args) {
    const Value &v = input;
    auto str_in = [&]() { return to_str(v); };
    if (name == "safe") {
        Value r = Value::string(str_in());
        r.safe = true;
        return r;
    }
    if (name == "string") return v.is_string() ? v : Value::string(str_in());
    if (name == "escape" || name == "e" || name == "forceescape") {
        Value r = Value::string(v.is_string() && v.safe && name != "forceescape" ? v.s : html_escape(str_in()));
        r.safe = true;
        return r;
    }
    if (name == "tojson") {
        args.expect("tojson", 1, {"indent", "separators", "sort_keys", "ensure_ascii"});
        JsonOptions o;
        Value ind = args.get(0, "indent", Value::none());
        if (!ind.is_none()) {
            if (ind.is_string()) {
                o.indent = 1;
                o.indent_str = ind.s;
            } else if (is_int_like(ind)) {
                o.indent = static_cast<int>(std::max<int64_t>(0, checked_width(ind.as_int())));
                o.indent_str = std::string(static_cast<size_t>(o.indent), ' ');
            } else {
                runtime_error("indent must be an integer or a string");
            }
            o.item_sep = ",";
        }
        Value seps = args.get(kKeywordOnly, "separators", Value::none());
        if (!seps.is_none()) {
            ValueList parts = iterate(seps);
            if (parts.size() != 2 || !parts[0].is_string() || !parts[1].is_string())
                runtime_error("separators must be a pair of strings");
            o.item_sep = parts[0].s;
            o.key_sep = parts[1].s;
        }
        o.sort_keys = truthy(args.get(kKeywordOnly, "sort_keys", Value::boolean(false)));
        o.ensure_ascii = truthy(args.get(kKeywordOnly, "ensure_ascii", Value::boolean(false)));
        return Value::string(to_json(v, o));
    }
    if (name == "length" || name == "count") return Value::integer(static_cast<int64_t>(length(v)));
    if (name == "default" || name == "d") {
        Value fallback = args.get(0, "default_value", Value::string(""));
        bool boolean = truthy(args.get(1, "boolean", Value::boolean(false)));
        if (v.is_undefined() || (boolean && !truthy(v))) return fallback;
        return v;
    }
    if (name == "trim") return Value::string(strip(str_in(), args.get(0, "chars", Value::none()), true, true));
    if (name == "upper") return Value::string(upper(str_in()));
    if (name == "lower") return Value::string(lower(str_in()));
    if (name == "capitalize") return Value::string(capitalize(str_in()));
    if (name == "title") return Value::string(jinja_title(str_in()));
    if (name == "items") return as_generator(dict_items(v));
    if (name == "list") {
        if (v.is_list()) return Value::list(*v.items);
        return Value::list(iterate(v));
    }
    if (name == "join") {
        std::string sep = to_str(args.get(0, "d", Value::string("")));
        Value attr = args.get(1, "attribute", Value::none());
        std::string out;
        bool first = true;
        for (const auto &item : iterate(v)) {
            if (!first) out += sep;
            first = false;
            out += to_str(attr.is_none() ? item : get_attribute(interp, item, attr));
            check_result(out.size());
        }
        return Value::string(std::move(out));
    }
    if (name == "first") {
        ValueList items = iterate(v);
        return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
    }
    if (name == "last") {
        if (v.is_generator()) runtime_error("'generator' object is not reversible");
        ValueList items = iterate(v);
        return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
    }
    if (name == "reverse") {
        if (v.is_string()) {
            auto chars = utf8_chars(v.s);
            std::string out;
            for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
            return Value::string(std::move(out));
        }
        ValueList items = iterate(v);
        std::reverse(items.begin(), items.end());
        // reversed(list) is an iterator; a generator is listed first.
        return v.is_list() && !v.gen ? as_generator(Value::list(std::move(items))) : Value::list(std::move(items));
    }
    if (name == "replace") {
        if (args.pos.size() < 2) runtime_error("replace filter needs 'old' and 'new'");
        Value count = args.get(2, "count", Value::none());
        return Value::string(replace(str_in(), to_str(args.pos[0]), to_str(args.pos[1]), count.is_none() ? -1 : count.as_int()));
    }
    if ((name == "int" || name == "float" || name == "abs" || name == "round") && v.is_undefined())
        runtime_error(v.s.empty() ? std::string("value is undefined") : v.s);
    if (name == "int") return to_int(v, args.get(0, "default", Value::integer(0)), static_cast<int>(args.get(1, "base", Value::integer(10)).as_int()));
    if (name == "float") return to_float(v, args.get(0, "default", Value::number(0.0)));
    if (name == "abs") {
        if (v.kind == Value::Kind::Float) return Value::number(std::fabs(v.f));
        if (is_int_like(v)) return Value::integer(std::llabs(v.as_int()));
        runtime_error("bad operand type for abs(): '" + type_name(v) + "'");
    }
    if (name == "round") {
        return py_round(v, args.get(0, "precision", Value::integer(0)).as_int(), to_str(args.get(1, "method", Value::string("common"))));
    }
    if (name == "map") {
        ValueList out;
        if (!truthy(v)) return as_generator(Value::list());
        const Value *attr = args.kwarg("attribute");
        if (attr) {
            Value fallback = args.get(kKeywordOnly, "default");
            for (const auto &item : iterate(v)) {
                Value r = get_attribute(interp, item, *attr);
                out.push_back(r.is_undefined() && !fallback.is_undefined() ? fallback : r);
            }
            return as_generator(Value::list(std::move(out)));
        }
        if (args.pos.empty()) runtime_error("map requires a filter argument");
        std::string fname = to_str(args.pos[0]);
        Args fargs;
        fargs.pos.assign(args.pos.begin() + 1, args.pos.end());
        fargs.kw = args.kw;
        for (const auto &item : iterate(v)) {
            Args a = fargs;
            out.push_back(interp.filter(fname, item, a));
        }
        return as_generator(Value::list(std::move(out)));
    }
    if (name == "select") return as_generator(select_like(interp, v, args, true, false));
    if (name == "reject") return as_generator(select_like(interp, v, args, false, false));
    if (name == "selectattr") return as_generator(select_like(interp, v, args, true, true));
    if (name == "rejectattr") return as_generator(select_like(interp, v, args, false, true));
    if (name == "sort") {
        bool reverse = truthy(args.get(0, "reverse", Value::boolean(false)));
        bool cs = truthy(args.get(1, "case_sensitive", Value::boolean(false)));
        Value attr = args.get(2, "attribute", Value::none());
        return Value::list(sorted(iterate(v), reverse, [&](const Value &item) {
            return sort_key(attr.is_none() ? item : get_attribute(interp, item, attr), cs);
        }));
    }
    if (name == "dictsort") {
        bool cs = truthy(args.get(0, "case_sensitive", Value::boolean(false)));
        std::string by = to_str(args.get(1, "by", Value::string("key")));
        bool reverse = truthy(args.get(2, "reverse", Value::boolean(false)));
        size_t pos = by == "key" ? 0 : by == "value" ? 1 : 2;
        if (pos == 2) runtime_error("You can only sort by either \"key\" or \"value\"");
        if (v.is_undefined()) runtime_error(v.s.empty() ? std::string("value is undefined") : v.s);
        ValueList items = *dict_items(v).items;
        return Value::list(sorted(std::move(items), reverse, [&](const Value &item) { return sort_key((*item.items)[pos], cs); }));
    }
    if (name == "unique") {
        return as_generator(unique(v, truthy(args.get(0, "case_sensitive", Value::boolean(false))), interp, args.get(1, "attribute", Value::none())));
    }
    if (name == "min") return min_max(interp, v, args, false);
    if (name == "max") return min_max(interp, v, args, true);
    if (name == "sum") {
        Value attr = args.get(0, "attribute", Value::none());
        Value total = args.get(1, "start", Value::integer(0));
        for (const auto &item : iterate(v)) total = interp.binary_op("+", total, attr.is_none() ? item : get_attribute(interp, item, attr));
        return total;
    }
    if (name == "indent") {
        Value width = args.get(0, "width", Value::integer(4));
        return Value::string(indent(str_in(), width, truthy(args.get(1, "first", Value::boolean(false))), truthy(args.get(2, "blank", Value::boolean(false)))));
    }
    if (name == "center") {
        int64_t width = checked_width(args.get(0, "width", Value::integer(80)).as_int());
        std::string s = str_in();
        int64_t len = static_cast<int64_t>(utf8_length(s));
        if (len >= width) return Value::string(s);
        int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
        return Value::string(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
    }
    if (name == "striptags") {
        std::string s = str_in(), out;
        bool in_tag = false;
        for (char c : s) {
            if (c == '<') in_tag = true;
            else if (c == '>' && in_tag) in_tag = false;
            else if (!in_tag) out += c;
        }
        std::string joined;
        for (const auto &w : split(out, Value::none(), -1)) joined += (joined.empty() ? "" : " ") + w;
        return Value::string(joined);
    }
    if (name == "wordcount") {
        // re.findall(r"\w+"): letters of the common scripts, digits and '_'.
        std::string s = str_in();
        int64_t words = 0;
        bool in_word = false;
        for (const auto &ch : utf8_chars(s)) {
            auto c = static_cast<unsigned char>(ch[0]);
            bool w;
            if (ch.size() == 1) {
                w = std::isalnum(c) || c == '_';
            } else {
                uint32_t cp = ch.size() == 2 ? ((c & 0x1fu) << 6) | (ch[1] & 0x3f)
                              : ch.size() == 3 ? ((c & 0x0fu) << 12) | ((ch[1] & 0x3f) << 6) | (ch[2] & 0x3f)
                                               : 0x1f600;
                w = (cp >= 0xc0 && cp < 0x2000 && cp != 0xd7 && cp != 0xf7) || (cp >= 0x3040 && cp < 0xa000) ||
                    (cp >= 0xac00 && cp < 0xd7b0);
            }
            if (w && !in_word) ++words;
            in_word = w;
        }
        return Value::integer(words);
    }
    if (name == "truncate") {
        std::string s = str_in();
        int64_t len = args.get(0, "length", Value::integer(255)).as_int();
        bool killwords = truthy(args.get(1, "killwords", Value::boolean(false)));
        std::string end = to_str(args.get(2, "end", Value::string("...")));
        int64_t leeway = args.get(3, "leeway", Value::integer(5)).as_int();
        auto chars = utf8_chars(s);
        if (static_cast<int64_t>(chars.size()) <= len + leeway) return Value::string(s);
        int64_t keep = std::max<int64_t>(0, len - static_cast<int64_t>(utf8_length(end)));
        std::string head;
        for (int64_t k = 0; k < keep; ++k) head += chars[static_cast<size_t>(k)];
        if (killwords) return Value::string(head + end);
        size_t sp = head.rfind(' ');
        if (sp != std::string::npos) head = head.substr(0, sp);
        return Value::string(head + end);
    }
    if (name == "batch") {
        int64_t n = checked_width(args.get(0, "linecount", Value::integer(1)).as_int());
        if (n <= 0) runtime_error("batch size must be positive");
        Value fill = args.get(1, "fill_with", Value::none());
        ValueList out, cur;
        for (const auto &item : iterate(v)) {
            cur.push_back(item);
            if (static_cast<int64_t>(cur.size()) == n) {
                out.push_back(Value::list(std::move(cur)));
                cur.clear();
            }
        }
        if (!cur.empty()) {
            if (!fill.is_none())
                while (static_cast<int64_t>(cur.size()) < n) cur.push_back(fill);
            out.push_back(Value::list(std::move(cur)));
        }
        return as_generator(Value::list(std::move(out)));
    }
    if (name == "attr") return interp.getattr(v, to_str(args.get(0, "name")));
    if (name == "format") return Value::string(interp.binary_op("%", Value::string(str_in()), Value::tuple(args.pos)).s);
    if (name == "pprint") return Value::string(repr(v));
    if (name == "wordwrap" || name == "urlencode" || name == "urlize" || name == "xmlattr" || name == "filesizeformat" ||
        name == "groupby" || name == "slice")
        runtime_error("the '" + name + "' filter is not supported by muse");
    runtime_error("No filter named '" + name + "' found.");
}

// ---- tests --------------------------------------------------------------------

bool builtin_test(Interpreter &interp, const std::string &name, const Value &v, Args &args) {
    auto arg = [&]() {
        if (args.pos.empty()) runtime_error("test '" + name + "' needs an argument");
        return args.pos[0];
    };
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict() && !v.map->is_namespace && !v.map->is_loop;
    if (name == "iterable") return v.is_iterable() && !(v.is_dict() && (v.map->is_namespace || v.map->is_loop));
    if (name == "sequence") return v.is_iterable() && !v.gen && !(v.is_dict() && (v.map->is_namespace || v.map->is_loop));
    if (name == "number") return v.is_number();
    if (name == "integer") return v.kind == Value::Kind::Int;
    if (name == "float") return v.kind == Value::Kind::Float;
    if (name == "boolean") return v.kind == Value::Kind::Bool;
    if (name == "true") return v.kind == Value::Kind::Bool && v.b;
    if (name == "false") return v.kind == Value::Kind::Bool && !v.b;
    if (name == "callable") return v.is_callable();
    if (name == "odd" || name == "even") {
        if (!v.is_number()) runtime_error("unsupported operand type(s) for %: '" + type_name(v) + "' and 'int'");
        Value r = interp.binary_op("%", v, Value::integer(2));
        return equals(r, Value::integer(name == "odd" ? 1 : 0));
    }
    if (name == "divisibleby") return !truthy(interp.binary_op("%", v, arg()));
    if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg());
    if (name == "ne" || name == "!=") return !equals(v, arg());
    if (name == "lt" || name == "lessthan" || name == "<") return truthy(interp.binary_op("<", v, arg()));
    if (name == "le" || name == "<=") return truthy(interp.binary_op("<=", v, arg()));
    if (name == "gt" || name == "greaterthan" || name == ">") return truthy(interp.binary_op(">", v, arg()));
    if (name == "ge" || name == ">=") return truthy(interp.binary_op(">=", v, arg()));
    if (name == "in") return contains(arg(), v);
    if (name == "sameas") {
        Value o = arg();
        if (v.kind != o.kind) return false;
        switch (v.kind) {
        case Value::Kind::None:
        case Value::Kind::Undefined: return true;
        case Value::Kind::Bool: return v.b == o.b;
        case Value::Kind::Int: return v.i == o.i && v.i >= -5 && v.i <= 256;
        case Value::Kind::String: return v.s == o.s; // literals are interned in Python
        case Value::Kind::List: return v.items == o.items;
        case Value::Kind::Dict: return v.map == o.map;
        case Value::Kind::Function: return v.fn == o.fn;
        default: return false;
        }
    }
    if (name == "lower" || name == "upper") {
        std::string s = to_str(v); // jinja2: str(value).islower() / .isupper()
        return name == "lower" ? lower(s) == s && upper(s) != s : upper(s) == s && lower(s) != s;
    }
    if (name == "escaped") return false;
    if (name == "filter" || name == "test") {
        std::string n = to_str(v);
        Args none;
        try {
            if (name == "filter") builtin_filter(interp, n, Value::none(), none);
            else builtin_test(interp, n, Value::none(), none);
        } catch (const RuntimeError &e) {
            return e.message.rfind("No filter named", 0) != 0 && e.message.rfind("No test named", 0) != 0;
        }
        return true;
    }
    runtime_error("No test named '" + name + "' found.");
}

// ---- methods ----------------------------------------------------------------

Value builtin_method(const Value &obj, const std::string &name, bool &found) {
    found = true;
    auto bind = [&](NativeFn fn) { return Value::function(name, std::move(fn)); };
    if (obj.is_string()) {
        const std::string s = obj.s;
        if (name == "strip" || name == "lstrip" || name == "rstrip") {
            bool l = name != "rstrip", r = name != "lstrip";
            return bind([s, l, r](Interpreter &, Args &a) { return Value::string(strip(s, a.get(0, "chars", Value::none()), l, r)); });
        }
        if (name == "split" || name == "rsplit") {
            bool right = name == "rsplit";
            return bind([s, right](Interpreter &, Args &a) {
                Value sep = a.get(0, "sep", Value::none());
                int64_t maxsplit = a.get(1, "maxsplit", Value::integer(-1)).as_int();
                return string_list(right ? rsplit(s, sep, maxsplit) : split(s, sep, maxsplit));
            });
        }
        if (name == "splitlines")
            return bind([s](Interpreter &, Args &a) { return string_list(splitlines(s, truthy(a.get(0, "keepends", Value::boolean(false))))); });
        if (name == "startswith" || name == "endswith") {
            bool starts = name == "startswith";
            return bind([s, starts](Interpreter &, Args &a) {
                Value pre = a.get(0, "prefix");
                ValueList options = pre.is_list() && pre.is_tuple ? *pre.items : ValueList{pre};
                std::string sub = s;
                if (a.pos.size() > 1) {
                    auto chars = utf8_chars(s);
                    int64_t n = static_cast<int64_t>(chars.size());
                    auto idx = [&](const Value &x, int64_t d) {
                        if (x.is_none()) return d;
                        int64_t k = x.as_int();
                        if (k < 0) k = std::max<int64_t>(0, k + n);
                        return std::min(k, n);
                    };
                    int64_t b = idx(a.pos[1], 0), e = a.pos.size() > 2 ? idx(a.pos[2], n) : n;
                    sub.clear();
                    for (int64_t k = b; k < e; ++k) sub += chars[static_cast<size_t>(k)];
                }
                for (const auto &o : options) {
                    if (!o.is_string())
                        runtime_error(std::string(starts ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " + type_name(o));
                    if (o.s.size() <= sub.size() && (starts ? sub.compare(0, o.s.size(), o.s) == 0 : sub.compare(sub.size() - o.s.size(), o.s.size(), o.s) == 0))
                        return Value::boolean(true);
                }
                return Value::boolean(false);
            });
        }
        if (name == "upper") return bind([s](Interpreter &, Args &) { return Value::string(upper(s)); });
        if (name == "lower" || name == "casefold") return bind([s](Interpreter &, Args &) { return Value::string(lower(s)); });
        if (name == "title") return bind([s](Interpreter &, Args &) { return Value::string(py_title(s)); });
        if (name == "capitalize") return bind([s](Interpreter &, Args &) { return Value::string(capitalize(s)); });
        if (name == "swapcase")
            return bind([s](Interpreter &, Args &) {
                std::string o = s;
                for (char &c : o) c = c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
                return Value::string(o);
            });
        if (name == "replace")
            return bind([s](Interpreter &, Args &a) {
                if (a.pos.size() < 2) runtime_error("replace expected at least 2 arguments");
                if (!a.pos[0].is_string() || !a.pos[1].is_string()) runtime_error("replace arguments must be str");
                return Value::string(replace(s, a.pos[0].s, a.pos[1].s, a.get(2, "count", Value::integer(-1)).as_int()));
            });
        if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
            std::string m = name;
            return bind([s, m](Interpreter &, Args &a) {
                Value sub = a.get(0, "sub");
                if (!sub.is_string()) runtime_error("must be str, not " + type_name(sub));
                if (m == "count") {
                    if (sub.s.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
                    int64_t n = 0;
                    for (size_t p = s.find(sub.s); p != std::string::npos; p = s.find(sub.s, p + sub.s.size())) ++n;
                    return Value::integer(n);
                }
                size_t p = m[0] == 'r' ? s.rfind(sub.s) : s.find(sub.s);
                if (p == std::string::npos) {
                    if (m == "index" || m == "rindex") runtime_error("substring not found");
                    return Value::integer(-1);
                }
                return Value::integer(static_cast<int64_t>(utf8_length(s.substr(0, p))));
            });
        }
        if (name == "format") return bind([s](Interpreter &in, Args &a) { return Value::string(str_format(in, s, a)); });
        if (name == "join")
            return bind([s](Interpreter &, Args &a) {
                std::string out;
                bool first = true;
                for (const auto &item : iterate(a.get(0, "iterable"))) {
                    if (!item.is_string()) runtime_error("sequence item: expected str instance, " + type_name(item) + " found");
                    if (!first) out += s;
                    first = false;
                    out += item.s;
                    check_result(out.size());
                }
                return Value::string(out);
            });
        if (name == "removeprefix" || name == "removesuffix") {
            bool pre = name == "removeprefix";
            return bind([s, pre](Interpreter &, Args &a) {
                std::string x = to_str(a.get(0, "prefix"));
                if (pre && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
                if (!pre && x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0 && !x.empty())
                    return Value::string(s.substr(0, s.size() - x.size()));
                return Value::string(s);
            });
        }
        if (name == "isdigit" || name == "isnumeric" || name == "isdecimal" || name == "isalpha" || name == "isalnum" ||
            name == "isspace" || name == "islower" || name == "isupper") {
            std::string m = name;
            return bind([s, m](Interpreter &, Args &) {
                if (s.empty()) return Value::boolean(false);
                bool cased = false;
                for (size_t i = 0; i < s.size(); ++i) {
                    char c = s[i];
                    bool digit = c >= '0' && c <= '9', alpha = is_alpha(c);
                    if (m == "isdigit" || m == "isnumeric" || m == "isdecimal") {
                        if (!digit) return Value::boolean(false);
                    } else if (m == "isalpha") {
                        if (!alpha) return Value::boolean(false);
                    } else if (m == "isalnum") {
                        if (!alpha && !digit) return Value::boolean(false);
                    } else if (m == "isspace") {
                        if (!space_at(s, i)) return Value::boolean(false);
                    } else if (m == "islower") {
                        if (c >= 'A' && c <= 'Z') return Value::boolean(false);
                        cased |= c >= 'a' && c <= 'z';
                    } else {
                        if (c >= 'a' && c <= 'z') return Value::boolean(false);
                        cased |= c >= 'A' && c <= 'Z';
                    }
                }
                return Value::boolean(m == "islower" || m == "isupper" ? cased : true);
            });
        }
        if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
            std::string m = name;
            return bind([s, m](Interpreter &, Args &a) {
                int64_t width = checked_width(a.get(0, "width", Value::integer(0)).as_int());
                std::string fill = m == "zfill" ? "0" : to_str(a.get(1, "fillchar", Value::string(" ")));
                int64_t len = static_cast<int64_t>(utf8_length(s));
                if (len >= width) return Value::string(s);
                int64_t pad = width - len;
                auto rep = [&](int64_t n) {
                    std::string r;
                    for (int64_t k = 0; k < n; ++k) r += fill;
                    return r;
                };
                if (m == "ljust") return Value::string(s + rep(pad));
                if (m == "rjust") return Value::string(rep(pad) + s);
                if (m == "zfill") {
                    if (!s.empty() && (s[0] == '-' || s[0] == '+')) return Value::string(s.substr(0, 1) + rep(pad) + s.substr(1));
                    return Value::string(rep(pad) + s);
                }
                int64_t left = pad / 2 + (pad & width & 1);
                return Value::string(rep(left) + s + rep(pad - left));
            });
        }
        if (name == "partition" || name == "rpartition") {
            bool r = name == "rpartition";
            return bind([s, r](Interpreter &, Args &a) {
                std::string sep = to_str(a.get(0, "sep"));
                if (sep.empty()) runtime_error("empty separator");
                size_t p = r ? s.rfind(sep) : s.find(sep);
                if (p == std::string::npos)
                    return r ? Value::tuple({Value::string(""), Value::string(""), Value::string(s)})
                             : Value::tuple({Value::string(s), Value::string(""), Value::string("")});
                return Value::tuple({Value::string(s.substr(0, p)), Value::string(sep), Value::string(s.substr(p + sep.size()))});
            });
        }
        if (name == "encode" || name == "translate" || name == "expandtabs" || name == "format_map")
            return bind([name](Interpreter &, Args &) -> Value { runtime_error("str." + name + "() is not supported by muse"); });
        found = false;
        return Value();
    }
    if (obj.is_dict()) {
        auto map = obj.map;
        if (name == "get")
            return bind([map](Interpreter &, Args &a) {
                Value key = a.get(0, "key");
                const Value *v = key.is_undefined() ? nullptr : map->find(dict_key(key));
                return v ? *v : a.get(1, "default", Value::none());
            });
        if (name == "items") return bind([obj](Interpreter &, Args &) { return dict_items(obj); });
        if (name == "keys")
            return bind([map](Interpreter &, Args &) {
                ValueList out;
                for (const auto &e : map->entries) out.push_back(key_value(e.first));
                return Value::list(std::move(out));
            });
        if (name == "values")
            return bind([map](Interpreter &, Args &) {
                ValueList out;
                for (const auto &e : map->entries) out.push_back(e.second);
                return Value::list(std::move(out));
            });
        if (name == "copy")
            return bind([map](Interpreter &, Args &) {
                Value d = Value::dict();
                d.map->entries = map->entries;
                return d;
            });
        if (name == "pop" || name == "popitem" || name == "setdefault" || name == "update" || name == "clear")
            return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
        found = false;
        return Value();
    }
    if (obj.is_list()) {
        auto items = obj.items;
        if (name == "index" || name == "count") {
            bool index = name == "index";
            return bind([items, index](Interpreter &, Args &a) {
                Value x = a.get(0, "value");
                int64_t n = 0;
                for (size_t k = 0; k < items->size(); ++k) {
                    if (equals((*items)[k], x)) {
                        if (index) return Value::integer(static_cast<int64_t>(k));
                        ++n;
                    }
                }
                if (index) runtime_error(repr(x) + " is not in list");
                return Value::integer(n);
            });
        }
        if (name == "copy" && !obj.is_tuple) return bind([items](Interpreter &, Args &) { return Value::list(*items); });
        if (!obj.is_tuple && (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
                              name == "remove" || name == "reverse" || name == "sort" || name == "clear"))
            return Value::undefined("access to attribute '" + name + "' of 'list' object is unsafe.");
        found = false;
        return Value();
    }
    if (obj.kind == Value::Kind::Int || obj.kind == Value::Kind::Bool || obj.kind == Value::Kind::Float) {
        if (name == "real") return obj.kind == Value::Kind::Bool ? Value::integer(obj.b) : obj;
        if (name == "imag") return obj.kind == Value::Kind::Float ? Value::number(0.0) : Value::integer(0);
    }
    found = false;
    return Value();
}

// ---- globals ----------------------------------------------------------------

void install_globals(Interpreter &interp, Scope &globals) {
    (void)interp;
    globals.vars["range"] = Value::function("range", [](Interpreter &, Args &a) {
        if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) runtime_error("range expected 1 to 3 integer arguments");
        for (const auto &p : a.pos)
            if (!is_int_like(p)) runtime_error("'" + type_name(p) + "' object cannot be interpreted as an integer");
        int64_t start = 0, stop, step = 1;
        if (a.pos.size() == 1) {
            stop = a.pos[0].as_int();
        } else {
            start = a.pos[0].as_int();
            stop = a.pos[1].as_int();
            if (a.pos.size() == 3) step = a.pos[2].as_int();
        }
        if (step == 0) runtime_error("range() arg 3 must not be zero");
        long double count = step > 0 ? (static_cast<long double>(stop) - start + step - 1) / step
                                     : (static_cast<long double>(start) - stop - step - 1) / -step;
        if (count > kMaxRange) runtime_error("range too big, more than " + std::to_string(kMaxRange) + " elements");
        if (count > 0) charge_work(static_cast<uint64_t>(count));
        ValueList out;
        for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(Value::integer(k));
        return Value::list(std::move(out));
    });
    globals.vars["namespace"] = Value::function("namespace", [](Interpreter &in, Args &a) {
        Value ns = Value::dict();
        ns.map->is_namespace = true;
        in.track_namespace(ns.map);
        for (const auto &p : a.pos) {
            if (!p.is_dict()) runtime_error("namespace() positional argument must be a mapping");
            for (const auto &[k, v] : p.map->entries) ns.map->set(k, v);
        }
        for (const auto &[k, v] : a.kw) ns.map->set(k, v);
        return ns;
    });
    globals.vars["dict"] = Value::function("dict", [](Interpreter &, Args &a) {
        Value d = Value::dict();
        for (const auto &p : a.pos) {
            if (!p.is_dict()) runtime_error("dict() positional argument must be a mapping");
            for (const auto &[k, v] : p.map->entries) d.map->set(k, v);
        }
        for (const auto &[k, v] : a.kw) d.map->set(k, v);
        return d;
    });
    globals.vars["raise_exception"] = Value::function("raise_exception", [](Interpreter &, Args &a) -> Value {
        runtime_error(to_str(a.get(0, "message", Value::string(""))));
    });
    globals.vars["strftime_now"] = Value::function("strftime_now", [](Interpreter &in, Args &a) {
        return Value::string(strftime_at(in.now(), to_str(a.get(0, "format"))));
    });
}

} // namespace muse::jinja
