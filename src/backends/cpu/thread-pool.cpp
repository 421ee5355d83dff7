#include "backends/cpu/thread-pool.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <set>
#include <string>

namespace muse {

// One parallel_for call. It lives on its caller's stack: workers reach it only through
// jobs_ (under mutex_), and a worker that claimed a chunk keeps `left` above zero, so the
// caller cannot return while the worker still uses it.
struct ThreadPool::Job {
    const std::function<void(int64_t, int64_t)> *fn;
    int64_t n;
    int chunks;
    std::atomic<int> next{0};  // next chunk to claim (claims past `chunks` find nothing)
    std::atomic<int> left;     // chunks not finished yet
    std::atomic<bool> failed{false};
    std::exception_ptr error;  // written once, by the thread that set failed

    void run(int chunk) {
        if (failed.load(std::memory_order_relaxed)) return;  // the job already failed: skip the rest
        const int64_t base = n / chunks, extra = n % chunks;
        const int64_t begin = chunk * base + std::min<int64_t>(chunk, extra);
        const int64_t end = begin + base + (chunk < extra ? 1 : 0);
        try {
            (*fn)(begin, end);
        } catch (...) {
            if (!failed.exchange(true)) error = std::current_exception();
        }
    }
};

namespace {

// How long an idle worker keeps looking for the next job before it sleeps, and how long
// a caller polls for its last chunks before it sleeps. A decode step is a few hundred
// short jobs in a row, each a fraction of a millisecond: a futex wake-up per job costs
// more than this. Spinning happens only while a core is free (see running_).
constexpr auto kSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Whether this thread is already counted in running_ (a worker inside a chunk, or a caller
// inside parallel_for): a nested parallel_for must not count it twice.
thread_local bool t_counted = false;

} // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)> &fn, int64_t min_chunk) {
    if (n <= 0) return;
    const int chunks = static_cast<int>(std::clamp<int64_t>(n / std::max<int64_t>(1, min_chunk), 1, n_threads_));
    if (chunks == 1) {
        fn(0, n);
        return;
    }
    Job job;
    job.fn = &fn;
    job.n = n;
    job.chunks = chunks;
    job.left.store(chunks, std::memory_order_relaxed);

    const bool count = !t_counted;
    if (count) {
        running_.fetch_add(1);
        t_counted = true;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(&job);
        open_.store(static_cast<int>(jobs_.size()));
        if (idle_ > 0 && running_.load() < n_threads_) {
            if (chunks - 1 >= idle_) wake_.notify_all();
            else
                for (int i = 1; i < chunks; ++i) wake_.notify_one();
        }
    }
    int mine = 0;
    for (int i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < chunks; ++mine) job.run(i);
    {
        // Every chunk is claimed: stop advertising the job (a worker may have retired it already).
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = std::find(jobs_.begin(), jobs_.end(), &job);
        if (it != jobs_.end()) {
            jobs_.erase(it);
            open_.store(static_cast<int>(jobs_.size()));
        }
    }
    if (count) {
        running_.fetch_sub(1);
        t_counted = false;
    }
    if (job.left.fetch_sub(mine, std::memory_order_acq_rel) != mine) {
        // Workers are still on some chunks: poll briefly (they usually finish about when we
        // do), then sleep until the last one signals.
        const auto deadline = std::chrono::steady_clock::now() + kSpin;
        while (job.left.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < deadline)
            cpu_relax();
        if (job.left.load(std::memory_order_acquire) != 0) {
            std::unique_lock<std::mutex> lock(mutex_);
            ++waiting_;
            done_.wait(lock, [&] { return job.left.load(std::memory_order_acquire) == 0; });
            --waiting_;
        }
    }
    if (job.failed.load()) std::rethrow_exception(job.error);
}

// Takes the next chunk of the next job with one left, round-robin over the open jobs so that
// concurrent callers get help in turn. Jobs found fully claimed are retired on the way.
bool ThreadPool::claim_locked(Job **job, int *chunk) {
    while (!jobs_.empty()) {
        if (cursor_ >= jobs_.size()) cursor_ = 0;
        Job *j = jobs_[cursor_];
        const int i = j->next.fetch_add(1, std::memory_order_relaxed);
        if (i < j->chunks) {
            ++cursor_;
            *job = j;
            *chunk = i;
            return true;
        }
        jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(cursor_));
        open_.store(static_cast<int>(jobs_.size()));
    }
    return false;
}

void ThreadPool::finish_on_worker(Job *job, int chunk) {
    t_counted = true;
    job->run(chunk);
    t_counted = false;
    running_.fetch_sub(1);
    if (job->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // The job's last chunk. From here on `job` may be gone (its caller may have seen
        // left == 0 while polling); only the pool's own fields are touched. Taking the lock
        // orders this notify after a caller's check-then-sleep, so no wake-up is lost.
        std::lock_guard<std::mutex> lock(mutex_);
        if (waiting_ > 0) done_.notify_all();
    }
}

// After a chunk, look for more work for a short while without sleeping; gives up at once
// while the cores are all taken. Returns true when there may be a chunk to claim.
bool ThreadPool::spin_for_work() const {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        if (stop_.load(std::memory_order_relaxed) || running_.load(std::memory_order_relaxed) >= n_threads_)
            return false;
        if (open_.load(std::memory_order_relaxed) > 0) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        for (int i = 0; i < 16; ++i) cpu_relax();
    }
}

void ThreadPool::worker() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        if (stop_.load()) return;
        Job *job;
        int chunk;
        if (running_.load() < n_threads_ && claim_locked(&job, &chunk)) {
            running_.fetch_add(1);
            lock.unlock();
            finish_on_worker(job, chunk);
            spin_for_work();
            lock.lock();
            continue;
        }
        ++idle_;
        wake_.wait(lock);
        --idle_;
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
