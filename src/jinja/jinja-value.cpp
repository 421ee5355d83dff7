#include "jinja/jinja-value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace muse::jinja {

void runtime_error(std::string message) { throw RuntimeError{std::move(message)}; }

namespace {
thread_local uint64_t work_used = 0;
thread_local uint64_t work_limit = UINT64_MAX;
} // namespace

void charge_work(uint64_t units) {
    work_used = units > UINT64_MAX - work_used ? UINT64_MAX : work_used + units;  // saturating
    if (work_used > work_limit)
        runtime_error("the template did more than " + std::to_string(work_limit) +
                      " units of work (statements, loop iterations, elements, string bytes / 64): a runaway "
                      "loop, or an input far larger than any conversation");
}

WorkBudget::WorkBudget(uint64_t limit) : saved_used_(work_used), saved_limit_(work_limit) {
    work_used = 0;
    work_limit = limit;
}

WorkBudget::~WorkBudget() {
    work_used = saved_used_;
    work_limit = saved_limit_;
}

Value Value::undefined(std::string hint) {
    Value v;
    v.s = std::move(hint);
    return v;
}
Value Value::none() {
    Value v;
    v.kind = Kind::None;
    return v;
}
Value Value::boolean(bool b) {
    Value v;
    v.kind = Kind::Bool;
    v.b = b;
    return v;
}
Value Value::integer(int64_t i) {
    Value v;
    v.kind = Kind::Int;
    v.i = i;
    return v;
}
Value Value::number(double f) {
    Value v;
    v.kind = Kind::Float;
    v.f = f;
    return v;
}
Value Value::string(std::string s) {
    Value v;
    v.kind = Kind::String;
    v.s = std::move(s);
    return v;
}
uint32_t Value::nesting() const {
    if (kind == Kind::List) return depth;
    if (kind == Kind::Dict) return map->depth;
    return 0;
}

static uint32_t checked_depth(uint32_t d) {
    if (d > kMaxValueDepth) runtime_error("value nesting too deep (over " + std::to_string(kMaxValueDepth) + " levels)");
    return d;
}

Value Value::list(ValueList items) {
    Value v;
    v.kind = Kind::List;
    uint32_t d = 0;
    for (const auto &e : items) d = std::max(d, e.nesting());
    v.depth = checked_depth(d + 1);
    v.items = std::make_shared<ValueList>(std::move(items));
    return v;
}
Value Value::tuple(ValueList items) {
    Value v = list(std::move(items));
    v.is_tuple = true;
    return v;
}
Value Value::dict() {
    Value v;
    v.kind = Kind::Dict;
    v.map = std::make_shared<Dict>();
    return v;
}
Value Value::function(std::string name, NativeFn fn) {
    Value v;
    v.kind = Kind::Function;
    v.fn = std::make_shared<Function>(Function{std::move(name), std::move(fn)});
    return v;
}

static Value from_json_at(const nlohmann::ordered_json &j, uint32_t level);

Value Value::from_json(const nlohmann::ordered_json &j) { return from_json_at(j, 0); }

static Value from_json_at(const nlohmann::ordered_json &j, uint32_t level) {
    using T = nlohmann::ordered_json::value_t;
    checked_depth(level);
    switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer: return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
        uint64_t u = j.get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
        return Value::integer(static_cast<int64_t>(u));
    }
    case T::number_float: return Value::number(j.get<double>());
    case T::string: return Value::string(j.get<std::string>());
    case T::array: {
        ValueList items;
        items.reserve(j.size());
        for (const auto &e : j) items.push_back(from_json_at(e, level + 1));
        return Value::list(std::move(items));
    }
    case T::object: {
        Value v = Value::dict();
        v.map->entries.reserve(j.size());
        for (const auto &[k, e] : j.items()) {
            // JSON object keys are unique: append without Dict::set's lookup.
            Value item = from_json_at(e, level + 1);
            v.map->depth = std::max(v.map->depth, item.nesting() + 1);
            v.map->entries.emplace_back(k, std::move(item));
        }
        return v;
    }
    default: return Value::none();
    }
}

