// muse::grammar (muse.hpp): RAII over muse_grammar, errors as muse::error, and the
// generate/chat options that take a grammar or a response_format.
#include "muse/muse.hpp"
#include "chat-models.h"

#include <catch2/catch.hpp>

#include <unistd.h>

TEST_CASE("muse::grammar compiles, matches and shows its GBNF", "[cpp-api][grammar]") {
    const auto re = muse::grammar::from_regex("[a-f]{2}[0-9]?");
    CHECK(re.matches("ab"));
    CHECK(re.matches("fe9"));
    CHECK_FALSE(re.matches("abc"));
    CHECK_FALSE(re.gbnf().empty());

    const auto g = muse::grammar::from_gbnf("root ::= greet \" \" name\ngreet ::= \"hi\" | \"yo\"\nname ::= [a-z]+\n");
    CHECK(g.matches("hi bob"));
    CHECK_FALSE(g.matches("hey bob"));
    const auto name_only = muse::grammar::from_gbnf("root ::= greet\ngreet ::= \"hi\"\n", "greet");
    CHECK(name_only.matches("hi"));

    const auto js = muse::grammar::from_json_schema(R"({"type": "array", "items": {"type": "boolean"}, "maxItems": 2})");
    CHECK(js.matches("[true, false]"));
    CHECK_FALSE(js.matches("[true, false, true]"));
    const auto compact = muse::grammar::from_json_schema(R"({"type": "array", "items": {"type": "boolean"}})",
                                                         MUSE_JSON_SCHEMA_COMPACT);
    CHECK(compact.matches("[true,false]"));
    CHECK_FALSE(compact.matches("[true, false]"));

    const muse::grammar copy = js;  // shared: copies refer to the same grammar
    CHECK(copy.get() == js.get());

    try {
        (void)muse::grammar::from_json_schema(R"({"$defs": {"x": {"uniqueItems": true}}, "$ref": "#/$defs/x"})");
        FAIL("expected muse::error");
    } catch (const muse::error &e) {
        CHECK(e.code() == MUSE_ERR_UNSUPPORTED);
        CHECK(std::string(e.what()).find("uniqueItems") != std::string::npos);
        CHECK(std::string(e.what()).find("/$defs/x") != std::string::npos);
    }
    CHECK_THROWS_AS(muse::grammar::from_gbnf("root ::= (\"a\""), muse::error);
    CHECK_THROWS_AS(muse::grammar::from_regex("(a"), muse::error);
}

TEST_CASE("muse::session generates and chats under a grammar", "[cpp-api][grammar]") {
    const std::string path = "/tmp/muse-cpp-grammar-" + std::to_string(::getpid()) + ".gguf";
    muse::test::tiny_decoder_writer(muse::test::think_chat_spec()).write_file(path);
    const muse::model m(path);
    ::unlink(path.c_str());
    muse::session s(m);

    muse::generate_options go;
    go.max_tokens = 32;
    go.sampling.temperature = 1.0f;
    go.grammar = muse::grammar::from_regex("(red|green|blue)-[0-9]{2}");
    std::string text;
    s.generate({1, 2, 3}, go, [&](const muse::token_event &e) {
        text += e.piece;
        return true;
    });
    CHECK(go.grammar->matches(text));

    // Pulled generation, thinking on with a budget: reasoning free, answer constrained.
    go.max_tokens = 200;
    go.thinking.mode = MUSE_THINKING_ON;
    go.thinking.budget = 12;
    s.seq_remove(0);
    std::string reasoning, answer;
    muse::generation gen = s.start_chat(R"([{"role": "user", "content": "Colour?"}])", go);
    for (const muse::event &e : gen) {
        if (e.kind == MUSE_EVENT_REASONING) reasoning += e.text;
        if (e.kind == MUSE_EVENT_ANSWER) answer += e.text;
    }
    INFO("reasoning: " << reasoning << "\nanswer: " << answer);
    CHECK(go.grammar->matches(answer));
    CHECK_FALSE(reasoning.empty());
    CHECK_FALSE(go.grammar->matches(reasoning));

    // response_format through chat_options; with a grammar too it is refused.
    muse::chat_options co;
    co.response_format_json = R"({"type": "json_schema", "json_schema": {"schema": {"enum": ["up", "down"]}}})";
    go.grammar.reset();
    go.thinking.budget = 0;
    s.seq_remove(0);
    const muse::chat_response r = s.chat(R"([{"role": "user", "content": "Which way?"}])", go, co);
    CHECK((r.answer == "\"up\"" || r.answer == "\"down\""));
    CHECK(r.reasoning.empty());
    go.grammar = muse::grammar::from_regex("x");
    s.seq_remove(0);
    CHECK_THROWS_AS(s.chat(R"([{"role": "user", "content": "?"}])", go, co), muse::error);
}
