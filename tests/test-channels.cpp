// Output-channel parsers (src/reasoning/channel-parser.h). Every vector's expected
// reasoning / answer / tool calls is written by hand from the format it exercises:
// MUSE_GLIMMER.md §3 (the ATEM framing and the cases of §3.5), the Qwen3 / DeepSeek-R1 /
// Hermes conventions the templates in shared/templates render, and the malformed-output
// rules of channel-parser.h. Each vector is parsed whole, split in two at every byte,
// byte by byte and in random pieces: all must give exactly the same channels and calls.
#include "core/error.h"
#include "reasoning/channel-parser.h"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

using namespace muse::reasoning;
using json = nlohmann::ordered_json;

namespace {

// ---- an independent UTF-8 validator (RFC 3629) -------------------------------------

bool valid_utf8(const std::string &s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) n = 1, cp = c;
        else if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
        else return false;
        if (i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

// ---- what a parse produced, independent of how the input was cut --------------------

struct Segment {
    Channel channel;
    std::string text;
    std::string name, recipient, arguments;  // tool calls
    bool operator==(const Segment &o) const {
        return channel == o.channel && text == o.text && name == o.name && recipient == o.recipient &&
               arguments == o.arguments;
    }
};

struct Parsed {
    std::vector<Segment> segments;  // adjacent text of one channel merged; each call its own segment
    bool malformed = false;
    State state = State::open;
    bool operator==(const Parsed &o) const {
        return segments == o.segments && malformed == o.malformed && state == o.state;
    }
};

// A printable form of any bytes (invalid UTF-8 shown as U+FFFD).
std::string quote(const std::string &s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

std::string describe(const Parsed &p) {
    std::string s = std::string("state=") + to_string(p.state) + (p.malformed ? " malformed" : "") + "\n";
    for (const Segment &g : p.segments) {
        s += std::string("  [") + to_string(g.channel) + "] " + quote(g.text);
        if (g.channel == Channel::tool_call) s += " name=" + g.name + " to=" + g.recipient + " args=" + g.arguments;
        s += "\n";
    }
    return s;
}

void collect(Parsed &p, std::vector<ChannelEvent> events, bool input_utf8) {
    for (ChannelEvent &e : events) {
        if (e.channel == Channel::tool_call) {
            REQUIRE(e.call.has_value());
            p.segments.push_back({e.channel, e.text, e.call->name, e.call->recipient, e.call->arguments});
            continue;
        }
        REQUIRE_FALSE(e.call.has_value());
        REQUIRE_FALSE(e.text.empty());  // no empty events
        if (input_utf8) REQUIRE(valid_utf8(e.text));  // pieces never split a character
        if (!p.segments.empty() && p.segments.back().channel == e.channel) {
            p.segments.back().text += e.text;
        } else {
            p.segments.push_back({e.channel, e.text, "", "", ""});
        }
    }
}

Parsed parse_pieces(const ReasoningFormat &fmt, State start, const std::vector<std::string> &pieces,
                    const json &tools = nullptr) {
    auto parser = make_channel_parser(fmt, start, tools);
    Parsed p;
    std::string all;
    for (const std::string &piece : pieces) all += piece;
    const bool utf8 = valid_utf8(all);
    for (const std::string &piece : pieces) collect(p, parser->feed(piece), utf8);
    collect(p, parser->finish(), utf8);
    p.malformed = parser->malformed();
    p.state = parser->state();
    return p;
}

// ---- vectors ------------------------------------------------------------------------

struct CallWant {
    std::string recipient, name;
    std::string arguments;  // JSON, compared as parsed JSON (key order included)
};

struct Vector {
    std::string name;
    ReasoningFormat format;
    State start;
    std::string text;
    std::string reasoning, answer;
    std::vector<CallWant> calls;
    std::vector<Channel> order;  // channels in the order they appear (adjacent repeats merged)
    bool malformed = false;
    State end_state;
    json tools = nullptr;
};

ReasoningFormat atem() { return default_format(FormatKind::atem); }

// The Qwen3 family as detect_format reads its template: think tags, Hermes tool calls,
// "<|im_end|>" ends the turn.
ReasoningFormat qwen() {
    ReasoningFormat f = default_format(FormatKind::think_tags);
    f.tool_call_open = "<tool_call>";
    f.tool_call_close = "</tool_call>";
    f.end_of_turn = {"<|im_end|>"};
    return f;
}

ReasoningFormat deepseek() {
    ReasoningFormat f = default_format(FormatKind::think_tags);
    f.end_of_turn = {"<｜end▁of▁sentence｜>"};
    return f;
}

ReasoningFormat plain_hermes() {
    ReasoningFormat f = default_format(FormatKind::plain);
    f.tool_call_open = "<tool_call>";
    f.tool_call_close = "</tool_call>";
    f.end_of_turn = {"<|im_end|>", "<|eot_id|>"};
    return f;
}

const std::string kBlock1 = "<atem:function_calls>\n<atem:invoke name=\"special_function\">\n"
                            "<atem:parameter name=\"arg1\">1</atem:parameter>\n</atem:invoke>\n</atem:function_calls>";

json weather_tools() {
    return json::parse(R"([{"type": "function", "function": {"name": "weather.get", "description": "",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "zip": {"type": "string"}, "days": {"type": "integer"},
            "metric": {"type": "boolean"}, "opts": {"type": "object"}, "hours": {"type": "array"},
            "note": {"type": ["string", "null"]}}}}}])");
}

