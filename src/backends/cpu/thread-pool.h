// A small persistent thread pool: parallel_for splits [0, n) into contiguous
// chunks, one per thread, and the calling thread takes the first chunk.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace muse {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }
    // fn(begin, end) over disjoint ranges covering [0, n); returns when all are done.
    // Work smaller than min_chunk per thread runs on fewer threads.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)> &fn, int64_t min_chunk = 1);

private:
    void worker(int index);

    int n_threads_;
    std::mutex job_mutex_;  // one parallel_for at a time (sessions on several threads serialize here)
    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(int64_t, int64_t)> *job_ = nullptr;
    int64_t job_n_ = 0;
    int job_threads_ = 0;
    uint64_t generation_ = 0;
    int pending_ = 0;
    bool stop_ = false;
};

// Physical cores (hyper-threads don't help the memory-bound decode).
int default_thread_count();

} // namespace muse
