#include "reasoning/tag-parser.h"

#include "reasoning/text-scan.h"
#include "reasoning/tool-call-parse.h"

namespace muse::reasoning {

TagParser::TagParser(const ReasoningFormat &format, State start)
    : ChannelParser(start), end_of_turn_(format.end_of_turn) {
    if (format.kind == FormatKind::think_tags) {
        think_open_ = format.think_open;
        think_close_ = format.think_close;
    }
    tool_open_ = format.tool_call_open;
    tool_close_ = format.tool_call_close;
    if (tool_open_.empty() || tool_close_.empty()) tool_open_.clear(), tool_close_.clear();
    // The prompt opened reasoning with "<think>\n" or the like: what follows is its body.
    skip_space_ = start == State::reasoning;
}

std::vector<std::string_view> TagParser::markers() const {
    std::vector<std::string_view> m;
    switch (state_) {
    case State::open:
        m = {think_open_, tool_open_};
        break;
    case State::reasoning: m = {think_close_}; break;
    case State::answer: m = {tool_open_}; break;
    case State::tool_call: m = {tool_close_}; break;
    default: return m;  // ended: everything is text
    }
    for (const std::string &e : end_of_turn_) m.push_back(e);
    return m;
}

bool TagParser::holds_trailing_space() const {
    switch (state_) {
    case State::open: return true;  // `<think>` may still follow
    case State::reasoning: return !think_close_.empty();
    case State::answer: return !tool_open_.empty();
    default: return false;
    }
}

bool TagParser::has_marker(std::string_view marker) const {
    for (std::string_view m : markers())
        if (m == marker) return true;
    return false;
}

bool TagParser::is_end_of_turn(std::string_view marker) const {
    for (const std::string &e : end_of_turn_)
        if (marker == e) return true;
    return false;
}

void TagParser::process(bool at_end) {
    for (;;) {
        const std::vector<std::string_view> ms = markers();
        const MarkerScan scan = scan_markers(buf_, ms, at_end);
        if (scan.found) {
            // Copy: on_text/on_marker may not keep views into buf_ across the erase.
            const std::string marker(ms[scan.which]);
            const State before = state_;
            on_text(std::string_view(buf_).substr(0, scan.pos), marker);
            if (state_ != before && !has_marker(marker)) {
                // The text started the answer ("Hello <think>"), where this tag means
                // nothing: scan it again as text of the new state.
                buf_.erase(0, scan.pos);
                continue;
            }
            buf_.erase(0, scan.pos + marker.size());
            on_marker(marker);
            continue;
        }
        size_t safe = scan.safe;
        if (!at_end) {
            // UTF-8 first: a held half character must not expose whitespace before it.
            safe = utf8_complete_end(buf_, safe);
            if (holds_trailing_space()) safe = trailing_space_start(buf_, safe);
        }
        on_text(std::string_view(buf_).substr(0, safe), {});
        buf_.erase(0, safe);
        return;
    }
}

void TagParser::on_text(std::string_view text, std::string_view marker) {
    if (skip_space_) {
        text = trim_left(text);
        if (!text.empty()) skip_space_ = false;
    }
    if (text.empty()) return;
    switch (state_) {
    case State::open:
        // Whitespace before a tag (or at the very end) is framing; anything else starts the answer.
        if (all_space(text)) return;
        state_ = State::answer;
        [[fallthrough]];
    case State::answer:
        if (!marker.empty() && marker == tool_open_) text = trim_right(text);
        emit(Channel::answer, text);
        break;
    case State::reasoning:
        if (!marker.empty() && marker == think_close_) text = trim_right(text);
        emit(Channel::reasoning, text);
        break;
    case State::tool_call: tool_body_ += text; break;
    default:  // ended: the turn was over, yet text came
        malformed_ = true;
        emit(Channel::answer, text);
        break;
    }
}

void TagParser::on_marker(std::string_view marker) {
    if (is_end_of_turn(marker)) {
        if (state_ == State::reasoning) malformed_ = true;  // the answer never came
        if (state_ == State::tool_call) end_tool_call(false);
        state_ = State::ended;
        return;
    }
    switch (state_) {
    case State::open:
        if (marker == think_open_) {
            state_ = State::reasoning;
            skip_space_ = true;
        } else {
            state_ = State::tool_call;
            tool_body_.clear();
            skip_space_ = false;  // keep the body verbatim for the fallback
        }
        break;
    case State::reasoning:
        state_ = State::answer;
        skip_space_ = true;
        break;
    case State::answer:
        state_ = State::tool_call;
        tool_body_.clear();
        skip_space_ = false;  // keep the body verbatim for the fallback
        break;
    case State::tool_call:
        end_tool_call(true);
        state_ = State::answer;
        skip_space_ = true;
        break;
    default: break;
    }
}

void TagParser::end_tool_call(bool closed) {
    std::optional<ToolCall> call;
    if (closed) call = parse_hermes_call(tool_body_);
    if (call) {
        emit_call(trim_left(trim_right(tool_body_)), std::move(*call));
    } else {
        // Not a call after all: the model's text, tags included, is answer.
        malformed_ = true;
        emit(Channel::answer, tool_open_ + tool_body_ + (closed ? tool_close_ : std::string()));
    }
    tool_body_.clear();
}

void TagParser::close() {
    if (state_ == State::reasoning) malformed_ = true;
    if (state_ == State::tool_call) {
        end_tool_call(false);
        state_ = State::answer;
    }
}

} // namespace muse::reasoning
