// The grammar part of the C ABI (muse_grammar_*, muse_generate_params.grammar,
// muse_chat_params.response_format_json): compiling and checking, clear errors for bad
// input, and generation on tiny random chat models whose answers must match while their
// reasoning stays free. Uses muse.h like a host (the models are written with the test
// helpers' GGUF writer).
#include "muse/muse.h"
#include "chat-models.h"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace {

struct GrammarGuard {
    muse_grammar *g = nullptr;
    ~GrammarGuard() { muse_grammar_free(g); }
};

std::string read_file(const std::string &path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool matches(const muse_grammar *g, const std::string &text) {
    bool ok = false;
    REQUIRE(muse_grammar_matches(g, text.data(), text.size(), &ok) == MUSE_OK);
    return ok;
}

std::string last_error() { return muse_last_error(); }

// A chat model file (think tags or ATEM), removed with the guard.
struct ChatModel {
    std::string path;
    muse_model *m = nullptr;
    muse_session *s = nullptr;
    explicit ChatModel(bool atem) {
        path = "/tmp/muse-capi-grammar-" + std::to_string(::getpid()) + (atem ? "-atem" : "-think") + ".gguf";
        const auto spec = atem ? muse::test::atem_chat_spec() : muse::test::think_chat_spec();
        muse::test::tiny_decoder_writer(spec).write_file(path);
        REQUIRE(muse_model_load(path.c_str(), nullptr, &m) == MUSE_OK);
        muse_session_params sp;
        muse_session_params_init(&sp);
        sp.n_ctx = 2048;
        REQUIRE(muse_session_create(m, &sp, &s) == MUSE_OK);
    }
    ~ChatModel() {
        muse_session_free(s);
        muse_model_free(m);
        std::remove(path.c_str());
    }
};

struct Chat {
    std::string answer, reasoning, finish_reason;
    long reasoning_tokens = -1;
};

// One chat turn; the result JSON is read with plain string searches (muse.h only here).
std::string json_string_field(const std::string &json, const std::string &key) {
    const std::string k = "\"" + key + "\":\"";
    const size_t at = json.find(k);
    if (at == std::string::npos) return "<missing " + key + ">";
    std::string out;
    for (size_t i = at + k.size(); i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\' && i + 1 < json.size()) {
            const char e = json[++i];
            if (e == 'u') {  // the random models write control bytes: keep a marker
                out += '?';
                i += 4;
            } else {
                out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            }
        } else {
            out += json[i];
        }
    }
    return out;
}

Chat chat(ChatModel &cm, const muse_chat_params &cp, const muse_generate_params &gp) {
    REQUIRE(muse_session_seq_remove(cm.s, 0, 0, -1) == MUSE_OK);
    char *out = nullptr;
    const muse_status st =
        muse_session_chat(cm.s, 0, R"([{"role": "user", "content": "Give me JSON."}])", &cp, &gp, nullptr, nullptr, &out);
    INFO(last_error());
    REQUIRE(st == MUSE_OK);
    const std::string json = out;
    muse_string_free(out);
    Chat c;
    c.answer = json_string_field(json, "answer");
    c.reasoning = json_string_field(json, "reasoning");
    c.finish_reason = json_string_field(json, "finish_reason");
    const size_t rt = json.find("\"reasoning_tokens\":");
    if (rt != std::string::npos) c.reasoning_tokens = std::stol(json.substr(rt + 19));
    return c;
}

const char *kSchema = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 6},
    "n": {"type": "integer", "minimum": -5, "maximum": 500},
    "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
  "required": ["name", "n"], "additionalProperties": false})";

} // namespace

