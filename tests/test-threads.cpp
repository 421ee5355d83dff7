// Concurrency: the CPU thread pool under parallel_for calls from many host threads, and
// sessions sharing one model generating at the same time from their own threads (each
// must get exactly the tokens it gets alone). scripts/test.sh also runs these under TSan.
#include "backends/cpu/thread-pool.h"

#include <muse/muse.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using muse::ThreadPool;

namespace {

using Range = std::pair<int64_t, int64_t>;

// The split parallel_for promises: min(size, n / min_chunk) (at least 1) contiguous
// chunks, the first n % chunks of them one item longer.
std::vector<Range> expected_chunks(int64_t n, int64_t min_chunk, int size) {
    const int64_t chunks = std::clamp<int64_t>(n / std::max<int64_t>(1, min_chunk), 1, size);
    std::vector<Range> out;
    for (int64_t i = 0, b = 0; i < chunks; ++i) {
        const int64_t e = b + n / chunks + (i < n % chunks ? 1 : 0);
        out.emplace_back(b, e);
        b = e;
    }
    return out;
}

// Runs one parallel_for, checking every item is visited exactly once and the chunks are
// exactly the promised ones.
void check_cover(ThreadPool &pool, int64_t n, int64_t min_chunk) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::mutex m;
    std::vector<Range> chunks;
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
        std::lock_guard<std::mutex> lock(m);
        chunks.emplace_back(b, e);
    }, min_chunk);
    for (int64_t i = 0; i < n; ++i) REQUIRE(seen[static_cast<size_t>(i)].load() == 1);
    std::sort(chunks.begin(), chunks.end());
    REQUIRE(chunks == expected_chunks(n, min_chunk, pool.size()));
}

} // namespace

TEST_CASE("thread pool: serial use covers every range exactly once", "[threads]") {
    for (int size : {1, 2, 3, 4, 8}) {
        ThreadPool pool(size);
        CHECK(pool.size() == size);
        for (int64_t n : {1, 2, 3, 7, 15, 16, 17, 64, 100, 1000, 4099})
            for (int64_t min_chunk : {1, 4, 16, 64}) check_cover(pool, n, min_chunk);
        bool called = false;
        pool.parallel_for(0, [&](int64_t, int64_t) { called = true; });
        CHECK_FALSE(called);
    }
    ThreadPool clamped(0);  // fewer than one thread means one
    CHECK(clamped.size() == 1);
    check_cover(clamped, 10, 1);
}

TEST_CASE("thread pool: 8 host threads call parallel_for at the same time", "[threads]") {
    ThreadPool pool(4);
    std::atomic<int> failures{0};
    std::vector<std::thread> hosts;
    for (int t = 0; t < 8; ++t) {
        hosts.emplace_back([&, t] {
            for (int iter = 0; iter < 200; ++iter) {
                const int64_t n = 1 + (t * 131 + iter * 37) % 700;
                const int64_t min_chunk = 1 + (iter % 4) * 7;
                std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
                std::atomic<int> calls{0};
                pool.parallel_for(n, [&](int64_t b, int64_t e) {
                    calls.fetch_add(1);
                    for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
                }, min_chunk);
                for (int64_t i = 0; i < n; ++i)
                    if (seen[static_cast<size_t>(i)].load() != 1) failures.fetch_add(1);
                if (calls.load() != static_cast<int>(expected_chunks(n, min_chunk, pool.size()).size()))
                    failures.fetch_add(1);
            }
        });
    }
    for (auto &h : hosts) h.join();
    CHECK(failures.load() == 0);
}

TEST_CASE("thread pool: parallel_for inside parallel_for", "[threads]") {
    ThreadPool pool(4);
    constexpr int64_t outer = 8, inner = 333;
    std::vector<std::atomic<int>> seen(static_cast<size_t>(outer * inner));
    pool.parallel_for(outer, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o)
            pool.parallel_for(inner, [&](int64_t ib, int64_t ie) {
                for (int64_t i = ib; i < ie; ++i) seen[static_cast<size_t>(o * inner + i)].fetch_add(1);
            });
    });
    for (auto &s : seen) REQUIRE(s.load() == 1);

    // Nested from several host threads at once.
    std::vector<std::thread> hosts;
    std::atomic<int64_t> total{0};
    for (int t = 0; t < 4; ++t)
        hosts.emplace_back([&] {
            for (int iter = 0; iter < 20; ++iter)
                pool.parallel_for(4, [&](int64_t b, int64_t e) {
                    for (int64_t o = b; o < e; ++o)
                        pool.parallel_for(100, [&](int64_t ib, int64_t ie) { total.fetch_add(ie - ib); });
                });
        });
    for (auto &h : hosts) h.join();
    CHECK(total.load() == 4 * 20 * 4 * 100);
}

