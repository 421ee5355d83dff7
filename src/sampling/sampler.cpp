#include "sampling/sampler.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace muse {

Sampler::Sampler(const SamplingParams &params) : p_(params), rng_(params.seed) {
    if (!(p_.top_p > 0.0f && p_.top_p <= 1.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1]");
    if (!(p_.min_p >= 0.0f && p_.min_p <= 1.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "min_p must be in [0, 1]");
    if (p_.top_k < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "top_k must not be negative");
    if (!std::isfinite(p_.temperature)) fail(MUSE_ERR_INVALID_ARGUMENT, "temperature must be finite");
    if (!(p_.repeat_penalty > 0.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "repeat_penalty must be positive");
}

int32_t Sampler::sample(const std::vector<float> &logits, const std::vector<int32_t> &history) {
    const int32_t n_vocab = static_cast<int32_t>(logits.size());
    candidates_.resize(logits.size());
    for (int32_t i = 0; i < n_vocab; ++i) candidates_[static_cast<size_t>(i)] = {logits[static_cast<size_t>(i)], i};

    // Penalties over the recent window.
    if (p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
        std::unordered_map<int32_t, int> counts;
        const size_t from = history.size() > static_cast<size_t>(std::max(0, p_.penalty_last_n))
                                ? history.size() - static_cast<size_t>(std::max(0, p_.penalty_last_n)) : 0;
        for (size_t i = from; i < history.size(); ++i) counts[history[i]]++;
        for (const auto &[tok, count] : counts) {
            if (tok < 0 || tok >= n_vocab) continue;
            float &l = candidates_[static_cast<size_t>(tok)].first;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= static_cast<float>(count) * p_.frequency_penalty + p_.presence_penalty;
        }
    }
    for (const auto &[tok, bias] : p_.logit_bias)
        if (tok >= 0 && tok < n_vocab) candidates_[static_cast<size_t>(tok)].first += bias;

    auto by_logit = [](const auto &a, const auto &b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (p_.temperature <= 0.0f) {
        // Greedy; ties go to the lowest id, deterministically.
        return std::min_element(candidates_.begin(), candidates_.end(), by_logit)->second;
    }

    size_t n = candidates_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
        std::partial_sort(candidates_.begin(), candidates_.begin() + p_.top_k, candidates_.end(), by_logit);
        n = static_cast<size_t>(p_.top_k);
    } else {
        std::sort(candidates_.begin(), candidates_.end(), by_logit);
    }
    // Softmax at the temperature over the kept candidates (sorted, best first).
    std::vector<double> probs(n);
    const double mx = candidates_[0].first / p_.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += probs[i] = std::exp(candidates_[i].first / p_.temperature - mx);
    for (auto &p : probs) p /= sum;
    if (p_.min_p > 0.0f) {
        size_t keep = 1;
        while (keep < n && probs[keep] >= p_.min_p * probs[0]) ++keep;
        n = keep;
    }
    if (p_.top_p < 1.0f) {
        double cum = 0.0;
        size_t keep = 0;
        while (keep < n) {
            cum += probs[keep++];
            if (cum >= p_.top_p) break;
        }
        n = keep;
    }
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) total += probs[i];
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng_);
    for (size_t i = 0; i < n; ++i) {
        r -= probs[i];
        if (r <= 0.0) return candidates_[i].second;
    }
    return candidates_[n - 1].second;
}

float Sampler::logprob_of(const std::vector<float> &logits, int32_t token) {
    double mx = -std::numeric_limits<double>::infinity();
    for (float l : logits) mx = std::max(mx, static_cast<double>(l));
    double sum = 0.0;
    for (float l : logits) sum += std::exp(l - mx);
    return static_cast<float>(logits.at(static_cast<size_t>(token)) - (mx + std::log(sum)));
}

std::vector<TokenLogprob> Sampler::top_logprobs(const std::vector<float> &logits, int n) {
    double mx = -std::numeric_limits<double>::infinity();
    for (float l : logits) mx = std::max(mx, static_cast<double>(l));
    double sum = 0.0;
    for (float l : logits) sum += std::exp(l - mx);
    const double lse = mx + std::log(sum);
    std::vector<int32_t> idx(logits.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
    const size_t k = std::min(idx.size(), static_cast<size_t>(std::max(0, n)));
    std::partial_sort(idx.begin(), idx.begin() + static_cast<long>(k), idx.end(), [&](int32_t a, int32_t b) {
        return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
               (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
    std::vector<TokenLogprob> out;
    for (size_t i = 0; i < k; ++i)
        out.push_back({idx[i], static_cast<float>(logits[static_cast<size_t>(idx[i])] - lse)});
    return out;
}

} // namespace muse
