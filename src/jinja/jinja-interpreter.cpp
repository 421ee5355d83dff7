#include "jinja/jinja-interpreter.h"

#include "core/stack-guard.h"

#include "core/error.h"

#include <cmath>
#include <limits>

namespace muse::jinja {

namespace {

// Macro and recursive-loop calls, and nested evaluation frames: hostile
// templates must fail cleanly, not overflow the stack.
constexpr int kMaxCallDepth = 500;
constexpr int kMaxFrameDepth = 4000;
// No string (bytes) or list (elements) a template builds may exceed these.
constexpr size_t kMaxString = size_t{1} << 28;
constexpr size_t kMaxList = size_t{1} << 22;

// Checks the size of a string or list about to be built, and charges building it.
void check_size(size_t n, bool list = false) {
    charge_work(list ? n : n / 64);
    size_t limit = list ? kMaxList : kMaxString;
    if (n > limit) runtime_error(std::string(list ? "list" : "string") + " too large (over " + std::to_string(limit) + ")");
}

// Work of a filter or method on `v`: its size (string bytes / 64, elements), charged
// once per call so that a filter over a big value inside a loop is bounded, without
// charging a result again and again while it is built.
uint64_t size_units(const Value &v) {
    switch (v.kind) {
    case Value::Kind::String: return v.s.size() / 64;
    case Value::Kind::List: return v.items->size();
    case Value::Kind::Dict: return v.map->entries.size();
    default: return 0;
    }
}

// The rendering so far (charged piece by piece as it is appended, not here).
void check_output(size_t n) {
    if (n > kMaxString) runtime_error("output too large (over " + std::to_string(kMaxString) + " bytes)");
}

[[noreturn]] void raise_undefined(const Value &u) {
    runtime_error(u.s.empty() ? std::string("value is undefined") : u.s);
}

// jinja2's object_type_repr, quoted as its Undefined messages quote it.
std::string object_desc(const Value &v, bool quoted = true) {
    std::string d = v.is_none() ? "None" : type_name(v) + " object";
    return quoted ? "'" + d + "'" : d;
}

// Python's slice.indices().
void slice_indices(int64_t len, const Value &start, const Value &stop, const Value &step, int64_t &b, int64_t &e,
                   int64_t &st) {
    auto as_index = [](const Value &v) {
        if (v.kind != Value::Kind::Int && v.kind != Value::Kind::Bool)
            runtime_error("slice indices must be integers or None");
        return v.as_int();
    };
    st = step.is_none() || step.is_undefined() ? 1 : as_index(step);
    if (st == 0) runtime_error("slice step cannot be zero");
    int64_t lower = st < 0 ? -1 : 0, upper = st < 0 ? len - 1 : len;
    auto adjust = [&](const Value &v, int64_t dflt) {
        if (v.is_none() || v.is_undefined()) return dflt;
        int64_t x = as_index(v);
        if (x < 0) {
            x += len;
            if (x < lower) x = lower;
        } else if (x > upper) {
            x = upper;
        }
        return x;
    };
    b = adjust(start, st < 0 ? upper : lower);
    e = adjust(stop, st < 0 ? lower : upper);
}

std::vector<int64_t> slice_positions(int64_t len, const Value &start, const Value &stop, const Value &step) {
    int64_t b, e, st;
    slice_indices(len, start, stop, step, b, e, st);
    std::vector<int64_t> out;
    for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(k);
    return out;
}

int64_t checked(bool overflow, int64_t v) {
    if (overflow) runtime_error("integer overflow (muse supports 64-bit integers only)");
    return v;
}

// Python's float floor division and modulo.
void float_divmod(double vx, double wx, double &floordiv, double &mod) {
    if (wx == 0) runtime_error("float division by zero");
    mod = std::fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod != 0) {
        if ((wx < 0) != (mod < 0)) {
            mod += wx;
            div -= 1.0;
        }
    } else {
        mod = std::copysign(0.0, wx);
    }
    if (div != 0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = std::copysign(0.0, vx / wx);
    }
}

// printf-style `'%s' % x`, the subset templates use.
constexpr int64_t kMaxFormatWidth = 400;
std::string percent_format(const std::string &fmt, const Value &arg) {
    ValueList args = arg.is_list() && arg.is_tuple ? *arg.items : ValueList{arg};
    size_t next = 0;
    std::string out;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        if (++i >= fmt.size()) runtime_error("incomplete format");
        if (fmt[i] == '%') {
            out += '%';
            continue;
        }
        std::string spec = "%";
        int64_t number = 0;  // the width or precision being read
        while (i < fmt.size() && std::string_view("-+ 0#.123456789").find(fmt[i]) != std::string_view::npos) {
            number = fmt[i] >= '0' && fmt[i] <= '9' ? std::min<int64_t>(number * 10 + (fmt[i] - '0'), 1000000) : 0;
            // The conversions below go through a 512-byte buffer: a wider field would be cut short.
            if (number > kMaxFormatWidth)
                runtime_error("format width or precision too large (over " + std::to_string(kMaxFormatWidth) + ")");
            spec += fmt[i++];
        }
        if (i >= fmt.size()) runtime_error("incomplete format");
        char conv = fmt[i];
        if (next >= args.size()) runtime_error("not enough arguments for format string");
        const Value &a = args[next++];
        char buf[512];
        switch (conv) {
        case 's': out += to_str(a); break;
        case 'r': out += repr(a); break;
        case 'd':
        case 'i':
            if (!a.is_number()) runtime_error("%d format: a real number is required, not " + type_name(a));
            std::snprintf(buf, sizeof buf, (spec + "lld").c_str(),
                          static_cast<long long>(a.kind == Value::Kind::Float ? static_cast<int64_t>(a.f) : a.as_int()));
            out += buf;
            break;
        case 'f':
        case 'e':
        case 'g':
            if (!a.is_number()) runtime_error("must be real number, not " + type_name(a));
            std::snprintf(buf, sizeof buf, (spec + conv).c_str(), a.as_double());
            out += buf;
            break;
        case 'x':
        case 'X':
            std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), static_cast<long long>(a.as_int()));
            out += buf;
            break;
        default: runtime_error(std::string("unsupported format character '") + conv + "'");
        }
    }
    if (next < args.size() && !(args.size() == 1 && args[0].is_dict()))
        runtime_error("not all arguments converted during string formatting");
    return out;
}

} // namespace

