// Values of the Jinja template language, modelled on the Python objects jinja2
// sees when Hugging Face transformers renders a chat template: None, bool, int,
// float, str, list/tuple, dict, callables, and jinja2's default Undefined.
// Printing, comparison and JSON output follow Python byte for byte, because the
// rendered prompt must match what the model was trained on.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace muse::jinja {

// A runtime error without a line yet; the interpreter adds the template line.
struct RuntimeError {
    std::string message;
};
[[noreturn]] void runtime_error(std::string message);

// The work budget of the render running on this thread. Templates have loops and
// the engine has no clock, so everything a template can repeat without bound is
// charged: statements executed, loop iterations, elements iterated or made by
// range(), list elements and string bytes (per 64) built. Past the budget the render
// fails with a clear error instead of running for hours (nested loops over big
// ranges). Outside a render nothing is counted.
void charge_work(uint64_t units);
class WorkBudget {
public:
    explicit WorkBudget(uint64_t limit);  // installs a budget for this thread's render
    ~WorkBudget();                        // restores the previous one
    WorkBudget(const WorkBudget &) = delete;
    WorkBudget &operator=(const WorkBudget &) = delete;

private:
    uint64_t saved_used_, saved_limit_;
};

class Value;
struct Dict;
struct Function;
struct Args;
class Interpreter;

using ValueList = std::vector<Value>;
using NativeFn = std::function<Value(Interpreter &, Args &)>;

class Value {
public:
    enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

    Value() = default;
    static Value undefined(std::string hint = {});
    static Value none();
    static Value boolean(bool b);
    static Value integer(int64_t i);
    static Value number(double f);
    static Value string(std::string s);
    static Value list(ValueList items = {});
    static Value tuple(ValueList items);
    static Value dict();
    static Value function(std::string name, NativeFn fn);
    static Value from_json(const nlohmann::ordered_json &j);

    Kind kind = Kind::Undefined;
    bool is_tuple = false;
    bool gen = false;  // List: a one-pass iterator (jinja2's map/select/... return generators)
    bool safe = false; // String: markupsafe.Markup (`|safe`, `|e`); `+` escapes plain strings into it
    uint32_t depth = 0; // List: nesting depth, bounded so printing and freeing cannot overflow the stack
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;                    // String; for Undefined: the error to raise when used
    std::shared_ptr<ValueList> items;      // ValueList
    std::shared_ptr<Dict> map;        // Dict (also a namespace or a loop object)
    std::shared_ptr<Function> fn;     // Function; a loop object is callable too

    bool is_undefined() const { return kind == Kind::Undefined; }
    bool is_none() const { return kind == Kind::None; }
    bool is_string() const { return kind == Kind::String; }
    bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
    bool is_list() const { return kind == Kind::List; }
    bool is_dict() const { return kind == Kind::Dict; }
    bool is_callable() const { return fn != nullptr; }
    bool is_generator() const { return kind == Kind::List && gen; }
    bool is_iterable() const {
        return kind == Kind::List || kind == Kind::Dict || kind == Kind::String || kind == Kind::Undefined;
    }
    uint32_t nesting() const;
    double as_double() const { return kind == Kind::Float ? f : static_cast<double>(kind == Kind::Bool ? b : i); }
    int64_t as_int() const { return kind == Kind::Bool ? b : i; }
};

struct Dict {
    std::vector<std::pair<std::string, Value>> entries;
    uint32_t depth = 1; // nesting depth, see Value::depth
    bool is_namespace = false;
    bool is_loop = false;

    const Value *find(std::string_view key) const;
    Value *find(std::string_view key);
    void set(std::string key, Value v);
    bool erase(std::string_view key);
};

struct Function {
    std::string name;
    NativeFn call;
};

// Arguments of a call: positional then keyword, as Python passes them.
struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;

    // The i-th positional argument or the keyword `name`; `fallback` when neither.
    Value get(size_t index, std::string_view name, Value fallback = Value::undefined()) const;
    bool has(size_t index, std::string_view name) const;
    const Value *kwarg(std::string_view name) const;
    // Fails with a TypeError like Python's when more than `max_pos` positionals or
    // keywords outside `allowed` are given.
    void expect(std::string_view what, size_t max_pos, std::initializer_list<std::string_view> allowed) const;
};

// Containers nest at most this deep (a hostile template could otherwise build a
// million-deep list whose printing or destruction overflows the stack).
constexpr uint32_t kMaxValueDepth = 512;

// Python semantics.
bool truthy(const Value &v);
std::string to_str(const Value &v);          // str(v)
std::string repr(const Value &v);            // repr(v)
std::string repr_string(std::string_view s); // repr of a str
std::string float_repr(double d);            // repr of a float
std::string type_name(const Value &v);       // 'dict', 'str', 'NoneType', ...
bool equals(const Value &a, const Value &b);
int compare(const Value &a, const Value &b); // <0, 0, >0; raises TypeError for unorderable
size_t length(const Value &v);               // len(v); raises for unsized
bool contains(const Value &container, const Value &item); // item in container
ValueList iterate(const Value &v);
// Work of copying `items` (charge_work units): one per element plus the bytes / 64 of
// string elements, which a Value holds by value (lists and dicts are shared, O(1)).
uint64_t copy_units(const ValueList &items);                // list(v): dict keys, str code points
std::string html_escape(std::string_view s);

// Dict keys are strings; a non-string key (int, float, bool, None) is stored as
// "\x01" + its repr, so it neither collides with a string key nor loses its type.
std::string dict_key(const Value &key);
Value key_value(const std::string &key);

// UTF-8 helpers: strings index by code point, as Python str does.
std::vector<std::string> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

struct JsonOptions {
    int indent = -1; // -1: None (one line)
    std::string indent_str;
    std::string item_sep = ", ";
    std::string key_sep = ": ";
    bool sort_keys = false;
    bool ensure_ascii = false;
};
// json.dumps(v, ...) as Python's json module writes it.
std::string to_json(const Value &v, const JsonOptions &opts);

} // namespace muse::jinja