const Value *Dict::find(std::string_view key) const {
    for (const auto &e : entries)
        if (e.first == key) return &e.second;
    return nullptr;
}
Value *Dict::find(std::string_view key) {
    for (auto &e : entries)
        if (e.first == key) return &e.second;
    return nullptr;
}
void Dict::set(std::string key, Value v) {
    depth = std::max(depth, checked_depth(v.nesting() + 1));
    if (Value *old = find(key)) {
        *old = std::move(v);
        return;
    }
    entries.emplace_back(std::move(key), std::move(v));
}
bool Dict::erase(std::string_view key) {
    for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->first == key) {
            entries.erase(it);
            return true;
        }
    }
    return false;
}

Value Args::get(size_t index, std::string_view name, Value fallback) const {
    if (index < pos.size()) return pos[index];
    if (const Value *v = kwarg(name)) return *v;
    return fallback;
}
bool Args::has(size_t index, std::string_view name) const { return index < pos.size() || kwarg(name); }
const Value *Args::kwarg(std::string_view name) const {
    for (const auto &[k, v] : kw)
        if (k == name) return &v;
    return nullptr;
}
void Args::expect(std::string_view what, size_t max_pos, std::initializer_list<std::string_view> allowed) const {
    if (pos.size() > max_pos)
        runtime_error(std::string(what) + "() takes at most " + std::to_string(max_pos) + " positional arguments (" +
                      std::to_string(pos.size()) + " given)");
    for (const auto &[k, v] : kw)
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            runtime_error(std::string(what) + "() got an unexpected keyword argument '" + k + "'");
}

bool truthy(const Value &v) {
    switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return false;
    case Value::Kind::Bool: return v.b;
    case Value::Kind::Int: return v.i != 0;
    case Value::Kind::Float: return v.f != 0;
    case Value::Kind::String: return !v.s.empty();
    case Value::Kind::List: return v.gen || !v.items->empty();
    case Value::Kind::Dict: return v.map->is_namespace || v.map->is_loop || !v.map->entries.empty();
    case Value::Kind::Function: return true;
    }
    return false;
}

// ---- UTF-8 ----------------------------------------------------------------

// Decodes one code point at s[i]; invalid bytes decode as themselves (Latin-1).
static uint32_t decode_utf8(std::string_view s, size_t &i) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n <= 0 || i + static_cast<size_t>(n) >= s.size()) {
        ++i;
        return c;
    }
    uint32_t cp = c & (0x3f >> n);
    for (int k = 1; k <= n; ++k) {
        auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80) {
            ++i;
            return c;
        }
        cp = (cp << 6) | (cc & 0x3f);
    }
    i += n + 1;
    return cp;
}

std::vector<std::string> utf8_chars(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t start = i;
        decode_utf8(s, i);
        out.emplace_back(s.substr(start, i - start));
    }
    return out;
}

size_t utf8_length(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xc0) != 0x80) ++n;
    return n;
}

// ---- Python printing --------------------------------------------------------

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    // sci = [-]D[.DDD]e[+-]XX
    bool neg = sci[0] == '-';
    if (neg) sci.erase(0, 1);
    size_t e = sci.find('e');
    std::string mant = sci.substr(0, e);
    int exp = std::stoi(sci.substr(e + 1));
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    std::string out = neg ? "-" : "";
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out += "0.";
            out += std::string(static_cast<size_t>(-exp - 1), '0');
            out += digits;
        } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
            out += digits;
            out += std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0');
            out += ".0";
        } else {
            out += digits.substr(0, static_cast<size_t>(exp) + 1);
            out += '.';
            out += digits.substr(static_cast<size_t>(exp) + 1);
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
        out += '.';
        out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
    return out;
}

