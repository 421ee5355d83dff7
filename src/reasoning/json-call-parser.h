// The Llama 3.x channel parser (contract in channel-parser.h): the model answers either
// with text or with tool calls written as bare JSON objects
//   {"name": "get_weather", "parameters": {"city": "Paris"}}
// optionally after `<|python_tag|>` (the templates that declare built-in tools use it),
// several calls separated by whitespace or `;`. There is no reasoning channel.
//
// Whether the answer is a call is decided by its first non-space byte: `{` (or the
// python tag) opens a call, anything else is answer text. A call is delivered when its
// object closes; an object that is not a call (no name, bad JSON, cut off at finish) is
// delivered as answer text and sets malformed(), so a JSON answer the user asked for is
// never lost.
#pragma once

#include "reasoning/channel-parser.h"

#include <string>
#include <vector>

namespace muse::reasoning {

class JsonCallParser final : public ChannelParser {
public:
    JsonCallParser(const ReasoningFormat &format, State start);

    std::unique_ptr<ChannelParser> clone() const override {
        return std::unique_ptr<ChannelParser>(new JsonCallParser(*this));
    }

private:
    void process(bool at_end) override;
    void close() override;

    // tool_call: consumes the object in progress; true when it closed (or failed).
    bool scan_object(bool at_end);
    void end_object(bool complete);

    std::string python_tag_;
    std::vector<std::string> end_of_turn_;
    std::string body_;        // the object so far
    std::string held_space_;  // leading whitespace, delivered if the answer turns out to be text
    int depth_ = 0;
    bool in_string_ = false, escaped_ = false;
    bool after_call_ = false;  // between calls: whitespace and `;` are framing
};

} // namespace muse::reasoning
