#include "metrics.h"

#include <cstdio>

namespace server {

void Metrics::observe_ttft(double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < kBuckets.size(); ++i)
        if (seconds <= kBuckets[i]) ++ttft_buckets_[i];
    ++ttft_count_;
    ttft_sum_ += seconds;
}

std::string Metrics::render(int64_t n_parallel) const {
    std::string out;
    char buf[256];
    auto metric = [&](const char *name, const char *type, const char *help, double value) {
        std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
        out += buf;
    };
    metric("muse_requests_waiting", "gauge", "Requests queued for a free sequence.", double(requests_waiting.load()));
    metric("muse_requests_running", "gauge", "Requests being generated.", double(requests_running.load()));
    metric("muse_sequences_max", "gauge", "Sequences of the batched session (--parallel).", double(n_parallel));
    metric("muse_kv_cache_usage_ratio", "gauge", "Fraction of KV cache cells in use (0..1).", kv_cache_usage.load());
    metric("muse_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", double(prompt_tokens.load()));
    metric("muse_prompt_tokens_cached_total", "counter", "Prompt tokens reused from the cache.",
           double(cached_prompt_tokens.load()));
    metric("muse_generation_tokens_total", "counter", "Generated tokens (reasoning included).",
           double(generation_tokens.load()));
    out += "# HELP muse_requests_total Finished requests by outcome.\n# TYPE muse_requests_total counter\n";
    std::snprintf(buf, sizeof buf,
                  "muse_requests_total{outcome=\"ok\"} %llu\nmuse_requests_total{outcome=\"error\"} %llu\n"
                  "muse_requests_total{outcome=\"rejected\"} %llu\nmuse_requests_total{outcome=\"cancelled\"} %llu\n",
                  (unsigned long long)requests_ok.load(), (unsigned long long)requests_failed.load(),
                  (unsigned long long)requests_rejected.load(), (unsigned long long)requests_cancelled.load());
    out += buf;
    out += "# HELP muse_time_to_first_token_seconds Time from arrival to the first generated text.\n"
           "# TYPE muse_time_to_first_token_seconds histogram\n";
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < kBuckets.size(); ++i) {
        std::snprintf(buf, sizeof buf, "muse_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", kBuckets[i],
                      (unsigned long long)ttft_buckets_[i]);
        out += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "muse_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\nmuse_time_to_first_token_seconds_sum %.9g\n"
                  "muse_time_to_first_token_seconds_count %llu\n",
                  (unsigned long long)ttft_count_, ttft_sum_, (unsigned long long)ttft_count_);
    out += buf;
    return out;
}

} // namespace server
