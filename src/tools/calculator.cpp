#include "tools/calculator.h"

#include "core/error.h"

#include <charconv>
#include <cmath>
#include <numbers>
#include <vector>

namespace muse::tools {

namespace {

// Recursive descent over the grammar (loosest binding first):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/' | '%') unary)*
//   unary   := ('-' | '+') unary | power
//   power   := primary (('^' | '**') unary)?          right-associative, binds tighter
//                                                      than a leading sign: -2^2 = -4
//   primary := number | '(' expr ')' | name | name '(' expr (',' expr)* ')'
// as Python reads the same text (with ^ meaning **, not xor).
class Parser {
public:
    explicit Parser(std::string_view s) : s_(s) {}

    double parse() {
        const double v = expr();
        skip_space();
        if (pos_ < s_.size()) error("unexpected '", s_[pos_], "'");
        return v;
    }

private:
    template <class... Args>
    [[noreturn]] void error(Args &&...args) const {
        fail(MUSE_ERR_INVALID_ARGUMENT, "calculator: ", std::forward<Args>(args)..., " at character ", pos_ + 1,
             " of \"", s_, "\"");
    }

    // Every level of nesting (parentheses, function calls, unary signs, exponents: the
    // only ways the parser recurses) takes a Depth, so hostile nesting fails cleanly.
    struct Depth {
        Parser &p;
        explicit Depth(Parser &parser) : p(parser) {
            if (++p.depth_ > kCalculatorMaxDepth)
                fail(MUSE_ERR_INVALID_ARGUMENT, "calculator: the expression nests deeper than ", kCalculatorMaxDepth,
                     " levels");
        }
        ~Depth() { --p.depth_; }
    };

    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }
    bool eat(std::string_view tok) {
        skip_space();
        if (s_.substr(pos_, tok.size()) != tok) return false;
        pos_ += tok.size();
        return true;
    }

    double expr() {
        double v = term();
        for (;;) {
            if (eat("+")) v = checked(v + term(), "+");
            else if (eat("-")) v = checked(v - term(), "-");
            else return v;
        }
    }

    double term() {
        double v = unary();
        for (;;) {
            skip_space();
            // "**" is power, handled below unary; do not read its first '*' as a product.
            if (s_.substr(pos_, 2) == "**") return v;
            if (eat("*")) {
                v = checked(v * unary(), "*");
            } else if (eat("/")) {
                const size_t at = pos_;
                const double r = unary();
                if (r == 0.0) {
                    pos_ = at;
                    error("division by zero");
                }
                v = checked(v / r, "/");
            } else if (eat("%")) {
                const size_t at = pos_;
                const double r = unary();
                if (r == 0.0) {
                    pos_ = at;
                    error("modulo by zero");
                }
                // Python's floored modulo: the result takes the divisor's sign.
                double m = std::fmod(v, r);
                if (m != 0.0 && ((m < 0.0) != (r < 0.0))) m += r;
                v = checked(m, "%");
            } else {
                return v;
            }
        }
    }

    double unary() {
        if (eat("-")) {
            Depth d(*this);
            return -unary();
        }
        if (eat("+")) {
            Depth d(*this);
            return unary();
        }
        return power();
    }

    double power() {
        const double base = primary();
        if (eat("**") || eat("^")) {
            Depth d(*this);
            const double e = unary();
            if (base == 0.0 && e < 0.0) error("zero raised to a negative power");
            if (base < 0.0 && e != std::floor(e)) error("a negative number raised to a fractional power");
            return checked(std::pow(base, e), "^");
        }
        return base;
    }

    double primary() {
        skip_space();
        if (pos_ >= s_.size()) error("expected a number");
        const char c = s_[pos_];
        if (c == '(') {
            ++pos_;
            Depth d(*this);
            const double v = expr();
            if (!eat(")")) error("expected ')'");
            return v;
        }
        if ((c >= '0' && c <= '9') || c == '.') return number();
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return name();
        error("unexpected '", c, "'");
    }