TEST_CASE("thread pool: exceptions reach the caller and the pool stays usable", "[threads]") {
    ThreadPool pool(4);
    // Thrown by some chunk, whichever thread runs it.
    for (int64_t bad : {int64_t(0), int64_t(500), int64_t(999)}) {
        CHECK_THROWS_WITH(pool.parallel_for(1000, [&](int64_t b, int64_t e) {
            if (b <= bad && bad < e) throw std::runtime_error("chunk failed");
        }), "chunk failed");
        check_cover(pool, 1000, 1);
    }
    // Thrown on a worker: the caller's own chunk waits so that workers take the others.
    const auto caller = std::this_thread::get_id();
    bool worker_threw = false;
    for (int attempt = 0; attempt < 50 && !worker_threw; ++attempt) {
        std::atomic<bool> on_worker{false};
        try {
            pool.parallel_for(4, [&](int64_t, int64_t) {
                if (std::this_thread::get_id() == caller) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    return;
                }
                on_worker.store(true);
                throw std::runtime_error("worker failed");
            });
            CHECK_FALSE(on_worker.load());  // the caller ran every chunk: nothing to throw
        } catch (const std::runtime_error &e) {
            CHECK(std::string(e.what()) == "worker failed");
            worker_threw = true;
        }
    }
    CHECK(worker_threw);
    check_cover(pool, 1000, 1);
    // Failing jobs from several host threads at once.
    std::vector<std::thread> hosts;
    std::atomic<int> caught{0};
    for (int t = 0; t < 8; ++t)
        hosts.emplace_back([&] {
            for (int iter = 0; iter < 50; ++iter) {
                try {
                    pool.parallel_for(64, [&](int64_t b, int64_t) {
                        if (b == 0) throw std::runtime_error("first chunk failed");
                    });
                } catch (const std::runtime_error &) {
                    caught.fetch_add(1);
                }
            }
        });
    for (auto &h : hosts) h.join();
    CHECK(caught.load() == 8 * 50);
}

// ------------------------------------------------------------ sessions on one model

namespace {

struct Model {
    muse_model *m = nullptr;
    explicit Model(int n_threads) {
        muse_model_params p;
        muse_model_params_init(&p);
        p.n_threads = n_threads;
        REQUIRE(muse_model_load(MUSE_TEST_MODEL_PATH, &p, &m) == MUSE_OK);
    }
    ~Model() { muse_model_free(m); }
};

std::vector<int32_t> prompt_for(int index, int length) {
    std::vector<int32_t> p;
    for (int i = 0; i < length; ++i) p.push_back(3 + (index * 53 + i * 17) % 256);  // byte tokens
    return p;
}

// A seeded temperature sampler, different per index. Returns the tokens, or the error.
std::vector<int32_t> generate(const muse_model *model, int index, int prompt_length, std::string *error) {
    muse_session *s = nullptr;
    if (muse_session_create(model, nullptr, &s) != MUSE_OK) {
        *error = muse_last_error();
        return {};
    }
    const std::vector<int32_t> prompt = prompt_for(index, prompt_length);
    muse_sampling_params sp;
    muse_sampling_params_init(&sp);
    sp.temperature = 0.9f;
    sp.top_k = 40;
    sp.seed = 1000 + static_cast<uint64_t>(index);
    std::vector<int32_t> out(24);
    size_t n = 0;
    if (muse_session_generate_tokens(s, 0, prompt.data(), prompt.size(), &sp, out.size(), out.data(), &n) != MUSE_OK)
        *error = muse_last_error();
    out.resize(n);
    muse_session_free(s);
    return out;
}

void concurrent_sessions_match_alone(int prompt_length) {
    Model model(4);
    constexpr int kThreads = 8;
    std::vector<std::vector<int32_t>> alone(kThreads);
    for (int i = 0; i < kThreads; ++i) {
        std::string error;
        alone[static_cast<size_t>(i)] = generate(model.m, i, prompt_length, &error);
        REQUIRE(error.empty());
        REQUIRE(!alone[static_cast<size_t>(i)].empty());
    }
    for (int round = 0; round < 3; ++round) {
        std::vector<std::vector<int32_t>> got(kThreads);
        std::vector<std::string> errors(kThreads);
        std::atomic<int> ready{0};
        std::vector<std::thread> hosts;
        for (int i = 0; i < kThreads; ++i)
            hosts.emplace_back([&, i] {
                // Start together, so that the generations overlap as much as they can.
                ready.fetch_add(1);
                while (ready.load() < kThreads) std::this_thread::yield();
                got[static_cast<size_t>(i)] = generate(model.m, i, prompt_length, &errors[static_cast<size_t>(i)]);
            });
        for (auto &h : hosts) h.join();
        for (int i = 0; i < kThreads; ++i) {
            INFO("round " << round << ", thread " << i);
            CHECK(errors[static_cast<size_t>(i)].empty());
            CHECK(got[static_cast<size_t>(i)] == alone[static_cast<size_t>(i)]);
        }
    }
}

} // namespace

