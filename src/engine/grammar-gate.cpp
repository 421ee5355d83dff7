#include "engine/grammar-gate.h"

#include <algorithm>
#include <cmath>

namespace muse {

bool GrammarGate::is_opener(int32_t token) const {
    return std::find(openers_.begin(), openers_.end(), token) != openers_.end();
}

void GrammarGate::apply(Candidates &c) {
    applied_ = phase_;
    if (phase_ == Phase::off) return;
    if (phase_ == Phase::answer) return inner_->apply(c);
    // open: the opener keeps its logit next to whatever the grammar allows.
    std::vector<std::pair<int32_t, float>> kept;
    for (int32_t t : openers_)
        if (t >= 0 && static_cast<size_t>(t) < c.logits.size()) kept.emplace_back(t, c.logits[static_cast<size_t>(t)]);
    inner_->apply(c);
    bool any = false;
    for (const auto &[t, logit] : kept) {
        if (std::isinf(logit) && logit < 0) continue;  // banned before the grammar (logit bias)
        c.logits[static_cast<size_t>(t)] = logit;
        any = true;
    }
    // The grammar forced its one allowed token: with the opener also allowed it is a choice.
    if (any && c.forced >= 0 && !is_opener(c.forced)) c.forced = -1;
}

void GrammarGate::accept(int32_t token, bool forced) {
    if (applied_ == Phase::off) return;
    if (applied_ == Phase::open && is_opener(token)) return;  // reasoning starts: not answer text
    inner_->accept(token, forced);
}

} // namespace muse
