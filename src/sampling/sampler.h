// The sampler chain: penalties and logit bias, then temperature, top-k, top-p,
// min-p, and the final pick (greedy at temperature 0). Stages that later issues
// add (grammar, the thinking-budget controller) plug in before the pick.
#pragma once

#include <cstdint>
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

class Sampler {
public:
    explicit Sampler(const SamplingParams &params);

    // Picks the next token from raw logits given the tokens so far (for penalties).
    int32_t sample(const std::vector<float> &logits, const std::vector<int32_t> &history);
    // log-softmax of the raw logits for the top n tokens, best first.
    static std::vector<TokenLogprob> top_logprobs(const std::vector<float> &logits, int n);
    // log-softmax of the raw logits at one token.
    static float logprob_of(const std::vector<float> &logits, int32_t token);

private:
    SamplingParams p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> candidates_;
};

} // namespace muse
