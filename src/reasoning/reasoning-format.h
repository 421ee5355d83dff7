// muse::reasoning::ReasoningFormat: how a model family frames reasoning, the
// answer and tool calls in its output, described as strings taken from the chat
// template and the vocabulary (never token ids, which differ between models).
//
//   auto fmt = reasoning::detect_format(model.arch(), template_source,
//                                       [&](std::string_view s) { return tok.find_token(s).has_value(); });
//   auto vars = reasoning::template_variables(fmt, ThinkingMode::off, Effort::medium);  // into the render context
//   std::string prompt = tpl.render(context);
//   State start = reasoning::response_start(fmt, prompt);             // where the output begins
//   std::string force = reasoning::forced_prefix(fmt, start, ThinkingMode::off);  // force these tokens first
//   auto parser = make_channel_parser(fmt, start);                    // channel-parser.h
//
// Kinds:
//   atem        muse-glimmer. Every message is `<|start|>{header}<|message|>{body}` ended by
//               `<|eom|>` (more messages follow) or `<|eot|>` (end of turn); the header
//               `assistant to=self` is reasoning, `to=user` (or no recipient) the answer, any
//               other recipient a tool call whose body is an ATEM block (MUSE_GLIMMER.md §3).
//   think_tags  Qwen3, QwQ, DeepSeek-R1 distills, SmolLM3, ...: reasoning inside
//               `<think>…</think>` at the start of the response, the rest is the answer;
//               Hermes-style `<tool_call>{json}</tool_call>` blocks when the template uses them.
//   plain       everything is answer (plus Hermes tool calls when the template uses them,
//               or Llama 3.x bare JSON calls).
//
// Detection (detect_format), first rule that matches:
//   1. an explicit override kind;
//   2. atem when the template contains both `<atem:function_calls>` and `<|eom|>` (the rule
//      llama.cpp uses), or when there is no template and the architecture is "muse-glimmer";
//   3. think_tags when the template contains `</think>` and either the template also writes
//      `<think>` or the vocabulary has `<think>` as a single token; with no template, when
//      the vocabulary has both `<think>` and `</think>` as single tokens;
//   4. plain.
// The template wins over the architecture: a fine-tune that ships another template is
// parsed the way its template frames the conversation. Every field is public: a host may
// edit the strings after detection (custom tags such as `<seed:think>`).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muse::reasoning {

enum class FormatKind : uint8_t { plain, think_tags, atem };

// The output channels.
enum class Channel : uint8_t { reasoning, answer, tool_call };

// Where a parser is in the response (and where a response starts).
enum class State : uint8_t {
    header,     // atem: inside a message header (after `<|start|>`, or at the response start
                // when the prompt ended with the generation prompt `<|start|>assistant`)
    between,    // atem: after `<|eom|>`, waiting for the next `<|start|>`
    open,       // think_tags/plain: the response start, where `<think>` may still open reasoning
    reasoning,  // text lands in the reasoning channel
    answer,     // text lands in the answer channel
    tool_call,  // inside a tool call (delivered whole when it closes)
    ended,      // after an end-of-turn string (`<|eot|>`, `<|im_end|>`, ...)
};

enum class ThinkingMode : uint8_t { off, on, automatic };
enum class Effort : uint8_t { low, medium, high };

const char *to_string(FormatKind kind);
const char *to_string(Channel channel);
const char *to_string(State state);
const char *to_string(Effort effort);

struct ReasoningFormat {
    FormatKind kind = FormatKind::plain;
    std::string detected_by;  // the rule that chose the kind, for logs ("override", "template: ...")

    // Reasoning framing; empty for plain.
    //   reasoning_open   forced at the response start to make the model reason
    //                    (think_tags "<think>\n", atem " to=self<|message|>")
    //   reasoning_close  the string that ends reasoning ("</think>", atem "<|eom|>")
    //   answer_open      forced to end reasoning and open the answer: the close plus what the
    //                    template puts after it ("</think>\n\n"; atem
    //                    "<|eom|><|start|>assistant to=user<|message|>")
    //   answer_direct    forced at the response start to answer without reasoning
    //                    (think_tags: an empty block "<think>\n\n</think>\n\n"; atem " to=user<|message|>")
    std::string reasoning_open, reasoning_close, answer_open, answer_direct;