TEST_CASE("8 sessions on one model generate at once and get their single-threaded tokens", "[threads]") {
    concurrent_sessions_match_alone(5);
}

TEST_CASE("8 sessions at once with long prompts (batched SGEMM prefill) get their single-threaded tokens",
          "[threads]") {
    concurrent_sessions_match_alone(37);
}

TEST_CASE("muse_session_cancel from another thread stops a running generation, and the session still works",
          "[threads]") {
    Model model(2);
    muse_session *s = nullptr;
    REQUIRE(muse_session_create(model.m, nullptr, &s) == MUSE_OK);
    const std::vector<int32_t> prompt = prompt_for(1, 6);
    const int32_t eos = 2;
    const float ban = -INFINITY;
    muse_sampling_params sp;
    muse_sampling_params_init(&sp);
    sp.temperature = 0.9f;
    sp.seed = 7;
    sp.logit_bias_tokens = &eos;  // never stops by itself
    sp.logit_bias_values = &ban;
    sp.n_logit_bias = 1;
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 3000;
    gp.sampling = &sp;
    // The callback only counts: the canceller waits until tokens are coming, so the cancel
    // lands in the middle of the generation.
    std::atomic<size_t> seen{0};
    const muse_token_cb count = [](const muse_token_event *, void *user) {
        static_cast<std::atomic<size_t> *>(user)->fetch_add(1);
        return true;
    };
    size_t n = 0;
    muse_status status = MUSE_ERR_INTERNAL;
    std::atomic<bool> finished{false};
    std::thread gen([&] {
        status = muse_session_generate(s, 0, prompt.data(), prompt.size(), &gp, count, &seen, &n);
        finished.store(true);
    });
    while (seen.load() < 10 && !finished.load()) std::this_thread::yield();
    muse_session_cancel(s);
    gen.join();
    CHECK(status == MUSE_OK);
    CHECK(n >= 10);
    CHECK(n < gp.max_tokens);

    // Afterwards the session generates normally, and exactly as a fresh session does.
    REQUIRE(muse_session_seq_remove(s, -1, 0, -1) == MUSE_OK);
    std::vector<int32_t> again(16), fresh(16);
    size_t n_again = 0, n_fresh = 0;
    REQUIRE(muse_session_generate_tokens(s, 0, prompt.data(), prompt.size(), &sp, again.size(), again.data(),
                                         &n_again) == MUSE_OK);
    CHECK(n_again == again.size());
    muse_session *s2 = nullptr;
    REQUIRE(muse_session_create(model.m, nullptr, &s2) == MUSE_OK);
    REQUIRE(muse_session_generate_tokens(s2, 0, prompt.data(), prompt.size(), &sp, fresh.size(), fresh.data(),
                                         &n_fresh) == MUSE_OK);
    CHECK(again == fresh);
    muse_session_free(s2);
    muse_session_free(s);
}
