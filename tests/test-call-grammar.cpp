// Call grammars (src/tools/call-grammar.h) and the lazy call stage (call-stage.h):
// grammars built from declared schemas accept the calls the family's template renders
// and refuse undeclared names, missing required arguments and ill-typed values; in a
// generation on a tiny random model, tool_choice required / named makes every response
// a valid call by construction (at thinking budget 0 too), parallel_tool_calls false
// ends the turn after one call, none leaves only self/user atem headers, and auto
// constrains nothing until a call opens.
#include "tool-models.h"
#include "core/error.h"
#include "engine/chat-turn.h"
#include "engine/session.h"
#include "model/model.h"
#include "tools/call-grammar.h"
#include "tools/call-stage.h"

#include <catch2/catch.hpp>

using namespace muse;
using namespace muse::tools;
using json = nlohmann::ordered_json;

namespace {

json tool(const std::string &name, json properties, json required) {
    return {{"type", "function"},
            {"function",
             {{"name", name},
              {"description", "test tool " + name},
              {"parameters", {{"type", "object"}, {"properties", properties}, {"required", required}}}}}};
}

json test_tools() {
    return json::array({tool("get_weather",
                             {{"city", {{"type", "string"}, {"maxLength", 10}}},
                              {"unit", {{"type", "string"}, {"enum", {"C", "F"}}}},
                              {"days", {{"type", "integer"}, {"minimum", 1}, {"maximum", 7}}}},
                             json::array({"city"})),
                        tool("calc", {{"expr", {{"type", "string"}, {"maxLength", 10}}}, {"exact", {{"type", "boolean"}}}},
                             json::array({"expr", "exact"}))});
}

bool accepts(CallSyntax syntax, const json &tools, const std::string &text) {
    return grammar::Grammar::from_gbnf(call_body_gbnf(syntax, function_declarations(tools)))->matches(text);
}

const std::string kAtemWeather = "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                                 "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                                 "<atem:parameter name=\"days\">3</atem:parameter>\n"
                                 "</atem:invoke>\n</atem:function_calls>";

} // namespace

TEST_CASE("call grammar: ATEM blocks from the declared schemas", "[tools][grammar]") {
    const json tools = test_tools();
    CHECK(accepts(CallSyntax::atem, tools, kAtemWeather));
    // Optional parameters may be left out; an enum value is written raw.
    CHECK(accepts(CallSyntax::atem, tools,
                  "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">Oslo"
                  "</atem:parameter>\n<atem:parameter name=\"unit\">F</atem:parameter>\n</atem:invoke>\n"
                  "</atem:function_calls>"));
    // Unbounded raw strings may hold '<' (not "</"); maxLength-bounded ones may not.
    const json free_text = json::array({tool("calc", {{"expr", {{"type", "string"}}}, {"exact", {{"type", "boolean"}}}},
                                             json::array({"expr", "exact"}))});
    CHECK(accepts(CallSyntax::atem, free_text,
                  "<atem:function_calls>\n<atem:invoke name=\"calc\">\n<atem:parameter name=\"expr\">1 < 2"
                  "</atem:parameter>\n<atem:parameter name=\"exact\">true</atem:parameter>\n</atem:invoke>\n"
                  "</atem:function_calls>"));
    SECTION("refused") {
        // undeclared function
        CHECK_FALSE(accepts(CallSyntax::atem, tools,
                            "<atem:function_calls>\n<atem:invoke name=\"rm\">\n</atem:invoke>\n</atem:function_calls>"));
        // required parameter missing
        CHECK_FALSE(accepts(CallSyntax::atem, tools,
                            "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n</atem:invoke>\n"
                            "</atem:function_calls>"));
        // integer out of its bounds, boolean that is not one
        std::string bad = kAtemWeather;
        bad.replace(bad.find(">3<") + 1, 1, "9");
        CHECK_FALSE(accepts(CallSyntax::atem, tools, bad));
        CHECK_FALSE(accepts(CallSyntax::atem, tools,
                            "<atem:function_calls>\n<atem:invoke name=\"calc\">\n<atem:parameter name=\"expr\">1"
                            "</atem:parameter>\n<atem:parameter name=\"exact\">yes</atem:parameter>\n</atem:invoke>\n"
                            "</atem:function_calls>"));
        // enum value outside the list, unknown parameter
        CHECK_FALSE(accepts(CallSyntax::atem, tools,
                            "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">"
                            "X</atem:parameter>\n<atem:parameter name=\"unit\">K</atem:parameter>\n</atem:invoke>\n"
                            "</atem:function_calls>"));
        CHECK_FALSE(accepts(CallSyntax::atem, tools,
                            "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">"
                            "X</atem:parameter>\n<atem:parameter name=\"zip\">1</atem:parameter>\n</atem:invoke>\n"
                            "</atem:function_calls>"));
    }
}

