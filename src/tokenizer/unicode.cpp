#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace muse::unicode {

uint16_t flags_of(uint32_t cp) {
    if (cp >= kInvalidByteBase) return 0;
    const CodepointRange *end = kCodepointRanges + kCodepointRangeCount;
    const CodepointRange *it = std::upper_bound(
        kCodepointRanges, end, cp, [](uint32_t c, const CodepointRange &r) { return c < r.first; });
    return it == kCodepointRanges ? 0 : (it - 1)->flags;
}

size_t valid_sequence_length(std::string_view text, size_t pos) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    const uint8_t b0 = byte(pos);
    if (b0 < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2;
        cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3;
        cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4;
        cp = b0 & 0x07;
    } else {
        return 0;
    }
    if (pos + len > text.size()) return 0;
    for (size_t i = 1; i < len; ++i) {
        if ((byte(pos + i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (byte(pos + i) & 0x3F);
    }
    static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

uint32_t decode_one(std::string_view text, size_t &pos) {
    const size_t len = valid_sequence_length(text, pos);
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    if (len == 0) return kInvalidByteBase + byte(pos++);
    uint32_t cp;
    switch (len) {
    case 1: cp = byte(pos); break;
    case 2: cp = byte(pos) & 0x1F; break;
    case 3: cp = byte(pos) & 0x0F; break;
    default: cp = byte(pos) & 0x07; break;
    }
    for (size_t i = 1; i < len; ++i) cp = (cp << 6) | (byte(pos + i) & 0x3F);
    pos += len;
    return cp;
}

std::vector<uint32_t> decode(std::string_view text) {
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) cps.push_back(decode_one(text, pos));
    return cps;
}

void append_utf8(std::string &out, uint32_t cp) {
    if (cp >= kInvalidByteBase) {
        out.push_back(static_cast<char>(cp - kInvalidByteBase));
    } else if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

namespace {

// GPT-2 keeps the printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF) as themselves and moves the other 68 bytes, in order, to
// U+0100 onwards (so ' ' becomes U+0120 'Ġ' and '\n' U+010A 'Ċ').
std::array<uint32_t, 256> make_byte_to_codepoint() {
    std::array<uint32_t, 256> map{};
    uint32_t next_free = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        map[b] = printable ? b : next_free++;
    }
    return map;
}

const std::array<uint32_t, 256> &byte_map() {
    static const std::array<uint32_t, 256> map = make_byte_to_codepoint();
    return map;
}

} // namespace

uint32_t byte_to_codepoint(uint8_t byte) { return byte_map()[byte]; }

int codepoint_to_byte(uint32_t cp) {
    // Printable bytes map to themselves; the rest occupy U+0100..U+0143.
    if (cp < 0x100) return byte_map()[cp] == cp ? static_cast<int>(cp) : -1;
    if (cp >= 0x100 + 68) return -1;
    static const std::array<int16_t, 68> moved = [] {
        std::array<int16_t, 68> inv{};
        for (int b = 0; b < 256; ++b)
            if (byte_map()[b] >= 0x100) inv[byte_map()[b] - 0x100] = static_cast<int16_t>(b);
        return inv;
    }();
    return moved[cp - 0x100];
}

} // namespace muse::unicode