const Value *Scope::lookup(const std::string &name) const {
    for (const Scope *s = this; s; s = s->parent.get()) {
        auto it = s->vars.find(name);
        if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
}

Interpreter::~Interpreter() {
    for (const auto &ns : namespaces_) ns->entries.clear();
}

std::string Interpreter::render(const Body &body, const nlohmann::ordered_json &context) {
    auto root = std::make_shared<Scope>();
    install_globals(*this, *root);
    if (context.is_object())
        for (const auto &[k, v] : context.items()) root->vars[k] = Value::from_json(v);
    std::string out;
    exec_body(body, root, out);
    return out;
}

// ---- statements -----------------------------------------------------------

Interpreter::Flow Interpreter::exec_body(const Body &body, const std::shared_ptr<Scope> &scope, std::string &out) {
    for (const auto &s : body) {
        Flow f = exec(*s, scope, out);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

void Interpreter::assign(const Stmt &s, const Value &v, Scope &scope) {
    if (!s.unpack) {
        scope.vars[s.targets[0]] = v;
        return;
    }
    ValueList items = iterate(v);
    if (items.size() != s.targets.size())
        runtime_error(str_cat(items.size() < s.targets.size() ? "not enough" : "too many",
                              " values to unpack (expected ", s.targets.size(), ", got ", items.size(), ")"));
    for (size_t k = 0; k < items.size(); ++k) scope.vars[s.targets[k]] = items[k];
}

Interpreter::Flow Interpreter::exec(const Stmt &s, const std::shared_ptr<Scope> &scope, std::string &out) {
    struct FrameGuard {
        int &d;
        explicit FrameGuard(int &depth) : d(depth) {
            if (++d > kMaxFrameDepth) runtime_error("maximum template nesting depth exceeded");
            if (stack_nearly_exhausted()) {
                --d;
                runtime_error("maximum recursion depth exceeded (stack nearly exhausted)");
            }
        }
        ~FrameGuard() { --d; }
    };
    try {
        FrameGuard guard(frame_depth_);
        charge_work(1);
        switch (s.kind) {
        case Stmt::Kind::Text:
            charge_work(s.text.size() / 64);
            out += s.text;
            check_output(out.size());
            break;
        case Stmt::Kind::Output: {
            const std::string piece = to_str(eval(*s.expr, scope));
            charge_work(piece.size() / 64);
            out += piece;
            check_output(out.size());
            break;
        }
        case Stmt::Kind::If:
            return exec_body(truthy(eval(*s.expr, scope)) ? s.body : s.else_body, scope, out);
        case Stmt::Kind::For: exec_for(s, eval(*s.expr, scope), scope, out, 0); break;
        case Stmt::Kind::Set: {
            Value v = eval(*s.expr, scope);
            if (s.name.empty()) {
                assign(s, v, *scope);
                break;
            }
            const Value *ns = scope->lookup(s.targets[0]);
            if (!ns || !ns->is_dict() || !ns->map->is_namespace)
                runtime_error("cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
            ns->map->set(s.name, std::move(v));
            break;
        }
        case Stmt::Kind::SetBlock: {
            // Like jinja2, the captured body is a scope of its own.
            auto inner = std::make_shared<Scope>();
            inner->parent = scope;
            std::string captured;
            exec_body(s.body, inner, captured);
            Value v = Value::string(std::move(captured));
            if (s.expr) v = apply_filter_chain(*s.expr, v, scope);
            scope->vars[s.targets[0]] = std::move(v);
            break;
        }
        case Stmt::Kind::Macro: scope->vars[s.name] = make_macro(s, scope, false); break;
        case Stmt::Kind::CallBlock: {
            const Expr &call = *s.expr;
            Value callee = eval(*call.children[0], scope);
            Args args;
            eval_args(call, 1, scope, args);
            args.kw.emplace_back("caller", make_macro(s, scope, true));
            out += to_str(this->call(callee, args));
            break;
        }
        case Stmt::Kind::FilterBlock: {
            auto inner = std::make_shared<Scope>();
            inner->parent = scope;
            std::string captured;
            exec_body(s.body, inner, captured);
            out += to_str(apply_filter_chain(*s.expr, Value::string(std::move(captured)), scope));
            break;
        }
        case Stmt::Kind::With: {
            auto inner = std::make_shared<Scope>();
            inner->parent = scope;
            for (const auto &p : s.params) inner->vars[p.name] = eval(*p.fallback, scope);
            return exec_body(s.body, inner, out);
        }
        case Stmt::Kind::Scope: {
            auto inner = std::make_shared<Scope>();
            inner->parent = scope;
            exec_body(s.body, inner, out);
            break;
        }
        case Stmt::Kind::Break: return Flow::Break;
        case Stmt::Kind::Continue: return Flow::Continue;
        }
    } catch (const RuntimeError &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "template line ", s.line, ": ", e.message);
    }
    return Flow::Normal;
}

void Interpreter::exec_for(const Stmt &s, const Value &iterable, const std::shared_ptr<Scope> &scope,
                           std::string &out, int depth) {
    if (iterable.kind == Value::Kind::Dict && (iterable.map->is_loop || iterable.map->is_namespace))
        runtime_error("'" + type_name(iterable) + "' object is not iterable");
    ValueList items = iterate(iterable);
    if (s.cond) {
        ValueList kept;
        for (auto &item : items) {
            auto tmp = std::make_shared<Scope>();
            tmp->parent = scope;
            assign(s, item, *tmp);
            if (truthy(eval(*s.cond, tmp))) kept.push_back(std::move(item));
        }
        items = std::move(kept);
    }
    if (items.empty()) {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        exec_body(s.else_body, inner, out);
        return;
    }
    Value loop = Value::dict();
    auto &d = *loop.map;
    d.is_loop = true;
    const int64_t n = static_cast<int64_t>(items.size());
    const char *const fields[] = {"index", "index0", "revindex", "revindex0", "first", "last",
                                  "length", "depth", "depth0", "previtem", "nextitem"};
    for (const char *f : fields) d.entries.emplace_back(f, Value());
    std::weak_ptr<Dict> weak_loop = loop.map;
    d.entries.emplace_back("cycle", Value::function("cycle", [weak_loop](Interpreter &, Args &args) {
                               auto l = weak_loop.lock();
                               if (args.pos.empty()) runtime_error("no items for cycling given");
                               int64_t i0 = l ? l->entries[1].second.i : 0;
                               return args.pos[static_cast<size_t>(i0) % args.pos.size()];
                           }));
    auto last_changed = std::make_shared<ValueList>();
    auto changed_seen = std::make_shared<bool>(false);
    d.entries.emplace_back("changed", Value::function("changed", [last_changed, changed_seen](Interpreter &, Args &args) {
                               bool same = *changed_seen && last_changed->size() == args.pos.size();
                               for (size_t k = 0; same && k < args.pos.size(); ++k)
                                   same = equals((*last_changed)[k], args.pos[k]);
                               *changed_seen = true;
                               *last_changed = args.pos;
                               return Value::boolean(!same);
                           }));
    if (s.recursive) {
        std::weak_ptr<Scope> weak_scope = scope;
        const Stmt *sp = &s;
        loop.fn = std::make_shared<Function>(Function{"loop", [sp, weak_scope, depth](Interpreter &in, Args &args) {
                                                 auto sc = weak_scope.lock();
                                                 if (!sc || args.pos.size() != 1)
                                                     runtime_error("loop() takes exactly one iterable");
                                                 if (++in.call_depth_ > kMaxCallDepth) {
                                                     --in.call_depth_;
                                                     runtime_error("maximum recursion depth exceeded");
                                                 }
                                                 std::string o;
                                                 try {
                                                     in.exec_for(*sp, args.pos[0], sc, o, depth + 1);
                                                 } catch (...) {
                                                     --in.call_depth_;
                                                     throw;
                                                 }
                                                 --in.call_depth_;
                                                 return Value::string(std::move(o));
                                             }});
    }
    for (int64_t k = 0; k < n; ++k) {
        d.entries[0].second = Value::integer(k + 1);
        d.entries[1].second = Value::integer(k);
        d.entries[2].second = Value::integer(n - k);
        d.entries[3].second = Value::integer(n - k - 1);
        d.entries[4].second = Value::boolean(k == 0);
        d.entries[5].second = Value::boolean(k == n - 1);
        d.entries[6].second = Value::integer(n);
        d.entries[7].second = Value::integer(depth + 1);
        d.entries[8].second = Value::integer(depth);
        d.entries[9].second = k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("there is no previous item");
        d.entries[10].second = k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value::undefined("there is no next item");
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        assign(s, items[static_cast<size_t>(k)], *inner);
        inner->vars["loop"] = loop;
        charge_work(1);  // an iteration, even of an empty body
        if (exec_body(s.body, inner, out) == Flow::Break) break;
    }
}

Value Interpreter::make_macro(const Stmt &s, const std::shared_ptr<Scope> &scope, bool is_caller) {
    std::weak_ptr<Scope> weak = scope;
    const Stmt *sp = &s;
    std::string name = is_caller ? "caller" : s.name;
    return Value::function(name, [sp, weak, is_caller, name](Interpreter &in, Args &args) -> Value {
        auto closure = weak.lock();
        if (!closure) runtime_error("macro '" + name + "' called outside of the scope that defined it");
        auto local = std::make_shared<Scope>();
        local->parent = closure;
        const auto &params = sp->params;
        ValueList varargs;
        Value kwargs = Value::dict();
        std::vector<bool> bound(params.size(), false);
        for (size_t k = 0; k < args.pos.size(); ++k) {
            if (k < params.size()) {
                local->vars[params[k].name] = args.pos[k];
                bound[k] = true;
            } else {
                varargs.push_back(args.pos[k]);
            }
        }
        for (auto &[key, v] : args.kw) {
            if (key == "caller" && !is_caller) {
                if (!sp->uses_caller)
                    runtime_error("macro '" + name + "' was invoked with two values for the special caller argument. This is most likely a bug.");
                local->vars["caller"] = v;
                continue;
            }
            size_t idx = params.size();
            for (size_t k = 0; k < params.size(); ++k)
                if (params[k].name == key) idx = k;
            if (idx == params.size()) {
                kwargs.map->set(key, v);
                continue;
            }
            if (bound[idx]) runtime_error("macro '" + name + "' got multiple values for argument '" + key + "'");
            local->vars[key] = v;
            bound[idx] = true;
        }
        if (!is_caller && !varargs.empty() && !sp->uses_varargs)
            runtime_error(str_cat("macro '", name, "' takes not more than ", params.size(), " argument(s)"));
        if (!is_caller && !kwargs.map->entries.empty() && !sp->uses_kwargs)
            runtime_error("macro '" + name + "' takes no keyword argument '" + kwargs.map->entries[0].first + "'");
        if (++in.call_depth_ > kMaxCallDepth) {
            --in.call_depth_;
            runtime_error("maximum recursion depth exceeded");
        }
        std::string out;
        try {
            for (size_t k = 0; k < params.size(); ++k) {
                if (bound[k]) continue;
                local->vars[params[k].name] = params[k].fallback
                                                  ? in.eval(*params[k].fallback, local)
                                                  : Value::undefined("parameter '" + params[k].name + "' was not provided");
            }
            local->vars["varargs"] = Value::tuple(std::move(varargs));
            local->vars["kwargs"] = kwargs;
            in.exec_body(sp->body, local, out);
        } catch (...) {
            --in.call_depth_;
            throw;
        }
        --in.call_depth_;
        return Value::string(std::move(out));
    });
}

// ---- expressions ------------------------------------------------------------

Value Interpreter::call(const Value &callee, Args &args) {
    if (callee.is_undefined()) raise_undefined(callee);
    if (!callee.fn) runtime_error("'" + type_name(callee) + "' object is not callable");
    return callee.fn->call(*this, args);
}

Value Interpreter::getattr(const Value &obj, const std::string &name) {
    switch (obj.kind) {
    case Value::Kind::Undefined: raise_undefined(obj);
    case Value::Kind::Dict:
        if (obj.map->is_namespace || obj.map->is_loop) {
            if (const Value *v = obj.map->find(name)) return *v;
            return Value::undefined(object_desc(obj) + " has no attribute '" + name + "'");
        }
        break;
    default: break;
    }
    bool found = false;
    Value m = builtin_method(obj, name, found);
    if (found) {
        charge_work(size_units(obj));  // a bound method (str.replace, dict.items...) works on all of obj
        return m;
    }
    if (obj.is_dict())
        if (const Value *v = obj.map->find(name)) return *v;
    return Value::undefined(object_desc(obj) + " has no attribute '" + name + "'");
}

Value Interpreter::getitem(const Value &obj, const Value &key) {
    switch (obj.kind) {
    case Value::Kind::Undefined: raise_undefined(obj);
    case Value::Kind::Dict:
        if (key.is_string()) {
            if (const Value *v = obj.map->find(key.s)) return *v;
            if (!obj.map->is_namespace && !obj.map->is_loop) return getattr(obj, key.s);
        } else if (!key.is_undefined() && !obj.map->is_namespace) {
            if (const Value *v = obj.map->find(dict_key(key))) return *v;
        }
        if (key.is_string()) return Value::undefined(object_desc(obj) + " has no attribute " + repr(key));
        return Value::undefined(object_desc(obj, false) + " has no element " + repr(key));
    case Value::Kind::List:
    case Value::Kind::String: {
        if (obj.gen) return Value::undefined("'generator' object is not subscriptable");
        if (key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool) {
            int64_t n = static_cast<int64_t>(length(obj));
            int64_t k = key.as_int();
            if (k < 0) k += n;
            if (k < 0 || k >= n) return Value::undefined(object_desc(obj, false) + " has no element " + repr(key));
            if (obj.is_list()) return (*obj.items)[static_cast<size_t>(k)];
            if (obj.s.size() == static_cast<size_t>(n)) return Value::string(obj.s.substr(static_cast<size_t>(k), 1));
            return Value::string(utf8_chars(obj.s)[static_cast<size_t>(k)]);
        }
        if (key.is_string()) return getattr(obj, key.s);
        return Value::undefined(object_desc(obj, false) + " has no element " + repr(key));
    }
    default:
        if (key.is_string()) return getattr(obj, key.s);
        return Value::undefined(object_desc(obj, false) + " has no element " + repr(key));
    }
}

Value Interpreter::filter(const std::string &name, const Value &input, Args &args) {
    charge_work(1 + size_units(input));
    return builtin_filter(*this, name, input, args);
}

bool Interpreter::test(const std::string &name, const Value &input, Args &args) {
    return builtin_test(*this, name, input, args);
}

void Interpreter::eval_args(const Expr &e, size_t first, const std::shared_ptr<Scope> &scope, Args &args) {
    for (size_t k = first; k < e.children.size(); ++k) args.pos.push_back(eval(*e.children[k], scope));
    for (const auto &[key, v] : e.kwargs) args.kw.emplace_back(key, eval(*v, scope));
}

Value Interpreter::apply_filter_chain(const Expr &e, const Value &input, const std::shared_ptr<Scope> &scope) {
    Value in = e.children[0] ? apply_filter_chain(*e.children[0], input, scope) : input;
    Args args;
    eval_args(e, 1, scope, args);
    try {
        return filter(e.name, in, args);
    } catch (const RuntimeError &err) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "template line ", e.line, ": ", err.message);
    }
}

Value Interpreter::eval(const Expr &e, const std::shared_ptr<Scope> &scope) {
    if (++frame_depth_ > kMaxFrameDepth) {
        --frame_depth_;
        fail(MUSE_ERR_OUT_OF_RANGE, "template line ", e.line, ": maximum template nesting depth exceeded");
    }
    if (stack_nearly_exhausted()) {
        --frame_depth_;
        fail(MUSE_ERR_OUT_OF_RANGE, "template line ", e.line,
             ": maximum recursion depth exceeded (stack nearly exhausted)");
    }
    try {
        Value v = eval_inner(e, scope);
        --frame_depth_;
        return v;
    } catch (const RuntimeError &err) {
        --frame_depth_;
        fail(MUSE_ERR_INVALID_ARGUMENT, "template line ", e.line, ": ", err.message);
    } catch (...) {
        --frame_depth_;
        throw;
    }
}

Value Interpreter::binary_op(const std::string &op, const Value &a, const Value &b) {
    char c0 = op[0];
    if (op == "==") return Value::boolean(equals(a, b));
    if (op == "!=") return Value::boolean(!equals(a, b));
    if (op == "in") return Value::boolean(contains(b, a));
    if (op == "not in") return Value::boolean(!contains(b, a));
    if (a.is_undefined()) raise_undefined(a);
    if (b.is_undefined()) raise_undefined(b);
    if (c0 == '<' || c0 == '>') {
        int c = compare(a, b);
        if (op == "<") return Value::boolean(c < 0);
        if (op == ">") return Value::boolean(c > 0);
        if (op == "<=") return Value::boolean(c <= 0);
        return Value::boolean(c >= 0);
    }
    auto unsupported = [&]() -> Value {
        if (op == "+" && a.is_string()) runtime_error("can only concatenate str (not \"" + type_name(b) + "\") to str");
        runtime_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (a.is_number() && b.is_number()) {
        bool ints = a.kind != Value::Kind::Float && b.kind != Value::Kind::Float;
        if (ints) {
            int64_t x = a.as_int(), y = b.as_int(), r = 0;
            if (op == "+" || op == "-" || op == "*") {
                bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                                : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                            : __builtin_mul_overflow(x, y, &r);
                return Value::integer(checked(overflow, r));
            }
            if (op == "/") {
                if (y == 0) runtime_error("division by zero");
                return Value::number(static_cast<double>(x) / static_cast<double>(y));
            }
            if (op == "//" || op == "%") {
                if (y == 0) runtime_error("integer division or modulo by zero");
                if (x == std::numeric_limits<int64_t>::min() && y == -1) checked(true, 0);
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    --q;
                    m += y;
                }
                return Value::integer(op == "//" ? q : m);
            }
            if (op == "**") {
                if (y < 0) {
                    if (x == 0) runtime_error("0.0 cannot be raised to a negative power");
                    return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
                }
                int64_t result = 1, base = x;
                while (y > 0) {
                    if (y & 1) {
                        bool overflow = __builtin_mul_overflow(result, base, &result);
                        checked(overflow, 0);
                    }
                    y >>= 1;
                    if (y) {
                        bool overflow = __builtin_mul_overflow(base, base, &base);
                        checked(overflow, 0);
                    }
                }
                return Value::integer(result);
            }
        } else {
            double x = a.as_double(), y = b.as_double();
            if (op == "+") return Value::number(x + y);
            if (op == "-") return Value::number(x - y);
            if (op == "*") return Value::number(x * y);
            if (op == "/") {
                if (y == 0) runtime_error("float division by zero");
                return Value::number(x / y);
            }
            if (op == "//" || op == "%") {
                double q, m;
                float_divmod(x, y, q, m);
                return Value::number(op == "//" ? q : m);
            }
            if (op == "**") {
                if (x == 0 && y < 0) runtime_error("0.0 cannot be raised to a negative power");
                double r = std::pow(x, y);
                if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) runtime_error("(34, 'Numerical result out of range')");
                return Value::number(r);
            }
        }
        return unsupported();
    }
    if (op == "+") {
        if (a.is_string() && b.is_string()) {
            check_size(a.s.size() + b.s.size());
            // markupsafe: Markup + str escapes the str, and so does str + Markup.
            if (a.safe || b.safe) {
                Value r = Value::string((a.safe ? a.s : html_escape(a.s)) + (b.safe ? b.s : html_escape(b.s)));
                r.safe = true;
                return r;
            }
            return Value::string(a.s + b.s);
        }
        if (a.is_list() && b.is_list() && a.is_tuple == b.is_tuple && !a.gen && !b.gen) {
            check_size(a.items->size() + b.items->size(), true);
            charge_work(copy_units(*a.items) + copy_units(*b.items));
            ValueList r = *a.items;
            r.insert(r.end(), b.items->begin(), b.items->end());
            Value v = Value::list(std::move(r));
            v.is_tuple = a.is_tuple;
            return v;
        }
        return unsupported();
    }
    if (op == "*") {
        const Value *seq = &a, *count = &b;
        if (a.kind == Value::Kind::Int || a.kind == Value::Kind::Bool) std::swap(seq, count);
        if ((count->kind == Value::Kind::Int || count->kind == Value::Kind::Bool) && (seq->is_string() || (seq->is_list() && !seq->gen))) {
            int64_t times = std::max<int64_t>(0, count->as_int());
            size_t unit = seq->is_string() ? seq->s.size() : seq->items->size();
            size_t cap = seq->is_string() ? kMaxString : kMaxList;
            if (unit && static_cast<uint64_t>(times) > cap / unit) runtime_error("repeated sequence is too large");
            if (seq->is_list() && times > 0) {
                // Each copy copies the string elements' bytes: charge them before copying.
                const uint64_t per = copy_units(*seq->items);
                if (per > UINT64_MAX / static_cast<uint64_t>(times)) charge_work(UINT64_MAX / 2);
                else charge_work(per * static_cast<uint64_t>(times));
            }
            if (seq->is_string()) {
                std::string r;
                r.reserve(unit * static_cast<size_t>(times));
                for (int64_t k = 0; k < times; ++k) r += seq->s;
                Value v = Value::string(std::move(r));
                v.safe = seq->safe;
                return v;
            }
            ValueList r;
            for (int64_t k = 0; k < times; ++k) r.insert(r.end(), seq->items->begin(), seq->items->end());
            Value v = Value::list(std::move(r));
            v.is_tuple = seq->is_tuple;
            return v;
        }
        return unsupported();
    }
    if (op == "%" && a.is_string()) return Value::string(percent_format(a.s, b));
    return unsupported();
}

