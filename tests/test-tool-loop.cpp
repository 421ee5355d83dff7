// The tool loop end to end through the public API (muse.h, muse.hpp), as a host uses it:
// host tools the library calls between rounds, several rounds in one chat turn, a tool
// that fails (its error goes to the model, the turn goes on), the pull API, tools
// declared without a function (their calls are returned), and bad input. Tiny random
// models cannot choose to call tools, so every response before the last allowed round
// is made a call with tool_choice "required" (or a named function) and the call
// grammar: the calls are valid by construction; the last round must answer.
#include "muse/muse.h"
#include "muse/muse.hpp"
#include "tool-models.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using json = nlohmann::ordered_json;

std::string write_model(const muse::test::TinyDecoderSpec &spec, const char *tag) {
    const std::string path = "/tmp/muse-tools-" + std::to_string(::getpid()) + "-" + tag + ".gguf";
    muse::test::tiny_decoder_writer(spec).write_file(path);
    return path;
}

struct Fixture {
    muse_model *model = nullptr;
    muse_session *session = nullptr;
    explicit Fixture(const muse::test::TinyDecoderSpec &spec, const char *tag) {
        const std::string path = write_model(spec, tag);
        REQUIRE(muse_model_load(path.c_str(), nullptr, &model) == MUSE_OK);
        muse_session_params sp;
        muse_session_params_init(&sp);
        sp.n_ctx = 2048;
        REQUIRE(muse_session_create(model, &sp, &session) == MUSE_OK);
    }
    ~Fixture() {
        muse_session_free(session);
        muse_model_free(model);
    }
};

const char *kWeatherDecl =
    R"({"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                       "required": ["city"]}}})";
const char *kLookupDecl =
    R"({"type": "function", "function": {"name": "lookup", "description": "Looks a key up",
        "parameters": {"type": "object", "properties": {"key": {"type": "string", "maxLength": 8}},
                       "required": ["key"]}}})";

// One callback for both tools: the second call fails (by status), so the failing tool is
// exercised whichever tool the model picks.
struct ToolLog {
    std::vector<std::string> names, arguments;
};

muse_status host_tool(const char *name, const char *arguments, void *user, muse_tool_result *result) {
    auto *log = static_cast<ToolLog *>(user);
    log->names.emplace_back(name);
    log->arguments.emplace_back(arguments);
    if (log->names.size() == 2) return MUSE_ERR_INVALID_ARGUMENT;  // a failure with no message
    if (log->names.size() == 3) return muse_tool_result_set_error(result, "lookup service unavailable"), MUSE_OK;
    if (log->names.size() == 1) {  // a file for the host only (annotate's PNG)
        const unsigned char png[4] = {0x89, 'P', 'N', 'G'};
        if (muse_tool_result_add_artefact(result, "annotation", "image/png", png, sizeof png) != MUSE_OK)
            return MUSE_ERR_INTERNAL;
    }
    const std::string text = "RESULT-" + std::to_string(log->names.size()) + " for " + name;
    return muse_tool_result_set_content(result, text.c_str(), static_cast<size_t>(-1));
}

struct Events {
    int calls = 0, results = 0, failed = 0, answer_pieces = 0, artefacts = 0;
    std::string artefact, artefact_mime, artefact_tool;
    std::vector<std::string> result_texts;
};

bool on_token(const muse_token_event *ev, void *user) {
    auto *e = static_cast<Events *>(user);
    if (ev->channel == MUSE_CHANNEL_TOOL_CALL && ev->tool_name) ++e->calls;
    if (ev->channel == MUSE_CHANNEL_TOOL_RESULT) {
        ++e->results;
        e->failed += ev->tool_failed ? 1 : 0;
        e->result_texts.emplace_back(ev->piece, ev->piece_len);
    }
    if (ev->channel == MUSE_CHANNEL_ANSWER && ev->piece_len > 0) ++e->answer_pieces;
    if (ev->channel == MUSE_CHANNEL_ARTEFACT) {
        ++e->artefacts;
        e->artefact.assign(static_cast<const char *>(ev->artefact_data), ev->artefact_size);
        e->artefact_mime = ev->artefact_mime;
        e->artefact_tool = ev->tool_name;
    }
    return true;
}

