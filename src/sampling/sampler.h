// The sampler chain of one generation. Every step runs its stages in a fixed,
// documented order on a copy of the raw logits, then picks:
//
//   1. logit bias      adds the requested bias (-inf bans a token)
//   2. penalties       repeat / presence / frequency over the last penalty_last_n
//                      tokens of the generation's own history, prompt included
//   3. grammar slot    masks what a grammar does not allow (constrained output)
//   4. controller      the thinking controller: forces tokens (framing, wrap-up,
//                      continue cues) and bans what must not come, before the pick
//   5. pick            temperature, top-k, min-p, top-p, then a draw from the
//                      generation's own seeded RNG (greedy at temperature 0)
//
// A stage may force a token; later stages and the pick then leave it alone (a
// forced token is not drawn, so the RNG does not advance). Every stage sees the
// chosen token through accept(), and a chain copies deeply (snapshot/restore).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace muse {

struct SamplingParams {
    float temperature = 0.0f;  // <= 0: greedy
    int32_t top_k = 0;         // 0: off
    float top_p = 1.0f;        // 1: off
    float min_p = 0.0f;        // 0: off
    float repeat_penalty = 1.0f;     // llama.cpp style: divide positive / multiply negative logits
    float presence_penalty = 0.0f;   // subtract once per token seen
    float frequency_penalty = 0.0f;  // subtract per occurrence
    int32_t penalty_last_n = 64;     // window of recent tokens the penalties look at
    std::unordered_map<int32_t, float> logit_bias;
    uint64_t seed = 0;
};

struct TokenLogprob {
    int32_t token;
    float logprob;
};

// What the stages of one step work on.
struct Candidates {
    std::vector<float> logits;  // the raw logits, adjusted in place
    int32_t forced = -1;        // a stage forced this token

    // The best candidate now (lowest id on ties), as the greedy pick would choose it.
    int32_t top() const;
};

class SamplerStage {
public:
    virtual ~SamplerStage() = default;
    virtual const char *name() const = 0;
    // Before the pick: adjust the logits (-inf bans) or force a token. Not called once an
    // earlier stage forced one.
    virtual void apply(Candidates &c) = 0;
    // Every token appended, in order (forced: a stage forced it).
    virtual void accept(int32_t token, bool forced) {}
    virtual std::unique_ptr<SamplerStage> clone() const = 0;
};

class SamplerChain {
public:
    // history: the tokens before the first sampled one (the prompt), for the penalties.
    SamplerChain(const SamplingParams &params, std::vector<int32_t> history = {});
    SamplerChain(const SamplerChain &other);
    SamplerChain &operator=(const SamplerChain &other);
    SamplerChain(SamplerChain &&) = default;
    SamplerChain &operator=(SamplerChain &&) = default;

    // Fills a slot of the chain (stage 3 / stage 4); nullptr empties it.
    void set_grammar(std::unique_ptr<SamplerStage> grammar) { grammar_ = std::move(grammar); }
    void set_controller(std::unique_ptr<SamplerStage> controller) { controller_ = std::move(controller); }
    SamplerStage *grammar() const { return grammar_.get(); }
    SamplerStage *controller() const { return controller_.get(); }

    struct Pick {
        int32_t token;
        bool forced;
    };
    // Runs the stages and the pick on raw logits (n_vocab of them). Does not accept.
    Pick sample(const float *logits, int64_t n_vocab);
    // Appends the chosen token to every stage (and the penalty history).
    void accept(int32_t token, bool forced);
    // sample + accept, for callers that take what the chain picks.
    int32_t next(const float *logits, int64_t n_vocab);

    const SamplingParams &params() const { return p_; }

    // log-softmax of raw logits for the top n tokens, best first (lowest id on ties).
    static std::vector<TokenLogprob> top_logprobs(const float *logits, int64_t n_vocab, int n);
    // log-softmax of raw logits at one token.
    static float logprob_of(const float *logits, int64_t n_vocab, int32_t token);

private:
    void apply_penalties(Candidates &c) const;
    int32_t pick(Candidates &c);

    SamplingParams p_;
    std::vector<int32_t> history_;
    std::mt19937_64 rng_;
    std::unique_ptr<SamplerStage> grammar_, controller_;
    Candidates work_;
    std::vector<std::pair<float, int32_t>> sorted_;
    std::vector<double> weights_;
};

} // namespace muse