// Python's str.isprintable() for the code points that matter in practice.
static bool is_printable(uint32_t cp) {
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    if (cp <= 0xa0 || cp == 0xad) return false;
    if (cp == 0x061c || cp == 0x1680 || cp == 0x180e) return false;
    if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f))
        return false;
    if (cp == 0x3000 || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb)) return false;
    if ((cp >= 0xd800 && cp <= 0xf8ff) || cp >= 0xf0000) return false;
    return true;
}

std::string repr_string(std::string_view s) {
    char quote = '\'';
    if (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) quote = '"';
    std::string out(1, quote);
    size_t i = 0;
    while (i < s.size()) {
        size_t start = i;
        uint32_t cp = decode_utf8(s, i);
        char buf[16];
        if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
            out += '\\';
            out += static_cast<char>(cp);
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (is_printable(cp)) {
            out.append(s.substr(start, i - start));
        } else {
            if (cp <= 0xff)
                std::snprintf(buf, sizeof buf, "\\x%02x", cp);
            else if (cp <= 0xffff)
                std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            else
                std::snprintf(buf, sizeof buf, "\\U%08x", cp);
            out += buf;
        }
    }
    out += quote;
    return out;
}

std::string type_name(const Value &v) {
    switch (v.kind) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return v.gen ? "generator" : v.is_tuple ? "tuple" : "list";
    case Value::Kind::Dict: return v.map->is_namespace ? "Namespace" : v.map->is_loop ? "LoopContext" : "dict";
    case Value::Kind::Function: return "function";
    }
    return "object";
}

std::string to_str(const Value &v) {
    switch (v.kind) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::String: return v.s;
    default: return repr(v);
    }
}

static std::string repr_at(const Value &v, uint32_t level);

std::string repr(const Value &v) { return repr_at(v, 0); }

// Namespaces are mutable and may contain themselves: printing stops at a depth.
// Text repr() and tojson build stays within the engine's string limit (checked as it
// grows: a list may hold the same long string millions of times).
constexpr size_t kMaxJsonText = size_t{1} << 28;
static void check_text(size_t n) {
    if (n > kMaxJsonText) runtime_error("text too large (over " + std::to_string(kMaxJsonText) + " bytes)");
}

// The recursive walkers (repr, equality, JSON) charge one unit of work per value they
// visit: lists share their elements, so [x, x] nested 40 deep is cheap to build but
// has 2^40 leaves to print or compare.
static std::string repr_at(const Value &v, uint32_t level) {
    checked_depth(level);
    charge_work(1);
    switch (v.kind) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.b ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.i);
    case Value::Kind::Float: return float_repr(v.f);
    case Value::Kind::String: charge_work(v.s.size() / 64); return repr_string(v.s);
    case Value::Kind::List: {
        if (v.gen) return "<generator object>";
        std::string out = v.is_tuple ? "(" : "[";
        for (size_t k = 0; k < v.items->size(); ++k) {
            if (k) out += ", ";
            out += repr_at((*v.items)[k], level + 1);
            check_text(out.size());
        }
        if (v.is_tuple && v.items->size() == 1) out += ",";
        out += v.is_tuple ? ")" : "]";
        return out;
    }
    case Value::Kind::Dict: {
        std::string out = v.map->is_namespace ? "<Namespace {" : "{";
        bool first = true;
        for (const auto &[k, e] : v.map->entries) {
            if (!first) out += ", ";
            first = false;
            out += repr(key_value(k)) + ": " + repr_at(e, level + 1);
            check_text(out.size());
        }
        out += v.map->is_namespace ? "}>" : "}";
        return out;
    }
    case Value::Kind::Function: return "<function " + v.fn->name + ">";
    }
    return "";
}

// ---- comparison ------------------------------------------------------------

static bool equals_at(const Value &a, const Value &b, uint32_t level);

bool equals(const Value &a, const Value &b) { return equals_at(a, b, 0); }

