// StreamingDetokenizer: token pieces may end inside a UTF-8 character (byte
// fallback tokens, byte-level BPE); hosts printing as they go must not see a
// half character, so the unfinished tail waits for the next piece.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace muse {

namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// How many bytes the character starting with `lead` should have, 0 if `lead`
// cannot start one.
size_t expected_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

// Whether `tail` (shorter than its expected length) can still become a valid
// character: each byte so far is a continuation allowed at its position.
bool could_complete(std::string_view tail) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(tail[i]); };
    for (size_t i = 1; i < tail.size(); ++i) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (i == 1) {  // the second byte carries the overlong / surrogate / range limits
            if (byte(0) == 0xE0) lo = 0xA0;
            if (byte(0) == 0xED) hi = 0x9F;
            if (byte(0) == 0xF0) lo = 0x90;
            if (byte(0) == 0xF4) hi = 0x8F;
        }
        if (byte(i) < lo || byte(i) > hi) return false;
    }
    return true;
}

} // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer &tokenizer, bool render_special)
    : tokenizer_(tokenizer), render_special_(render_special) {}

std::string StreamingDetokenizer::push(int32_t id) {
    pending_ += tokenizer_.token_to_piece(id, render_special_);
    std::string out;
    size_t pos = 0;
    while (pos < pending_.size()) {
        const size_t len = unicode::valid_sequence_length(pending_, pos);
        if (len > 0) {
            out.append(pending_, pos, len);
            pos += len;
            continue;
        }
        const size_t want = expected_length(static_cast<uint8_t>(pending_[pos]));
        const std::string_view tail = std::string_view(pending_).substr(pos);
        if (want > tail.size() && could_complete(tail)) break;  // wait for the rest
        out += kReplacement;  // this byte can never start a valid character
        ++pos;
    }
    pending_.erase(0, pos);
    return out;
}

std::string StreamingDetokenizer::flush() {
    if (pending_.empty()) return {};
    pending_.clear();
    return std::string(kReplacement);  // one replacement for the unfinished character
}

} // namespace muse
