// Decode-batch matmul throughput of the CPU backend: the weight matrices of a
// 0.5B-shape llama (n_embd 896, ffn 4864, 2 KV heads of 64) for every layer and the
// output projection,
// multiplied by n_tok = 1..16 columns, the way one decode step of n_tok sequences
// reads them. Reports tokens/s (n_tok columns per pass over all weights) and
// checks that every column of a batched call equals its n_tok = 1 call bit for bit.
// --max-tok 256 goes on doubling n_tok up to prompt-sized batches (prefill's matmuls).
//   usage: matmul-bench [--type Q8_0] [--threads 2] [--layers 24] [--reps 5] [--level avx512] [--only 0..6]
//                       [--no-head 1] [--max-tok 16]
#include "backends/backend.h"
#include "backends/graph.h"
#include "backends/cpu/cpu-kernels.h"
#include "core/dequant.h"
#include "gguf/gguf-writer.h"

#include "muse/muse.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <time.h>
#include <vector>

using namespace muse;

// CPU time of the whole process (all threads): on a machine shared with other jobs it
// moves less than wall time, which counts time spent descheduled.
static double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int main(int argc, char **argv) {
    std::string type_name = "Q8_0";
    int threads = 2, layers = 24, reps = 5, only = -1, max_tok = 16;
    bool no_head = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--type")) type_name = argv[i + 1];
        else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--max-tok")) max_tok = std::max(1, std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--no-head")) no_head = std::atoi(argv[i + 1]) != 0;
        else if (!std::strcmp(argv[i], "--only")) only = std::atoi(argv[i + 1]);  // one shape: 0..6 = q k v o gate up down
        else if (!std::strcmp(argv[i], "--level")) {
            const std::string l = argv[i + 1];
            cpu::set_cpu_level(l == "scalar" ? cpu::CpuLevel::scalar
                               : l == "avx2" ? cpu::CpuLevel::avx2
                                             : cpu::CpuLevel::avx512);
        }
    }
    GgmlType type;
    if (!type_from_name(type_name, &type)) {
        std::fprintf(stderr, "unknown type %s\n", type_name.c_str());
        return 2;
    }
    auto backend = make_backend(MUSE_BACKEND_CPU, threads);
    auto weights = backend->weight_buffer();
    // One matmul as a one-op graph: the way model code reaches the backend.
    Graph graph(*backend);
    auto matmul = [&](const Tensor &w, const Tensor &x, const Tensor &y) {
        graph.clear();
        graph.matmul(w, x, y);
        backend->compute(graph);
    };
    const int64_t E = 896, F = 4864, KV = 128;
    const int64_t shapes[7][2] = {{E, E}, {E, KV}, {E, KV}, {E, E}, {E, F}, {E, F}, {F, E}};

    // One layer of random weights in the type (quantized through F32 -> the format's
    // bytes via the reference writers where they exist, else random bytes with sane
    // scales would do; Q8_0/Q4_0/F16/F32 cover the benchmark), shared by all layers'
    // storage copies so the total footprint is the real model's.
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<std::vector<uint8_t>> store;
    std::vector<Tensor> ws;
    for (int l = 0; l < layers; ++l) {
        for (auto &s : shapes) {
            const int64_t ne[4] = {s[0], s[1], 1, 1};
            std::vector<float> f(static_cast<size_t>(s[0] * s[1]));
            if (l == 0)
                for (float &v : f) v = nd(rng);
            std::vector<uint8_t> bytes;
            if (l > 0) {
                bytes = store[&s - shapes];
            } else if (type == GgmlType::Q8_0) {
                bytes = gguf::quantize_q8_0(f.data(), static_cast<int64_t>(f.size()));
            } else if (type == GgmlType::Q4_0) {
                bytes = gguf::quantize_q4_0(f.data(), static_cast<int64_t>(f.size()));
            } else if (type == GgmlType::F16) {
                bytes.resize(f.size() * 2);
                for (size_t i = 0; i < f.size(); ++i) {
                    const uint16_t h = fp32_to_fp16(f[i]);
                    std::memcpy(bytes.data() + 2 * i, &h, 2);
                }
            } else if (type == GgmlType::F32) {
                bytes.resize(f.size() * 4);
                std::memcpy(bytes.data(), f.data(), bytes.size());
            } else {
                std::fprintf(stderr, "type must be F32, F16, Q8_0 or Q4_0\n");
                return 2;
            }
            store.push_back(std::move(bytes));
            ws.push_back(weights->add(type, ne, store.back().data()));
        }
    }
    // The output projection (vocabulary 151936): read once per decode step like a layer.
    if (only < 0 && !no_head) {
        const int64_t V = 151936, ne[4] = {E, V, 1, 1};
        std::vector<float> f(static_cast<size_t>(E * 1024));
        for (float &v : f) v = nd(rng);
        std::vector<uint8_t> part = type == GgmlType::Q8_0   ? gguf::quantize_q8_0(f.data(), E * 1024)
                                    : type == GgmlType::Q4_0 ? gguf::quantize_q4_0(f.data(), E * 1024)
                                                             : std::vector<uint8_t>();
        if (part.empty()) {
            part.resize(static_cast<size_t>(E * 1024) * (type == GgmlType::F16 ? 2 : 4));
            for (size_t i = 0; i < f.size(); ++i) {
                if (type == GgmlType::F16) {
                    const uint16_t h = fp32_to_fp16(f[i]);
                    std::memcpy(part.data() + 2 * i, &h, 2);
                } else {
                    std::memcpy(part.data() + 4 * i, &f[i], 4);
                }
            }
        }
        std::vector<uint8_t> head;  // 1024 random rows repeated: the footprint is what matters
        for (int64_t r = 0; r < V; r += 1024) head.insert(head.end(), part.begin(), part.begin() + static_cast<std::ptrdiff_t>(part.size() / 1024 * std::min<int64_t>(1024, V - r)));
        store.push_back(std::move(head));
        ws.push_back(weights->add(type, ne, store.back().data()));
    }
    weights->commit();
    const int64_t cols = std::max(16, max_tok);
    auto buf_x = backend->alloc(static_cast<size_t>(F * cols * 4));
    auto buf_y = backend->alloc(static_cast<size_t>(151936 * cols * 4));
    std::vector<float> x(static_cast<size_t>(F * cols));
    std::normal_distribution<float> xd(0.0f, 1.0f);
    for (float &v : x) v = xd(rng);

    auto make = [](Buffer *b, int64_t ne0, int64_t ne1) {
        Tensor t;
        t.buffer = b;
        t.ne[0] = ne0;
        t.ne[1] = ne1;
        return t;
    };
    std::printf("type %s, threads %d, layers %d, level %s\n", type_name.c_str(), threads, layers,
                cpu::to_string(cpu::cpu_level()));
    double base = 0.0, cpu_base = 0.0;
    for (int n_tok = 1; n_tok <= max_tok; n_tok *= 2) {
        double best = 1e30, best_cpu = 1e30;
        for (int r = 0; r < reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            const double c0 = cpu_seconds();
            for (size_t wi = 0; wi < ws.size(); ++wi) {
                const Tensor &w = ws[wi];
                if (only >= 0 && static_cast<int>(wi % 7) != only) continue;  // (no head with --only)
                const Tensor tx = make(buf_x.get(), w.ne[0], n_tok), ty = make(buf_y.get(), w.ne[1], n_tok);
                backend->upload(tx, x.data(), static_cast<size_t>(w.ne[0] * n_tok * 4));
                matmul(w, tx, ty);
            }
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            best_cpu = std::min(best_cpu, cpu_seconds() - c0);
        }
        const double tps = n_tok / best;
        if (n_tok == 1) base = tps;
        const double cpu_tps = n_tok / best_cpu;
        if (n_tok == 1) cpu_base = cpu_tps;
        std::printf("n_tok %3d: %7.2f ms/pass  %8.1f tok/s  (%.2fx n_tok=1)   cpu %7.2f ms/pass (%.2fx)\n", n_tok,
                    best * 1e3, tps, tps / base, best_cpu * 1e3, cpu_tps / cpu_base);
    }

    // Batch invariance: columns of an n_tok = 16 call against n_tok = 1 calls.
    int mismatches = 0;
    for (int s = 0; s < 7; ++s) {
        const Tensor &w = ws[static_cast<size_t>(s)];
        const Tensor tx = make(buf_x.get(), w.ne[0], 16), ty = make(buf_y.get(), w.ne[1], 16);
        backend->upload(tx, x.data(), static_cast<size_t>(w.ne[0] * 16 * 4));
        matmul(w, tx, ty);
        std::vector<float> all(static_cast<size_t>(w.ne[1] * 16)), one(static_cast<size_t>(w.ne[1]));
        backend->download(ty, all.data(), all.size() * 4);
        for (int t = 0; t < 16; ++t) {
            const Tensor x1 = make(buf_x.get(), w.ne[0], 1), y1 = make(buf_y.get(), w.ne[1], 1);
            backend->upload(x1, x.data() + t * w.ne[0], static_cast<size_t>(w.ne[0] * 4));
            matmul(w, x1, y1);
            backend->download(y1, one.data(), one.size() * 4);
            if (std::memcmp(one.data(), all.data() + t * w.ne[1], one.size() * 4)) ++mismatches;
        }
    }
    std::printf("batch invariance: %s (%d columns differ)\n", mismatches ? "NO" : "yes", mismatches);
    return 0;
}
