// The Jinja parser: tokens to a tree of expressions and statements, following
// jinja2's grammar and operator precedence. The tree is immutable after parsing.
#pragma once

#include "jinja/jinja-lexer.h"
#include "jinja/jinja-value.h"

#include <memory>
#include <string>
#include <vector>

namespace muse::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
    enum class Kind {
        Literal,   // value
        Name,      // name
        List,      // children
        Tuple,     // children
        Dict,      // children: key, value, key, value...
        Attr,      // children[0].name
        Subscript, // children[0][children[1]]
        Slice,     // children: start, stop, step (null when absent)
        Call,      // children[0](children[1..], kwargs)
        Filter,    // children[0] | name(children[1..], kwargs); children[0] null in filter blocks
        Test,      // children[0] is [not] name(children[1..], kwargs)
        Unary,     // name: "-", "+", "not"
        Binary,    // name: + - * / // % ** ~ and or, == != < > <= >= in "not in"
        CondExpr,  // children: value, condition, else (else may be null)
    };
    Kind kind;
    int line;
    Value value;
    std::string name;
    std::vector<ExprPtr> children;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    bool negated = false;
};

struct MacroParam {
    std::string name;
    ExprPtr fallback; // null: required
};

struct Stmt {
    enum class Kind {
        Text,       // text
        Output,     // expr
        If,         // expr, body, else_body (elif: a nested If in else_body)
        For,        // targets in expr [if cond] [recursive], body, else_body
        Set,        // targets (or ns.attr via attr) = expr
        SetBlock,   // targets[0] = captured body [| filter expr]
        Macro,      // name(params) body
        CallBlock,  // expr is the call; params are caller's; body is caller's body
        FilterBlock,// expr: filter chain with a null innermost input; body
        With,       // targets = values (params), body
        Scope,      // body in a nested scope ({% generation %})
        Break,
        Continue,
    };
    Kind kind;
    int line;
    std::string text;
    std::string name;                 // macro name; Set attr for `set ns.attr = v`
    std::vector<std::string> targets; // loop or assignment targets
    bool unpack = false;              // targets written as a tuple
    bool recursive = false;
    bool uses_varargs = false; // Macro: the body names `varargs` (else extra positionals are an error)
    bool uses_kwargs = false;  // Macro: the body names `kwargs` (else unknown keywords are an error)
    bool uses_caller = false;  // Macro: the body names `caller` (else a call block cannot pass one)
    ExprPtr expr;
    ExprPtr cond;
    std::vector<MacroParam> params;
    Body body;
    Body else_body;
};

// Throws muse::Error: MUSE_ERR_FORMAT for syntax errors, MUSE_ERR_UNSUPPORTED
// for valid Jinja this engine does not implement; both name the line.
Body parse(const std::vector<Token> &tokens);

} // namespace muse::jinja