Value Interpreter::eval_inner(const Expr &e, const std::shared_ptr<Scope> &scope) {
    switch (e.kind) {
    case Expr::Kind::Literal: return e.value;
    case Expr::Kind::Name: {
        if (const Value *v = scope->lookup(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
    }
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
        ValueList items;
        items.reserve(e.children.size());
        for (const auto &c : e.children) items.push_back(eval(*c, scope));
        return e.kind == Expr::Kind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case Expr::Kind::Dict: {
        Value d = Value::dict();
        for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
            Value key = eval(*e.children[k], scope);
            if (key.is_undefined()) raise_undefined(key);
            d.map->set(dict_key(key), eval(*e.children[k + 1], scope));
        }
        return d;
    }
    case Expr::Kind::Attr: return getattr(eval(*e.children[0], scope), e.name);
    case Expr::Kind::Subscript: {
        Value obj = eval(*e.children[0], scope);
        const Expr &key = *e.children[1];
        if (key.kind != Expr::Kind::Slice) return getitem(obj, eval(key, scope));
        Value parts[3];
        for (int k = 0; k < 3; ++k) parts[k] = key.children[k] ? eval(*key.children[k], scope) : Value::none();
        if (obj.is_undefined()) raise_undefined(obj);
        if (obj.is_generator()) return Value::undefined("'generator' object is not subscriptable");
        if (obj.is_list()) {
            ValueList r;
            for (int64_t p : slice_positions(static_cast<int64_t>(obj.items->size()), parts[0], parts[1], parts[2]))
                r.push_back((*obj.items)[static_cast<size_t>(p)]);
            Value v = Value::list(std::move(r));
            v.is_tuple = obj.is_tuple;
            return v;
        }
        if (obj.is_string()) {
            auto chars = utf8_chars(obj.s);
            std::string r;
            for (int64_t p : slice_positions(static_cast<int64_t>(chars.size()), parts[0], parts[1], parts[2]))
                r += chars[static_cast<size_t>(p)];
            return Value::string(std::move(r));
        }
        runtime_error("'" + type_name(obj) + "' object is not subscriptable");
    }
    case Expr::Kind::Slice: runtime_error("slice outside of a subscript");
    case Expr::Kind::Call: {
        Value callee = eval(*e.children[0], scope);
        Args args;
        eval_args(e, 1, scope, args);
        return call(callee, args);
    }
    case Expr::Kind::Filter: {
        Value in = eval(*e.children[0], scope);
        Args args;
        eval_args(e, 1, scope, args);
        return filter(e.name, in, args);
    }
    case Expr::Kind::Test: {
        Value in = eval(*e.children[0], scope);
        Args args;
        eval_args(e, 1, scope, args);
        bool r = test(e.name, in, args);
        return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Kind::Unary: {
        Value v = eval(*e.children[0], scope);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.is_undefined()) raise_undefined(v);
        if (!v.is_number()) runtime_error("bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v.kind == Value::Kind::Bool ? Value::integer(v.b) : v;
        if (v.kind == Value::Kind::Float) return Value::number(-v.f);
        if (v.as_int() == std::numeric_limits<int64_t>::min()) checked(true, 0);
        return Value::integer(-v.as_int());
    }
    case Expr::Kind::Binary: {
        const std::string &op = e.name;
        if (op == "and") {
            Value a = eval(*e.children[0], scope);
            return truthy(a) ? eval(*e.children[1], scope) : a;
        }
        if (op == "or") {
            Value a = eval(*e.children[0], scope);
            return truthy(a) ? a : eval(*e.children[1], scope);
        }
        Value a = eval(*e.children[0], scope);
        Value b = eval(*e.children[1], scope);
        if (op == "~") {
            std::string r = to_str(a);
            std::string rb = to_str(b);
            check_size(r.size() + rb.size());
            return Value::string(r + rb);
        }
        return binary_op(op, a, b);
    }
    case Expr::Kind::CondExpr:
        if (truthy(eval(*e.children[1], scope))) return eval(*e.children[0], scope);
        if (e.children[2]) return eval(*e.children[2], scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined");
    }
    return Value();
}

} // namespace muse::jinja
