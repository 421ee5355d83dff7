// The opaque muse_grammar handle (src/grammar/grammar.h) and the grammars of a request:
// muse_generate_params.grammar and muse_chat_params.response_format_json.
#pragma once

#include "grammar/grammar.h"

#include <memory>

struct muse_grammar {
    std::shared_ptr<const muse::grammar::Grammar> impl;  // immutable; generations share it
};

namespace muse::api {

// The grammar of OpenAI's `response_format` (JSON text): nullptr for {"type": "text"}; a
// JSON object for "json_object"; the schema of "json_schema" (compact, closed objects when
// "strict" is true). Anything else fails with MUSE_ERR_INVALID_ARGUMENT naming the field.
std::shared_ptr<const grammar::Grammar> response_format_grammar(const char *response_format_json);

} // namespace muse::api
