#include "reasoning/reasoning-format.h"

#include "reasoning/atem-header.h"

#include <array>

namespace muse::reasoning {

namespace {

constexpr std::string_view kAtemStart = "<|start|>";
constexpr std::string_view kAtemMessage = "<|message|>";
constexpr std::string_view kAtemEom = "<|eom|>";
constexpr std::string_view kAtemEot = "<|eot|>";

// End-of-turn markers of the common families; a template that writes one of them ends
// its turns with it.
constexpr std::array<std::string_view, 8> kEndOfTurnCandidates = {
    "<|im_end|>", "<｜end▁of▁sentence｜>", "<|eot_id|>", "<|end|>",
    "<end_of_turn>", "<|endoftext|>", "<|END_OF_TURN_TOKEN|>", "<|eot|>",
};

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// The newlines a template writes right after `close` ("</think>\n\n" in Qwen3's
// '\n</think>\n\n'), from the first occurrence followed by any. The source is Jinja, so a
// newline is either the two characters `\n` inside a string literal or a raw newline.
// Spaces do not count: SmolLM3's system prose "<think> Thought section </think> Solution"
// is not framing.
std::string newlines_after(std::string_view source, std::string_view close) {
    for (size_t at = source.find(close); at != std::string_view::npos; at = source.find(close, at + 1)) {
        std::string run;
        size_t i = at + close.size();
        while (i < source.size()) {
            if (source[i] == '\n') {
                run += '\n';
                i += 1;
            } else if (source[i] == '\\' && i + 1 < source.size() && source[i + 1] == 'n') {
                run += '\n';
                i += 2;
            } else {
                break;
            }
        }
        if (!run.empty()) return run;
    }
    return "\n\n";  // what Qwen3 and the R1 distills write after the block
}

bool any_end_of_turn_from(std::string_view text, size_t from, const std::vector<std::string> &end_of_turn) {
    for (const std::string &e : end_of_turn)
        if (text.find(e, from) != std::string_view::npos) return true;
    return false;
}

State atem_response_start(std::string_view prompt) {
    // The last structural marker decides: each one leaves the conversation in a known place.
    size_t best = std::string_view::npos;
    std::string_view which;
    for (std::string_view m : {kAtemStart, kAtemMessage, kAtemEom, kAtemEot}) {
        size_t at = prompt.rfind(m);
        if (at != std::string_view::npos && (best == std::string_view::npos || at > best)) {
            best = at;
            which = m;
        }
    }
    if (best == std::string_view::npos || which == kAtemEom || which == kAtemEot) return State::between;
    if (which == kAtemStart) return State::header;
    // Inside a message body: its header sits between the previous <|start|> and <|message|>.
    size_t start = prompt.rfind(kAtemStart, best);
    std::string_view header;
    if (start != std::string_view::npos)
        header = prompt.substr(start + kAtemStart.size(), best - start - kAtemStart.size());
    AtemHeader h = classify_atem_header(header);
    if (!h.valid || h.recipient.empty() || h.recipient == "user") return State::answer;
    if (h.recipient == "self") return State::reasoning;
    return State::tool_call;
}

State tags_response_start(const ReasoningFormat &f, std::string_view prompt) {
    if (f.think_open.empty() || f.think_close.empty()) return State::open;
    size_t open = prompt.rfind(f.think_open), close = prompt.rfind(f.think_close);
    constexpr size_t npos = std::string_view::npos;
    if (open != npos && (close == npos || close < open) && !any_end_of_turn_from(prompt, open, f.end_of_turn))
        return State::reasoning;
    if (close != npos && (open == npos || open < close) && !any_end_of_turn_from(prompt, close, f.end_of_turn))
        return State::answer;
    return State::open;
}

} // namespace

const char *to_string(FormatKind kind) {
    switch (kind) {
    case FormatKind::plain: return "plain";
    case FormatKind::think_tags: return "think_tags";
    case FormatKind::atem: return "atem";
    }
    return "?";
}

const char *to_string(Channel channel) {
    switch (channel) {
    case Channel::reasoning: return "reasoning";
    case Channel::answer: return "answer";
    case Channel::tool_call: return "tool_call";
    }
    return "?";
}

const char *to_string(State state) {
    switch (state) {
    case State::header: return "header";
    case State::between: return "between";
    case State::open: return "open";
    case State::reasoning: return "reasoning";
    case State::answer: return "answer";
    case State::tool_call: return "tool_call";
    case State::ended: return "ended";
    }
    return "?";
}

const char *to_string(Effort effort) {
    switch (effort) {
    case Effort::low: return "low";
    case Effort::medium: return "medium";
    case Effort::high: return "high";
    }
    return "?";
}

ReasoningFormat default_format(FormatKind kind) {
    ReasoningFormat f;
    f.kind = kind;
    switch (kind) {
    case FormatKind::atem:
        // MUSE_GLIMMER.md §3.1: the generation prompt is `<|start|>assistant`; the model
        // writes its own ` to=...<|message|>`.
        f.reasoning_open = " to=self<|message|>";
        f.reasoning_close = std::string(kAtemEom);
        f.answer_open =
            std::string(kAtemEom) + std::string(kAtemStart) + "assistant to=user" + std::string(kAtemMessage);
        f.answer_direct = " to=user" + std::string(kAtemMessage);
        f.end_of_turn = {std::string(kAtemEot)};
        f.effort_variables = {"reasoning_effort", "reasoning_strength"};
        f.effort_off_value = "none";
        break;
    case FormatKind::think_tags:
        f.think_open = "<think>";
        f.think_close = "</think>";
        f.reasoning_open = "<think>\n";
        f.reasoning_close = "</think>";
        f.answer_open = "</think>\n\n";
        f.answer_direct = "<think>\n\n</think>\n\n";
        break;
    case FormatKind::plain: break;
    }
    return f;
}

ReasoningFormat detect_format(std::string_view arch, std::string_view tpl, const SingleTokenPredicate &is_single_token,
                              std::optional<FormatKind> override_kind) {
    auto single = [&](std::string_view s) { return is_single_token && is_single_token(s); };

    FormatKind kind = FormatKind::plain;
    std::string why;
    if (override_kind) {
        kind = *override_kind;
        why = "override";
    } else if (contains(tpl, "<atem:function_calls>") && contains(tpl, kAtemEom)) {
        kind = FormatKind::atem;
        why = "template: <atem:function_calls> and <|eom|>";
    } else if (tpl.empty() && arch == "muse-glimmer") {
        kind = FormatKind::atem;
        why = "architecture muse-glimmer (no template)";
    } else if (contains(tpl, "</think>") && (contains(tpl, "<think>") || single("<think>"))) {
        kind = FormatKind::think_tags;
        why = contains(tpl, "<think>") ? "template: <think> and </think>" : "template: </think>, vocabulary: <think>";
    } else if (tpl.empty() && single("<think>") && single("</think>")) {
        kind = FormatKind::think_tags;
        why = "vocabulary: <think> and </think> (no template)";
    } else {
        why = tpl.empty() ? "no template" : "template has no reasoning markers";
    }

    ReasoningFormat f = default_format(kind);
    f.detected_by = why;
    if (kind == FormatKind::atem) {
        if (contains(tpl, "enable_thinking")) f.enable_thinking = true;
        return f;
    }
    if (kind == FormatKind::think_tags) {
        std::string nl = newlines_after(tpl, f.think_close);
        f.answer_open = f.think_close + nl;
        f.answer_direct = f.think_open + "\n\n" + f.think_close + nl;
    }
    if (contains(tpl, "<tool_call>") && contains(tpl, "</tool_call>")) {
        f.tool_call_open = "<tool_call>";
        f.tool_call_close = "</tool_call>";
    } else if (contains(tpl, "\"parameters\": ")) {
        // Llama 3.x: '{"name": "' + name + '", "parameters": ' + arguments | tojson + '}'.
        f.json_tool_calls = true;
        if (contains(tpl, "<|python_tag|>")) f.python_tag = "<|python_tag|>";
    }
    for (std::string_view e : kEndOfTurnCandidates)
        if (contains(tpl, e) || (tpl.empty() && single(e))) f.end_of_turn.emplace_back(e);
    // Llama 3.1 ends a turn that expects a tool result with <|eom_id|>.
    if (f.json_tool_calls && contains(tpl, "<|eom_id|>")) f.end_of_turn.emplace_back("<|eom_id|>");
    f.enable_thinking = contains(tpl, "enable_thinking");
    if (contains(tpl, "reasoning_effort") || contains(tpl, "reasoning_strength"))
        f.effort_variables = {"reasoning_effort", "reasoning_strength"};
    return f;
}

nlohmann::ordered_json template_variables(const ReasoningFormat &f, ThinkingMode mode, Effort effort) {
    nlohmann::ordered_json vars = nlohmann::ordered_json::object();
    if (f.enable_thinking) vars["enable_thinking"] = mode != ThinkingMode::off;
    if (!f.effort_variables.empty()) {
        std::string value = mode == ThinkingMode::off && !f.effort_off_value.empty() ? f.effort_off_value
                                                                                       : std::string(to_string(effort));
        for (const std::string &name : f.effort_variables) vars[name] = value;
    }
    return vars;
}

State response_start(const ReasoningFormat &f, std::string_view prompt) {
    switch (f.kind) {
    case FormatKind::atem: return atem_response_start(prompt);
    case FormatKind::think_tags: return tags_response_start(f, prompt);
    case FormatKind::plain: return State::open;
    }
    return State::open;
}

std::string forced_prefix(const ReasoningFormat &f, State start, ThinkingMode mode) {
    if (mode == ThinkingMode::automatic || f.kind == FormatKind::plain) return {};
    const bool off = mode == ThinkingMode::off;
    switch (start) {
    case State::header:
    case State::open: return off ? f.answer_direct : f.reasoning_open;
    case State::reasoning: return off ? f.answer_open : std::string();
    case State::between:
        if (f.kind != FormatKind::atem) return {};
        return std::string(kAtemStart) + "assistant" + (off ? f.answer_direct : f.reasoning_open);
    case State::answer:
    case State::tool_call:
    case State::ended: return {};
    }
    return {};
}

} // namespace muse::reasoning
