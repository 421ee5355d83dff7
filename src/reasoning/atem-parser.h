// The muse-glimmer (ATEM) channel parser (contract in channel-parser.h; framing in
// MUSE_GLIMMER.md §3.1): a response is messages `[<|start|>]{header}<|message|>{body}`
// ended by `<|eom|>` or `<|eot|>`, routed by the header's recipient.
#pragma once

#include "reasoning/channel-parser.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace muse::reasoning {

class AtemParser final : public ChannelParser {
public:
    AtemParser(State start, nlohmann::ordered_json tools);

    std::unique_ptr<ChannelParser> clone() const override { return std::unique_ptr<ChannelParser>(new AtemParser(*this)); }

private:
    void process(bool at_end) override;
    void close() override;

    void on_text(std::string_view text);
    void on_marker(std::string_view marker);
    // The header could not be one: deliver its text as answer and read on as an answer body.
    void abandon_header();
    void end_message();  // the body in progress is complete (tool calls are parsed here)

    nlohmann::ordered_json tools_;
    std::string header_;     // header text so far
    std::string recipient_;  // tool_call: the message's recipient
    std::string body_;       // tool_call: the body so far
};

} // namespace muse::reasoning
