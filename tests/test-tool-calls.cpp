// Tool declarations and calls, per family, against the real chat templates in
// shared/templates: declarations render (muse-glimmer's namespaces and recipients line,
// MUSE_GLIMMER.md §3.2), and a conversation whose assistant turn holds calls renders to
// text that the family's channel parser reads back as the same calls (round trip), fed
// whole and byte by byte. Plus the §3.5 cases and the Llama 3.x JSON parser's edges.
#include "jinja/jinja.h"
#include "reasoning/channel-parser.h"

#include "shared-templates.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace muse::reasoning;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

using muse::test::read_file;

std::string render(const std::string &source, const json &messages, bool add_generation_prompt, const json &tools,
                   const json &vars = json::object()) {
    auto tpl = muse::jinja::Template::parse(source);
    tpl.now = std::chrono::system_clock::time_point(std::chrono::seconds(1768478400));
    json ctx = {{"messages", messages}, {"add_generation_prompt", add_generation_prompt}, {"bos_token", ""},
                {"eos_token", ""}};
    if (!tools.is_null()) ctx["tools"] = tools;
    for (auto it = vars.begin(); it != vars.end(); ++it) ctx[it.key()] = it.value();
    return tpl.render(ctx);
}

json tool(const std::string &name, json properties, json required) {
    return {{"type", "function"},
            {"function",
             {{"name", name},
              {"description", "test tool " + name},
              {"parameters", {{"type", "object"}, {"properties", properties}, {"required", required}}}}}};
}

json weather_tools() {
    return json::array({tool("weather.get", {{"city", {{"type", "string"}}}, {"days", {{"type", "integer"}}}},
                             json::array({"city"})),
                        tool("calc", {{"expr", {{"type", "string"}}}, {"exact", {{"type", "boolean"}}}},
                             json::array({"expr"}))});
}

json assistant_calls(const json &calls) {
    json tc = json::array();
    int i = 0;
    for (const json &c : calls)
        tc.push_back({{"id", "call_" + std::to_string(i++)},
                      {"type", "function"},
                      {"function", {{"name", c[0]}, {"arguments", c[1]}}}});
    return {{"role", "assistant"}, {"content", ""}, {"tool_calls", tc}};
}

struct Parsed {
    std::string reasoning, answer;
    std::vector<ToolCall> calls;
    bool malformed = false;
};

Parsed parse(const ReasoningFormat &f, State start, const json &tools, const std::string &text, size_t piece) {
    auto p = make_channel_parser(f, start, tools);
    Parsed out;
    auto take = [&](std::vector<ChannelEvent> evs) {
        for (ChannelEvent &e : evs) {
            if (e.channel == Channel::reasoning) out.reasoning += e.text;
            else if (e.channel == Channel::answer) out.answer += e.text;
            else out.calls.push_back(*e.call);
        }
    };
    for (size_t i = 0; i < text.size(); i += piece) take(p->feed(std::string_view(text).substr(i, piece)));
    take(p->finish());
    out.malformed = p->malformed();
    return out;
}

// Whitespace the templates put after the last call (outside any framing) is not an answer.
std::string trim_answer(const std::string &s) {
    size_t b = s.find_first_not_of(" \n\t\r"), e = s.find_last_not_of(" \n\t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Renders [user] + the generation prompt and [user, assistant(calls)], takes the text the
// second adds as what the model wrote, and parses it back.
void round_trip(const std::string &file, const std::string &arch, const json &calls, const json &tools,
                const json &vars = json::object()) {
    REQUIRE_TEMPLATES();
    INFO(file);
    const std::string source = read_file(dir / file);
    const ReasoningFormat f = detect_format(arch, source, nullptr);
    const json user = json::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}}});
    json conv = user;
    conv.push_back(assistant_calls(calls));
    const std::string prompt = render(source, user, true, tools, vars);
    const std::string full = render(source, conv, false, tools, vars);
    REQUIRE(full.compare(0, prompt.size(), prompt) == 0);
    const std::string model_text = full.substr(prompt.size());
    INFO("model text: " << model_text);
    for (size_t piece : {model_text.size() + 1, size_t(1), size_t(7)}) {
        const Parsed p = parse(f, response_start(f, prompt), tools, model_text, piece);
        CHECK_FALSE(p.malformed);
        CHECK(p.reasoning.empty());
        CHECK(trim_answer(p.answer).empty());
        REQUIRE(p.calls.size() == calls.size());
        for (size_t i = 0; i < calls.size(); ++i) {
            CHECK(p.calls[i].name == calls[i][0].get<std::string>());
            CHECK(json::parse(p.calls[i].arguments) == calls[i][1]);
        }
    }
}

} // namespace

