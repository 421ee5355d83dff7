// The Jinja lexer: splits a template into text and tag tokens, applying the
// whitespace rules jinja2 applies with trim_blocks=True and lstrip_blocks=True
// (the Hugging Face transformers configuration), then tokenizes tag contents.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace muse::jinja {

struct Token {
    enum class Type { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };
    Type type;
    std::string value; // Data text, name, operator, unescaped string, number text
    int line;
};

// Throws muse::Error (MUSE_ERR_FORMAT) naming the line on malformed input.
std::vector<Token> tokenize(std::string_view source);

} // namespace muse::jinja
