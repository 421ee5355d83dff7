// Constrained decoding: grammars compiled from GBNF, a regex subset or a JSON
// Schema, matched byte by byte, with token masks over a vocabulary.
//
//   auto g = grammar::Grammar::from_json_schema(schema);
//   grammar::Matcher m = g->matcher();
//   auto trie = grammar::TokenTrie::of(tokenizer);        // once per vocabulary
//   auto allowed = m.mask(*trie);                          // bit per token id
//   m.accept_token(id, *trie);  m.rollback(1);  m.is_accepting();
//
// Every front end lowers to the same byte-level rules (rules.h); gbnf() gives the
// GBNF text a regex or schema was compiled to. Compilation errors throw
// muse::Error: MUSE_ERR_INVALID_ARGUMENT for malformed input (GBNF errors name the
// line and column), MUSE_ERR_UNSUPPORTED for schema keywords muse cannot compile
// exactly (the message names the keyword and its JSON path).
#pragma once

#include "grammar/matcher.h"
#include "grammar/rules.h"
#include "grammar/token-trie.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace muse::grammar {

struct JsonSchemaOptions {
    // Whitespace between JSON tokens: flexible (any JSON whitespace, for checking
    // text) or compact (none, what a model should generate).
    bool compact = false;
    // Draft 2020-12: objects accept properties the schema does not list unless
    // additionalProperties says otherwise. Set to false to close them by default
    // (generation often wants exactly the listed properties).
    bool additional_properties_default = true;
    // oneOf compiles to an alternation, which also accepts an instance matching
    // several branches (oneOf rejects those). Exact: refuse a oneOf unless its
    // branches are provably disjoint (different types or different constants).
    bool exact_one_of = false;
};

class Grammar {
public:
    static std::shared_ptr<const Grammar> from_gbnf(std::string_view text, const std::string &root = "root",
                                                     Limits limits = {}, MatcherLimits matcher_limits = {});
    // The whole string must match the pattern (anchors at the ends are implied).
    static std::shared_ptr<const Grammar> from_regex(std::string_view pattern);
    static std::shared_ptr<const Grammar> from_json_schema(const nlohmann::ordered_json &schema,
                                                            const JsonSchemaOptions &options = {});

    const std::string &gbnf() const { return gbnf_; }
    const Rules &rules() const { return *rules_; }
    // A matcher at the start of the grammar. Matchers of one grammar share its
    // automaton (cached states and masks; safe across threads).
    Matcher matcher() const { return Matcher(automaton_); }
    // The whole text is a complete match.
    bool matches(std::string_view text) const;

private:
    Grammar() = default;
    std::string gbnf_;
    std::shared_ptr<const Rules> rules_;
    std::shared_ptr<Automaton> automaton_;
};

// GBNF text of a regex / JSON Schema (what from_regex / from_json_schema compile).
std::string regex_to_gbnf(std::string_view pattern);
std::string json_schema_to_gbnf(const nlohmann::ordered_json &schema, const JsonSchemaOptions &options = {});

}  // namespace muse::grammar