const std::string kWeatherBlock = "<atem:function_calls>\n<atem:invoke name=\"weather.get\">\n"
                                  "<atem:parameter name=\"city\">New York</atem:parameter>\n"
                                  "<atem:parameter name=\"zip\">10001</atem:parameter>\n"
                                  "<atem:parameter name=\"days\">3</atem:parameter>\n"
                                  "<atem:parameter name=\"metric\">false</atem:parameter>\n"
                                  "<atem:parameter name=\"opts\">{\"a\": [1, 2]}</atem:parameter>\n"
                                  "<atem:parameter name=\"hours\">[6, 12]</atem:parameter>\n"
                                  "<atem:parameter name=\"note\">null</atem:parameter>\n"
                                  "</atem:invoke>\n</atem:function_calls>";

std::vector<Vector> vectors() {
    const auto R = Channel::reasoning, A = Channel::answer, T = Channel::tool_call;
    std::vector<Vector> v;

    // ---- muse-glimmer (ATEM), the output after the generation prompt "<|start|>assistant" ----
    v.push_back({"atem §3.5.1 answer only", atem(), State::header,
                 " to=user<|message|>Hello, world!\nWhat's up?<|eot|>", "", "Hello, world!\nWhat's up?", {}, {A},
                 false, State::ended});
    v.push_back({"atem reasoning then answer", atem(), State::header,
                 " to=self<|message|>I'm\nthinking<|eom|><|start|>assistant to=user<|message|>Hello, world!\nWhat's "
                 "up?<|eot|>",
                 "I'm\nthinking", "Hello, world!\nWhat's up?", {}, {R, A}, false, State::ended});
    v.push_back({"atem §3.5.2 inform then act", atem(), State::header,
                 " to=user<|message|>Hello, world!\nWhat's up?<|eom|>"
                 "<|start|>assistant to=special_function<|message|>" +
                     kBlock1 + "<|eot|>",
                 "", "Hello, world!\nWhat's up?", {{"special_function", "special_function", R"({"arg1":1})"}}, {A, T},
                 false, State::ended});
    v.push_back({"atem §3.5.3 call markup quoted in the answer stays text", atem(), State::header,
                 " to=user<|message|>Call it like this: " + kBlock1 + "<|eot|>", "", "Call it like this: " + kBlock1,
                 {}, {A}, false, State::ended});
    v.push_back({"atem §3.5.4 call markup inside to=self is reasoning", atem(), State::header,
                 " to=self<|message|>Maybe " + kBlock1 + "<|eom|><|start|>assistant to=user<|message|>Hello!<|eot|>",
                 "Maybe " + kBlock1, "Hello!", {}, {R, A}, false, State::ended});
    v.push_back({"atem reasoning then a call with typed arguments (schema)", atem(), State::header,
                 " to=self<|message|>Need the weather.<|eom|><|start|>assistant to=weather.get<|message|>" +
                     kWeatherBlock + "<|eot|>",
                 "Need the weather.", "",
                 {{"weather.get", "weather.get",
                   R"({"city":"New York","zip":"10001","days":3,"metric":false,"opts":{"a":[1,2]},)"
                   R"("hours":[6,12],"note":"null"})"}},
                 {R, T}, false, State::ended, weather_tools()});
    // Without a schema a value that reads as JSON (other than a string) is that value.
    v.push_back({"atem call arguments without a schema", atem(), State::header,
                 " to=weather.get<|message|>" + kWeatherBlock, "", "",
                 {{"weather.get", "weather.get",
                   R"({"city":"New York","zip":10001,"days":3,"metric":false,"opts":{"a":[1,2]},)"
                   R"("hours":[6,12],"note":null})"}},
                 {T}, false, State::tool_call});
    v.push_back({"atem several calls (parallel)", atem(), State::header,
                 " to=self<|message|>Two cities.<|eom|><|start|>assistant to=weather.get<|message|>"
                 "<atem:function_calls>\n<atem:invoke name=\"weather.get\">\n<atem:parameter "
                 "name=\"city\">Paris</atem:parameter>\n</atem:invoke>\n</atem:function_calls><|eom|>"
                 "<|start|>assistant to=weather.get<|message|><atem:function_calls>\n<atem:invoke "
                 "name=\"weather.get\">\n<atem:parameter name=\"city\">Oslo</atem:parameter>\n</atem:invoke>\n"
                 "</atem:function_calls><|eot|>",
                 "Two cities.", "",
                 {{"weather.get", "weather.get", R"({"city":"Paris"})"},
                  {"weather.get", "weather.get", R"({"city":"Oslo"})"}},
                 {R, T, T}, false, State::ended});
    v.push_back({"atem two invokes in one block", atem(), State::header,
                 " to=functions<|message|><atem:function_calls>\n<atem:invoke name=\"a.one\">\n</atem:invoke>\n"
                 "<atem:invoke name=\"a.two\">\n<atem:parameter name=\"x\">hi there</atem:parameter>\n</atem:invoke>\n"
                 "</atem:function_calls><|eot|>",
                 "", "", {{"functions", "a.one", "{}"}, {"functions", "a.two", R"({"x":"hi there"})"}}, {T, T}, false,
                 State::ended});
    v.push_back({"atem content, reasoning and calls interleaved", atem(), State::header,
                 " to=self<|message|>First think.<|eom|><|start|>assistant to=user<|message|>Checking now."
                 "<|eom|><|start|>assistant to=self<|message|> More.<|eom|><|start|>assistant "
                 "to=special_function<|message|>" +
                     kBlock1 + "<|eot|>",
                 "First think. More.", "Checking now.", {{"special_function", "special_function", R"({"arg1":1})"}},
                 {R, A, R, T}, false, State::ended});
    v.push_back({"atem ends without <|eot|> (the host stops on it)", atem(), State::header,
                 " to=self<|message|>hmm<|eom|><|start|>assistant to=user<|message|>Done.", "hmm", "Done.", {}, {R, A},
                 false, State::answer});
    v.push_back({"atem prompt pre-opened to=self", atem(), State::reasoning,
                 "more thoughts<|eom|><|start|>assistant to=user<|message|>ok<|eot|>", "more thoughts", "ok", {},
                 {R, A}, false, State::ended});
    v.push_back({"atem prompt ended after <|eom|>", atem(), State::between,
                 "\n<|start|>assistant to=user<|message|>ok<|eot|>", "", "ok", {}, {A}, false, State::ended});
    v.push_back({"atem header without recipient is the answer", atem(), State::header, "<|message|>Hi<|eot|>", "",
                 "Hi", {}, {A}, false, State::ended});
    v.push_back({"atem role word in any case after <|start|>", atem(), State::header,
                 " to=self<|message|>x<|eom|><|start|>Assistant  to=user <|message|>y", "x", "y", {}, {R, A}, false,
                 State::answer});
    v.push_back({"atem unicode in every channel", atem(), State::header,
                 " to=self<|message|>Überlegung: 東京 → 🗼<|eom|><|start|>assistant to=user<|message|>Ответ: 42 ✓ 🎉"
                 "<|eom|><|start|>assistant to=wetter.hole<|message|><atem:function_calls>\n<atem:invoke "
                 "name=\"wetter.hole\">\n<atem:parameter name=\"stadt\">Zürich 🇨🇭</atem:parameter>\n</atem:invoke>\n"
                 "</atem:function_calls>",
                 "Überlegung: 東京 → 🗼", "Ответ: 42 ✓ 🎉", {{"wetter.hole", "wetter.hole", R"({"stadt":"Zürich 🇨🇭"})"}},
                 {R, A, T}, false, State::tool_call});
    v.push_back({"atem whitespace between messages", atem(), State::header,
                 " to=self<|message|>a<|eom|>\n <|start|>assistant to=user<|message|>b<|eot|>\n", "a", "b", {}, {R, A},
                 false, State::ended});

    // ---- muse-glimmer malformed: nothing is lost ----
    v.push_back({"atem no channel syntax at all", atem(), State::header, "Hello there!", "", "Hello there!", {}, {A},
                 true, State::answer});
    v.push_back({"atem hallucinated user turn after <|eot|>", atem(), State::header,
                 " to=user<|message|>Hi<|eot|><|start|>user<|message|>more", "", "Hiusermore", {}, {A}, true,
                 State::answer});
    v.push_back({"atem tool body that is not an ATEM block", atem(), State::header,
                 " to=special_function<|message|>{\"arg1\": 1}<|eot|>", "", "{\"arg1\": 1}", {}, {A}, true,
                 State::ended});
    v.push_back({"atem tool block cut at finish", atem(), State::header,
                 " to=special_function<|message|><atem:function_calls>\n"
                 "<atem:invoke name=\"special_function\">\n<atem:par",
                 "", "<atem:function_calls>\n<atem:invoke name=\"special_function\">\n<atem:par", {}, {A}, true,
                 State::tool_call});
    v.push_back({"atem reasoning cut at finish", atem(), State::header, " to=self<|message|>thinking about it", 
                 "thinking about it", "", {}, {R}, true, State::reasoning});
    v.push_back({"atem header cut at finish", atem(), State::header, " to=se", "", " to=se", {}, {A}, true,
                 State::header});
    v.push_back({"atem header ended by <|eom|>", atem(), State::header, " to=self<|eom|>", "", " to=self", {}, {A},
                 true, State::between});
    v.push_back({"atem incomplete header keyword before <|message|>", atem(), State::header,
                 "assist<|message|>text", "", "assisttext", {}, {A}, true, State::answer});
    v.push_back({"atem message without <|eom|> before the next <|start|>", atem(), State::header,
                 " to=self<|message|>a<|start|>assistant to=user<|message|>b", "a", "b", {}, {R, A}, true,
                 State::answer});
    v.push_back({"atem stray text between messages", atem(), State::header,
                 " to=self<|message|>a<|eom|>oops<|start|>assistant to=user<|message|>b", "a", "oopsb", {}, {R, A},
                 true, State::answer});

    // ---- <think> families ----
    v.push_back({"think Qwen3 reasoning then answer", qwen(), State::open,
                 "<think>\nLet me think.\nStill.\n</think>\n\nThe answer is 4.", "Let me think.\nStill.",
                 "The answer is 4.", {}, {R, A}, false, State::answer});
    v.push_back({"think prompt starts inside <think> (DeepSeek-R1)", deepseek(), State::reasoning,
                 "Okay, 2+2.\n</think>\n\nIt is 4.<｜end▁of▁sentence｜>", "Okay, 2+2.", "It is 4.", {}, {R, A}, false,
                 State::ended});
    v.push_back({"think empty block", qwen(), State::open, "<think>\n\n</think>\n\nHi", "", "Hi", {}, {A}, false,
                 State::answer});
    v.push_back({"think prompt already closed the block (enable_thinking=false)", qwen(), State::answer,
                 "Hi there.<|im_end|>", "", "Hi there.", {}, {A}, false, State::ended});
    v.push_back({"think no <think> at all", qwen(), State::open, "Just answering: 2 < 3.", "",
                 "Just answering: 2 < 3.", {}, {A}, false, State::answer});
    v.push_back({"think leading whitespace is kept when no tag follows", qwen(), State::open, "\n\nHi", "", "\n\nHi",
                 {}, {A}, false, State::answer});
    v.push_back({"think reasoning then a tool call", qwen(), State::open,
                 "<think>\nNeed the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                 "{\"city\": \"Paris\", \"days\": 2}}\n</tool_call><|im_end|>",
                 "Need the weather.", "", {{"", "get_weather", R"({"city":"Paris","days":2})"}}, {R, T}, false,
                 State::ended});
    v.push_back({"think content and several calls", qwen(), State::answer,
                 "I'll check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": [true]}\"}\n</tool_call>",
                 "", "I'll check both.", {{"", "a", R"({"x":1})"}, {"", "b", R"({"y":[true]})"}}, {A, T, T}, false,
                 State::answer});
    v.push_back({"think tool markup inside reasoning stays reasoning", qwen(), State::open,
                 "<think>\nI could use <tool_call> here.\n</think>\n\nNo need.", "I could use <tool_call> here.",
                 "No need.", {}, {R, A}, false, State::answer});
    v.push_back({"think a <think> after text is literal", qwen(), State::open, "Use <think> tags.", "",
                 "Use <think> tags.", {}, {A}, false, State::answer});
    v.push_back({"think a </think> in the answer is literal", qwen(), State::answer, "Close with </think>.", "",
                 "Close with </think>.", {}, {A}, false, State::answer});
    v.push_back({"think unicode and multibyte end-of-turn", deepseek(), State::open,
                 "<think>\nÜber 東京 🗼 nachdenken\n</think>\n\nÄntwort ✓<｜end▁of▁sentence｜>",
                 "Über 東京 🗼 nachdenken", "Äntwort ✓", {}, {R, A}, false, State::ended});
    v.push_back({"think reasoning inner whitespace kept", qwen(), State::reasoning, "  a \n\n b  \n</think>c",
                 "a \n\n b", "c", {}, {R, A}, false, State::answer});

    // ---- <think> malformed ----
    v.push_back({"think unterminated at finish", qwen(), State::open, "<think>\nstill thinking", "still thinking", "",
                 {}, {R}, true, State::reasoning});
    v.push_back({"think tool call with invalid JSON", qwen(), State::answer,
                 "Try:\n<tool_call>\n{not json}\n</tool_call>\nok", "", "Try:<tool_call>\n{not json}\n</tool_call>ok",
                 {}, {A}, true, State::answer});
    v.push_back({"think tool call cut at finish", qwen(), State::answer, "<tool_call>\n{\"name\": \"f\"", "",
                 "<tool_call>\n{\"name\": \"f\"", {}, {A}, true, State::answer});
    v.push_back({"think text after the end of turn", qwen(), State::answer, "Hi<|im_end|>\n<|im_start|>user", "",
                 "Hi\n<|im_start|>user", {}, {A}, true, State::ended});
    v.push_back({"think end of turn inside reasoning", qwen(), State::reasoning, "cut<|im_end|>", "cut", "", {}, {R},
                 true, State::ended});

    // ---- plain ----
    v.push_back({"plain everything is answer", default_format(FormatKind::plain), State::open,
                 "<think>x</think> and <tool_call>{}</tool_call> ünïcode", "", "<think>x</think> and "
                 "<tool_call>{}</tool_call> ünïcode", {}, {A}, false, State::answer});
    v.push_back({"plain with Hermes tool calls and an end of turn", plain_hermes(), State::open,
                 "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call><|eot_id|>", "", "",
                 {{"", "f", "{}"}}, {T}, false, State::ended});
    return v;
}