static bool equals_at(const Value &a, const Value &b, uint32_t level) {
    checked_depth(level);
    charge_work(1);
    if (a.is_number() && b.is_number()) {
        if (a.kind == Value::Kind::Float || b.kind == Value::Kind::Float) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.s == b.s;
    case Value::Kind::List:
        if (a.gen || b.gen) return a.items == b.items;
        if (a.is_tuple != b.is_tuple || a.items->size() != b.items->size()) return false;
        for (size_t k = 0; k < a.items->size(); ++k)
            if (!equals_at((*a.items)[k], (*b.items)[k], level + 1)) return false;
        return true;
    case Value::Kind::Dict:
        if (a.map == b.map) return true;
        if (a.map->is_namespace || b.map->is_namespace || a.map->entries.size() != b.map->entries.size())
            return false;
        for (const auto &[k, e] : a.map->entries) {
            const Value *o = b.map->find(k);
            if (!o || !equals_at(e, *o, level + 1)) return false;
        }
        return true;
    case Value::Kind::Function: return a.fn == b.fn;
    default: return false;
    }
}

int compare(const Value &a, const Value &b) {
    if (a.is_number() && b.is_number()) {
        if (a.kind == Value::Kind::Float || b.kind == Value::Kind::Float) {
            double x = a.as_double(), y = b.as_double();
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    if (a.is_list() && b.is_list() && a.is_tuple == b.is_tuple && !a.gen && !b.gen) {
        size_t n = std::min(a.items->size(), b.items->size());
        for (size_t k = 0; k < n; ++k) {
            const Value &x = (*a.items)[k], &y = (*b.items)[k];
            if (!equals(x, y)) return compare(x, y);
        }
        return a.items->size() < b.items->size() ? -1 : a.items->size() > b.items->size() ? 1 : 0;
    }
    runtime_error("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

size_t length(const Value &v) {
    switch (v.kind) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return utf8_length(v.s);
    case Value::Kind::List:
        if (v.gen) break;
        return v.items->size();
    case Value::Kind::Dict: return v.map->entries.size();
    default: break;
    }
    runtime_error("object of type '" + type_name(v) + "' has no len()");
}

bool contains(const Value &container, const Value &item) {
    switch (container.kind) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
        if (!item.is_string())
            runtime_error("'in <string>' requires string as left operand, not " + type_name(item));
        return container.s.find(item.s) != std::string::npos;
    case Value::Kind::List:
        for (const auto &e : *container.items)
            if (equals(e, item)) return true;
        return false;
    case Value::Kind::Dict:
        if (container.map->is_namespace || container.map->is_loop)
            runtime_error("argument of type '" + type_name(container) + "' is not iterable");
        if (item.is_list() || item.is_dict()) runtime_error("unhashable type: '" + type_name(item) + "'");
        return !item.is_undefined() && container.map->find(dict_key(item)) != nullptr;
    default: runtime_error("argument of type '" + type_name(container) + "' is not iterable");
    }
}

uint64_t copy_units(const ValueList &items) {
    uint64_t bytes = 0;
    for (const Value &e : items)
        if (e.kind == Value::Kind::String) bytes += e.s.size();
    return items.size() + bytes / 64;
}

ValueList iterate(const Value &v) {
    switch (v.kind) {
    case Value::Kind::String: charge_work(v.s.size()); break;
    case Value::Kind::List: charge_work(copy_units(*v.items)); break;
    case Value::Kind::Dict: charge_work(v.map->entries.size()); break;
    default: break;
    }
    switch (v.kind) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::String: {
        ValueList out;
        for (auto &c : utf8_chars(v.s)) out.push_back(Value::string(std::move(c)));
        return out;
    }
    case Value::Kind::List: return *v.items;
    case Value::Kind::Dict: {
        if (v.map->is_namespace || v.map->is_loop) break;
        ValueList out;
        out.reserve(v.map->entries.size());
        for (const auto &e : v.map->entries) out.push_back(key_value(e.first));
        return out;
    }
    default: break;
    }
    runtime_error("'" + type_name(v) + "' object is not iterable");
}

// ---- JSON -----------------------------------------------------------------

static void json_string(std::string &out, std::string_view s, bool ensure_ascii) {
    out += '"';
    size_t i = 0;
    while (i < s.size()) {
        size_t start = i;
        uint32_t cp = decode_utf8(s, i);
        char buf[16];
        switch (cp) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (cp < 0x20) {
                std::snprintf(buf, sizeof buf, "\\u%04x", cp);
                out += buf;
            } else if (ensure_ascii && cp > 0x7e) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
                } else {
                    std::snprintf(buf, sizeof buf, "\\u%04x", cp);
                }
                out += buf;
            } else {
                out.append(s.substr(start, i - start));
            }
        }
    }
    out += '"';
}

