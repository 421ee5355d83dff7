// The Jinja interpreter: walks the parsed tree with jinja2's scoping rules
// (a loop iteration, a macro call and a caller body get their own scope; if
// blocks do not) and Python's value semantics. Built-in filters, tests, string
// and dict methods live in jinja-builtins.cpp.
#pragma once

#include "jinja/jinja-parser.h"
#include "jinja/jinja-value.h"

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

namespace muse::jinja {

struct Scope {
    std::shared_ptr<Scope> parent;
    std::unordered_map<std::string, Value> vars;

    const Value *lookup(const std::string &name) const;
};

class Interpreter {
public:
    Interpreter(std::chrono::system_clock::time_point now) : now_(now) {}
    // Namespaces are the one mutable value, so a template can make one contain itself
    // ({% set ns.me = ns %}): a shared_ptr cycle. Every namespace of a render is tracked
    // and emptied when the render ends, which breaks any such cycle.
    ~Interpreter();
    Interpreter(const Interpreter &) = delete;
    Interpreter &operator=(const Interpreter &) = delete;
    void track_namespace(const std::shared_ptr<Dict> &ns) { namespaces_.push_back(ns); }

    // Renders `body` with `context` as the template's variables.
    std::string render(const Body &body, const nlohmann::ordered_json &context);

    // Used by the built-ins.
    Value call(const Value &callee, Args &args);
    Value getattr(const Value &obj, const std::string &name);
    Value getitem(const Value &obj, const Value &key);
    Value filter(const std::string &name, const Value &input, Args &args);
    bool test(const std::string &name, const Value &input, Args &args);
    std::chrono::system_clock::time_point now() const { return now_; }

    // Python's `a <op> b` for arithmetic and comparison operators.
    Value binary_op(const std::string &op, const Value &a, const Value &b);

private:
    enum class Flow { Normal, Break, Continue };

    Flow exec_body(const Body &body, const std::shared_ptr<Scope> &scope, std::string &out);
    Flow exec(const Stmt &s, const std::shared_ptr<Scope> &scope, std::string &out);
    void exec_for(const Stmt &s, const Value &iterable, const std::shared_ptr<Scope> &scope, std::string &out,
                  int depth);
    void assign(const Stmt &s, const Value &v, Scope &scope);
    Value eval(const Expr &e, const std::shared_ptr<Scope> &scope);
    Value eval_inner(const Expr &e, const std::shared_ptr<Scope> &scope);
    Value apply_filter_chain(const Expr &e, const Value &input, const std::shared_ptr<Scope> &scope);
    void eval_args(const Expr &e, size_t first, const std::shared_ptr<Scope> &scope, Args &args);
    Value make_macro(const Stmt &s, const std::shared_ptr<Scope> &scope, bool is_caller);

    std::chrono::system_clock::time_point now_;

    std::vector<std::shared_ptr<Dict>> namespaces_;
    int call_depth_ = 0;
    int frame_depth_ = 0;
};

// Built-ins (jinja-builtins.cpp).
void install_globals(Interpreter &interp, Scope &globals);
Value builtin_filter(Interpreter &interp, const std::string &name, const Value &input, Args &args);
bool builtin_test(Interpreter &interp, const std::string &name, const Value &input, Args &args);
// A bound method of a str, list or dict (`"a b".split`, `d.items`); `found` false if none.
Value builtin_method(const Value &obj, const std::string &name, bool &found);

} // namespace muse::jinja