TEST_CASE("call grammar: Hermes and Llama 3 JSON bodies", "[tools][grammar]") {
    const json tools = test_tools();
    CHECK(accepts(CallSyntax::hermes, tools, "\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":2}}"));
    CHECK(accepts(CallSyntax::hermes, tools, "{\"name\":\"calc\",\"arguments\":{\"expr\":\"1+1\",\"exact\":false}}"));
    CHECK_FALSE(accepts(CallSyntax::hermes, tools, "{\"name\":\"calc\",\"arguments\":{\"expr\":\"1+1\"}}"));
    CHECK_FALSE(accepts(CallSyntax::hermes, tools, "{\"name\":\"nope\",\"arguments\":{}}"));
    CHECK_FALSE(accepts(CallSyntax::hermes, tools, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"P\"}}"));
    CHECK(accepts(CallSyntax::llama_json, tools, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"P\"}}"));
    CHECK_FALSE(accepts(CallSyntax::llama_json, tools, "{\"name\":\"get_weather\",\"parameters\":{\"days\":1}}"));
    SECTION("a schema the grammar engine refuses falls back to any object for that function") {
        json t = json::array({tool("odd", {{"x", {{"type", "integer"}, {"multipleOf", 3}}}}, json::array({"x"}))});
        CHECK(accepts(CallSyntax::hermes, t, "{\"name\":\"odd\",\"arguments\":{\"anything\":[1]}}"));
    }
}

TEST_CASE("call grammar: bad declarations and choices are clear errors", "[tools][grammar]") {
    auto status_of = [](auto &&fn) {
        try {
            fn();
        } catch (const Error &e) {
            return e.status();
        }
        return MUSE_OK;
    };
    CHECK(status_of([] { function_declarations(json::object()); }) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] { function_declarations(json::array({{{"type", "function"}}})); }) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] { function_declarations(json::array({tool("a", json::object(), json::array()),
                                                             tool("a", json::object(), json::array())})); }) ==
          MUSE_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] { ToolChoice::parse(json(42)); }) == MUSE_ERR_INVALID_ARGUMENT);
    const reasoning::ReasoningFormat atem = reasoning::default_format(reasoning::FormatKind::atem);
    CHECK(status_of([&] { make_call_plan(atem, test_tools(), ToolChoice::parse(std::string("missing")), true, true); }) ==
          MUSE_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] {
              make_call_plan(reasoning::default_format(reasoning::FormatKind::plain), test_tools(),
                             ToolChoice::parse(std::string("required")), true, true);
          }) == MUSE_ERR_UNSUPPORTED);
    CHECK(ToolChoice::parse(json{{"type", "function"}, {"function", {{"name", "calc"}}}}).name == "calc");
}

TEST_CASE("prefix_gbnf_rules renames rules, not literals or counts", "[tools][grammar]") {
    const std::string g = "root ::= \"root\" item [a-z]{0,2}\nitem ::= \"item\" | root | 0\n0 ::= \"0\"\n";
    CHECK(prefix_gbnf_rules(g, "p-") ==
          "p-root ::= \"root\" p-item [a-z]{0,2}\np-item ::= \"item\" | p-root | p-0\np-0 ::= \"0\"\n");
    // The JSON Schema compiler names anyOf branches "0", "1", ...; with a bounded string beside them.
    const json t = json::array({tool("w", {{"city", {{"type", "string"}, {"maxLength", 8}}},
                                           {"days", {{"anyOf", json::array({{{"type", "integer"}}, {{"type", "null"}}})}}}},
                                     json::array({"city"}))});
    CHECK(accepts(CallSyntax::hermes, t, "{\"name\":\"w\",\"arguments\":{\"city\":\"Oslo\",\"days\":null}}"));
}

