// The grammar slot of a generation with reasoning channels: the grammar constrains the
// answer only. Reasoning text, the framing around it (headers, `</think>`) and whatever
// the thinking controller forces are left alone and never reach the grammar's matcher.
//
// The generation sets the phase before every pick, from where its response is:
//   off     reasoning, an ATEM header, or the controller is forcing tokens: no constraint;
//   open    the response start of a think-tags format, where the model may still open
//           reasoning: the grammar's mask plus the reasoning opener (so THINKING_AUTO can
//           still reason; picking the opener leaves the matcher untouched);
//   answer  the grammar's mask (and its forcing of a lone allowed token).
#pragma once

#include "sampling/sampler.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace muse {

class GrammarGate final : public SamplerStage {
public:
    enum class Phase : uint8_t { off, open, answer };

    // inner: the grammar stage; openers: tokens that open reasoning at the response start.
    GrammarGate(std::unique_ptr<SamplerStage> inner, std::vector<int32_t> openers)
        : inner_(std::move(inner)), openers_(std::move(openers)) {}
    GrammarGate(const GrammarGate &o)
        : SamplerStage(o), inner_(o.inner_->clone()), openers_(o.openers_), phase_(o.phase_), applied_(o.applied_) {}

    void set_phase(Phase p) { phase_ = p; }
    const char *name() const override { return "grammar-gate"; }
    void apply(Candidates &c) override;
    void accept(int32_t token, bool forced) override;
    std::unique_ptr<SamplerStage> clone() const override { return std::make_unique<GrammarGate>(*this); }

private:
    bool is_opener(int32_t token) const;

    std::unique_ptr<SamplerStage> inner_;
    std::vector<int32_t> openers_;
    Phase phase_ = Phase::answer;
    Phase applied_ = Phase::off;  // the phase of the last apply (what accept must do)
};

} // namespace muse
