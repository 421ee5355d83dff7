#include "jinja/jinja-parser.h"
#include "core/stack-guard.h"

#include "core/error.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

namespace muse::jinja {

namespace {

// Deeper nesting than this is a hostile template, not a chat template.
constexpr int kMaxNesting = 200;
// Longest chain of binary operators, filters or attribute lookups in one expression.
constexpr int kMaxChain = 1000;

class Parser {
public:
    explicit Parser(const std::vector<Token> &tokens) : toks_(tokens) {}

    Body parse_template() {
        std::string end;
        Body body = parse_body({}, end);
        return body;
    }

private:
    const std::vector<Token> &toks_;
    size_t pos_ = 0;
    int depth_ = 0;

    struct DepthGuard {
        Parser &p;
        explicit DepthGuard(Parser &parser) : p(parser) {
            if (++p.depth_ > kMaxNesting || stack_nearly_exhausted()) p.error("template nesting is too deep");
        }
        ~DepthGuard() { --p.depth_; }
    };

    const Token &cur() const { return toks_[pos_]; }
    const Token &peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
    void next() {
        if (pos_ + 1 < toks_.size()) ++pos_;
    }

    [[noreturn]] void error(std::string_view what) const {
        fail(MUSE_ERR_FORMAT, "template line ", cur().line, ": ", what);
    }
    [[noreturn]] void unsupported(std::string_view what) const {
        fail(MUSE_ERR_UNSUPPORTED, "template line ", cur().line, ": ", what, " is not supported");
    }

    static std::string describe(const Token &t) {
        switch (t.type) {
        case Token::Type::Data: return "text";
        case Token::Type::VarBegin: return "'{{'";
        case Token::Type::VarEnd: return "'}}'";
        case Token::Type::BlockBegin: return "'{%'";
        case Token::Type::BlockEnd: return "'%}'";
        case Token::Type::Name: return "'" + t.value + "'";
        case Token::Type::String: return "string literal";
        case Token::Type::Int:
        case Token::Type::Float: return "number " + t.value;
        case Token::Type::Op: return "'" + t.value + "'";
        case Token::Type::Eof: return "end of template";
        }
        return "token";
    }