    // think_tags: the tag pair itself ("<think>", "</think>").
    std::string think_open, think_close;

    // Hermes-style tool calls (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`),
    // set when the template writes both tags; empty otherwise. Unused by atem.
    std::string tool_call_open, tool_call_close;

    // Llama 3.x tool calls: the answer is bare JSON objects `{"name": ..., "parameters":
    // {...}}`, optionally after `python_tag` ("<|python_tag|>"). Set when the template
    // renders calls that way (and has no Hermes tags); parsed only when tools are offered.
    bool json_tool_calls = false;
    std::string python_tag;

    // Strings that end the turn when they appear in the output (the template's own, e.g.
    // "<|im_end|>"; atem "<|eot|>"). Hosts normally stop on the end-of-generation token
    // and never feed it, but a parser given one stops there.
    std::vector<std::string> end_of_turn;

    // Template variables. enable_thinking: the template reads `enable_thinking` (Qwen3, QwQ,
    // SmolLM3, some R1 distills). effort_variables: the effort/strength variables it reads
    // ("reasoning_effort", "reasoning_strength"); both are set to the same value, as llama.cpp
    // does. effort_off_value: the value meaning "do not reason" ("none" for muse-glimmer,
    // whose template prints "Reasoning strength: none."), empty when the template has none.
    bool enable_thinking = false;
    std::vector<std::string> effort_variables;
    std::string effort_off_value;
};

// "Is this string exactly one token of the vocabulary?" (e.g. Tokenizer::find_token).
using SingleTokenPredicate = std::function<bool(std::string_view)>;

// The format for `arch` + `chat_template` (the Jinja source; empty when the model has
// none) + vocabulary; see the detection rule above. `is_single_token` may be empty.
ReasoningFormat detect_format(std::string_view arch, std::string_view chat_template,
                              const SingleTokenPredicate &is_single_token,
                              std::optional<FormatKind> override_kind = std::nullopt);

// The canonical strings of a kind (what detect_format fills before reading the template).
ReasoningFormat default_format(FormatKind kind);

// Variables to merge into the template's render context for a thinking mode and effort:
// enable_thinking (off -> false, on/automatic -> true) when the template reads it, and the
// effort variables ("low"/"medium"/"high"; effort_off_value when off). An empty object when
// the template has neither.
nlohmann::ordered_json template_variables(const ReasoningFormat &format, ThinkingMode mode, Effort effort);

// Where the model's output starts, read from the end of the rendered prompt:
//   atem: after the last `<|start|>` with no `<|message|>` yet -> header (the generation
//         prompt `<|start|>assistant`); inside an open message body -> reasoning / answer /
//         tool_call by its recipient; right after `<|eom|>` or `<|eot|>` -> between.
//   think_tags: the last `<think>` has no `</think>` and no end-of-turn string after it ->
//         reasoning (DeepSeek-R1 distills end the prompt with "<think>\n"); the last
//         `</think>` comes after the last `<think>` with no end-of-turn string after it ->
//         answer (Qwen3 enable_thinking=false, QwQ without enable_thinking); else open.
//   plain: open.
State response_start(const ReasoningFormat &format, std::string_view prompt);

// The text to force at the very start of the response so that it follows `mode`, given
// where the response starts; empty when nothing needs forcing (automatic, or the prompt
// already did it). off: answer_direct at header/open, answer_open inside reasoning, and
// atem "<|start|>assistant to=user<|message|>" between messages. on: reasoning_open at
// header/open, atem "<|start|>assistant to=self<|message|>" between messages. A prompt that
// already closed reasoning cannot be reopened by forcing: render it with
// template_variables(format, on, ...) instead.
std::string forced_prefix(const ReasoningFormat &format, State start, ThinkingMode mode);

} // namespace muse::reasoning
