// libFuzzer target for the streaming channel parsers (src/reasoning/): arbitrary model
// output in every format and start state, fed whole and in pieces cut where the input
// says. Properties: no crash or sanitizer report, and streaming gives exactly the
// channel texts, tool calls and malformed flag of the whole-text parse.
#include "core/error.h"
#include "reasoning/channel-parser.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace muse;
using namespace muse::reasoning;

namespace {

struct Parsed {
    std::string reasoning, answer;
    std::vector<std::string> calls;
    bool malformed = false;
    bool operator==(const Parsed &o) const {
        return reasoning == o.reasoning && answer == o.answer && calls == o.calls && malformed == o.malformed;
    }
};

void collect(Parsed &p, const std::vector<ChannelEvent> &events) {
    for (const ChannelEvent &e : events) {
        if (e.channel == Channel::reasoning) p.reasoning += e.text;
        else if (e.channel == Channel::answer) p.answer += e.text;
        else if (e.call) p.calls.push_back(e.call->name + "\n" + e.call->arguments + "\n" + e.call->recipient);
    }
}

Parsed parse(const ReasoningFormat &f, State start, const nlohmann::ordered_json &tools, const std::string &text,
             const std::vector<size_t> &cuts) {
    Parsed p;
    auto parser = make_channel_parser(f, start, tools);
    size_t at = 0;
    for (size_t cut : cuts) {
        collect(p, parser->feed(std::string_view(text).substr(at, cut - at)));
        at = cut;
    }
    collect(p, parser->feed(std::string_view(text).substr(at)));
    collect(p, parser->finish());
    p.malformed = parser->malformed();
    return p;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const FormatKind kinds[] = {FormatKind::atem, FormatKind::think_tags, FormatKind::plain};
    static const State starts[] = {State::header, State::between, State::open, State::reasoning, State::answer,
                                   State::tool_call};
    const FormatKind kind = kinds[data[0] % 3];
    const State start = starts[(data[0] / 3) % 6];
    ReasoningFormat f = default_format(kind);
    nlohmann::ordered_json tools = nullptr;
    if (kind != FormatKind::atem && (data[0] & 0x80)) {  // Hermes tool calls on
        f.tool_call_open = "<tool_call>";
        f.tool_call_close = "</tool_call>";
    } else if (kind == FormatKind::plain && (data[0] & 0x40)) {  // Llama 3 JSON calls (tools offered)
        f.json_tool_calls = true;
        f.python_tag = "<|python_tag|>";
        f.end_of_turn = {"<|eot_id|>", "<|eom_id|>"};
        tools = nlohmann::ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
    }
    const uint8_t step = static_cast<uint8_t>(data[1] % 7 + 1);
    const std::string text(reinterpret_cast<const char *>(data + 2), size - 2);
    std::vector<size_t> cuts;
    for (size_t at = step; at < text.size(); at += step + (static_cast<uint8_t>(text[at]) % 5)) cuts.push_back(at);
    try {
        const Parsed whole = parse(f, start, tools, text, {});
        const Parsed streamed = parse(f, start, tools, text, cuts);
        if (!(whole == streamed)) __builtin_trap();  // streaming must not change the result
    } catch (const Error &) {
        // A start state the format cannot have: refused with a clear error, fine.
    }
    return 0;
}