    bool is_op(std::string_view op) const { return cur().type == Token::Type::Op && cur().value == op; }
    bool is_name(std::string_view name) const { return cur().type == Token::Type::Name && cur().value == name; }
    bool skip_op(std::string_view op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(std::string_view name) {
        if (!is_name(name)) return false;
        next();
        return true;
    }
    void expect_op(std::string_view op) {
        if (!skip_op(op)) error(str_cat("expected '", op, "', got ", describe(cur())));
    }
    std::string expect_name() {
        if (cur().type != Token::Type::Name) error(str_cat("expected a name, got ", describe(cur())));
        std::string n = cur().value;
        next();
        return n;
    }
    void expect_block_end() {
        if (cur().type != Token::Type::BlockEnd) error(str_cat("expected end of statement '%}', got ", describe(cur())));
        next();
    }

    void chain_guard(int &n) const {
        if (++n > kMaxChain) error("expression is too long");
    }

    ExprPtr make(Expr::Kind kind, int line) {
        auto e = std::make_unique<Expr>();
        e->kind = kind;
        e->line = line;
        return e;
    }

    // ---- statements -------------------------------------------------------

    // Parses until `{% <one of ends>`; consumes that name and stores it in `end`.
    Body parse_body(std::initializer_list<std::string_view> ends, std::string &end) {
        DepthGuard guard(*this);
        Body body;
        int start_line = toks_[pos_ > 0 ? pos_ - 1 : 0].line; // the '%}' closing the opening tag
        for (;;) {
            const Token &t = cur();
            switch (t.type) {
            case Token::Type::Eof: {
                if (ends.size() == 0) return body;
                std::string_view want = *ends.begin();
                for (auto e : ends)
                    if (e.substr(0, 3) == "end") want = e;
                error(str_cat("unexpected end of template; the block opened at line ", start_line, " expects '", want,
                              "'"));
            }
            case Token::Type::Data: {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::Text;
                s->line = t.line;
                s->text = t.value;
                body.push_back(std::move(s));
                next();
                break;
            }
            case Token::Type::VarBegin: {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::Output;
                s->line = t.line;
                next();
                s->expr = parse_tuple(false);
                if (cur().type != Token::Type::VarEnd) error(str_cat("expected '}}', got ", describe(cur())));
                next();
                body.push_back(std::move(s));
                break;
            }
            case Token::Type::BlockBegin: {
                next();
                if (cur().type == Token::Type::Name &&
                    std::find(ends.begin(), ends.end(), cur().value) != ends.end()) {
                    end = cur().value;
                    next();
                    return body;
                }
                body.push_back(parse_statement());
                break;
            }
            default: error(str_cat("unexpected ", describe(t)));
            }
        }
    }

    StmtPtr new_stmt(Stmt::Kind kind, int line) {
        auto s = std::make_unique<Stmt>();
        s->kind = kind;
        s->line = line;
        return s;
    }

    StmtPtr parse_statement() {
        if (cur().type != Token::Type::Name) error(str_cat("expected a statement name, got ", describe(cur())));
        std::string tag = cur().value;
        int line = cur().line;
        if (tag == "if") {
            next();
            return parse_if(line);
        }
        if (tag == "for") {
            next();
            return parse_for(line);
        }
        if (tag == "set") {
            next();
            return parse_set(line);
        }
        if (tag == "macro") {
            next();
            return parse_macro(line);
        }
        if (tag == "call") {
            next();
            return parse_call_block(line);
        }
        if (tag == "filter") {
            next();
            auto s = new_stmt(Stmt::Kind::FilterBlock, line);
            s->expr = parse_filter_chain(nullptr, line);
            expect_block_end();
            std::string end;
            s->body = parse_body({"endfilter"}, end);
            expect_block_end();
            return s;
        }
        if (tag == "with") {
            next();
            auto s = new_stmt(Stmt::Kind::With, line);
            while (cur().type != Token::Type::BlockEnd) {
                if (!s->params.empty()) expect_op(",");
                MacroParam p;
                p.name = expect_name();
                expect_op("=");
                p.fallback = parse_expression();
                s->params.push_back(std::move(p));
            }
            expect_block_end();
            std::string end;
            s->body = parse_body({"endwith"}, end);
            expect_block_end();
            return s;
        }
        if (tag == "generation") {
            // transformers' AssistantTracker extension: the body renders as is.
            next();
            auto s = new_stmt(Stmt::Kind::Scope, line);
            expect_block_end();
            std::string end;
            s->body = parse_body({"endgeneration"}, end);
            expect_block_end();
            return s;
        }
        if (tag == "break" || tag == "continue") {
            next();
            auto s = new_stmt(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
            expect_block_end();
            return s;
        }
        static const char *const unsupported_tags[] = {"block", "extends", "include", "import", "from",
                                                       "do", "autoescape", "trans", "pluralize", "print"};
        for (const char *u : unsupported_tags)
            if (tag == u) unsupported(str_cat("the '", tag, "' tag"));
        error(str_cat("unknown tag '", tag, "'"));
    }

    StmtPtr parse_if(int line, int elif_count = 0) {
        if (elif_count > kMaxChain) error("too many 'elif' branches");
        auto s = new_stmt(Stmt::Kind::If, line);
        s->expr = parse_tuple(true); // jinja2: no inline if-expression as an if test
        expect_block_end();
        std::string end;
        s->body = parse_body({"elif", "else", "endif"}, end);
        if (end == "elif") {
            int l = toks_[pos_ - 1].line;
            s->else_body.push_back(parse_if(l, elif_count + 1));
            return s;
        }
        if (end == "else") {
            expect_block_end();
            s->else_body = parse_body({"endif"}, end);
        }
        expect_block_end();
        return s;
    }

    void parse_targets(Stmt &s, std::string_view stop) {
        bool paren = skip_op("(");
        for (;;) {
            s.targets.push_back(expect_name());
            if (!skip_op(",")) break;
            s.unpack = true;
            if (paren ? is_op(")") : is_name(stop)) break;
        }
        if (paren) {
            expect_op(")");
            s.unpack = true;
        }
    }

    StmtPtr parse_for(int line) {
        auto s = new_stmt(Stmt::Kind::For, line);
        parse_targets(*s, "in");
        if (!skip_name("in")) error(str_cat("expected 'in' in for loop, got ", describe(cur())));
        s->expr = parse_tuple(true, "recursive");
        if (skip_name("if")) s->cond = parse_expression();
        if (skip_name("recursive")) s->recursive = true;
        expect_block_end();
        std::string end;
        s->body = parse_body({"endfor", "else"}, end);
        if (end == "else") {
            expect_block_end();
            s->else_body = parse_body({"endfor"}, end);
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_set(int line) {
        auto s = new_stmt(Stmt::Kind::Set, line);
        if (cur().type == Token::Type::Name && peek().type == Token::Type::Op && peek().value == ".") {
            s->targets.push_back(expect_name());
            next();
            s->name = expect_name();
        } else {
            parse_targets(*s, "");
        }
        if (skip_op("=")) {
            s->expr = parse_tuple(false);
            expect_block_end();
            return s;
        }
        if (!s->name.empty() || s->unpack) error("block 'set' assigns a single name");
        s->kind = Stmt::Kind::SetBlock;
        if (is_op("|")) s->expr = parse_filter_chain(nullptr, line);
        expect_block_end();
        std::string end;
        s->body = parse_body({"endset"}, end);
        expect_block_end();
        return s;
    }

    void parse_params(Stmt &s) {
        expect_op("(");
        while (!skip_op(")")) {
            if (!s.params.empty()) expect_op(",");
            if (skip_op(")")) break;
            MacroParam p;
            p.name = expect_name();
            if (skip_op("=")) {
                p.fallback = parse_expression();
            } else {
                for (const auto &q : s.params)
                    if (q.fallback) error("non-default argument follows default argument");
            }
            s.params.push_back(std::move(p));
        }
    }

    StmtPtr parse_macro(int line) {
        auto s = new_stmt(Stmt::Kind::Macro, line);
        s->name = expect_name();
        parse_params(*s);
        expect_block_end();
        std::string end;
        s->body = parse_body({"endmacro"}, end);
        scan_names(s->body, *s);
        if (cur().type == Token::Type::Name && cur().value == s->name) next();
        expect_block_end();
        return s;
    }

    // jinja2 lets a macro take extra arguments only if its body mentions varargs / kwargs.
    static void scan_expr(const Expr *e, Stmt &macro) {
        if (!e) return;
        if (e->kind == Expr::Kind::Name) {
            if (e->name == "varargs") macro.uses_varargs = true;
            if (e->name == "kwargs") macro.uses_kwargs = true;
            if (e->name == "caller") macro.uses_caller = true;
        }
        for (const auto &c : e->children) scan_expr(c.get(), macro);
        for (const auto &kv : e->kwargs) scan_expr(kv.second.get(), macro);
    }
    static void scan_names(const Body &body, Stmt &macro) {
        for (const auto &s : body) {
            scan_expr(s->expr.get(), macro);
            scan_expr(s->cond.get(), macro);
            for (const auto &p : s->params) scan_expr(p.fallback.get(), macro);
            scan_names(s->body, macro);
            scan_names(s->else_body, macro);
        }
    }

    StmtPtr parse_call_block(int line) {
        auto s = new_stmt(Stmt::Kind::CallBlock, line);
        if (is_op("(")) parse_params(*s);
        s->expr = parse_expression();
        if (s->expr->kind != Expr::Kind::Call) error("expected a call in 'call' block");
        expect_block_end();
        std::string end;
        s->body = parse_body({"endcall"}, end);
        expect_block_end();
        return s;
    }

    // `| f(args) | g` or, in a filter block, `f(args) | g` applied to `input`.
    ExprPtr parse_filter_chain(ExprPtr input, int line) {
        bool first = true;
        ExprPtr node = std::move(input);
        int chain = 0;
        while (first || is_op("|")) {
            chain_guard(chain);
            if (!first || is_op("|")) expect_op("|");
            first = false;
            node = parse_filter(std::move(node), line);
        }
        return node;
    }

    // ---- expressions -----------------------------------------------------

    // parse_tuple: `a, b` without parentheses is a tuple.
    ExprPtr parse_tuple(bool no_condexpr, std::string_view extra_end = {}) {
        int line = cur().line;
        std::vector<ExprPtr> items;
        bool is_tuple = false;
        for (;;) {
            if (!items.empty()) expect_op(",");
            if (cur().type == Token::Type::VarEnd || cur().type == Token::Type::BlockEnd || is_op(")") ||
                (!extra_end.empty() && is_name(extra_end)) || (no_condexpr && is_name("if")))
                break;
            items.push_back(no_condexpr ? parse_or() : parse_expression());
            if (is_op(","))
                is_tuple = true;
            else
                break;
        }
        if (!is_tuple) {
            if (items.empty()) error(str_cat("expected an expression, got ", describe(cur())));
            return std::move(items[0]);
        }
        auto e = make(Expr::Kind::Tuple, line);
        e->children = std::move(items);
        return e;
    }

    ExprPtr parse_expression() {
        DepthGuard guard(*this);
        ExprPtr e = parse_or();
        while (is_name("if")) {
            int line = cur().line;
            next();
            auto c = make(Expr::Kind::CondExpr, line);
            c->children.push_back(std::move(e));
            c->children.push_back(parse_or());
            if (skip_name("else"))
                c->children.push_back(parse_expression());
            else
                c->children.push_back(nullptr);
            e = std::move(c);
        }
        return e;
    }

    ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
        auto e = make(Expr::Kind::Binary, line);
        e->name = std::move(op);
        e->children.push_back(std::move(a));
        e->children.push_back(std::move(b));
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr e = parse_and();
        int chain = 0;
        while (is_name("or")) {
            chain_guard(chain);
            int line = cur().line;
            next();
            e = binary("or", std::move(e), parse_and(), line);
        }
        return e;
    }

    ExprPtr parse_and() {
        ExprPtr e = parse_not();
        int chain = 0;
        while (is_name("and")) {
            chain_guard(chain);
            int line = cur().line;
            next();
            e = binary("and", std::move(e), parse_not(), line);
        }
        return e;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard guard(*this);
            int line = cur().line;
            next();
            auto e = make(Expr::Kind::Unary, line);
            e->name = "not";
            e->children.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }

    // Expression trees are shallow copies when a comparison chain reuses an operand.
    static ExprPtr clone(const Expr &e) {
        auto c = std::make_unique<Expr>();
        c->kind = e.kind;
        c->line = e.line;
        c->value = e.value;
        c->name = e.name;
        c->negated = e.negated;
        for (const auto &ch : e.children) c->children.push_back(ch ? clone(*ch) : nullptr);
        for (const auto &[k, v] : e.kwargs) c->kwargs.emplace_back(k, clone(*v));
        return c;
    }

    ExprPtr parse_compare() {
        ExprPtr left = parse_math1();
        ExprPtr result;
        int chain = 0;
        for (;;) {
            int line = cur().line;
            std::string op;
            if (cur().type == Token::Type::Op &&
                (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == ">" ||
                 cur().value == "<=" || cur().value == ">=")) {
                op = cur().value;
                next();
            } else if (is_name("in")) {
                op = "in";
                next();
            } else if (is_name("not") && peek().type == Token::Type::Name && peek().value == "in") {
                op = "not in";
                next();
                next();
            } else {
                break;
            }
            chain_guard(chain);
            ExprPtr right = parse_math1();
            ExprPtr lhs = result ? clone(*left) : std::move(left);
            left = clone(*right);
            ExprPtr cmp = binary(op, std::move(lhs), std::move(right), line);
            result = result ? binary("and", std::move(result), std::move(cmp), line) : std::move(cmp);
        }
        return result ? std::move(result) : std::move(left);
    }

    ExprPtr parse_math1() {
        ExprPtr e = parse_concat();
        int chain = 0;
        while (is_op("+") || is_op("-")) {
            chain_guard(chain);
            std::string op = cur().value;
            int line = cur().line;
            next();
            e = binary(op, std::move(e), parse_concat(), line);
        }
        return e;
    }

    ExprPtr parse_concat() {
        ExprPtr e = parse_math2();
        int chain = 0;
        while (is_op("~")) {
            chain_guard(chain);
            int line = cur().line;
            next();
            e = binary("~", std::move(e), parse_math2(), line);
        }
        return e;
    }

    ExprPtr parse_math2() {
        ExprPtr e = parse_pow();
        int chain = 0;
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            chain_guard(chain);
            std::string op = cur().value;
            int line = cur().line;
            next();
            e = binary(op, std::move(e), parse_pow(), line);
        }
        return e;
    }

    ExprPtr parse_pow() {
        ExprPtr e = parse_unary(true);
        int chain = 0;
        while (is_op("**")) {
            chain_guard(chain);
            int line = cur().line;
            next();
            e = binary("**", std::move(e), parse_unary(true), line);
        }
        return e;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(*this);
        ExprPtr node;
        int line = cur().line;
        if (is_op("-") || is_op("+")) {
            std::string op = cur().value;
            next();
            node = make(Expr::Kind::Unary, line);
            node->name = op;
            node->children.push_back(parse_unary(false));
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr literal(Value v, int line) {
        auto e = make(Expr::Kind::Literal, line);
        e->value = std::move(v);
        return e;
    }

    ExprPtr parse_primary() {
        const Token &t = cur();
        int line = t.line;
        switch (t.type) {
        case Token::Type::Name: {
            std::string n = t.value;
            next();
            if (n == "true" || n == "True") return literal(Value::boolean(true), line);
            if (n == "false" || n == "False") return literal(Value::boolean(false), line);
            if (n == "none" || n == "None") return literal(Value::none(), line);
            auto e = make(Expr::Kind::Name, line);
            e->name = std::move(n);
            return e;
        }
        case Token::Type::String: {
            std::string s = t.value;
            next();
            while (cur().type == Token::Type::String) {
                s += cur().value;
                next();
            }
            return literal(Value::string(std::move(s)), line);
        }
        case Token::Type::Int: {
            errno = 0;
            long long v = std::strtoll(t.value.c_str(), nullptr, 10);
            if (errno == ERANGE) unsupported("an integer literal beyond 64 bits");
            next();
            return literal(Value::integer(v), line);
        }
        case Token::Type::Float: {
            double v = std::strtod(t.value.c_str(), nullptr);
            next();
            return literal(Value::number(v), line);
        }
        case Token::Type::Op:
            if (t.value == "(") {
                next();
                if (skip_op(")")) {
                    auto e = make(Expr::Kind::Tuple, line);
                    return e;
                }
                ExprPtr first = parse_expression();
                if (skip_op(")")) return first;
                auto e = make(Expr::Kind::Tuple, line);
                e->children.push_back(std::move(first));
                while (skip_op(",")) {
                    if (is_op(")")) break;
                    e->children.push_back(parse_expression());
                }
                expect_op(")");
                return e;
            }
            if (t.value == "[") {
                next();
                auto e = make(Expr::Kind::List, line);
                while (!skip_op("]")) {
                    if (!e->children.empty()) {
                        expect_op(",");
                        if (skip_op("]")) break;
                    }
                    e->children.push_back(parse_expression());
                }
                return e;
            }
            if (t.value == "{") {
                next();
                auto e = make(Expr::Kind::Dict, line);
                while (!skip_op("}")) {
                    if (!e->children.empty()) {
                        expect_op(",");
                        if (skip_op("}")) break;
                    }
                    e->children.push_back(parse_expression());
                    expect_op(":");
                    e->children.push_back(parse_expression());
                }
                return e;
            }
            break;
        default: break;
        }
        error(str_cat("unexpected ", describe(t)));
    }

    ExprPtr parse_postfix(ExprPtr node) {
        int chain = 0;
        for (;;) {
            chain_guard(chain);
            if (is_op(".") || is_op("[")) {
                node = parse_subscript(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        int chain = 0;
        for (;;) {
            chain_guard(chain);
            if (is_op("|")) {
                int line = cur().line;
                next();
                node = parse_filter(std::move(node), line);
            } else if (is_name("is")) {
                node = parse_test(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr node) {
        int line = cur().line;
        if (skip_op(".")) {
            if (cur().type == Token::Type::Name) {
                auto e = make(Expr::Kind::Attr, line);
                e->name = cur().value;
                next();
                e->children.push_back(std::move(node));
                return e;
            }
            if (cur().type == Token::Type::Int) {
                auto e = make(Expr::Kind::Subscript, line);
                e->children.push_back(std::move(node));
                e->children.push_back(literal(Value::integer(std::strtoll(cur().value.c_str(), nullptr, 10)), line));
                next();
                return e;
            }
            error(str_cat("expected an attribute name after '.', got ", describe(cur())));
        }
        expect_op("[");
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) {
                expect_op(",");
                if (is_op("]")) break;
            }
            args.push_back(parse_subscribed());
        }
        expect_op("]");
        auto e = make(Expr::Kind::Subscript, line);
        e->children.push_back(std::move(node));
        if (args.empty()) error("empty subscript");
        if (args.size() == 1) {
            e->children.push_back(std::move(args[0]));
        } else {
            auto t = make(Expr::Kind::Tuple, line);
            t->children = std::move(args);
            e->children.push_back(std::move(t));
        }
        return e;
    }

    ExprPtr parse_subscribed() {
        int line = cur().line;
        ExprPtr start;
        if (!is_op(":")) {
            start = parse_expression();
            if (!is_op(":")) return start;
        }
        next(); // ':'
        auto e = make(Expr::Kind::Slice, line);
        e->children.push_back(std::move(start));
        ExprPtr stop, step;
        if (!is_op("]") && !is_op(",") && !is_op(":")) stop = parse_expression();
        if (skip_op(":")) {
            if (!is_op("]") && !is_op(",")) step = parse_expression();
        }
        e->children.push_back(std::move(stop));
        e->children.push_back(std::move(step));
        return e;
    }

    void parse_call_args(Expr &e) {
        expect_op("(");
        bool first = true;
        while (!skip_op(")")) {
            if (!first) {
                expect_op(",");
                if (skip_op(")")) break;
            }
            first = false;
            if (is_op("*") || is_op("**")) unsupported("'*args' and '**kwargs' in calls");
            if (cur().type == Token::Type::Name && peek().type == Token::Type::Op && peek().value == "=") {
                std::string key = cur().value;
                next();
                next();
                e.kwargs.emplace_back(std::move(key), parse_expression());
            } else {
                if (!e.kwargs.empty()) error("positional argument follows keyword argument");
                e.children.push_back(parse_expression());
            }
        }
    }

    ExprPtr parse_call(ExprPtr node) {
        DepthGuard guard(*this);
        auto e = make(Expr::Kind::Call, cur().line);
        e->children.push_back(std::move(node));
        parse_call_args(*e);
        return e;
    }

    std::string parse_dotted_name() {
        std::string n = expect_name();
        while (is_op(".") && peek().type == Token::Type::Name) {
            next();
            n += "." + expect_name();
        }
        return n;
    }

    ExprPtr parse_filter(ExprPtr input, int line) {
        DepthGuard guard(*this);
        auto e = make(Expr::Kind::Filter, line);
        e->name = parse_dotted_name();
        e->children.push_back(std::move(input));
        if (is_op("(")) parse_call_args(*e);
        return e;
    }

    ExprPtr parse_test(ExprPtr node) {
        DepthGuard guard(*this);
        int line = cur().line;
        next(); // 'is'
        auto e = make(Expr::Kind::Test, line);
        e->negated = skip_name("not");
        e->name = parse_dotted_name();
        e->children.push_back(std::move(node));
        const Token &t = cur();
        if (is_op("(")) {
            parse_call_args(*e);
        } else if ((t.type == Token::Type::Name || t.type == Token::Type::String || t.type == Token::Type::Int ||
                    t.type == Token::Type::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) error("you cannot chain multiple tests with 'is'");
            ExprPtr arg = parse_postfix(parse_primary());
            e->children.push_back(std::move(arg));
        }
        return e;
    }
};

} // namespace

Body parse(const std::vector<Token> &tokens) { return Parser(tokens).parse_template(); }

} // namespace muse::jinja
