// muse::reasoning::ChannelParser: splits a model's output, as it streams, into the
// reasoning, answer and tool-call channels of its ReasoningFormat (reasoning-format.h).
//
//   auto parser = make_channel_parser(format, response_start(format, prompt), tools);
//   for (each generated piece) for (auto &ev : parser->feed(piece)) deliver(ev);
//   for (auto &ev : parser->finish()) deliver(ev);
//
// Contract
// - Input is the generated text with special tokens rendered as text (`<|eom|>`,
//   `<think>`...): the parser works on text, so pieces may be cut anywhere, even inside a
//   tag or a UTF-8 character. feed() + finish() give the same channel texts and the same
//   tool calls however the text is cut (only the number of events differs).
// - Framing (tags, ATEM headers, `<|start|>`/`<|message|>`/`<|eom|>`/`<|eot|>`, end-of-turn
//   strings) never appears in a channel. think_tags/plain also treat the whitespace between
//   a think/tool tag and the text beside it as framing (the templates write "<think>\n",
//   "\n</think>\n\n", "\n<tool_call>\n"); atem message bodies are delivered verbatim.
// - Latency: feed() releases every byte except those that could still turn out to be
//   framing: a suffix that is a proper prefix of a tag, the whitespace run before it where
//   whitespace next to a tag is framing, and an incomplete trailing UTF-8 sequence (so every
//   event is valid UTF-8 when the input is). An atem message header is framing until its
//   `<|message|>` (or until a byte rules it out, see below). Tool calls are delivered whole,
//   when they close: a call cannot be acted on before that, and holding it lets a broken one
//   fall back to answer text.
// - atem: the response is a sequence of messages. `to=self` bodies are reasoning, `to=user`
//   (or no recipient) the answer, other recipients tool calls whose body is an ATEM block
//   (MUSE_GLIMMER.md §3.3), parsed into one call per `<atem:invoke>`. `<|eom|>` ends a
//   message, `<|eot|>` the turn; a later `<|start|>` may open another message.
// - think_tags: `<think>` opens reasoning only at the response start (after optional
//   whitespace); `</think>` closes it; everything else is answer, where `<think>` is
//   literal text. Tool blocks (`<tool_call>{json}</tool_call>`) are calls in the answer and
//   literal text inside reasoning. plain: the same without think tags.
// - Malformed output never loses text; it sets malformed():
//   * atem header that cannot be a header (`<|start|>user`, prose) or a `<|start|>`/`<|eom|>`
//     /`<|eot|>` inside a header: the header text is delivered as answer and the text that
//     follows is an answer body;
//   * a tool call that does not parse (bad ATEM block, invalid JSON, no name) or is cut off
//     at finish(): its text is delivered as answer (think_tags/plain: verbatim with its
//     tags; atem: the body);
//   * reasoning still open at finish() (or at an end-of-turn string): it stays reasoning,
//     the answer is missing;
//   * text after an end-of-turn string (think_tags/plain), or outside any message (atem),
//     is answer;
//   * a `<|message|>` outside a header is dropped; a message cut by `<|start|>` without its
//     `<|eom|>` ends there.
//   An atem tool body cut at finish() whose ATEM block is complete is a normal call: the
//   host stops on `<|eot|>` and does not feed it.
// - ATEM argument values are typed with the tool's JSON schema when `tools` (the OpenAI
//   `tools` array the prompt was rendered with) declares the function: a property whose
//   type admits "string" keeps the raw text; otherwise the value is parsed as JSON and kept
//   raw when that fails. Without a schema a value that parses as a JSON number, bool, null,
//   object or array becomes that value, anything else the raw string.
// - state() is where the next text would land (see State); the thinking controller reads it
//   after each token: it is State::reasoning exactly while reasoning text is being written.
// A parser is single-threaded; feed() after finish() is MUSE_ERR_INVALID_ARGUMENT.
#pragma once

#include "reasoning/reasoning-format.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muse::reasoning {

struct ToolCall {
    std::string recipient;  // atem: the header's recipient (`to=...`); "" for Hermes calls
    std::string name;       // the function name (atem: from `<atem:invoke name="...">`)
    std::string arguments;  // a JSON object, compact ("{\"arg1\":1}")
};

struct ChannelEvent {
    Channel channel = Channel::answer;
    // reasoning/answer: the next piece of that channel. tool_call: the call's raw text
    // (atem: the message body; Hermes: the text between the tags, trimmed), on the first
    // call of a message when one ATEM block holds several invokes, "" on the others.
    std::string text;
    std::optional<ToolCall> call;  // set exactly when channel == tool_call
};

class ChannelParser {
public:
    virtual ~ChannelParser() = default;
    ChannelParser &operator=(const ChannelParser &) = delete;
    // An independent copy in the same state (generations snapshot it for rollback).
    virtual std::unique_ptr<ChannelParser> clone() const = 0;

    std::vector<ChannelEvent> feed(std::string_view piece);
    // Flushes what was held back and closes the response (see the malformed rules).
    std::vector<ChannelEvent> finish();

    State state() const { return state_; }
    bool malformed() const { return malformed_; }
    bool finished() const { return finished_; }

protected:
    explicit ChannelParser(State start) : state_(start) {}
    ChannelParser(const ChannelParser &) = default;

    // Consumes as much of buf_ as can be decided; at_end: no more input will come.
    virtual void process(bool at_end) = 0;
    // Called once after the final process(true).
    virtual void close() = 0;

    void emit(Channel channel, std::string_view text);
    void emit_call(std::string_view raw, ToolCall call);

    std::string buf_;  // input not yet consumed
    State state_;
    bool malformed_ = false;

private:
    std::vector<ChannelEvent> take();

    std::vector<ChannelEvent> out_;
    bool finished_ = false;
};

// A parser for `format`, starting at `start` (usually response_start(format, prompt)).
// `tools`: the OpenAI-style tools array (or null) used to type ATEM arguments.
// MUSE_ERR_INVALID_ARGUMENT when `start` cannot occur in the format (header/between
// outside atem, reasoning without think tags, tool_call outside atem).
std::unique_ptr<ChannelParser> make_channel_parser(const ReasoningFormat &format, State start,
                                                   const nlohmann::ordered_json &tools = nullptr);

} // namespace muse::reasoning