TEST_CASE("grammars from GBNF files, regexes and schemas match what they should", "[c-api][grammar]") {
    const std::string dir = MUSE_TEST_GRAMMAR_DIR;
    GrammarGuard arith, list, tool;
    REQUIRE(muse_grammar_from_gbnf(read_file(dir + "/arithmetic.gbnf").c_str(), nullptr, &arith.g) == MUSE_OK);
    CHECK(matches(arith.g, "12 * (3 + -4)"));
    CHECK(matches(arith.g, "7"));
    CHECK_FALSE(matches(arith.g, "12 *"));
    CHECK_FALSE(matches(arith.g, "(1"));
    REQUIRE(muse_grammar_from_gbnf(read_file(dir + "/list.gbnf").c_str(), "root", &list.g) == MUSE_OK);
    CHECK(matches(list.g, "- one\n- two\n"));
    CHECK_FALSE(matches(list.g, "- 1\n- 2\n- 3\n- 4\n- 5\n- 6\n"));  // item{1,5}
    REQUIRE(muse_grammar_from_gbnf(read_file(dir + "/tool-call.gbnf").c_str(), nullptr, &tool.g) == MUSE_OK);
    CHECK(matches(tool.g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>"));
    CHECK_FALSE(matches(tool.g, "<tool_call>\n{\"name\": \"1f\", \"arguments\": {}}\n</tool_call>"));

    GrammarGuard sub;  // another root rule
    REQUIRE(muse_grammar_from_gbnf(read_file(dir + "/arithmetic.gbnf").c_str(), "number", &sub.g) == MUSE_OK);
    CHECK(matches(sub.g, "123"));
    CHECK_FALSE(matches(sub.g, "1+2"));

    GrammarGuard re;
    REQUIRE(muse_grammar_from_regex("[a-c]{2,3}-\\d+", &re.g) == MUSE_OK);
    CHECK(matches(re.g, "ab-1"));
    CHECK(matches(re.g, "cab-2026"));
    CHECK_FALSE(matches(re.g, "a-1"));
    CHECK_FALSE(matches(re.g, "ab-"));
    CHECK_FALSE(matches(re.g, "xab-1"));  // the whole text must match

    GrammarGuard js, compact;
    REQUIRE(muse_grammar_from_json_schema(kSchema, 0, &js.g) == MUSE_OK);
    CHECK(matches(js.g, R"({"name": "ab", "n": 3})"));
    CHECK(matches(js.g, R"({ "n" : 500, "name" : "", "tags": ["a", "c"] })"));  // any order, whitespace
    CHECK_FALSE(matches(js.g, R"({"name": "ab"})"));               // n is required
    CHECK_FALSE(matches(js.g, R"({"name": "abcdefg", "n": 1})"));  // maxLength
    CHECK_FALSE(matches(js.g, R"({"name": "a", "n": 501})"));      // maximum
    CHECK_FALSE(matches(js.g, R"({"name": "a", "n": 1, "x": 1})"));  // additionalProperties
    REQUIRE(muse_grammar_from_json_schema(kSchema, MUSE_JSON_SCHEMA_COMPACT, &compact.g) == MUSE_OK);
    CHECK(matches(compact.g, R"({"name":"ab","n":3})"));
    CHECK_FALSE(matches(compact.g, R"({"name": "ab", "n": 3})"));

    // Embedded NULs are bytes of the text, not its end.
    GrammarGuard nul;
    REQUIRE(muse_grammar_from_regex("a", &nul.g) == MUSE_OK);
    bool ok = true;
    REQUIRE(muse_grammar_matches(nul.g, "a\0", 2, &ok) == MUSE_OK);
    CHECK_FALSE(ok);
    REQUIRE(muse_grammar_matches(nul.g, "", 0, &ok) == MUSE_OK);
    CHECK_FALSE(ok);

    // Open and closed objects.
    GrammarGuard open, closed;
    const char *obj = R"({"type": "object", "properties": {"a": {"type": "integer"}}})";
    REQUIRE(muse_grammar_from_json_schema(obj, 0, &open.g) == MUSE_OK);
    REQUIRE(muse_grammar_from_json_schema(obj, MUSE_JSON_SCHEMA_CLOSED_OBJECTS, &closed.g) == MUSE_OK);
    CHECK(matches(open.g, R"({"a": 1, "b": 2})"));
    CHECK_FALSE(matches(closed.g, R"({"a": 1, "b": 2})"));
    CHECK(matches(closed.g, R"({"a": 1})"));

    char *gbnf = nullptr;
    REQUIRE(muse_grammar_to_gbnf(re.g, &gbnf) == MUSE_OK);
    CHECK(std::string(gbnf).find("root") != std::string::npos);
    muse_string_free(gbnf);
    REQUIRE(muse_grammar_to_gbnf(arith.g, &gbnf) == MUSE_OK);
    CHECK(std::string(gbnf) == read_file(dir + "/arithmetic.gbnf"));  // GBNF is kept as given
    muse_string_free(gbnf);
}

TEST_CASE("bad grammars and NULLs are clear errors, never crashes", "[c-api][grammar]") {
    muse_grammar *g = reinterpret_cast<muse_grammar *>(0x1);
    CHECK(muse_grammar_from_gbnf("root ::= \"a\" (", nullptr, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(g == nullptr);
    CHECK(last_error().find("line 1") != std::string::npos);
    CHECK(muse_grammar_from_gbnf("root ::= x", nullptr, &g) == MUSE_ERR_INVALID_ARGUMENT);  // undefined rule
    CHECK_FALSE(last_error().empty());
    CHECK(muse_grammar_from_gbnf("a ::= \"x\"", "nope", &g) != MUSE_OK);
    CHECK(last_error().find("nope") != std::string::npos);
    CHECK(muse_grammar_from_regex("(a", &g) != MUSE_OK);
    CHECK_FALSE(last_error().empty());
    CHECK(muse_grammar_from_regex("(a)\\1", &g) == MUSE_ERR_UNSUPPORTED);  // backreference
    CHECK(muse_grammar_from_json_schema("{\"type\": ", 0, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(last_error().find("schema_json is not valid JSON") != std::string::npos);
    // A refused keyword: the message names it and its JSON path.
    CHECK(muse_grammar_from_json_schema(R"({"properties": {"a": {"type": "integer", "multipleOf": 3}}})", 0, &g) ==
          MUSE_ERR_UNSUPPORTED);
    CHECK(last_error().find("multipleOf") != std::string::npos);
    CHECK(last_error().find("/properties/a") != std::string::npos);
    CHECK(muse_grammar_from_json_schema(R"({"type": "string", "maxLength": "ten"})", 0, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_from_json_schema("{}", 0x80, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(last_error().find("flags") != std::string::npos);
    CHECK(g == nullptr);

    CHECK(muse_grammar_from_gbnf(nullptr, nullptr, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_from_regex(nullptr, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_from_json_schema(nullptr, 0, &g) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_from_regex("a", nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    bool ok = true;
    CHECK(muse_grammar_matches(nullptr, "a", 1, &ok) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK_FALSE(ok);
    char *s = reinterpret_cast<char *>(0x1);
    CHECK(muse_grammar_to_gbnf(nullptr, &s) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(s == nullptr);
    muse_grammar_free(nullptr);

    GrammarGuard re;
    REQUIRE(muse_grammar_from_regex("a", &re.g) == MUSE_OK);
    CHECK(muse_grammar_matches(re.g, nullptr, 1, &ok) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_matches(re.g, "a", 1, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_grammar_matches(re.g, nullptr, 0, &ok) == MUSE_OK);  // the empty text
    CHECK_FALSE(ok);
    CHECK(muse_grammar_to_gbnf(re.g, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
}

TEST_CASE("raw generation with a grammar gives text the grammar accepts", "[c-api][grammar]") {
    ChatModel cm(false);
    GrammarGuard g;
    REQUIRE(muse_grammar_from_regex("(yes|no|maybe) [0-9]{1,3}(\\.[0-9])?", &g.g) == MUSE_OK);
    for (uint64_t seed = 0; seed < 6; ++seed) {
        muse_sampling_params sp;
        muse_sampling_params_init(&sp);
        sp.temperature = 1.0f;
        sp.seed = seed;
        muse_generate_params gp;
        muse_generate_params_init(&gp);
        gp.sampling = &sp;
        gp.max_tokens = 64;
        gp.grammar = g.g;
        std::string text;
        auto on_token = [](const muse_token_event *ev, void *user) {
            static_cast<std::string *>(user)->append(ev->piece, ev->piece_len);
            return true;
        };
        REQUIRE(muse_session_seq_remove(cm.s, 0, 0, -1) == MUSE_OK);
        const int32_t prompt[] = {1, 2, 3};
        size_t n = 0;
        REQUIRE(muse_session_generate(cm.s, 0, prompt, 3, &gp, on_token, &text, &n) == MUSE_OK);
        INFO("seed " << seed << ": " << text);
        CHECK(matches(g.g, text));
        CHECK(n <= 9);  // at most "maybe 123.4" in tokens plus the end: it ended by itself
    }

    // The same through the pull API: the generation keeps the grammar after it is freed.
    muse_grammar *own = nullptr;
    REQUIRE(muse_grammar_from_regex("[0-9]{4}", &own) == MUSE_OK);
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.grammar = own;
    REQUIRE(muse_session_seq_remove(cm.s, 0, 0, -1) == MUSE_OK);
    const int32_t prompt[] = {5, 6};
    muse_generation *gen = nullptr;
    REQUIRE(muse_generation_start(cm.s, 0, prompt, 2, &gp, &gen) == MUSE_OK);
    muse_grammar_free(own);
    std::string text;
    muse_event ev;
    ev.struct_size = sizeof(ev);
    while (muse_generation_next(gen, &ev) == MUSE_OK && ev.kind != MUSE_EVENT_DONE) text.append(ev.text, ev.text_len);
    CHECK(std::string(ev.finish_reason) == "stop");
    muse_generation_free(gen);
    CHECK(text.size() == 4);
    CHECK(text.find_first_not_of("0123456789") == std::string::npos);
}

TEST_CASE("response_format: the answer follows the schema, the reasoning stays free", "[c-api][grammar]") {
    for (const bool atem : {false, true}) {
        ChatModel cm(atem);
        GrammarGuard check;  // the same schema, flexible whitespace, to check answers
        REQUIRE(muse_grammar_from_json_schema(kSchema, 0, &check.g) == MUSE_OK);
        const std::string rf = std::string(R"({"type": "json_schema", "json_schema": {"name": "t", "strict": true, "schema": )") +
                               kSchema + "}}";
        muse_chat_params cp;
        muse_chat_params_init(&cp);
        cp.response_format_json = rf.c_str();
        muse_sampling_params sp;
        muse_sampling_params_init(&sp);
        sp.temperature = 0.8f;
        muse_generate_params gp;
        muse_generate_params_init(&gp);
        gp.sampling = &sp;
        gp.max_tokens = 400;
        struct Mode {
            int32_t mode, budget;
        };
        for (const Mode m : {Mode{MUSE_THINKING_ON, 24}, Mode{MUSE_THINKING_ON, 0}, Mode{MUSE_THINKING_OFF, -1},
                             Mode{MUSE_THINKING_ON, -1}, Mode{MUSE_THINKING_AUTO, 16}}) {
            for (uint64_t seed = 0; seed < 3; ++seed) {
                sp.seed = seed;
                gp.thinking.mode = m.mode;
                gp.thinking.budget = m.budget;
                const Chat c = chat(cm, cp, gp);
                INFO((atem ? "atem" : "think") << " mode " << m.mode << " budget " << m.budget << " seed " << seed
                                               << "\nreasoning: " << c.reasoning << "\nanswer: " << c.answer);
                CHECK(c.finish_reason == "stop");
                CHECK(matches(check.g, c.answer));
                if (m.mode == MUSE_THINKING_AUTO) {
                    // The model chose; whatever it reasoned is no answer JSON.
                    if (c.reasoning_tokens > 0) CHECK_FALSE(matches(check.g, c.reasoning));
                } else if (m.mode == MUSE_THINKING_ON && m.budget != 0) {
                    // Reasoning happened and is not JSON: the grammar did not touch it.
                    CHECK(c.reasoning_tokens > 0);
                    CHECK_FALSE(matches(check.g, c.reasoning));
                } else {
                    CHECK(c.reasoning_tokens == 0);
                }
            }
        }
        // json_object: any object. A random model never closes its first key (any string is
        // a key), so only the start is checked; whole answers are checked above.
        cp.response_format_json = R"({"type": "json_object"})";
        gp.thinking.mode = MUSE_THINKING_OFF;
        gp.max_tokens = 40;
        const Chat c = chat(cm, cp, gp);
        INFO(c.answer);
        CHECK(c.answer.rfind("{\"", 0) == 0);
    }
}

TEST_CASE("response_format and grammar: bad values and both at once are refused", "[c-api][grammar]") {
    ChatModel cm(false);
    muse_chat_params cp;
    muse_chat_params_init(&cp);
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 4;
    const char *msgs = R"([{"role": "user", "content": "x"}])";
    auto fails = [&](const char *rf, const char *needle) {
        cp.response_format_json = rf;
        char *out = reinterpret_cast<char *>(0x1);
        const muse_status st = muse_session_chat(cm.s, 0, msgs, &cp, &gp, nullptr, nullptr, &out);
        INFO(rf << " -> " << last_error());
        CHECK(st != MUSE_OK);
        CHECK(out == nullptr);
        CHECK(last_error().find(needle) != std::string::npos);
    };
    fails("not json", "response_format_json is not valid JSON");
    fails("[]", "must be a JSON object");
    fails(R"({"kind": "text"})", "needs a \"type\"");
    fails(R"({"type": "xml"})", "\"xml\" is unknown");
    fails(R"({"type": "json_schema"})", "needs a \"json_schema\" object");
    fails(R"({"type": "json_schema", "json_schema": {"name": "x"}})", "needs a \"schema\"");
    fails(R"({"type": "json_schema", "json_schema": {"schema": {}, "strict": "yes"}})", "\"strict\" must be");
    fails(R"({"type": "json_schema", "json_schema": {"name": "m", "schema": {"type": "number", "multipleOf": 2}}})",
          "multipleOf");
    CHECK(last_error().find("\"m\"") != std::string::npos);  // the schema's name

    GrammarGuard g;
    REQUIRE(muse_grammar_from_regex("a", &g.g) == MUSE_OK);
    gp.grammar = g.g;
    fails(R"({"type": "json_object"})", "give one of them");
    muse_generation *gen = reinterpret_cast<muse_generation *>(0x1);
    CHECK(muse_generation_start_chat(cm.s, 0, msgs, &cp, &gp, &gen) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(gen == nullptr);

    // Both set is refused whatever the response_format says ("text" included): a host never
    // has to wonder which one won.
    fails(R"({"type": "text"})", "give one of them");

    // An ABI 4 caller's params end before the new fields: whatever lies beyond is not read.
    struct {
        muse_chat_params cp;
    } old{};
    muse_chat_params_init(&old.cp);
    old.cp.struct_size = static_cast<uint32_t>(offsetof(muse_chat_params, response_format_json));
    old.cp.response_format_json = "garbage that must be ignored";
    muse_generate_params ogp;
    muse_generate_params_init(&ogp);
    ogp.struct_size = static_cast<uint32_t>(offsetof(muse_generate_params, grammar));
    ogp.grammar = reinterpret_cast<const muse_grammar *>(0x1);  // not read
    ogp.max_tokens = 2;
    char *out = nullptr;
    REQUIRE(muse_session_seq_remove(cm.s, 0, 0, -1) == MUSE_OK);
    CHECK(muse_session_chat(cm.s, 0, msgs, &old.cp, &ogp, nullptr, nullptr, &out) == MUSE_OK);
    muse_string_free(out);
}
