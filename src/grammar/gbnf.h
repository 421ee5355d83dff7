// GBNF: llama.cpp's grammar format, loaded unchanged.
//
//   name ::= alternative | alternative     # comment
//   elements: "literal" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), [a-z] [^...]
//   character classes, . (any character), rule names, ( groups ), and the postfix
//   operators * + ? {m} {m,} {m,n}. A rule ends at the end of its line unless a
//   group is still open or the line ends after "|"/"::=". The start rule is `root`.
//
// Errors throw muse::Error (MUSE_ERR_INVALID_ARGUMENT) with "line L, column C: ...".
#pragma once

#include "grammar/rules.h"

#include <string>
#include <string_view>

namespace muse::grammar {

Rules parse_gbnf(std::string_view text, const std::string &root = "root", Limits limits = {});

// `text` as a GBNF string literal that matches exactly its bytes (quotes and backslashes
// escaped, control bytes as \xHH), for the front ends that emit GBNF.
std::string gbnf_literal(std::string_view text);

}  // namespace muse::grammar
