// Reasoning formats (src/reasoning/reasoning-format.h): detection from real chat
// templates, the template variables of each thinking mode, and where a response starts,
// read from prompts rendered by the Jinja engine from the templates in shared/templates
// (the templates are the reference: what they render is what the model was trained on).
// Cases that need shared/ skip with a message when it is absent.
#include "jinja/jinja.h"
#include "core/error.h"
#include "reasoning/channel-parser.h"
#include "reasoning/reasoning-format.h"

#include "shared-templates.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

using namespace muse::reasoning;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

using muse::test::read_file;

const SingleTokenPredicate kNoVocab;

bool ends_with(const std::string &s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

struct Family {
    std::string file, arch;
    std::string bos;
};

const Family kGlimmer{"muse-glimmer.jinja", "muse-glimmer", ""};
const Family kQwen3{"Qwen-Qwen3-0.6B.jinja", "qwen3", ""};
const Family kQwQ{"Qwen-QwQ-32B.jinja", "qwen2", ""};
const Family kR1Llama{"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "llama", "<｜begin▁of▁sentence｜>"};
const Family kR1Qwen{"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "qwen2", "<｜begin▁of▁sentence｜>"};
const Family kSmol{"HuggingFaceTB-SmolLM3-3B.jinja", "smollm3", ""};

// Renders a family's template; `vars` are merged into the context.
std::string render(const fs::path &dir, const Family &fam, const json &messages, bool add_generation_prompt,
                   const json &vars = json::object(), const json &tools = nullptr) {
    auto tpl = muse::jinja::Template::parse(read_file(dir / fam.file));
    tpl.now = std::chrono::system_clock::time_point(std::chrono::seconds(1768478400));  // 2026-01-15
    json ctx = {{"messages", messages}, {"add_generation_prompt", add_generation_prompt}, {"bos_token", fam.bos},
                {"eos_token", ""}};
    if (!tools.is_null()) ctx["tools"] = tools;
    for (auto it = vars.begin(); it != vars.end(); ++it) ctx[it.key()] = it.value();
    return tpl.render(ctx);
}

// The generation prompt for a thinking mode: the format's variables for that mode.
std::string prompt_for(const fs::path &dir, const Family &fam, const ReasoningFormat &f, const json &messages,
                       ThinkingMode mode) {
    return render(dir, fam, messages, true, template_variables(f, mode, Effort::low));
}

ReasoningFormat detect(const fs::path &dir, const Family &fam) {
    return detect_format(fam.arch, read_file(dir / fam.file), kNoVocab);
}

json user_only() { return json::parse(R"([{"role": "user", "content": "What is 2+2?"}])"); }

// A conversation with an earlier reasoning turn, so the prompt holds a closed think block
// (or a to=self message) before the generation prompt.
json multi_turn() {
    return json::parse(R"([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
        {"role": "user", "content": "What is 2+2?"}])");
}

struct Channels {
    std::string reasoning, answer;
    std::vector<ToolCall> calls;
    bool malformed = false;
};

Channels parse_all(const ReasoningFormat &f, State start, const std::string &text, const json &tools = nullptr) {
    auto p = make_channel_parser(f, start, tools);
    Channels c;
    auto take = [&](std::vector<ChannelEvent> evs) {
        for (ChannelEvent &e : evs) {
            if (e.channel == Channel::reasoning) c.reasoning += e.text;
            if (e.channel == Channel::answer) c.answer += e.text;
            if (e.call) c.calls.push_back(*e.call);
        }
    };
    take(p->feed(text));
    take(p->finish());
    c.malformed = p->malformed();
    return c;
}

} // namespace

TEST_CASE("reasoning format: detection from the shared templates", "[reasoning][shared]") {
    REQUIRE_TEMPLATES();

    SECTION("muse-glimmer: ATEM, whatever the architecture says") {
        for (const char *arch : {"muse-glimmer", "llama"}) {
            ReasoningFormat f = detect_format(arch, read_file(dir / kGlimmer.file), kNoVocab);
            CHECK(f.kind == FormatKind::atem);
            CHECK(f.reasoning_open == " to=self<|message|>");
            CHECK(f.answer_open == "<|eom|><|start|>assistant to=user<|message|>");
            CHECK(f.answer_direct == " to=user<|message|>");
            CHECK(f.end_of_turn == std::vector<std::string>{"<|eot|>"});
            CHECK(f.effort_variables == std::vector<std::string>{"reasoning_effort", "reasoning_strength"});
            CHECK(f.effort_off_value == "none");
            CHECK_FALSE(f.enable_thinking);  // MUSE_GLIMMER.md §3.1: there is no enable_thinking switch
        }
    }
    SECTION("Qwen3: think tags, Hermes tool calls, enable_thinking, '\\n\\n' after </think>") {
        ReasoningFormat f = detect(dir, kQwen3);
        CHECK(f.kind == FormatKind::think_tags);
        CHECK(f.think_open == "<think>");
        CHECK(f.think_close == "</think>");
        CHECK(f.answer_open == "</think>\n\n");
        CHECK(f.answer_direct == "<think>\n\n</think>\n\n");
        CHECK(f.tool_call_open == "<tool_call>");
        CHECK(f.tool_call_close == "</tool_call>");
        CHECK(f.end_of_turn == std::vector<std::string>{"<|im_end|>"});
        CHECK(f.enable_thinking);
        CHECK(f.effort_variables.empty());
    }
    SECTION("QwQ and the R1 distills") {
        ReasoningFormat qwq = detect(dir, kQwQ);
        CHECK(qwq.kind == FormatKind::think_tags);
        CHECK(qwq.enable_thinking);
        CHECK(qwq.tool_call_open == "<tool_call>");
        ReasoningFormat r1 = detect(dir, kR1Llama);
        CHECK(r1.kind == FormatKind::think_tags);
        CHECK_FALSE(r1.enable_thinking);  // the Llama distill's template has no switch
        CHECK(r1.tool_call_open.empty());
        CHECK(r1.end_of_turn == std::vector<std::string>{"<｜end▁of▁sentence｜>"});
        CHECK(r1.answer_open == "</think>\n\n");
        CHECK(detect(dir, kR1Qwen).enable_thinking);
    }
    SECTION("SmolLM3 writes a single newline after </think>") {
        ReasoningFormat f = detect(dir, kSmol);
        CHECK(f.kind == FormatKind::think_tags);
        CHECK(f.answer_open == "</think>\n");
        CHECK(f.answer_direct == "<think>\n\n</think>\n");
        CHECK(f.enable_thinking);
    }
    SECTION("families without reasoning are plain") {
        ReasoningFormat qwen25 = detect_format("qwen2", read_file(dir / "Qwen-Qwen2.5-7B-Instruct.jinja"), kNoVocab);
        CHECK(qwen25.kind == FormatKind::plain);
        CHECK(qwen25.tool_call_open == "<tool_call>");
        const std::string llama_src = read_file(dir / "meta-llama-Llama-3.1-8B-Instruct.jinja");
        ReasoningFormat llama = detect_format("llama", llama_src, kNoVocab);
        CHECK(llama.kind == FormatKind::plain);
        CHECK(std::count(llama.end_of_turn.begin(), llama.end_of_turn.end(), "<|eot_id|>") == 1);
    }
    SECTION("a template that only strips </think> needs the vocabulary's <think>") {
        const std::string lfm = read_file(dir / "LFM2.5-Instruct.jinja");
        REQUIRE(lfm.find("</think>") != std::string::npos);
        REQUIRE(lfm.find("<think>") == std::string::npos);
        CHECK(detect_format("lfm2", lfm, kNoVocab).kind == FormatKind::plain);
        auto vocab = [](std::string_view s) { return s == "<think>" || s == "</think>"; };
        CHECK(detect_format("lfm2", lfm, vocab).kind == FormatKind::think_tags);
    }
    SECTION("every shared template gets a format, atem exactly for the ATEM template") {
        size_t n = 0;
        for (const auto &entry : fs::directory_iterator(dir)) {
            if (entry.path().extension() != ".jinja") continue;
            const std::string src = read_file(entry.path());
            ReasoningFormat f = detect_format("llama", src, kNoVocab);
            INFO(entry.path().filename().string() << ": " << to_string(f.kind) << " (" << f.detected_by << ")");
            CHECK((f.kind == FormatKind::atem) == (entry.path().filename() == "muse-glimmer.jinja"));
            CHECK(!f.detected_by.empty());
            if (f.kind == FormatKind::think_tags) CHECK(src.find("</think>") != std::string::npos);
            ++n;
        }
        CHECK(n >= 60);
    }
}

TEST_CASE("reasoning format: detection without a template, and the override", "[reasoning]") {
    auto vocab = [](std::string_view s) { return s == "<think>" || s == "</think>" || s == "<|im_end|>"; };
    CHECK(detect_format("muse-glimmer", "", kNoVocab).kind == FormatKind::atem);
    ReasoningFormat q = detect_format("qwen3", "", vocab);
    CHECK(q.kind == FormatKind::think_tags);
    CHECK(q.end_of_turn == std::vector<std::string>{"<|im_end|>"});
    CHECK(detect_format("qwen3", "", kNoVocab).kind == FormatKind::plain);
    CHECK(detect_format("llama", "", vocab).kind == FormatKind::think_tags);
    ReasoningFormat forced = detect_format("muse-glimmer", "", kNoVocab, FormatKind::plain);
    CHECK(forced.kind == FormatKind::plain);
    CHECK(forced.detected_by == "override");
    CHECK(detect_format("llama", "{{ messages }}", kNoVocab, FormatKind::think_tags).think_close == "</think>");
}

TEST_CASE("reasoning format: template variables per thinking mode and effort", "[reasoning]") {
    const ReasoningFormat glimmer = default_format(FormatKind::atem);
    CHECK(template_variables(glimmer, ThinkingMode::off, Effort::high) ==
          json::parse(R"({"reasoning_effort": "none", "reasoning_strength": "none"})"));
    CHECK(template_variables(glimmer, ThinkingMode::on, Effort::low) ==
          json::parse(R"({"reasoning_effort": "low", "reasoning_strength": "low"})"));
    CHECK(template_variables(glimmer, ThinkingMode::automatic, Effort::medium)["reasoning_strength"] == "medium");

    ReasoningFormat qwen = default_format(FormatKind::think_tags);
    qwen.enable_thinking = true;
    CHECK(template_variables(qwen, ThinkingMode::off, Effort::high) == json::parse(R"({"enable_thinking": false})"));
    CHECK(template_variables(qwen, ThinkingMode::on, Effort::high) == json::parse(R"({"enable_thinking": true})"));
    CHECK(template_variables(qwen, ThinkingMode::automatic, Effort::low) ==
          json::parse(R"({"enable_thinking": true})"));
    CHECK(template_variables(default_format(FormatKind::think_tags), ThinkingMode::off, Effort::low).empty());
}

TEST_CASE("reasoning format: forced prefixes per start state and mode", "[reasoning]") {
    const ReasoningFormat g = default_format(FormatKind::atem), t = default_format(FormatKind::think_tags);
    CHECK(forced_prefix(g, State::header, ThinkingMode::off) == " to=user<|message|>");
    CHECK(forced_prefix(g, State::header, ThinkingMode::on) == " to=self<|message|>");
    CHECK(forced_prefix(g, State::header, ThinkingMode::automatic).empty());
    CHECK(forced_prefix(g, State::between, ThinkingMode::off) == "<|start|>assistant to=user<|message|>");
    CHECK(forced_prefix(g, State::reasoning, ThinkingMode::off) == "<|eom|><|start|>assistant to=user<|message|>");
    CHECK(forced_prefix(g, State::reasoning, ThinkingMode::on).empty());
    CHECK(forced_prefix(t, State::open, ThinkingMode::off) == "<think>\n\n</think>\n\n");
    CHECK(forced_prefix(t, State::open, ThinkingMode::on) == "<think>\n");
    CHECK(forced_prefix(t, State::reasoning, ThinkingMode::off) == "</think>\n\n");
    CHECK(forced_prefix(t, State::answer, ThinkingMode::on).empty());  // re-render with enable_thinking instead
    CHECK(forced_prefix(default_format(FormatKind::plain), State::open, ThinkingMode::on).empty());
}

TEST_CASE("reasoning format: where the response starts, from rendered prompts", "[reasoning][shared]") {
    REQUIRE_TEMPLATES();

    SECTION("muse-glimmer: the generation prompt leaves the output in a message header") {
        const ReasoningFormat f = detect(dir, kGlimmer);
        for (const json &msgs : {user_only(), multi_turn()}) {
            for (ThinkingMode mode : {ThinkingMode::off, ThinkingMode::on, ThinkingMode::automatic}) {
                const std::string prompt = render(dir, kGlimmer, msgs, true, template_variables(f, mode, Effort::high));
                INFO(prompt);
                CHECK(ends_with(prompt, "<|start|>assistant"));
                CHECK(response_start(f, prompt) == State::header);
                const bool says_none = prompt.find("Reasoning strength: none.") != std::string::npos;
                CHECK(says_none == (mode == ThinkingMode::off));
                if (mode != ThinkingMode::off) CHECK(prompt.find("Reasoning strength: high.") != std::string::npos);
            }
        }
        // A prompt that pre-opens reasoning, or ends after a message.
        const std::string p = render(dir, kGlimmer, user_only(), true);
        CHECK(response_start(f, p + " to=self<|message|>partial") == State::reasoning);
        CHECK(response_start(f, p + " to=user<|message|>") == State::answer);
        CHECK(response_start(f, p + " to=self<|message|>x<|eom|>") == State::between);
        CHECK(response_start(f, p + " to=tools.search<|message|>") == State::tool_call);
        CHECK(response_start(f, render(dir, kGlimmer, multi_turn(), false)) == State::between);
    }
    SECTION("Qwen3: enable_thinking true starts open, false inside an already-closed block") {
        const ReasoningFormat f = detect(dir, kQwen3);
        for (const json &msgs : {user_only(), multi_turn()}) {
            const std::string on = prompt_for(dir, kQwen3, f, msgs, ThinkingMode::on);
            const std::string off = prompt_for(dir, kQwen3, f, msgs, ThinkingMode::off);
            INFO(on << "\n----\n" << off);
            CHECK(response_start(f, on) == State::open);
            CHECK(response_start(f, off) == State::answer);
            CHECK(ends_with(off, "<think>\n\n</think>\n\n"));
            CHECK(forced_prefix(f, State::open, ThinkingMode::off) == "<think>\n\n</think>\n\n");
        }
    }
    SECTION("DeepSeek-R1 distills: the prompt opens <think>") {
        const ReasoningFormat llama = detect(dir, kR1Llama);
        const std::string p = prompt_for(dir, kR1Llama, llama, user_only(), ThinkingMode::off);
        CHECK(ends_with(p, "<think>\n"));
        CHECK(response_start(llama, p) == State::reasoning);
        // No switch in this template: "off" forces the close at the start of the output.
        CHECK(forced_prefix(llama, State::reasoning, ThinkingMode::off) == "</think>\n\n");

        const ReasoningFormat qwen = detect(dir, kR1Qwen);
        const std::string on = prompt_for(dir, kR1Qwen, qwen, user_only(), ThinkingMode::on);
        const std::string off = prompt_for(dir, kR1Qwen, qwen, user_only(), ThinkingMode::off);
        CHECK(response_start(qwen, on) == State::reasoning);
        CHECK(response_start(qwen, off) == State::answer);
    }
    SECTION("QwQ: on opens <think>, off (or no variable) closes it") {
        const ReasoningFormat f = detect(dir, kQwQ);
        CHECK(response_start(f, prompt_for(dir, kQwQ, f, multi_turn(), ThinkingMode::on)) == State::reasoning);
        CHECK(response_start(f, prompt_for(dir, kQwQ, f, multi_turn(), ThinkingMode::off)) == State::answer);
        CHECK(response_start(f, render(dir, kQwQ, user_only(), true)) == State::answer);
    }
    SECTION("SmolLM3: /think starts open (its system prose mentions the tags), /no_think closed") {
        const ReasoningFormat f = detect(dir, kSmol);
        const std::string on = prompt_for(dir, kSmol, f, user_only(), ThinkingMode::on);
        REQUIRE(on.find("<think> Thought section </think>") != std::string::npos);
        CHECK(response_start(f, on) == State::open);
        CHECK(response_start(f, prompt_for(dir, kSmol, f, multi_turn(), ThinkingMode::off)) == State::answer);
    }
}

TEST_CASE("reasoning format: forcing 'off' and the budget's answer_open leave no reasoning", "[reasoning][shared]") {
    REQUIRE_TEMPLATES();
    for (const Family &fam : {kGlimmer, kQwen3, kQwQ, kR1Llama, kR1Qwen, kSmol}) {
        INFO(fam.file);
        const ReasoningFormat f = detect(dir, fam);
        // Thinking off: render with the off variables, force the prefix, then the model answers.
        const std::string off = prompt_for(dir, fam, f, user_only(), ThinkingMode::off);
        const State start_off = response_start(f, off);
        Channels c = parse_all(f, start_off, forced_prefix(f, start_off, ThinkingMode::off) + "Four.");
        CHECK(c.reasoning.empty());
        CHECK(c.answer == "Four.");
        CHECK_FALSE(c.malformed);
        // Thinking on with a budget cut: reasoning, then the forced answer_open, then the answer.
        const std::string on = prompt_for(dir, fam, f, user_only(), ThinkingMode::on);
        const State start_on = response_start(f, on);
        const std::string forced = forced_prefix(f, start_on, ThinkingMode::on);
        c = parse_all(f, start_on, forced + "Two plus two" + f.answer_open + "Four.");
        CHECK(c.reasoning == "Two plus two");
        CHECK(c.answer == "Four.");
        CHECK_FALSE(c.malformed);
    }
}

TEST_CASE("reasoning format: assistant turns rendered by the template parse back into their channels",
          "[reasoning][shared]") {
    REQUIRE_TEMPLATES();
    const json tools = json::parse(R"([{"type": "function", "function": {"name": "weather.get",
        "description": "Weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
        "hours": {"type": "array"}, "opts": {"type": "object"}}}}}])");
    const json args =
        json::parse(R"({"city": "São Paulo", "days": 3, "metric": true, "hours": [6, 12], "opts": {"a": null}})");
    const json calls = json::array({{{"id", "c1"}, {"type", "function"},
                                     {"function", {{"name", "weather.get"}, {"arguments", args}}}}});
    const json user = json::parse(R"({"role": "user", "content": "Weather in São Paulo?"})");

    SECTION("muse-glimmer: to=self reasoning, then a call whose arguments survive the ATEM block") {
        const ReasoningFormat f = detect(dir, kGlimmer);
        json assistant = {{"role", "assistant"},
                          {"reasoning_content", "Need the weather tool.\nCall it."},
                          {"tool_calls", calls}};
        const std::string prefix = render(dir, kGlimmer, json::array({user}), true, json::object(), tools);
        const std::string full = render(dir, kGlimmer, json::array({user, assistant}), false, json::object(), tools);
        REQUIRE(full.compare(0, prefix.size(), prefix) == 0);
        const std::string output = full.substr(prefix.size());
        INFO(output);
        Channels c = parse_all(f, response_start(f, prefix), output, tools);
        CHECK(c.reasoning == "Need the weather tool.\nCall it.");
        CHECK(c.answer.empty());
        REQUIRE(c.calls.size() == 1);
        CHECK(c.calls[0].name == "weather.get");
        CHECK(c.calls[0].recipient == "weather.get");
        CHECK(json::parse(c.calls[0].arguments) == args);
        CHECK_FALSE(c.malformed);

        json answer = {{"role", "assistant"}, {"reasoning_content", "Easy."}, {"content", "Sunny ☀, 31 °C."}};
        const std::string full2 = render(dir, kGlimmer, json::array({user, answer}), false, json::object(), tools);
        c = parse_all(f, response_start(f, prefix), full2.substr(prefix.size()), tools);
        CHECK(c.reasoning == "Easy.");
        CHECK(c.answer == "Sunny ☀, 31 °C.");
        CHECK(c.calls.empty());
    }
    SECTION("Qwen3: <think> block, content and <tool_call>") {
        const ReasoningFormat f = detect(dir, kQwen3);
        json assistant = {{"role", "assistant"},
                          {"reasoning_content", "Need the weather tool."},
                          {"content", "Let me check."},
                          {"tool_calls", calls}};
        const json vars = template_variables(f, ThinkingMode::on, Effort::low);
        const std::string prefix = render(dir, kQwen3, json::array({user}), true, vars, tools);
        const std::string full = render(dir, kQwen3, json::array({user, assistant}), false, vars, tools);
        REQUIRE(full.compare(0, prefix.size(), prefix) == 0);
        std::string output = full.substr(prefix.size());
        output = output.substr(0, output.find("<|im_end|>") + 10);  // the turn, up to its end
        INFO(output);
        Channels c = parse_all(f, response_start(f, prefix), output, tools);
        CHECK(c.reasoning == "Need the weather tool.");
        CHECK(c.answer == "Let me check.");
        REQUIRE(c.calls.size() == 1);
        CHECK(c.calls[0].name == "weather.get");
        CHECK(json::parse(c.calls[0].arguments) == args);
        CHECK_FALSE(c.malformed);
    }
}
