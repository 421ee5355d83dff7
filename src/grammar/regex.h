// A regex subset compiled to a GBNF expression: literals, ., classes [a-z] [^...],
// \d \w \s \D \W \S and escapes, * + ? {m} {m,} {m,n} (lazy suffixes accepted: the
// whole string must match, so laziness does not change the language), groups
// (...) (?:...), alternation, and ^ $ at the ends. Backreferences, lookaround,
// anchors elsewhere and flags are refused (MUSE_ERR_UNSUPPORTED) naming them.
#pragma once

#include <string>
#include <string_view>

namespace muse::grammar {

struct RegexOptions {
    // Characters as they appear inside a JSON string: '"', '\' and control
    // characters are left out (the pattern then cannot produce them).
    bool json_string = false;
    // JSON Schema "pattern" semantics: a match anywhere unless anchored with ^ / $.
    bool search = false;
};

// Longer patterns are refused before any work (MUSE_ERR_INVALID_ARGUMENT, "too large"):
// real patterns are far shorter, and a huge one would only meet the grammar's element
// limit after its whole GBNF text had been built and parsed.
inline constexpr size_t kMaxRegexBytes = size_t(1) << 20;

// A GBNF expression (no rules of its own) for the pattern.
std::string regex_to_gbnf_expr(std::string_view pattern, const RegexOptions &options = {});

}  // namespace muse::grammar