const char *kMessages = R"([{"role": "user", "content": "Weather in Paris, then look up X?"}])";

void setup_params(muse_chat_params &chat, muse_generate_params &gp, muse_tool *tools, size_t n, const char *choice,
                  int rounds) {
    muse_chat_params_init(&chat);
    chat.host_tools = tools;
    chat.n_host_tools = n;
    chat.tool_choice = choice;
    chat.parallel_tool_calls = 0;
    chat.max_tool_rounds = rounds;
    muse_generate_params_init(&gp);
    gp.max_tokens = 1200;
    gp.thinking.mode = MUSE_THINKING_OFF;
}

} // namespace

TEST_CASE("tool loop from C: several rounds, a failing tool, results in the conversation", "[tools][c-api]") {
    for (const bool atem : {true, false}) {
        INFO((atem ? "atem" : "hermes"));
        Fixture f(atem ? muse::test::atem_tool_spec() : muse::test::hermes_tool_spec(), atem ? "atem" : "hermes");
        ToolLog log;
        muse_tool tools[2] = {{kWeatherDecl, host_tool, &log}, {kLookupDecl, host_tool, &log}};
        muse_chat_params chat;
        muse_generate_params gp;
        setup_params(chat, gp, tools, 2, "required", 3);
        Events ev;
        char *out = nullptr;
        REQUIRE(muse_session_chat(f.session, 0, kMessages, &chat, &gp, on_token, &ev, &out) == MUSE_OK);
        const json r = json::parse(out);
        muse_string_free(out);
        INFO(r.dump());
        // Three forced rounds of one call each (parallel_tool_calls off), then the answer round.
        CHECK(r["tool_rounds"] == 3);
        REQUIRE(r["tool_results"].size() == 3);
        REQUIRE(log.names.size() == 3);
        CHECK(r["tool_calls"].empty());
        CHECK(ev.calls == 3);
        CHECK(ev.results == 3);
        CHECK(ev.failed == 2);
        CHECK(ev.artefacts == 1);
        CHECK(ev.artefact == "\x89PNG");
        CHECK(ev.artefact_mime == "image/png");
        CHECK(ev.artefact_tool == log.names[0]);
        CHECK(r["tool_results"][0]["failed"] == false);
        CHECK(r["tool_results"][0]["content"] == "RESULT-1 for " + log.names[0]);
        CHECK(r["tool_results"][1]["failed"] == true);
        CHECK(r["tool_results"][1]["content"].get<std::string>().find("MUSE_ERR_INVALID_ARGUMENT") != std::string::npos);
        CHECK(r["tool_results"][2]["content"] == "lookup service unavailable");
        for (size_t i = 0; i < 3; ++i) {
            CHECK(r["tool_results"][i]["round"] == static_cast<int>(i));
            // Arguments are valid for the declared schema by construction.
            const json args = json::parse(log.arguments[i]);
            const std::string key = log.names[i] == "get_weather" ? "city" : "key";
            CHECK(args.contains(key));
            CHECK(args.size() == 1);
        }
        CHECK((r["finish_reason"] == "stop" || r["finish_reason"] == "length"));
        // Later rounds reuse the prefix the sequence holds: most of each round's prompt is cached.
        CHECK(r["usage"]["cached_tokens"].get<int>() > r["usage"]["prompt_tokens_evaluated"].get<int>());
    }
}

