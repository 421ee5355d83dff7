// Continuous batching: one muse session with --parallel sequences, owned by one scheduler
// thread. Each request's choices become generations on free sequences; every pass of the
// loop advances all live generations together (one batched forward pass per session step),
// so a request that arrives mid-way joins the next step instead of waiting for the others.
// HTTP threads only touch the wait queue and their request's outbox.
#pragma once

#include "metrics.h"
#include "openai-request.h"

#include <muse/muse.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace server {

// What the scheduler hands back to a request's HTTP thread.
struct Item {
    enum class Kind { started, event, done, error } kind = Kind::event;
    int choice = 0;
    muse::event ev;           // event
    std::string result_json;  // done: the generation's result (usage, finish_reason, tool calls)
    int status = 500;         // error
    std::string message;      // error
};

// One request in flight: its job and the outbox its HTTP thread reads.
class Request {
public:
    explicit Request(std::unique_ptr<Job> j) : job(std::move(j)) {}
    std::unique_ptr<Job> job;
    std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
    // Scheduler thread only: choices still generating, and whether text has come yet.
    int live_choices = 0;
    bool first_text = false;

    void push(Item item);
    // Waits up to timeout for the next item; false when none came.
    bool pop(Item &out, std::chrono::milliseconds timeout);
    // The client went away (or the server gives up): the generations stop at their next step.
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> items_;
    std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
    int n_parallel = 4;        // sequences of the session
    int64_t ctx_per_seq = 4096;
    size_t max_waiting = 64;   // requests queued beyond the running ones
    double timeout_s = 600;    // a request running longer is cancelled
    int n_batch = 512;
};

class Scheduler {
public:
    Scheduler(const muse::model &m, const SchedulerOptions &o, Metrics &metrics);
    ~Scheduler();

    enum class Submit { ok, queue_full, shutting_down };
    Submit submit(const std::shared_ptr<Request> &r);

    // Stop taking requests; running and queued ones go on until idle() or shutdown().
    void drain();
    bool idle();
    // Cancels everything still running, fails what waits, and joins the thread.
    void shutdown();

    int n_parallel() const { return opts_.n_parallel; }

private:
    struct Slot {
        std::shared_ptr<Request> req;  // null: free
        int choice = 0;
        muse::generation gen;
        std::string held_prompt;  // the chat prompt this sequence holds (prefix reuse)
        int64_t reserve = 0;      // KV cells this generation may grow to
        // A contemplating request's agent (or synthesis) sequence: owned by req, driven by the
        // generation on the request's first sequence (the library decodes it in the same
        // batched steps), so the scheduler neither pumps nor cancels it.
        bool helper = false;
    };

    void run();
    void admit(const std::shared_ptr<Request> &r);
    void start_choice(Slot &slot, int seq, const std::shared_ptr<Request> &r, int choice,
                      const std::vector<int32_t> &helpers = {});
    void pump(int seq);
    void release(int seq);
    void make_room(int64_t need, const std::vector<int> &keep);
    std::vector<int> pick_sequences(const Job &job);
    void update_gauges();

    const muse::model &model_;
    SchedulerOptions opts_;
    Metrics &metrics_;
    muse::session session_;
    std::vector<Slot> slots_;

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Request>> waiting_;
    bool draining_ = false;
    bool stop_ = false;
    int running_requests_ = 0;  // under mu_: for idle()
    std::thread thread_;
};

} // namespace server