TEST_CASE("tool declarations render through the family's template", "[tools][shared]") {
    REQUIRE_TEMPLATES();
    const json user = json::array({{{"role", "user"}, {"content", "hi"}}});
    SECTION("muse-glimmer: tool metadata per namespace, schemas, valid recipients (§3.2)") {
        const std::string p = render(read_file(dir / "muse-glimmer.jinja"), user, true, weather_tools());
        CHECK(p.find("// Tool metadata") != std::string::npos);
        CHECK(p.find("{\"name\": \"weather\", \"description\": \"\"}") != std::string::npos);
        CHECK(p.find("// Function schemas") != std::string::npos);
        CHECK(p.find("\"name\": \"weather.get\"") != std::string::npos);
        CHECK(p.find("# Valid recipients: \"self\", \"weather.*\", \"calc.*\", \"user\".") != std::string::npos);
    }
    SECTION("Qwen2.5 (Hermes): <tools> block") {
        const std::string p = render(read_file(dir / "Qwen-Qwen2.5-7B-Instruct.jinja"), user, true, weather_tools());
        CHECK(p.find("<tools>") != std::string::npos);
        CHECK(p.find("\"name\": \"weather.get\"") != std::string::npos);
    }
    SECTION("Llama 3.1: JSON instructions with the function list") {
        const std::string p = render(read_file(dir / "meta-llama-Llama-3.1-8B-Instruct.jinja"), user, true, weather_tools());
        CHECK(p.find("\"parameters\": dictionary of argument name") != std::string::npos);
        CHECK(p.find("\"name\": \"calc\"") != std::string::npos);
    }
}

