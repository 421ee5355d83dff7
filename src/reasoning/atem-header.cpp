#include "reasoning/atem-header.h"

namespace muse::reasoning {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t'; }

bool is_recipient_byte(char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != '<';
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

} // namespace

AtemHeader classify_atem_header(std::string_view text) {
    // A small DFA over the grammar in the header; `k` counts matched bytes of a keyword.
    enum { lead_ws, role, after_role, mid_ws, to_kw, recipient, trail_ws } st = lead_ws;
    constexpr std::string_view kRole = "assistant", kTo = "to=";
    size_t k = 0, rcp_begin = 0, rcp_end = 0;
    AtemHeader out;
    if (text.size() > kAtemHeaderMax) return out;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        switch (st) {
        case lead_ws:
            if (is_ws(c)) break;
            if (lower(c) == kRole[0]) st = role, k = 1;
            else if (c == kTo[0]) st = to_kw, k = 1;
            else return out;
            break;
        case role:
            if (lower(c) != kRole[k]) return out;
            if (++k == kRole.size()) st = after_role;
            break;
        case after_role:
        case mid_ws:
            if (!is_ws(c)) {
                if (st == after_role || c != kTo[0]) return out;
                st = to_kw, k = 1;
            } else {
                st = mid_ws;
            }
            break;
        case to_kw:
            if (k < kTo.size()) {
                if (c != kTo[k]) return out;
                ++k;
            } else {
                if (!is_recipient_byte(c)) return out;
                st = recipient, rcp_begin = i, rcp_end = i + 1;
            }
            break;
        case recipient:
            if (is_recipient_byte(c)) rcp_end = i + 1;
            else if (is_ws(c)) st = trail_ws;
            else return out;
            break;
        case trail_ws:
            if (!is_ws(c)) return out;
            break;
        }
    }
    out.viable = true;
    // Complete when no keyword is half-written and "to=" has its recipient.
    out.valid = st == lead_ws || st == after_role || st == mid_ws || st == recipient || st == trail_ws;
    if (out.valid && (st == recipient || st == trail_ws)) out.recipient = text.substr(rcp_begin, rcp_end - rcp_begin);
    return out;
}

} // namespace muse::reasoning
