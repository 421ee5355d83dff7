#include "reasoning/text-scan.h"

namespace muse::reasoning {

MarkerScan scan_markers(std::string_view buf, const std::vector<std::string_view> &markers, bool at_end) {
    MarkerScan out;
    for (size_t i = 0; i < buf.size(); ++i) {
        const std::string_view rest = buf.substr(i);
        bool partial = false, complete = false;
        size_t best = 0;
        for (size_t m = 0; m < markers.size(); ++m) {
            const std::string_view mk = markers[m];
            if (mk.empty()) continue;
            if (rest.size() >= mk.size()) {
                if (rest.substr(0, mk.size()) == mk && (!complete || mk.size() > markers[best].size())) {
                    complete = true;
                    best = m;
                }
            } else if (!at_end && mk.substr(0, rest.size()) == rest) {
                partial = true;  // a longer marker may still complete here
            }
        }
        if (partial) {
            out.safe = i;
            return out;
        }
        if (complete) {
            out.found = true;
            out.pos = i;
            out.which = best;
            return out;
        }
    }
    out.safe = buf.size();
    return out;
}

size_t utf8_complete_end(std::string_view buf, size_t end) {
    // Look back at most 3 bytes for the lead byte of the last character.
    for (size_t back = 1; back <= 4 && back <= end; ++back) {
        const auto c = static_cast<unsigned char>(buf[end - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        return need > back ? end - back : end;
    }
    return end;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t trailing_space_start(std::string_view buf, size_t end) {
    while (end > 0 && is_space(buf[end - 1])) --end;
    return end;
}

std::string_view trim_left(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && is_space(s[i])) ++i;
    return s.substr(i);
}

std::string_view trim_right(std::string_view s) { return s.substr(0, trailing_space_start(s, s.size())); }

bool all_space(std::string_view s) { return trim_left(s).empty(); }

} // namespace muse::reasoning