// ------------------------------------------------------------ in a generation

namespace {

struct Turn {
    ChatResult result;
    std::string text;  // everything generated, special tokens rendered
};

Turn run(const Model &model, Session &session, ChatRequest req) {
    Turn t;
    req.max_tokens = 400;
    t.result = run_chat_turn(model, session, req);
    t.text = model.require_tokenizer().detokenize(t.result.tokens, true);
    return t;
}

ChatRequest weather_request(const std::string &choice) {
    ChatRequest req;
    req.messages = json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}});
    req.tools = test_tools();
    req.tool_choice = ToolChoice::parse(choice);
    req.sampling.temperature = 0.0f;
    return req;
}

} // namespace

TEST_CASE("call stage: required / named calls are valid by construction", "[tools][engine]") {
    for (const std::string family : {"atem", "hermes", "llama"}) {
        INFO(family);
        auto l = test::load(family == "atem"     ? test::atem_tool_spec()
                            : family == "hermes" ? test::hermes_tool_spec()
                                                 : test::llama_tool_spec());
        Session session(l.model->require_decoder(), SessionOptions{});
        session.set_end_of_generation(l.model->end_of_generation());
        for (const std::string choice : {"required", "calc"}) {
            for (const int budget : {-1, 0}) {
                INFO("choice " << choice << ", budget " << budget);
                ChatRequest req = weather_request(choice);
                req.thinking.budget = budget;
                req.parallel_tool_calls = false;
                req.seq = 0;
                const Turn t = run(*l.model, session, req);
                INFO("generated: " << t.text);
                REQUIRE(t.result.tool_calls.size() == 1);
                const reasoning::ToolCall &c = t.result.tool_calls[0];
                if (choice == "calc") CHECK(c.name == "calc");
                else CHECK((c.name == "calc" || c.name == "get_weather"));
                const json args = json::parse(c.arguments);
                if (c.name == "calc") {
                    CHECK(args.contains("expr"));
                    CHECK(args["exact"].is_boolean());
                } else {
                    CHECK(args["city"].is_string());
                }
                CHECK(t.result.answer.empty());
                CHECK(t.result.finish_reason == "stop");
                if (budget == 0) CHECK(t.result.usage.reasoning_tokens == 0);
            }
        }
    }
}

TEST_CASE("call stage: none keeps atem headers on self/user", "[tools][engine]") {
    auto l = test::load(test::atem_tool_spec());
    Session session(l.model->require_decoder(), SessionOptions{});
    session.set_end_of_generation(l.model->end_of_generation());
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        ChatRequest req = weather_request("none");
        req.sampling.temperature = 1.0f;
        req.sampling.seed = seed;
        req.thinking.mode = reasoning::ThinkingMode::automatic;
        const Turn t = run(*l.model, session, req);
        INFO("generated: " << t.text);
        CHECK(t.result.tool_calls.empty());
        // Every header the model wrote addresses self or user.
        for (size_t at = t.text.find(" to="); at != std::string::npos; at = t.text.find(" to=", at + 1)) {
            const std::string r = t.text.substr(at + 4, 4);
            CHECK((r == "self" || r == "user"));
        }
    }
}

