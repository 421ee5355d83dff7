#include "grammar/grammar.h"

#include "grammar/gbnf.h"

namespace muse::grammar {

std::shared_ptr<const Grammar> Grammar::from_gbnf(std::string_view text, const std::string &root, Limits limits,
                                                   MatcherLimits matcher_limits) {
    std::shared_ptr<Grammar> g(new Grammar());
    g->gbnf_ = std::string(text);
    g->rules_ = std::make_shared<const Rules>(parse_gbnf(text, root, limits));
    g->automaton_ = std::make_shared<Automaton>(g->rules_, matcher_limits);
    return g;
}

std::shared_ptr<const Grammar> Grammar::from_regex(std::string_view pattern) {
    return from_gbnf(regex_to_gbnf(pattern));
}

std::shared_ptr<const Grammar> Grammar::from_json_schema(const nlohmann::ordered_json &schema,
                                                         const JsonSchemaOptions &options) {
    return from_gbnf(json_schema_to_gbnf(schema, options));
}

bool Grammar::matches(std::string_view text) const {
    Matcher m = matcher();
    return m.accept_bytes(text) && m.is_accepting();
}

}  // namespace muse::grammar
