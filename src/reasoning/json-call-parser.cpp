#include "reasoning/json-call-parser.h"

#include "reasoning/text-scan.h"
#include "reasoning/tool-call-parse.h"

namespace muse::reasoning {

JsonCallParser::JsonCallParser(const ReasoningFormat &format, State start)
    : ChannelParser(start == State::answer ? State::open : start), python_tag_(format.python_tag),
      end_of_turn_(format.end_of_turn) {}

void JsonCallParser::process(bool at_end) {
    while (!buf_.empty()) {
        if (state_ == State::ended) {  // the turn was over, yet text came: answer, malformed
            malformed_ = true;
            emit(Channel::answer, buf_);
            buf_.clear();
            return;
        }
        if (state_ == State::tool_call) {
            if (!scan_object(at_end)) return;
            continue;
        }
        if (state_ == State::open) {
            size_t i = 0;
            while (i < buf_.size() && (is_space(buf_[i]) || (after_call_ && buf_[i] == ';'))) ++i;
            held_space_ += buf_.substr(0, i);
            buf_.erase(0, i);
            if (buf_.empty()) return;
            if (!python_tag_.empty() && buf_.compare(0, python_tag_.size(), python_tag_) == 0) {
                buf_.erase(0, python_tag_.size());
                held_space_.clear();
                continue;  // the object follows (after optional space)
            }
            if (buf_[0] == '{') {
                held_space_.clear();
                state_ = State::tool_call;
                body_.clear();
                depth_ = 0;
                in_string_ = escaped_ = false;
                continue;
            }
            bool could_be_marker = false;
            std::vector<std::string_view> ms;
            if (!python_tag_.empty()) ms.push_back(python_tag_);
            for (const std::string &e : end_of_turn_) ms.push_back(e);
            for (std::string_view m : ms)
                if (buf_.size() < m.size() && m.compare(0, buf_.size(), buf_) == 0) could_be_marker = true;
            if (could_be_marker && !at_end) return;
            // Plain text: the answer (the whitespace held before it is part of it, except
            // after a call, where it was framing).
            if (!after_call_) emit(Channel::answer, held_space_);
            held_space_.clear();
            state_ = State::answer;
            continue;
        }
        // answer: text up to an end-of-turn string.
        std::vector<std::string_view> ms;
        for (const std::string &e : end_of_turn_) ms.push_back(e);
        const MarkerScan scan = scan_markers(buf_, ms, at_end);
        if (scan.found) {
            emit(Channel::answer, std::string_view(buf_).substr(0, scan.pos));
            buf_.erase(0, scan.pos + ms[scan.which].size());
            state_ = State::ended;
            if (buf_.empty()) return;
            continue;
        }
        const size_t safe = utf8_complete_end(buf_, scan.safe);
        emit(Channel::answer, std::string_view(buf_).substr(0, safe));
        buf_.erase(0, safe);
        return;
    }
}

bool JsonCallParser::scan_object(bool at_end) {
    size_t i = 0;
    for (; i < buf_.size(); ++i) {
        const char c = buf_[i];
        if (in_string_) {
            if (escaped_) escaped_ = false;
            else if (c == '\\') escaped_ = true;
            else if (c == '"') in_string_ = false;
            continue;
        }
        if (c == '"') in_string_ = true;
        else if (c == '{' || c == '[') ++depth_;
        else if (c == '}' || c == ']') {
            if (--depth_ == 0) {
                body_ += buf_.substr(0, i + 1);
                buf_.erase(0, i + 1);
                end_object(true);
                return true;
            }
        }
    }
    body_ += buf_;
    buf_.clear();
    if (at_end) {
        end_object(false);
        return true;
    }
    return false;
}

void JsonCallParser::end_object(bool complete) {
    std::optional<ToolCall> call = complete ? parse_hermes_call(body_) : std::nullopt;
    if (call) {
        emit_call(body_, std::move(*call));
        state_ = State::open;
        after_call_ = true;
    } else {
        // Not a call: the text is the answer, whatever follows too.
        malformed_ = malformed_ || !complete || after_call_;
        emit(Channel::answer, body_);
        state_ = State::answer;
    }
    body_.clear();
}

void JsonCallParser::close() {
    if (state_ == State::tool_call && !body_.empty()) end_object(false);
    if (state_ == State::open && !after_call_) emit(Channel::answer, held_space_);
    held_space_.clear();
}

} // namespace muse::reasoning
