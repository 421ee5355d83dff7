// A stage of the sampler chain that may steer generation token by token: the
// thinking-budget controller forces wrap-up text and end-of-reasoning framing;
// grammars (constrained tool calls) will veto tokens the same way.
#pragma once

#include <cstdint>

namespace muse {

class GenerationPolicy {
public:
    virtual ~GenerationPolicy() = default;
    // Before sampling: a token to append without sampling, or -1 to sample.
    virtual int32_t force_next() = 0;
    // A sampled token before it is appended. false vetoes it: it is dropped and the
    // policy queues what comes instead (force_next() hands it out next).
    virtual bool accept(int32_t token) = 0;
    // Every token appended to the response, sampled or forced, in order.
    virtual void on_token(int32_t token, bool forced) = 0;
    // true: the response is complete (generation stops after the last token).
    virtual bool done() const { return false; }
};

} // namespace muse
