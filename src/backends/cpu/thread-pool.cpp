#include "backends/cpu/thread-pool.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>

namespace muse {

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
}

static void chunk_of(int64_t n, int parts, int index, int64_t *begin, int64_t *end) {
    const int64_t base = n / parts, extra = n % parts;
    *begin = index * base + std::min<int64_t>(index, extra);
    *end = *begin + base + (index < extra ? 1 : 0);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)> &fn, int64_t min_chunk) {
    if (n <= 0) return;
    const int threads = static_cast<int>(std::clamp<int64_t>(n / std::max<int64_t>(1, min_chunk), 1, n_threads_));
    if (threads == 1) {
        fn(0, n);
        return;
    }
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job_ = &fn;
        job_n_ = n;
        job_threads_ = threads;
        pending_ = threads - 1;
        ++generation_;
    }
    wake_.notify_all();
    int64_t b, e;
    chunk_of(n, threads, 0, &b, &e);
    fn(b, e);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        const std::function<void(int64_t, int64_t)> *job;
        int64_t n;
        int threads;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            job = job_;
            n = job_n_;
            threads = job_threads_;
        }
        if (index < threads) {
            int64_t b, e;
            chunk_of(n, threads, index, &b, &e);
            (*job)(b, e);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--pending_ == 0) done_.notify_one();
        }
    }
}

int default_thread_count() {
    // Count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::set<std::pair<std::string, std::string>> cores;
    std::string line, phys = "0";
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("physical id", 0) == 0) phys = line.substr(line.find(':') + 1);
        if (line.rfind("core id", 0) == 0) cores.emplace(phys, line.substr(line.find(':') + 1));
    }
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return cores.empty() ? hw : std::min(hw, static_cast<int>(cores.size()));
}

} // namespace muse