// ---- checks -------------------------------------------------------------------------

void check_against_want(const Vector &v, const Parsed &p) {
    INFO("vector: " << v.name << "\n" << describe(p));
    std::string reasoning, answer;
    std::vector<Channel> order;
    std::vector<const Segment *> calls;
    for (const Segment &g : p.segments) {
        if (g.channel == Channel::reasoning) reasoning += g.text;
        if (g.channel == Channel::answer) answer += g.text;
        if (g.channel == Channel::tool_call) calls.push_back(&g);
        if (order.empty() || order.back() != g.channel || g.channel == Channel::tool_call) order.push_back(g.channel);
    }
    CHECK(reasoning == v.reasoning);
    CHECK(answer == v.answer);
    CHECK(order == v.order);
    CHECK(p.malformed == v.malformed);
    CHECK(p.state == v.end_state);
    REQUIRE(calls.size() == v.calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
        CHECK(calls[i]->name == v.calls[i].name);
        CHECK(calls[i]->recipient == v.calls[i].recipient);
        CHECK(json::parse(calls[i]->arguments) == json::parse(v.calls[i].arguments));
    }
    if (!v.malformed) {
        // Framing never reaches a channel.
        for (const char *framing : {"<|start|>", "<|message|>", "<|eom|>", "<|eot|>", "<|im_end|>"}) {
            CHECK(reasoning.find(framing) == std::string::npos);
            CHECK(answer.find(framing) == std::string::npos);
        }
    }
}

} // namespace

