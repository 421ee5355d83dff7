// The grammar slot of the sampler chain: bans every token the grammar does not
// allow next, forces the one token when only one is allowed, and advances the
// matcher with each token appended.
//
// A token the grammar rejects can still arrive when a later stage forces it (the
// thinking controller's framing); the matcher skips such tokens, so the grammar
// constrains what is sampled, not what is forced around it.
#pragma once

#include "grammar/grammar.h"
#include "sampling/sampler.h"

namespace muse::grammar {

class GrammarStage : public SamplerStage {
public:
    GrammarStage(Matcher matcher, std::shared_ptr<const TokenTrie> trie)
        : m_(std::move(matcher)), trie_(std::move(trie)) {}
    const char *name() const override { return "grammar"; }
    void apply(Candidates &c) override;
    void accept(int32_t token, bool forced) override;
    std::unique_ptr<SamplerStage> clone() const override { return std::make_unique<GrammarStage>(*this); }
    const Matcher &matcher() const { return m_; }

private:
    Matcher m_;
    std::shared_ptr<const TokenTrie> trie_;
};

}  // namespace muse::grammar
