// The ATEM message header grammar (muse-glimmer, MUSE_GLIMMER.md §3.1): the text between
// `<|start|>` and `<|message|>`. The first header of a response has no role word (the
// generation prompt already wrote `<|start|>assistant`), later ones start with it:
//
//   header    := ws* [role ws*] [ "to=" recipient ws*]      ws := ' ' | '\t'
//   role      := "assistant"  (any letter case: a model past `<|eot|>` drifts to "Assistant")
//   recipient := one or more bytes that are not ASCII whitespace, control, or '<'
//
// No recipient means "user" (llama.cpp's grammar makes ` to=user` optional). Headers are a
// handful of tokens; one longer than kAtemHeaderMax bytes is not a header.
#pragma once

#include <cstddef>
#include <string_view>

namespace muse::reasoning {

constexpr size_t kAtemHeaderMax = 256;

struct AtemHeader {
    bool viable = false;         // some continuation of the text is a valid header
    bool valid = false;          // the text, as it is, is a complete valid header
    std::string_view recipient;  // when valid: the recipient ("" when none was written)
};

// Classifies `text` (without the `<|start|>`/`<|message|>` around it). `viable` is
// monotonic: once a prefix is not viable no longer text is, which is what lets a streaming
// parser give up on a header as soon as it sees the byte that rules it out.
AtemHeader classify_atem_header(std::string_view text);

} // namespace muse::reasoning