static void json_value(std::string &out, const Value &v, const JsonOptions &o, int level) {
    if (static_cast<uint32_t>(level) > kMaxValueDepth) runtime_error("maximum recursion depth exceeded while encoding a JSON object");
    charge_work(1);
    auto newline = [&](int lvl) {
        if (o.indent < 0) return;
        out += '\n';
        for (int k = 0; k < lvl; ++k) {
            // Indentation grows with depth times the indent: check before writing each level.
            if (out.size() + o.indent_str.size() > kMaxJsonText)
                runtime_error("JSON text too large (over " + std::to_string(kMaxJsonText) + " bytes)");
            out += o.indent_str;
        }
    };
    switch (v.kind) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.b ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.i); return;
    case Value::Kind::Float:
        if (std::isnan(v.f))
            out += "NaN";
        else if (std::isinf(v.f))
            out += v.f < 0 ? "-Infinity" : "Infinity";
        else
            out += float_repr(v.f);
        return;
    case Value::Kind::String:
        charge_work(v.s.size() / 64);
        json_string(out, v.s, o.ensure_ascii);
        check_text(out.size());
        return;
    case Value::Kind::List: {
        if (v.gen) break;
        if (v.items->empty()) {
            out += "[]";
            return;
        }
        out += '[';
        for (size_t k = 0; k < v.items->size(); ++k) {
            if (k) out += o.item_sep;
            newline(level + 1);
            json_value(out, (*v.items)[k], o, level + 1);
        }
        newline(level);
        out += ']';
        return;
    }
    case Value::Kind::Dict: {
        if (v.map->is_namespace || v.map->is_loop) break;
        if (v.map->entries.empty()) {
            out += "{}";
            return;
        }
        std::vector<const std::pair<std::string, Value> *> entries;
        for (const auto &e : v.map->entries) entries.push_back(&e);
        if (o.sort_keys)
            std::stable_sort(entries.begin(), entries.end(),
                             [](const auto *x, const auto *y) { return x->first < y->first; });
        out += '{';
        bool first = true;
        for (const auto *e : entries) {
            if (!first) out += o.item_sep;
            first = false;
            newline(level + 1);
            if (!e->first.empty() && e->first[0] == '\x01') {
                Value k = key_value(e->first);
                json_string(out, k.is_none() ? "null" : k.kind == Value::Kind::Bool ? (k.b ? "true" : "false") : to_str(k), o.ensure_ascii);
            } else {
                json_string(out, e->first, o.ensure_ascii);
            }
            out += o.key_sep;
            json_value(out, e->second, o, level + 1);
        }
        newline(level);
        out += '}';
        return;
    }
    default: break;
    }
    runtime_error("Object of type " + type_name(v) + " is not JSON serializable");
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string dict_key(const Value &key) {
    if (key.is_string()) return key.s;
    std::string k(1, '\x01');
    k += repr(key);
    return k;
}

Value key_value(const std::string &key) {
    if (key.empty() || key[0] != '\x01') return Value::string(key);
    std::string r = key.substr(1);
    if (r == "None") return Value::none();
    if (r == "True" || r == "False") return Value::boolean(r == "True");
    if (r.find_first_of(".enai") != std::string::npos) return Value::number(std::strtod(r.c_str(), nullptr));
    return Value::integer(std::strtoll(r.c_str(), nullptr, 10));
}

std::string to_json(const Value &v, const JsonOptions &opts) {
    std::string out;
    json_value(out, v, opts, 0);
    return out;
}

} // namespace muse::jinja