TEST_CASE("tool loop through the pull API", "[tools][c-api]") {
    Fixture f(muse::test::hermes_tool_spec(), "pull");
    ToolLog log;
    muse_tool tools[1] = {{kWeatherDecl, host_tool, &log}};
    muse_chat_params chat;
    muse_generate_params gp;
    setup_params(chat, gp, tools, 1, "get_weather", 1);
    muse_generation *g = nullptr;
    REQUIRE(muse_generation_start_chat(f.session, 0, kMessages, &chat, &gp, &g) == MUSE_OK);
    muse_event ev;
    std::memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    int calls = 0, results = 0, done = 0, artefacts = 0;
    std::string result_text;
    while (muse_generation_next(g, &ev) == MUSE_OK) {
        if (ev.kind == MUSE_EVENT_TOOL_CALL) ++calls;
        if (ev.kind == MUSE_EVENT_TOOL_RESULT) {
            ++results;
            result_text.assign(ev.text, ev.text_len);
            CHECK(std::string(ev.tool_name) == "get_weather");
            CHECK(ev.tool_failed == 0);
        }
        if (ev.kind == MUSE_EVENT_ARTEFACT) {
            ++artefacts;
            CHECK(ev.artefact_size == 4);
            CHECK(std::string(ev.artefact_kind) == "annotation");
        }
        if (ev.kind == MUSE_EVENT_DONE) {
            ++done;
            break;
        }
    }
    CHECK(calls == 1);
    CHECK(results == 1);
    CHECK(artefacts == 1);
    CHECK(done == 1);
    CHECK(result_text == "RESULT-1 for get_weather");
    char *out = nullptr;
    REQUIRE(muse_generation_result(g, &out) == MUSE_OK);
    const json r = json::parse(out);
    muse_string_free(out);
    CHECK(r["tool_rounds"] == 1);
    CHECK(r["tool_calls"].empty());
    muse_generation_free(g);
}

TEST_CASE("tools declared without a function: the turn ends with the calls", "[tools][c-api]") {
    Fixture f(muse::test::atem_tool_spec(), "decl");
    muse_tool tools[1] = {{kWeatherDecl, nullptr, nullptr}};
    muse_chat_params chat;
    muse_generate_params gp;
    setup_params(chat, gp, tools, 1, "required", 4);
    char *out = nullptr;
    REQUIRE(muse_session_chat(f.session, 0, kMessages, &chat, &gp, nullptr, nullptr, &out) == MUSE_OK);
    const json r = json::parse(out);
    muse_string_free(out);
    REQUIRE(r["tool_calls"].size() == 1);
    CHECK(r["tool_calls"][0]["name"] == "get_weather");
    CHECK(r["tool_calls"][0]["arguments"]["city"].is_string());
    CHECK(r["tool_results"].empty());
    CHECK(r["tool_rounds"] == 0);
}