TEST_CASE("tool calls: render then parse back, per family", "[tools][shared]") {
    const json tools = weather_tools();
    const json two = json::array({json::array({"weather.get", {{"city", "Paris"}, {"days", 3}}}),
                                  json::array({"calc", {{"expr", "2 + 2"}, {"exact", true}}})});
    const json one = json::array({json::array({"calc", {{"expr", "6*7"}, {"exact", false}}})});
    SECTION("muse-glimmer ATEM, several calls") { round_trip("muse-glimmer.jinja", "muse-glimmer", two, tools); }
    SECTION("muse-glimmer ATEM, nested values") {
        json t = tools;
        t.push_back(tool("plot", {{"points", {{"type", "array"}}}, {"style", {{"type", "object"}}}}, json::array()));
        round_trip("muse-glimmer.jinja", "muse-glimmer",
                   json::array({json::array({"plot", {{"points", {1, 2.5, 3}}, {"style", {{"color", "red"}}}}})}), t);
    }
    SECTION("Qwen2.5 Hermes, several calls") { round_trip("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", two, tools); }
    SECTION("Qwen3 Hermes in think_tags") { round_trip("Qwen-Qwen3-0.6B.jinja", "qwen3", two, tools); }
    SECTION("Hermes 3 (Llama 3.1 base)") {
        round_trip("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "llama", two, tools);
    }
    SECTION("Llama 3.1 JSON") { round_trip("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama", one, tools); }
    SECTION("Llama 3.2 JSON") { round_trip("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama", one, tools); }
    SECTION("Llama 3.3 JSON") { round_trip("meta-llama-Llama-3.3-70B-Instruct.jinja", "llama", one, tools); }
}

TEST_CASE("muse-glimmer §3.5 cases", "[tools]") {
    const ReasoningFormat f = default_format(FormatKind::atem);
    const json tools = json::array({tool("special_function", {{"arg1", {{"type", "integer"}}}}, json::array({"arg1"}))});
    const std::string call_block = "<atem:function_calls>\n<atem:invoke name=\"special_function\">\n"
                                   "<atem:parameter name=\"arg1\">1</atem:parameter>\n</atem:invoke>\n"
                                   "</atem:function_calls>";
    for (size_t piece : {size_t(1000), size_t(1), size_t(5)}) {
        SECTION("1. plain answer") {
            Parsed p = parse(f, State::header, tools, " to=user<|message|>Hello, world!\nWhat's up?<|eot|>", piece);
            CHECK(p.answer == "Hello, world!\nWhat's up?");
            CHECK(p.calls.empty());
        }
        SECTION("2. inform then act") {
            Parsed p = parse(f, State::header, tools,
                             " to=user<|message|>Let me check.<|eom|><|start|>assistant to=special_function<|message|>" +
                                 call_block + "<|eot|>",
                             piece);
            CHECK(p.answer == "Let me check.");
            REQUIRE(p.calls.size() == 1);
            CHECK(p.calls[0].name == "special_function");
            CHECK(p.calls[0].arguments == "{\"arg1\":1}");
        }
        SECTION("3. quoted call markup in the answer stays text") {
            Parsed p = parse(f, State::header, tools, " to=user<|message|>Use " + call_block + "<|eot|>", piece);
            CHECK(p.calls.empty());
            CHECK(p.answer == "Use " + call_block);
        }
        SECTION("4. call markup in reasoning is reasoning") {
            Parsed p = parse(f, State::header, tools,
                             " to=self<|message|>" + call_block + "<|eom|><|start|>assistant to=user<|message|>Hello!<|eot|>",
                             piece);
            CHECK(p.calls.empty());
            CHECK(p.reasoning == call_block);
            CHECK(p.answer == "Hello!");
        }
    }
}

TEST_CASE("Llama 3.x JSON calls: streaming edge cases", "[tools]") {
    ReasoningFormat f = default_format(FormatKind::plain);
    f.json_tool_calls = true;
    f.python_tag = "<|python_tag|>";
    f.end_of_turn = {"<|eot_id|>", "<|eom_id|>"};
    const json tools = json::array({tool("calc", {{"expr", {{"type", "string"}}}}, json::array({"expr"}))});
    for (size_t piece : {size_t(1000), size_t(1), size_t(3)}) {
        SECTION("several calls separated by ; and whitespace, python tag") {
            Parsed p = parse(f, State::open, tools,
                             "<|python_tag|>{\"name\": \"calc\", \"parameters\": {\"expr\": \"}{\"}}; "
                             "{\"name\": \"calc\", \"parameters\": {\"expr\": \"1\"}}<|eom_id|>",
                             piece);
            REQUIRE(p.calls.size() == 2);
            CHECK(p.calls[0].arguments == "{\"expr\":\"}{\"}");
            CHECK(p.calls[1].arguments == "{\"expr\":\"1\"}");
            CHECK(p.answer.empty());
            CHECK_FALSE(p.malformed);
        }
        SECTION("text is an answer, braces inside it included") {
            Parsed p = parse(f, State::open, tools, "  The set {1, 2} has two elements.<|eot_id|>", piece);
            CHECK(p.calls.empty());
            CHECK(p.answer == "  The set {1, 2} has two elements.");
        }
        SECTION("a JSON answer that is not a call stays the answer") {
            Parsed p = parse(f, State::open, tools, "{\"answer\": 42}<|eot_id|>", piece);
            CHECK(p.calls.empty());
            CHECK(p.answer == "{\"answer\": 42}");
            CHECK_FALSE(p.malformed);
        }
        SECTION("a call cut off at the end is answer text, malformed") {
            Parsed p = parse(f, State::open, tools, "{\"name\": \"calc\", \"parameters\": {\"ex", piece);
            CHECK(p.calls.empty());
            CHECK(p.answer == "{\"name\": \"calc\", \"parameters\": {\"ex");
            CHECK(p.malformed);
        }
    }
    SECTION("without tools offered the same text is an answer") {
        Parsed p = parse(f, State::open, nullptr, "{\"name\": \"calc\", \"parameters\": {}}", 1000);
        CHECK(p.calls.empty());
        CHECK(p.answer == "{\"name\": \"calc\", \"parameters\": {}}");
    }
}
