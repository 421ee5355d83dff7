// Stop strings over streamed text: feeds generated pieces, releases only text
// that can no longer be the start of a stop string, and reports a match (the
// stop string itself is never released), as llama.cpp's server does.
#pragma once

#include <string>
#include <vector>

namespace muse {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);

    // Adds a piece; returns the text that is safe to emit now.
    std::string push(const std::string &piece);
    bool matched() const { return matched_; }
    // At the end (no match): the held-back text.
    std::string flush();

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool matched_ = false;
};

} // namespace muse
