// The think_tags and plain channel parser (contract in channel-parser.h): reasoning in
// `<think>…</think>` at the response start, Hermes `<tool_call>` blocks, the rest answer.
// plain is the same machine with no think tags.
#pragma once

#include "reasoning/channel-parser.h"

#include <string>
#include <string_view>
#include <vector>

namespace muse::reasoning {

class TagParser final : public ChannelParser {
public:
    TagParser(const ReasoningFormat &format, State start);

    std::unique_ptr<ChannelParser> clone() const override { return std::unique_ptr<ChannelParser>(new TagParser(*this)); }

private:
    void process(bool at_end) override;
    void close() override;

    std::vector<std::string_view> markers() const;
    // Whitespace at the end of the current text may sit next to a tag that trims it.
    bool holds_trailing_space() const;
    void on_text(std::string_view text, std::string_view marker);
    void on_marker(std::string_view marker);
    void end_tool_call(bool closed);
    bool is_end_of_turn(std::string_view marker) const;
    bool has_marker(std::string_view marker) const;

    std::string think_open_, think_close_, tool_open_, tool_close_;
    std::vector<std::string> end_of_turn_;
    std::string tool_body_;
    bool skip_space_ = false;  // drop the whitespace that follows a tag
};

} // namespace muse::reasoning