TEST_CASE("channel vectors: whole-text parse matches the format", "[channels]") {
    for (const Vector &v : vectors()) check_against_want(v, parse_pieces(v.format, v.start, {v.text}, v.tools));
}

TEST_CASE("channel vectors: streaming equals the whole-text parse for every cut", "[channels]") {
    std::mt19937 rng(1234);
    for (const Vector &v : vectors()) {
        INFO("vector: " << v.name);
        const Parsed whole = parse_pieces(v.format, v.start, {v.text}, v.tools);
        size_t cuts = 0;
        // Two pieces, cut at every byte (inside tags and inside multi-byte characters).
        for (size_t i = 0; i <= v.text.size(); ++i) {
            const Parsed two = parse_pieces(v.format, v.start, {v.text.substr(0, i), v.text.substr(i)}, v.tools);
            if (!(two == whole)) FAIL("cut at byte " << i << ":\n" << describe(two) << "whole:\n" << describe(whole));
            ++cuts;
        }
        // Byte by byte.
        std::vector<std::string> bytes;
        for (char c : v.text) bytes.emplace_back(1, c);
        const Parsed by_byte = parse_pieces(v.format, v.start, bytes, v.tools);
        if (!(by_byte == whole)) FAIL("byte by byte:\n" << describe(by_byte) << "whole:\n" << describe(whole));
        // Random pieces of 1..8 bytes, with empty pieces mixed in.
        for (int round = 0; round < 20; ++round) {
            std::vector<std::string> pieces;
            for (size_t i = 0; i < v.text.size();) {
                size_t n = std::uniform_int_distribution<size_t>(0, 8)(rng);
                pieces.push_back(v.text.substr(i, n));
                i += n;
            }
            const Parsed random = parse_pieces(v.format, v.start, pieces, v.tools);
            if (!(random == whole)) FAIL("random pieces:\n" << describe(random) << "whole:\n" << describe(whole));
        }
        CHECK(cuts == v.text.size() + 1);
    }
}