    double number() {
        const size_t start = pos_;
        auto digits = [&] {
            size_t n = 0;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_, ++n;
            return n;
        };
        size_t n = digits();
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            n += digits();
        }
        if (n == 0) error("expected a number");
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            size_t at = pos_ + 1;
            if (at < s_.size() && (s_[at] == '+' || s_[at] == '-')) ++at;
            if (at < s_.size() && s_[at] >= '0' && s_[at] <= '9') {
                pos_ = at;
                digits();
            }
        }
        // from_chars, not strtod: the decimal point must not depend on the process locale.
        double v = 0.0;
        const auto r = std::from_chars(s_.data() + start, s_.data() + pos_, v);
        if (r.ec != std::errc() || !std::isfinite(v)) {
            pos_ = start;
            error("number out of range");
        }
        return v;
    }

    double name() {
        const size_t start = pos_;
        while (pos_ < s_.size() && ((s_[pos_] >= 'a' && s_[pos_] <= 'z') || (s_[pos_] >= 'A' && s_[pos_] <= 'Z')))
            ++pos_;
        const std::string_view id = s_.substr(start, pos_ - start);
        if (id == "pi") return std::numbers::pi;
        if (id == "e") return std::numbers::e;
        static constexpr std::string_view kFunctions[] = {"sqrt", "abs", "min", "max", "round", "floor", "ceil"};
        bool known = false;
        for (std::string_view f : kFunctions) known = known || id == f;
        if (!known) {
            pos_ = start;
            error("unknown name '", id, "' (known: sqrt, abs, min, max, round, floor, ceil, pi, e)");
        }
        if (!eat("(")) error("expected '(' after ", id);
        Depth d(*this);
        std::vector<double> args{expr()};
        while (eat(",")) args.push_back(expr());
        if (!eat(")")) error("expected ')' to close ", id, "(");
        auto arity = [&](size_t lo, size_t hi) {
            if (args.size() < lo || args.size() > hi) {
                pos_ = start;
                if (lo == hi) error(id, "() takes ", lo, " argument", lo == 1 ? "" : "s", ", not ", args.size());
                error(id, "() takes ", lo, " to ", hi, " arguments, not ", args.size());
            }
        };
        if (id == "min" || id == "max") {
            arity(1, 64);
            double v = args[0];
            for (double a : args) v = id == "min" ? std::fmin(v, a) : std::fmax(v, a);
            return v;
        }
        if (id == "round") {
            arity(1, 2);
            // Python's round(): half to even, optionally to `digits` decimal places.
            const double digits = args.size() == 2 ? args[1] : 0.0;
            if (digits != std::floor(digits) || std::fabs(digits) > 15) {
                pos_ = start;
                error("round()'s digits must be a whole number from -15 to 15");
            }
            const double scale = std::pow(10.0, digits);
            return checked(std::nearbyint(args[0] * scale) / scale, "round");
        }
        arity(1, 1);
        const double x = args[0];
        if (id == "sqrt") {
            if (x < 0.0) {
                pos_ = start;
                error("square root of a negative number");
            }
            return std::sqrt(x);
        }
        if (id == "abs") return std::fabs(x);
        if (id == "floor") return std::floor(x);
        return std::ceil(x);
    }

    double checked(double v, const char *op) const {
        if (!std::isfinite(v)) error("the result of '", op, "' is too large");
        return v;
    }

    std::string_view s_;
    size_t pos_ = 0;
    int depth_ = 0;
};

} // namespace

double evaluate_expression(std::string_view expression) {
    if (expression.size() > kCalculatorMaxLength)
        fail(MUSE_ERR_INVALID_ARGUMENT, "calculator: the expression is ", expression.size(),
             " characters long; at most ", kCalculatorMaxLength, " are accepted");
    bool blank = true;
    for (char c : expression) blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    if (blank) fail(MUSE_ERR_INVALID_ARGUMENT, "calculator: the expression is empty");
    const double v = Parser(expression).parse();
    return v == 0.0 ? 0.0 : v;  // never "-0"
}

std::string format_calculator_result(double value) {
    if (value == std::floor(value) && std::fabs(value) <= 9007199254740992.0)
        return std::to_string(static_cast<int64_t>(value));
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general);
    return std::string(buf, r.ptr);
}

Tool calculator_tool() {
    Tool t;
    t.declaration = {
        {"type", "function"},
        {"function",
         {{"name", "calculator"},
          {"description",
           "Evaluate an arithmetic expression exactly: + - * / % (modulo), ^ or ** (power), parentheses, "
           "decimals, and sqrt, abs, min, max, round, floor, ceil, pi, e. Returns the number."},
          {"parameters",
           {{"type", "object"},
            {"properties",
             {{"expression",
               {{"type", "string"},
                {"description", "The expression, e.g. \"(3 + 4) * 2.5\""},
                {"maxLength", kCalculatorMaxLength}}}}},
            {"required", {"expression"}},
            {"additionalProperties", false}}}}}};
    t.run = [](const nlohmann::ordered_json &arguments, const ToolContext &) {
        ToolOutcome out;
        const auto it = arguments.is_object() ? arguments.find("expression") : arguments.end();
        if (it == arguments.end() || !it->is_string()) {
            out.failed = true;
            out.content = "calculator: expected {\"expression\": \"<arithmetic>\"}";
            return out;
        }
        try {
            out.content = format_calculator_result(evaluate_expression(it->get<std::string>()));
        } catch (const Error &e) {
            out.failed = true;
            out.content = e.what();
        }
        return out;
    };
    return t;
}

} // namespace muse::tools
