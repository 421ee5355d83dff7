// Byte-level helpers shared by the channel parsers: finding the earliest framing marker
// in a buffer while holding back only what could still become one.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace muse::reasoning {

struct MarkerScan {
    bool found = false;
    size_t pos = 0;    // found: where the marker starts
    size_t which = 0;  // found: index into the marker list
    size_t safe = 0;   // not found: bytes before the earliest place a marker could still start
};

// The earliest marker in `buf`. A complete match is reported only when no longer marker
// could still match at the same place; otherwise (and when nothing matches) `safe` is the
// start of the longest suffix of `buf` that is a proper prefix of some marker. at_end: no
// more input will come, so partial matches do not count (safe = buf.size()).
MarkerScan scan_markers(std::string_view buf, const std::vector<std::string_view> &markers, bool at_end);

// `end`, moved back before an incomplete UTF-8 sequence at the end of buf[0, end) so a
// cut never splits a character. Invalid bytes are not held.
size_t utf8_complete_end(std::string_view buf, size_t end);

bool is_space(char c);  // ASCII space, tab, newline, carriage return

// Start of the whitespace run that ends buf[0, end).
size_t trailing_space_start(std::string_view buf, size_t end);
std::string_view trim_left(std::string_view s);
std::string_view trim_right(std::string_view s);
bool all_space(std::string_view s);

} // namespace muse::reasoning