TEST_CASE("channel parser: only bytes that could still be framing are held back", "[channels]") {
    auto text_of = [](const std::vector<ChannelEvent> &events, Channel ch) {
        std::string s;
        for (const ChannelEvent &e : events)
            if (e.channel == ch) s += e.text;
        return s;
    };

    SECTION("atem body: a possible marker prefix") {
        auto p = make_channel_parser(atem(), State::header);
        CHECK(p->feed(" to=us").empty());  // a header is framing until <|message|>
        CHECK(p->state() == State::header);
        CHECK(p->feed("er<|message|>").empty());
        CHECK(p->state() == State::answer);
        CHECK(text_of(p->feed("Hel"), Channel::answer) == "Hel");
        CHECK(text_of(p->feed("lo <|e"), Channel::answer) == "lo ");  // "<|e" may be <|eom|> or <|eot|>
        CHECK(text_of(p->feed("x"), Channel::answer) == "<|ex");         // it was not
        CHECK(p->feed("<|eot|>").empty());
        CHECK(p->state() == State::ended);
        CHECK_FALSE(p->malformed());
    }
    SECTION("atem header: given up at the first byte that rules it out") {
        auto p = make_channel_parser(atem(), State::header);
        CHECK(text_of(p->feed("H"), Channel::answer) == "H");
        CHECK(p->malformed());
        CHECK(p->state() == State::answer);
        CHECK(text_of(p->feed("ello"), Channel::answer) == "ello");
    }
    SECTION("atem reasoning state") {
        auto p = make_channel_parser(atem(), State::header);
        p->feed(" to=self<|message|>");
        CHECK(p->state() == State::reasoning);
        CHECK(text_of(p->feed("abc"), Channel::reasoning) == "abc");
        CHECK(p->feed("<|eom|>").empty());
        CHECK(p->state() == State::between);
        p->feed("<|start|>assistant");
        CHECK(p->state() == State::header);
    }
    SECTION("think: reasoning holds the whitespace and '<' that may precede </think>") {
        auto p = make_channel_parser(qwen(), State::open);
        CHECK(p->feed("  ").empty());
        CHECK(p->feed("<thi").empty());
        CHECK(p->state() == State::open);
        CHECK(p->feed("nk>\n").empty());
        CHECK(p->state() == State::reasoning);
        CHECK(text_of(p->feed("Hello <"), Channel::reasoning) == "Hello");
        CHECK(p->feed("/thi").empty());
        CHECK(text_of(p->feed("s"), Channel::reasoning) == " </this");
        CHECK(text_of(p->feed("\xC3"), Channel::reasoning).empty());  // half of "é"
        CHECK(text_of(p->feed("\xA9"), Channel::reasoning) == "é");
    }
    SECTION("plain: everything but an end-of-turn prefix goes out at once") {
        auto p = make_channel_parser(plain_hermes(), State::open);
        CHECK(text_of(p->feed("Hi "), Channel::answer) == "Hi");  // a <tool_call> may follow the space
        CHECK(text_of(p->feed("there"), Channel::answer) == " there");
        auto q = make_channel_parser(default_format(FormatKind::plain), State::answer);
        CHECK(text_of(q->feed("Hi "), Channel::answer) == "Hi ");
    }
}

