#include "sampling/stop-strings.h"

#include "core/error.h"

#include <algorithm>

namespace muse {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    for (const auto &s : stops_)
        if (s.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "stop strings must not be empty");
}

std::string StopMatcher::push(const std::string &piece) {
    if (matched_) return {};
    held_ += piece;
    size_t first = std::string::npos;
    for (const auto &s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        matched_ = true;
        std::string out = held_.substr(0, first);
        held_.clear();
        return out;
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto &s : stops_)
        for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
            if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                keep = k;
                break;
            }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(held_);
    return matched_ ? std::string() : out;
}

} // namespace muse
