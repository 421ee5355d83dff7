#include "reasoning/channel-parser.h"

#include "core/error.h"
#include "reasoning/atem-parser.h"
#include "reasoning/json-call-parser.h"
#include "reasoning/tag-parser.h"

namespace muse::reasoning {

std::vector<ChannelEvent> ChannelParser::feed(std::string_view piece) {
    if (finished_) fail(MUSE_ERR_INVALID_ARGUMENT, "channel parser: feed() after finish()");
    buf_.append(piece);
    process(false);
    return take();
}

std::vector<ChannelEvent> ChannelParser::finish() {
    if (finished_) fail(MUSE_ERR_INVALID_ARGUMENT, "channel parser: finish() called twice");
    process(true);
    close();
    finished_ = true;
    return take();
}

void ChannelParser::emit(Channel channel, std::string_view text) {
    if (text.empty()) return;
    if (!out_.empty() && out_.back().channel == channel && channel != Channel::tool_call) {
        out_.back().text.append(text);
        return;
    }
    out_.push_back({channel, std::string(text), std::nullopt});
}

void ChannelParser::emit_call(std::string_view raw, ToolCall call) {
    out_.push_back({Channel::tool_call, std::string(raw), std::move(call)});
}

std::vector<ChannelEvent> ChannelParser::take() {
    std::vector<ChannelEvent> out;
    out.swap(out_);
    return out;
}

std::unique_ptr<ChannelParser> make_channel_parser(const ReasoningFormat &format, State start,
                                                   const nlohmann::ordered_json &tools) {
    if (format.kind == FormatKind::atem) {
        if (start == State::open)
            fail(MUSE_ERR_INVALID_ARGUMENT, "channel parser: an atem response cannot start in state 'open'");
        return std::unique_ptr<ChannelParser>(new AtemParser(start, tools));
    }
    const bool has_think = format.kind == FormatKind::think_tags && !format.think_open.empty() &&
                           !format.think_close.empty();
    if (start == State::header || start == State::between || start == State::tool_call ||
        (start == State::reasoning && !has_think))
        fail(MUSE_ERR_INVALID_ARGUMENT, "channel parser: a ", to_string(format.kind),
             " response cannot start in state '", to_string(start), "'");
    const bool offered = tools.is_array() && !tools.empty();
    if (format.json_tool_calls && offered && format.kind == FormatKind::plain && start != State::reasoning)
        return std::unique_ptr<ChannelParser>(new JsonCallParser(format, start));
    return std::unique_ptr<ChannelParser>(new TagParser(format, start));
}

} // namespace muse::reasoning