TEST_CASE("tool loop: bad input is a clear error", "[tools][c-api]") {
    Fixture f(muse::test::hermes_tool_spec(), "bad");
    ToolLog log;
    muse_chat_params chat;
    muse_generate_params gp;
    char *out = nullptr;
    SECTION("declaration that is not JSON") {
        muse_tool tools[1] = {{"{not json", host_tool, &log}};
        setup_params(chat, gp, tools, 1, nullptr, 2);
        CHECK(muse_session_chat(f.session, 0, kMessages, &chat, &gp, nullptr, nullptr, &out) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(std::string(muse_last_error()).find("not valid JSON") != std::string::npos);
    }
    SECTION("declaration without a name") {
        muse_tool tools[1] = {{R"({"type": "function", "function": {}})", host_tool, &log}};
        setup_params(chat, gp, tools, 1, nullptr, 2);
        CHECK(muse_session_chat(f.session, 0, kMessages, &chat, &gp, nullptr, nullptr, &out) == MUSE_ERR_INVALID_ARGUMENT);
    }
    SECTION("tool_choice naming an undeclared tool") {
        muse_tool tools[1] = {{kWeatherDecl, host_tool, &log}};
        setup_params(chat, gp, tools, 1, "rm_rf", 2);
        CHECK(muse_session_chat(f.session, 0, kMessages, &chat, &gp, nullptr, nullptr, &out) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(std::string(muse_last_error()).find("rm_rf") != std::string::npos);
    }
    SECTION("unknown built-in tool") {
        const char *names[1] = {"no_such_tool"};
        setup_params(chat, gp, nullptr, 0, nullptr, 2);
        chat.builtin_tools = names;
        chat.n_builtin_tools = 1;
        CHECK(muse_session_chat(f.session, 0, kMessages, &chat, &gp, nullptr, nullptr, &out) != MUSE_OK);
        CHECK(std::string(muse_last_error()).find("no_such_tool") != std::string::npos);
    }
    SECTION("result setters reject a NULL result") {
        CHECK(muse_tool_result_set_content(nullptr, "x", 1) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(muse_tool_result_set_error(nullptr, "x") == MUSE_ERR_INVALID_ARGUMENT);
    }
    CHECK(out == nullptr);
    CHECK(log.names.empty());
}

TEST_CASE("tool loop from C++: std::function tools, one that throws", "[tools][cpp-api]") {
    const std::string path = write_model(muse::test::atem_tool_spec(), "cpp");
    muse::model m(path);
    muse::session_options so;
    so.n_ctx = 2048;
    muse::session s(m, so);
    int n = 0;
    muse::chat_options chat;
    chat.tool_choice = "required";
    chat.parallel_tool_calls = false;
    chat.max_tool_rounds = 2;
    chat.tools.push_back({kWeatherDecl, [&](const std::string &name, const std::string &args) {
                              ++n;
                              if (n == 2) throw std::runtime_error("weather service down");
                              return muse::tool_result{"sunny, 21 C (" + name + " " + args + ")"};
                          }});
    chat.tools.push_back({kLookupDecl, [&](const std::string &, const std::string &) {
                              ++n;
                              if (n == 2) throw std::runtime_error("lookup service down");
                              return muse::tool_result{"found"};
                          }});
    muse::generate_options o;
    o.max_tokens = 1200;
    o.thinking.mode = MUSE_THINKING_OFF;
    std::vector<std::string> results;
    std::vector<bool> failed;
    const muse::chat_response r = s.chat(kMessages, o, chat, [&](const muse::token_event &e) {
        if (e.channel == MUSE_CHANNEL_TOOL_RESULT) {
            results.emplace_back(e.piece);
            failed.push_back(e.tool_failed);
        }
        return true;
    });
    const json j = json::parse(r.json);
    CHECK(n == 2);
    REQUIRE(results.size() == 2);
    CHECK(failed == std::vector<bool>{false, true});
    CHECK(results[1].find("service down") != std::string::npos);
    CHECK(j["tool_rounds"] == 2);
    CHECK(j["tool_results"][1]["failed"] == true);
}

TEST_CASE("tool loop from C++ through start_chat: the generation keeps the tools alive", "[tools][cpp-api]") {
    const std::string path = write_model(muse::test::hermes_tool_spec(), "cpp-pull");
    muse::model m(path);
    muse::session_options so;
    so.n_ctx = 2048;
    muse::session s(m, so);
    muse::generate_options o;
    o.max_tokens = 600;
    o.thinking.mode = MUSE_THINKING_OFF;
    muse::generation g;
    {
        muse::chat_options chat;  // gone before the first event is pulled
        chat.tool_choice = "get_weather";
        chat.parallel_tool_calls = false;
        chat.max_tool_rounds = 1;
        chat.tools.push_back({kWeatherDecl, [](const std::string &, const std::string &args) {
                                  return muse::tool_result{"got " + args};
                              }});
        g = s.start_chat(kMessages, o, chat);
    }
    muse::event e;
    int results = 0;
    while (g.next(e))
        if (e.kind == MUSE_EVENT_TOOL_RESULT) {
            ++results;
            CHECK(e.tool_name == "get_weather");
            CHECK_FALSE(e.tool_failed);
            CHECK(e.text.rfind("got {\"city\":", 0) == 0);
        }
    CHECK(results == 1);
}
