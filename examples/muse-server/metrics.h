// Server metrics in the Prometheus text format: the gauges a load balancer routes by
// (waiting and running requests, KV cache use), token counters and the time to first token.
// Writers are the scheduler and the routes; every field is atomic or under the lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace server {

class Metrics {
public:
    std::atomic<int64_t> requests_waiting{0};
    std::atomic<int64_t> requests_running{0};
    std::atomic<double> kv_cache_usage{0.0};  // used cells / all cells
    std::atomic<uint64_t> prompt_tokens{0};
    std::atomic<uint64_t> cached_prompt_tokens{0};
    std::atomic<uint64_t> generation_tokens{0};
    std::atomic<uint64_t> requests_ok{0};
    std::atomic<uint64_t> requests_failed{0};    // the generation failed (not invalid requests)
    std::atomic<uint64_t> requests_rejected{0};  // 503: the wait queue was full
    std::atomic<uint64_t> requests_cancelled{0};

    void observe_ttft(double seconds);
    // The whole exposition (text/plain; version=0.0.4).
    std::string render(int64_t n_parallel) const;

private:
    static constexpr std::array<double, 12> kBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    mutable std::mutex mu_;
    std::array<uint64_t, kBuckets.size()> ttft_buckets_{};  // cumulative counts as Prometheus expects
    uint64_t ttft_count_ = 0;
    double ttft_sum_ = 0.0;
};

} // namespace server
