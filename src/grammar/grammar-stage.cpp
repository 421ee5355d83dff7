#include "grammar/grammar-stage.h"

#include <bit>
#include <limits>

namespace muse::grammar {

void GrammarStage::apply(Candidates &c) {
    const auto mp = m_.mask(*trie_);
    const auto &m = *mp;
    const auto n = static_cast<int32_t>(std::min<size_t>(c.logits.size(), static_cast<size_t>(trie_->n_vocab())));
    int32_t allowed = 0, only = -1;
    for (int32_t id = 0; id < n; ++id) {
        if (mask_test(m, id)) {
            ++allowed;
            only = id;
        } else {
            c.logits[id] = -std::numeric_limits<float>::infinity();
        }
    }
    for (size_t id = n; id < c.logits.size(); ++id) c.logits[id] = -std::numeric_limits<float>::infinity();
    if (allowed == 1) {
        c.forced = only;
    } else if (allowed == 0 && !trie_->eog().empty()) {
        // Nothing can continue (the grammar ended, or a forced token broke it): end.
        c.forced = trie_->eog().front();
    }
}

void GrammarStage::accept(int32_t token, bool forced) {
    if (!m_.accept_token(token, *trie_)) {
        // Rejected (forced by a later stage): skipped, see the header.
    }
}

}  // namespace muse::grammar
