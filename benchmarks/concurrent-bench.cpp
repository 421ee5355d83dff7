// Concurrent sessions vs sequential generations on one shared model: loads the model
// once, then runs N generations of M tokens (a) one after another on this thread and
// (b) at the same time from N host threads with a session each, and prints the
// aggregate decode throughput of both and their ratio. (a) and (b) alternate for
// several rounds so that load from elsewhere on the machine hits both alike. Besides
// wall-clock throughput it prints tokens per CPU-second of this process: on a machine
// shared with other work the wall-clock ratio also measures how the scheduler splits the
// cores between 2 and 5 threads, while CPU time shows the cost of the threading itself.
// usage: concurrent-bench MODEL.gguf [--threads T] [--sessions N] [--n M] [--prompt P] [--rounds R]
#include <muse/muse.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// One generation on a fresh session: prompt_len tokens that differ per index, then n tokens.
// Returns the tokens generated.
size_t generate(const muse_model *model, int index, int prompt_len, int n) {
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_ctx = prompt_len + n + 16;
    muse_session *s = nullptr;
    if (muse_session_create(model, &sp, &s) != MUSE_OK) {
        std::fprintf(stderr, "session: %s\n", muse_last_error());
        std::exit(1);
    }
    std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
    for (int i = 0; i < prompt_len; ++i) prompt[static_cast<size_t>(i)] = 100 + 37 * index + 11 * i;
    muse_sampling_params p;
    muse_sampling_params_init(&p);
    p.temperature = 0.8f;
    p.seed = 1234 + static_cast<uint64_t>(index);
    std::vector<int32_t> out(static_cast<size_t>(n));
    size_t got = 0;
    if (muse_session_generate_tokens(s, 0, prompt.data(), prompt.size(), &p, static_cast<size_t>(n), out.data(),
                                     &got) != MUSE_OK) {
        std::fprintf(stderr, "generate: %s\n", muse_last_error());
        std::exit(1);
    }
    muse_session_free(s);
    return got;
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: %s MODEL.gguf [--threads T] [--sessions N] [--n M] [--prompt P] [--rounds R]\n",
                     argv[0]);
        return 2;
    }
    int threads = 2, sessions = 4, n = 64, prompt_len = 4, rounds = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        const int v = std::atoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--threads")) threads = v;
        else if (!std::strcmp(argv[i], "--sessions")) sessions = v;
        else if (!std::strcmp(argv[i], "--n")) n = v;
        else if (!std::strcmp(argv[i], "--prompt")) prompt_len = v;
        else if (!std::strcmp(argv[i], "--rounds")) rounds = v;
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    muse_model_params mp;
    muse_model_params_init(&mp);
    mp.n_threads = threads;
    muse_model *model = nullptr;
    if (muse_model_load(argv[1], &mp, &model) != MUSE_OK) {
        std::fprintf(stderr, "load: %s\n", muse_last_error());
        return 1;
    }
    generate(model, 0, prompt_len, 4);  // warm-up: page in the weights

    std::vector<double> seq_tps, conc_tps, ratios, cpu_ratios;
    for (int r = 0; r < rounds; ++r) {
        double t0 = now_s(), c0 = cpu_s();
        size_t total = 0;
        for (int i = 0; i < sessions; ++i) total += generate(model, i, prompt_len, n);
        const double seq = static_cast<double>(total) / (now_s() - t0);
        const double seq_cpu = static_cast<double>(total) / (cpu_s() - c0);

        std::vector<size_t> got(static_cast<size_t>(sessions));
        std::vector<std::thread> pool;
        t0 = now_s(), c0 = cpu_s();
        for (int i = 0; i < sessions; ++i)
            pool.emplace_back([&, i] { got[static_cast<size_t>(i)] = generate(model, i, prompt_len, n); });
        for (auto &t : pool) t.join();
        total = 0;
        for (size_t g : got) total += g;
        const double conc = static_cast<double>(total) / (now_s() - t0);
        const double conc_cpu = static_cast<double>(total) / (cpu_s() - c0);
        std::printf("round %d: sequential %.2f tok/s (%.2f tok/cpu-s), concurrent %.2f tok/s (%.2f tok/cpu-s), "
                    "ratio %.3f (cpu %.3f)\n",
                    r, seq, seq_cpu, conc, conc_cpu, conc / seq, conc_cpu / seq_cpu);
        std::fflush(stdout);
        seq_tps.push_back(seq), conc_tps.push_back(conc), ratios.push_back(conc / seq);
        cpu_ratios.push_back(conc_cpu / seq_cpu);
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        const size_t h = v.size() / 2;
        return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
    };
    std::printf("{\"threads\": %d, \"sessions\": %d, \"n\": %d, \"sequential_tps\": %.2f, \"concurrent_tps\": %.2f, "
                "\"ratio\": %.3f, \"cpu_ratio\": %.3f}\n",
                threads, sessions, n, median(seq_tps), median(conc_tps), median(ratios), median(cpu_ratios));
    muse_model_free(model);
    return 0;
}
