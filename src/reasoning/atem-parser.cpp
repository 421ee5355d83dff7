#include "reasoning/atem-parser.h"

#include "reasoning/atem-header.h"
#include "reasoning/text-scan.h"
#include "reasoning/tool-call-parse.h"

namespace muse::reasoning {

namespace {

constexpr std::string_view kStart = "<|start|>";
constexpr std::string_view kMessage = "<|message|>";
constexpr std::string_view kEom = "<|eom|>";
constexpr std::string_view kEot = "<|eot|>";

// The same four markers in every state: a special token is framing wherever it appears.
const std::vector<std::string_view> kMarkers = {kStart, kMessage, kEom, kEot};

} // namespace

AtemParser::AtemParser(State start, nlohmann::ordered_json tools) : ChannelParser(start), tools_(std::move(tools)) {}

void AtemParser::process(bool at_end) {
    for (;;) {
        const MarkerScan scan = scan_markers(buf_, kMarkers, at_end);
        if (scan.found) {
            const std::string_view marker = kMarkers[scan.which];
            on_text(std::string_view(buf_).substr(0, scan.pos));
            buf_.erase(0, scan.pos + marker.size());
            on_marker(marker);
            continue;
        }
        size_t safe = scan.safe;
        if (!at_end) {
            safe = utf8_complete_end(buf_, safe);
            // Whitespace between messages is dropped if a `<|start|>` follows, so it waits.
            if (state_ == State::between || state_ == State::ended) safe = trailing_space_start(buf_, safe);
        }
        on_text(std::string_view(buf_).substr(0, safe));
        buf_.erase(0, safe);
        return;
    }
}

void AtemParser::on_text(std::string_view text) {
    if (text.empty()) return;
    switch (state_) {
    case State::header:
        header_ += text;
        // Viability is monotonic, so giving up at the first impossible byte decides the
        // same way however the text was cut.
        if (!classify_atem_header(header_).viable) abandon_header();
        break;
    case State::reasoning: emit(Channel::reasoning, text); break;
    case State::answer: emit(Channel::answer, text); break;
    case State::tool_call: body_ += text; break;
    default:  // between / ended: whitespace before a `<|start|>` is dropped, anything else is stray answer text
        if (all_space(text)) return;
        malformed_ = true;
        state_ = State::answer;
        emit(Channel::answer, text);
        break;
    }
}

void AtemParser::abandon_header() {
    malformed_ = true;
    state_ = State::answer;
    std::string text = std::move(header_);
    header_.clear();
    emit(Channel::answer, text);
}

void AtemParser::end_message() {
    if (state_ != State::tool_call) return;
    if (auto calls = parse_atem_calls(body_, recipient_, tools_)) {
        std::string_view raw = body_;
        for (ToolCall &call : *calls) {
            emit_call(raw, std::move(call));
            raw = {};
        }
    } else {
        malformed_ = true;
        emit(Channel::answer, body_);
    }
    body_.clear();
}

void AtemParser::on_marker(std::string_view marker) {
    if (state_ == State::header) {
        if (marker == kMessage) {
            const AtemHeader h = classify_atem_header(header_);
            if (!h.valid) {
                abandon_header();  // "to=" or "assist": the body follows as answer
                return;
            }
            const std::string recipient(h.recipient);
            header_.clear();
            if (recipient == "self") {
                state_ = State::reasoning;
            } else if (recipient.empty() || recipient == "user") {
                state_ = State::answer;
            } else {
                state_ = State::tool_call;
                recipient_ = recipient;
                body_.clear();
            }
            return;
        }
        if (marker == kStart && all_space(header_)) {
            header_.clear();  // `<|start|>assistant` written again: still a header
            return;
        }
        // A structural token inside a header: the header never completed.
        malformed_ = true;
        if (!all_space(header_)) emit(Channel::answer, header_);
        header_.clear();
        state_ = State::answer;  // handled below as the end of an (empty) answer body
    }
    if (marker == kMessage) {
        malformed_ = true;  // no header before it: dropped, the text goes on where it was
        return;
    }
    const bool in_body = state_ == State::reasoning || state_ == State::answer || state_ == State::tool_call;
    if (in_body) end_message();
    if (marker == kStart) {
        if (in_body) malformed_ = true;  // the message had no `<|eom|>`/`<|eot|>`
        state_ = State::header;
        header_.clear();
    } else if (marker == kEom) {
        if (!in_body) malformed_ = true;
        state_ = State::between;
    } else {
        state_ = State::ended;
    }
}

void AtemParser::close() {
    switch (state_) {
    case State::header:
        if (!all_space(header_)) {
            malformed_ = true;
            emit(Channel::answer, header_);
        }
        header_.clear();
        break;
    case State::reasoning: malformed_ = true; break;  // cut inside reasoning: no answer
    case State::tool_call: end_message(); break;      // complete block: a call (the host did not feed `<|eot|>`)
    default: break;
    }
}

} // namespace muse::reasoning
