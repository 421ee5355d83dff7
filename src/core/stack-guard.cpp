#include "core/stack-guard.h"

#include <cstdint>
#include <pthread.h>

namespace muse {
namespace {

// Lowest usable address of this thread's stack (0 when unknown).
uintptr_t stack_low() {
    thread_local uintptr_t low = [] {
        pthread_attr_t attr;
        uintptr_t result = 0;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void *addr = nullptr;
            size_t size = 0;
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) result = reinterpret_cast<uintptr_t>(addr);
            pthread_attr_destroy(&attr);
        }
        return result;
    }();
    return low;
}

} // namespace

bool stack_nearly_exhausted(size_t reserve) {
    const uintptr_t low = stack_low();
    if (low == 0) return false;
    const auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    return here < low + reserve;
}

} // namespace muse
