#include "sampling/sampler.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace muse {

int32_t Candidates::top() const {
    // The maximum first, with 16 independent running maxima (a loop the compiler vectorizes;
    // one compare chain through the best index was a measurable part of a batched greedy
    // step over a 152k vocabulary), then the lowest id that holds it. NaN never wins.
    const size_t n = logits.size();
    const float *l = logits.data();
    constexpr size_t kLanes = 16;
    float lane_max[kLanes];
    for (float &m : lane_max) m = -INFINITY;
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (size_t j = 0; j < kLanes; ++j) lane_max[j] = l[i + j] > lane_max[j] ? l[i + j] : lane_max[j];
    float best = -INFINITY;
    for (float m : lane_max) best = m > best ? m : best;
    for (; i < n; ++i) best = l[i] > best ? l[i] : best;
    for (i = 0; i < n; ++i)
        if (l[i] == best) return static_cast<int32_t>(i);
    return 0;  // every logit NaN
}

SamplerChain::SamplerChain(const SamplingParams &params, std::vector<int32_t> history)
    : p_(params), history_(std::move(history)), rng_(params.seed) {
    if (!(p_.top_p > 0.0f && p_.top_p <= 1.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1]");
    if (!(p_.min_p >= 0.0f && p_.min_p <= 1.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "min_p must be in [0, 1]");
    if (p_.top_k < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "top_k must not be negative");
    if (!std::isfinite(p_.temperature)) fail(MUSE_ERR_INVALID_ARGUMENT, "temperature must be finite");
    if (!(p_.repeat_penalty > 0.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "repeat_penalty must be positive");
}

SamplerChain::SamplerChain(const SamplerChain &o)
    : p_(o.p_), history_(o.history_), rng_(o.rng_), grammar_(o.grammar_ ? o.grammar_->clone() : nullptr),
      controller_(o.controller_ ? o.controller_->clone() : nullptr) {}

SamplerChain &SamplerChain::operator=(const SamplerChain &o) {
    if (this != &o) {
        SamplerChain copy(o);
        *this = std::move(copy);
    }
    return *this;
}

void SamplerChain::apply_penalties(Candidates &c) const {
    if (p_.repeat_penalty == 1.0f && p_.presence_penalty == 0.0f && p_.frequency_penalty == 0.0f) return;
    const int64_t n_vocab = static_cast<int64_t>(c.logits.size());
    std::unordered_map<int32_t, int> counts;
    const size_t last_n = static_cast<size_t>(std::max(0, p_.penalty_last_n));
    for (size_t i = history_.size() > last_n ? history_.size() - last_n : 0; i < history_.size(); ++i)
        counts[history_[i]]++;
    for (const auto &[tok, count] : counts) {
        if (tok < 0 || tok >= n_vocab) continue;  // image rows of the prompt have negative ids
        float &l = c.logits[static_cast<size_t>(tok)];
        l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
        l -= static_cast<float>(count) * p_.frequency_penalty + p_.presence_penalty;
    }
}

SamplerChain::Pick SamplerChain::sample(const float *logits, int64_t n_vocab) {
    Candidates &c = work_;
    c.logits.assign(logits, logits + n_vocab);
    c.forced = -1;
    for (const auto &[tok, bias] : p_.logit_bias)  // 1. logit bias
        if (tok >= 0 && tok < n_vocab) c.logits[static_cast<size_t>(tok)] += bias;
    apply_penalties(c);                           // 2. penalties
    if (grammar_) grammar_->apply(c);             // 3. grammar slot
    if (c.forced < 0 && controller_) controller_->apply(c);  // 4. thinking controller
    if (c.forced >= 0) {
        if (c.forced >= n_vocab) fail(MUSE_ERR_INTERNAL, "a sampler stage forced token ", c.forced, " outside the vocabulary");
        return {c.forced, true};
    }
    return {pick(c), false};                      // 5. the pick
}

void SamplerChain::accept(int32_t token, bool forced) {
    history_.push_back(token);
    if (grammar_) grammar_->accept(token, forced);
    if (controller_) controller_->accept(token, forced);
}

int32_t SamplerChain::next(const float *logits, int64_t n_vocab) {
    const Pick p = sample(logits, n_vocab);
    accept(p.token, p.forced);
    return p.token;
}

int32_t SamplerChain::pick(Candidates &c) {
    const int32_t n_vocab = static_cast<int32_t>(c.logits.size());
    if (p_.temperature <= 0.0f) return c.top();  // greedy; ties go to the lowest id
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double inv_t = 1.0 / p_.temperature;
    if (p_.top_k == 0 && p_.top_p >= 1.0f && p_.min_p <= 0.0f) {
        // Plain temperature: draw from the whole distribution in id order -- no sort of the
        // vocabulary (a 152k-entry sort per token was most of a sampled step's host time).
        const int32_t best = c.top();
        const double mx = c.logits[static_cast<size_t>(best)] * inv_t;
        if (!std::isfinite(mx)) return best;  // everything banned but one, or nothing left
        weights_.resize(c.logits.size());
        double sum = 0.0;
        for (size_t i = 0; i < c.logits.size(); ++i) sum += weights_[i] = std::exp(c.logits[i] * inv_t - mx);
        double r = u(rng_) * sum;
        int32_t last = best;
        for (int32_t i = 0; i < n_vocab; ++i) {
            const double e = weights_[static_cast<size_t>(i)];
            if (e > 0.0) last = i;
            if ((r -= e) <= 0.0 && e > 0.0) return i;
        }
        return last;
    }
    auto by_logit = [](const auto &a, const auto &b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    // Candidates, best first. Only those within a factor 1e-12 of the best can matter for
    // top-p / min-p / the draw, so the rest are left out before sorting.
    const float floor = c.logits[static_cast<size_t>(c.top())] - static_cast<float>(27.6 * p_.temperature);
    sorted_.clear();
    for (int32_t i = 0; i < n_vocab; ++i)
        if (c.logits[static_cast<size_t>(i)] >= floor) sorted_.emplace_back(c.logits[static_cast<size_t>(i)], i);
    size_t n = sorted_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
        std::partial_sort(sorted_.begin(), sorted_.begin() + p_.top_k, sorted_.end(), by_logit);
        n = static_cast<size_t>(p_.top_k);
    } else {
        std::sort(sorted_.begin(), sorted_.end(), by_logit);
    }
    // Softmax at the temperature over the kept candidates (sorted, best first).
    std::vector<double> probs(n);
    const double mx = sorted_[0].first * inv_t;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += probs[i] = std::exp(sorted_[i].first * inv_t - mx);
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
    double r = u(rng_) * total;
    for (size_t i = 0; i < n; ++i) {
        r -= probs[i];
        if (r <= 0.0) return sorted_[i].second;
    }
    return sorted_[n - 1].second;
}

namespace {
double log_sum_exp(const float *logits, int64_t n) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(logits[i] - mx);
    return mx + std::log(sum);
}
} // namespace

float SamplerChain::logprob_of(const float *logits, int64_t n_vocab, int32_t token) {
    if (token < 0 || token >= n_vocab) fail(MUSE_ERR_OUT_OF_RANGE, "token ", token, " outside the vocabulary");
    return static_cast<float>(logits[token] - log_sum_exp(logits, n_vocab));
}

std::vector<TokenLogprob> SamplerChain::top_logprobs(const float *logits, int64_t n_vocab, int n) {
    const double lse = log_sum_exp(logits, n_vocab);
    const size_t k = std::min(static_cast<size_t>(n_vocab), static_cast<size_t>(std::max(0, n)));
    std::vector<TokenLogprob> out;
    if (k == 0) return out;
    // Keep the k best in a small sorted list: one pass, no sort of the vocabulary.
    std::vector<int32_t> best;
    best.reserve(k + 1);
    auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    for (int32_t i = 0; i < static_cast<int32_t>(n_vocab); ++i) {
        if (best.size() == k && !better(i, best.back())) continue;
        best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
        if (best.size() > k) best.pop_back();
    }
    for (int32_t t : best) out.push_back({t, static_cast<float>(logits[t] - lse)});
    return out;
}

} // namespace muse