TEST_CASE("channel parser: misuse is a clear error", "[channels]") {
    auto p = make_channel_parser(qwen(), State::open);
    p->finish();
    CHECK(p->finished());
    try {
        p->feed("x");
        FAIL("feed after finish must throw");
    } catch (const muse::Error &e) {
        CHECK(e.status() == MUSE_ERR_INVALID_ARGUMENT);
    }
    CHECK_THROWS_AS(p->finish(), muse::Error);
    CHECK_THROWS_AS(make_channel_parser(qwen(), State::header), muse::Error);
    CHECK_THROWS_AS(make_channel_parser(qwen(), State::between), muse::Error);
    CHECK_THROWS_AS(make_channel_parser(default_format(FormatKind::plain), State::reasoning), muse::Error);
    CHECK_THROWS_AS(make_channel_parser(atem(), State::open), muse::Error);
    CHECK_NOTHROW(make_channel_parser(atem(), State::between));
}

TEST_CASE("channel parser: arbitrary bytes never crash and never lose text", "[channels]") {
    // Random mixes of framing fragments and text: whatever the parser decides, it must not
    // throw, and streaming must agree with the whole parse.
    const std::vector<std::string> atoms = {"<|start|>", "assistant", " to=self", " to=user", " to=f", "<|message|>",
                                            "<|eom|>", "<|eot|>", "<atem:function_calls>", "<think>", "</think>",
                                            "<tool_call>", "</tool_call>", "{\"name\": \"f\"}", "\n", " ", "é",
                                            " text ", "<|", "<", "\xff"};
    std::mt19937 rng(99);
    for (int round = 0; round < 300; ++round) {
        std::string text;
        const int n = std::uniform_int_distribution<int>(0, 12)(rng);
        for (int i = 0; i < n; ++i) text += atoms[std::uniform_int_distribution<size_t>(0, atoms.size() - 1)(rng)];
        const std::vector<std::pair<ReasoningFormat, std::vector<State>>> setups = {
            {atem(), {State::header, State::between, State::reasoning, State::answer, State::ended}},
            {qwen(), {State::open, State::reasoning, State::answer}},
            {plain_hermes(), {State::open, State::answer}}};
        for (const auto &[f, starts] : setups) {
            const State start = starts[std::uniform_int_distribution<size_t>(0, starts.size() - 1)(rng)];
            const Parsed whole = parse_pieces(f, start, {text});
            std::vector<std::string> bytes;
            for (char c : text) bytes.emplace_back(1, c);
            const size_t cut = std::uniform_int_distribution<size_t>(0, text.size())(rng);
            INFO("text: " << quote(text) << " start: " << to_string(start) << " cut: " << cut);
            CHECK(parse_pieces(f, start, bytes) == whole);
            CHECK(parse_pieces(f, start, {text.substr(0, cut), text.substr(cut)}) == whole);
            // Every non-framing letter of "text" survives somewhere.
            size_t words = 0, pos = 0;
            while ((pos = text.find("text", pos)) != std::string::npos) ++words, pos += 4;
            size_t seen = 0;
            for (const Segment &g : whole.segments) {
                for (size_t at = 0; (at = g.text.find("text", at)) != std::string::npos; at += 4) ++seen;
            }
            CHECK(seen == words);
        }
    }
}
