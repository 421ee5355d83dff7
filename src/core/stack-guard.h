// How much of the current thread's stack is left, so recursive interpreters
// (templates, nested JSON) can stop with an error before a stack overflow,
// whatever the frame sizes of this build (sanitizers multiply them).
#pragma once

#include <cstddef>

namespace muse {

// True when fewer than `reserve` bytes of stack remain below the caller.
bool stack_nearly_exhausted(size_t reserve = 256 * 1024);

} // namespace muse