TEST_CASE("call stage: auto is lazy, constrains from the trigger on, and never in reasoning", "[tools][engine]") {
    auto l = test::load(test::hermes_tool_spec());
    const Tokenizer &tok = l.model->require_tokenizer();
    reasoning::ReasoningFormat f = reasoning::default_format(reasoning::FormatKind::think_tags);
    f.tool_call_open = "<tool_call>";
    f.tool_call_close = "</tool_call>";
    f.end_of_turn = {"<|im_end|>"};
    CallStage stage(make_call_plan(f, test_tools(), ToolChoice{}, true, true), tok);
    const int64_t n_vocab = tok.n_vocab();
    auto n_allowed = [&] {
        Candidates c;
        c.logits.assign(static_cast<size_t>(n_vocab), 0.0f);
        stage.apply(c);
        int64_t n = 0;
        for (float x : c.logits) n += x > -1e30f ? 1 : 0;
        return c.forced >= 0 ? 1 : n;
    };
    auto feed = [&](const std::string &text, reasoning::State state) {
        for (int32_t t : tok.tokenize(text, false, true)) {
            stage.accept(t, false);
            stage.observe(state, false);
        }
    };
    stage.observe(reasoning::State::open, false);
    CHECK(n_allowed() == n_vocab);  // nothing constrained before a call opens
    feed("<think>I could write <tool_call> here", reasoning::State::reasoning);
    CHECK(n_allowed() == n_vocab);  // the trigger inside reasoning is text
    feed("</think>The answer, then ", reasoning::State::answer);
    CHECK(n_allowed() == n_vocab);
    feed("<tool_call", reasoning::State::answer);  // the parser holds a possible tag
    feed(">", reasoning::State::tool_call);
    CHECK(stage.active());
    const int64_t in_call = n_allowed();
    CHECK(in_call < 5);  // "\n" or "{" only
    feed("\n{\"name\":\"calc\",\"arguments\":{\"expr\":\"1\",\"exact\":true}}", reasoning::State::tool_call);
    // The body is complete: the close tag is forced, then the model is free again.
    CHECK(n_allowed() == 1);
    feed("\n</tool_call>", reasoning::State::answer);
    CHECK_FALSE(stage.active());
    CHECK(stage.calls() == 1);
    CHECK(n_allowed() == n_vocab);
}

TEST_CASE("call stage: with parallel calls an atem call message may end the turn", "[tools][engine]") {
    // MUSE_GLIMMER.md §3.1: calls are separated by <|eom|>, the last ends with <|eot|>; the
    // model chooses, the stage forces neither.
    auto l = test::load(test::atem_tool_spec());
    const Tokenizer &tok = l.model->require_tokenizer();
    const reasoning::ReasoningFormat f = reasoning::default_format(reasoning::FormatKind::atem);
    for (const bool parallel : {true, false}) {
        INFO("parallel " << parallel);
        CallStage stage(make_call_plan(f, test_tools(), ToolChoice{}, parallel, true), tok);
        const int64_t n_vocab = tok.n_vocab();
        auto allowed = [&] {
            Candidates c;
            c.logits.assign(static_cast<size_t>(n_vocab), 0.0f);
            stage.apply(c);
            std::vector<int32_t> ids;
            if (c.forced >= 0) return std::vector<int32_t>{c.forced};
            for (int32_t id = 0; id < n_vocab; ++id)
                if (c.logits[static_cast<size_t>(id)] > -1e30f) ids.push_back(id);
            return ids;
        };
        auto feed = [&](const std::string &text, reasoning::State state) {
            for (int32_t t : tok.tokenize(text, false, true)) {
                stage.accept(t, false);
                stage.observe(state, false);
            }
        };
        stage.observe(reasoning::State::open, false);
        feed("<|start|>assistant to=get_weather<|message|>", reasoning::State::tool_call);
        REQUIRE(stage.active());
        feed(kAtemWeather, reasoning::State::tool_call);
        const std::vector<int32_t> eom = tok.tokenize("<|eom|>", false, true), eot = tok.tokenize("<|eot|>", false, true);
        REQUIRE(eom.size() == 1);
        REQUIRE(eot.size() == 1);
        const std::vector<int32_t> ends = allowed();
        if (parallel) {
            CHECK(ends.size() == 2);
            CHECK(std::find(ends.begin(), ends.end(), eom[0]) != ends.end());
            CHECK(std::find(ends.begin(), ends.end(), eot[0]) != ends.end());
            stage.accept(eot[0], false);  // the model ends the turn: nothing more is forced
            stage.observe(reasoning::State::between, false);
            CHECK_FALSE(stage.active());
            CHECK(stage.calls() == 1);
        } else {
            CHECK(ends == eot);  // one call per response: the turn ends
        }
    }
}
