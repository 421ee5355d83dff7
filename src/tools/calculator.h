// The built-in "calculator" tool: a small, safe arithmetic evaluator (no names other
// than a few functions and constants, no side effects, bounded input and nesting).
// See docs/TOOLS.md for the language and the result format.
#pragma once

#include "tools/tool.h"

#include <string>
#include <string_view>

namespace muse::tools {

// Longest expression accepted, in bytes, and deepest nesting of parentheses,
// function calls, unary signs and exponents: beyond these the call fails with a clear error
// instead of recursing without bound.
inline constexpr size_t kCalculatorMaxLength = 1000;
inline constexpr int kCalculatorMaxDepth = 64;

// Evaluates `expression`. Throws muse::Error (MUSE_ERR_INVALID_ARGUMENT) with a
// message fit for the model: what is wrong and, for syntax errors, at which
// character (1-based).
double evaluate_expression(std::string_view expression);

// The result as the model reads it: integral values within +-2^53 without a decimal
// point ("5", "-12"), as Python's str(int) prints the nano model's calculator
// results; others in the shortest form that reads back to the same double, in
// scientific notation when very large or small ("3.5", "0.1", "1.152921504606847e+18",
// "1e-05"), which is what Python's repr() prints for these.
std::string format_calculator_result(double value);

Tool calculator_tool();

} // namespace muse::tools
