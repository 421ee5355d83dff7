// A small persistent thread pool shared by every session of a model. Any number of
// host threads may call parallel_for at once: each call is a job split into a fixed
// number of chunks, the calling thread works through its own job's chunks, and idle
// workers take chunks from the open jobs in turn.
#pragma once

#include <atomic>
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
    // The ranges depend only on n, min_chunk and size(): at most size() contiguous
    // chunks of at least min_chunk items (fewer when n is small), the same every run
    // whichever threads end up computing them. Safe to call from several threads at
    // once and from inside fn. The first exception fn throws, on any thread, is
    // rethrown here once every chunk has finished (chunks not yet started are skipped).
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)> &fn, int64_t min_chunk = 1);

private:
    struct Job;
    void worker();
    bool claim_locked(Job **job, int *chunk);
    void finish_on_worker(Job *job, int chunk);
    bool spin_for_work() const;

    int n_threads_;
    std::vector<std::thread> workers_;
    // Guards the fields below; held only to publish, claim and retire chunks, never while fn runs.
    std::mutex mutex_;
    std::condition_variable wake_;  // idle workers sleep here
    std::condition_variable done_;  // callers whose chunks are still running on workers sleep here
    std::vector<Job *> jobs_;       // jobs that may still have unclaimed chunks
    size_t cursor_ = 0;             // round-robin position in jobs_
    int idle_ = 0;                  // workers asleep on wake_
    int waiting_ = 0;               // callers asleep on done_
    std::atomic<int> open_{0};      // jobs_.size(), for workers spinning without the lock
    // Threads computing chunks right now (callers inside parallel_for, busy workers). Workers
    // only help while this is below size(): once that many host threads are busy the cores
    // are taken, and a worker would only preempt them and make them wait for its chunk.
    std::atomic<int> running_{0};
    std::atomic<bool> stop_{false};
};

// Physical cores (hyper-threads don't help the memory-bound decode).
int default_thread_count();

} // namespace muse
