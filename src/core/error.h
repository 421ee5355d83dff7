// muse::Error: the one exception type used inside src/. The C API layer turns it
// into a muse_status and a thread-local message; nothing else may escape the ABI.
#pragma once

#include "muse/muse.h"

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace muse {

class Error : public std::runtime_error {
public:
    Error(muse_status status, std::string message)
        : std::runtime_error(std::move(message)), status_(status) {}
    muse_status status() const noexcept { return status_; }

private:
    muse_status status_;
};

// Concatenates anything streamable: str_cat("tensor '", name, "' has ", n, " dims").
template <class... Args>
std::string str_cat(Args &&...args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}

template <class... Args>
[[noreturn]] void fail(muse_status status, Args &&...args) {
    throw Error(status, str_cat(std::forward<Args>(args)...));
}

} // namespace muse
