// C entry points for grammars (muse_grammar_*) and OpenAI's response_format.
#include "api/api-guard.h"
#include "api/grammar-handle.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace muse::api {
namespace {

using nlohmann::ordered_json;

constexpr uint32_t kKnownSchemaFlags =
    MUSE_JSON_SCHEMA_COMPACT | MUSE_JSON_SCHEMA_CLOSED_OBJECTS | MUSE_JSON_SCHEMA_EXACT_ONE_OF;

const grammar::Grammar &grammar_of(const muse_grammar *g) {
    if (!g || !g->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "grammar handle is NULL");
    return *g->impl;
}

ordered_json parse_json(const char *text, const char *what) {
    try {
        return ordered_json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, what, " is not valid JSON: ", e.what());
    }
}

// A schema compiles or fails with its own message (keyword and JSON path), prefixed with
// where it came from when that is not obvious (what may be NULL). A keyword of the wrong
// JSON type is the caller's error, not muse's.
std::shared_ptr<const grammar::Grammar> compile_schema(const ordered_json &schema,
                                                       const grammar::JsonSchemaOptions &o, const char *what) {
    try {
        return grammar::Grammar::from_json_schema(schema, o);
    } catch (const Error &e) {
        if (!what) throw;
        fail(e.status(), what, ": ", e.what());
    } catch (const nlohmann::json::exception &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, what ? what : "JSON Schema", ": a keyword has the wrong JSON type (", e.what(),
             ")");
    }
}

void set_out(muse_grammar **out, std::shared_ptr<const grammar::Grammar> g) {
    auto h = std::make_unique<muse_grammar>();
    h->impl = std::move(g);
    *out = h.release();
}

} // namespace

std::shared_ptr<const grammar::Grammar> response_format_grammar(const char *text) {
    if (!text) return nullptr;
    const ordered_json rf = parse_json(text, "response_format_json");
    if (!rf.is_object()) fail(MUSE_ERR_INVALID_ARGUMENT, "response_format must be a JSON object");
    const auto type = rf.find("type");
    if (type == rf.end() || !type->is_string())
        fail(MUSE_ERR_INVALID_ARGUMENT, "response_format needs a \"type\": \"text\", \"json_object\" or \"json_schema\"");
    const std::string t = type->get<std::string>();
    grammar::JsonSchemaOptions o;
    o.compact = true;  // what a model should write: no whitespace to ramble in
    if (t == "text") return nullptr;
    if (t == "json_object") return compile_schema({{"type", "object"}}, o, "response_format json_object");
    if (t != "json_schema")
        fail(MUSE_ERR_INVALID_ARGUMENT, "response_format type \"", t,
             "\" is unknown (\"text\", \"json_object\" or \"json_schema\")");
    const auto js = rf.find("json_schema");
    if (js == rf.end() || !js->is_object())
        fail(MUSE_ERR_INVALID_ARGUMENT, "response_format type \"json_schema\" needs a \"json_schema\" object");
    const auto schema = js->find("schema");
    if (schema == js->end() || !(schema->is_object() || schema->is_boolean()))
        fail(MUSE_ERR_INVALID_ARGUMENT, "response_format json_schema needs a \"schema\" (a JSON Schema object)");
    const auto strict = js->find("strict");
    if (strict != js->end() && !strict->is_boolean() && !strict->is_null())
        fail(MUSE_ERR_INVALID_ARGUMENT, "response_format json_schema \"strict\" must be true or false");
    // OpenAI's strict mode closes every object; here objects that say nothing about
    // additionalProperties are closed, and an explicit value is kept.
    o.additional_properties_default = !(strict != js->end() && strict->is_boolean() && strict->get<bool>());
    std::string what = "response_format json_schema";
    if (const auto name = js->find("name"); name != js->end() && name->is_string())
        what += " \"" + name->get<std::string>() + "\"";
    return compile_schema(*schema, o, what.c_str());
}

} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API muse_status muse_grammar_from_gbnf(const char *text, const char *root, muse_grammar **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_grammar");
        require(text, "text");
        set_out(out, grammar::Grammar::from_gbnf(text, root ? std::string(root) : std::string("root")));
    });
}

MUSE_API muse_status muse_grammar_from_regex(const char *pattern, muse_grammar **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_grammar");
        require(pattern, "pattern");
        set_out(out, grammar::Grammar::from_regex(pattern));
    });
}

MUSE_API muse_status muse_grammar_from_json_schema(const char *schema_json, uint32_t flags, muse_grammar **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_grammar");
        require(schema_json, "schema_json");
        if (flags & ~kKnownSchemaFlags)
            fail(MUSE_ERR_INVALID_ARGUMENT, "unknown muse_json_schema_flags bits 0x", std::hex,
                 flags & ~kKnownSchemaFlags);
        grammar::JsonSchemaOptions o;
        o.compact = (flags & MUSE_JSON_SCHEMA_COMPACT) != 0;
        o.additional_properties_default = (flags & MUSE_JSON_SCHEMA_CLOSED_OBJECTS) == 0;
        o.exact_one_of = (flags & MUSE_JSON_SCHEMA_EXACT_ONE_OF) != 0;
        set_out(out, compile_schema(parse_json(schema_json, "schema_json"), o, nullptr));
    });
}

MUSE_API void muse_grammar_free(muse_grammar *g) { delete g; }

MUSE_API muse_status muse_grammar_matches(const muse_grammar *g, const char *text, size_t len, bool *out_match) {
    if (out_match) *out_match = false;
    return guard([&] {
        const grammar::Grammar &gr = grammar_of(g);
        require(out_match, "out_match");
        if (len > 0) require(text, "text");
        *out_match = gr.matches(std::string_view(text ? text : "", len));
    });
}

MUSE_API muse_status muse_grammar_to_gbnf(const muse_grammar *g, char **out) {
    if (out) *out = nullptr;
    return guard([&] {
        const grammar::Grammar &gr = grammar_of(g);
        require(out, "out_gbnf");
        *out = dup_string(gr.gbnf());
    });
}

} // extern "C"
