// The ABI boundary: every exported function runs its body through guard(),
// which turns any exception into a muse_status and a thread-local message
// (ONNX Runtime's API_IMPL_BEGIN/END, as one function instead of macros).
#pragma once

#include "core/error.h"

#include "muse/muse.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace muse::api {

muse_status set_error(muse_status status, const char *message) noexcept;
void clear_error() noexcept;

template <class F>
muse_status guard(F &&body) noexcept {
    try {
        body();
        clear_error();
        return MUSE_OK;
    } catch (const Error &e) {
        return set_error(e.status(), e.what());
    } catch (const std::bad_alloc &) {
        return set_error(MUSE_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return set_error(MUSE_ERR_INTERNAL, e.what());
    } catch (...) {
        return set_error(MUSE_ERR_INTERNAL, "unknown exception inside muse");
    }
}

// For getters that return a value instead of a status: on any failure the
// message is set and `on_error` is returned.
template <class R, class F>
R guard_value(R on_error, F &&body) noexcept {
    R result = on_error;
    guard([&] { result = body(); });
    return result;
}

// Reads an enum field of a caller's struct as a plain int: a C caller may store
// any value there, and loading an out-of-range value as the enum type is UB in C++.
template <class E>
int enum_value(const E &e) {
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized on supported ABIs");
    int v;
    std::memcpy(&v, &e, sizeof v);
    return v;
}

// A caller-owned copy of s (embedded NULs kept), released with muse_string_free().
inline char *dup_string(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

template <class T>
T *require(T *p, const char *what) {
    if (!p) fail(MUSE_ERR_INVALID_ARGUMENT, what, " is NULL");
    return p;
}

// Copies a caller's versioned params struct. `known_sizes` lists the sizes of
// every released version of the struct (oldest first); a caller may pass one of
// them, or a larger size whose unknown tail is all zero bytes.
template <class T, size_t N>
T read_params(const T *p, void (*init)(T *), const size_t (&known_sizes)[N], const char *what) {
    T out;
    init(&out);
    if (!p) return out;
    const size_t size = p->struct_size;
    bool known = false;
    for (size_t s : known_sizes) known = known || s == size;
    if (!known) {
        if (size < sizeof(T))
            fail(MUSE_ERR_INVALID_ARGUMENT, what, ".struct_size is ", size,
                 ", which is no released size of this struct; fill it with ", what, "_init()");
        const auto *bytes = reinterpret_cast<const unsigned char *>(p);
        for (size_t i = sizeof(T); i < size; ++i)
            if (bytes[i] != 0)
                fail(MUSE_ERR_INVALID_ARGUMENT, what, ".struct_size is ", size, " (this muse knows ", sizeof(T),
                     ") and the extra fields are set: the caller was built against a newer muse");
    }
    std::memcpy(static_cast<void *>(&out), p, size < sizeof(T) ? size : sizeof(T));
    out.struct_size = static_cast<uint32_t>(sizeof(T));
    return out;
}

} // namespace muse::api
