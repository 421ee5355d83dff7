#include "backends/cpu/cpu-bf16-matmul.h"

#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/thread-pool.h"
#include "core/dequant.h"
#include "core/error.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// From the OpenMP runtime oneDNN is built on (as cpu-backend.cpp).
extern "C" void omp_set_num_threads(int);

namespace muse::cpu {
namespace {

struct Bf16Cpu {
    bool avx512_bf16 = false, amx_bf16 = false;
};

const Bf16Cpu &bf16_cpu() {
    static const Bf16Cpu c = [] {
        Bf16Cpu r;
#if defined(__x86_64__)
        unsigned a = 0, b = 0, cx = 0, d = 0;
        if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) r.avx512_bf16 = (a >> 5) & 1;
        if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) r.amx_bf16 = ((d >> 22) & 1) && ((d >> 24) & 1);
        // Linux grants the AMX tile state only on request, per process (oneDNN asks too; asking
        // twice is harmless). Without it AMX is unusable and oneDNN keeps to AVX-512.
        if (r.amx_bf16) {
            constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
            r.amx_bf16 = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
        }
#endif
        return r;
    }();
    return c;
}

bool bf16_enabled_once() {
    static const bool on = [] {
        const char *env = std::getenv("MUSE_VISION_BF16");
        if (env && std::strcmp(env, "0") == 0) return false;
        const Bf16Cpu &c = bf16_cpu();
        if (!c.avx512_bf16 && !c.amx_bf16) return false;
        // oneDNN's dispatch may be capped (ONEDNN_MAX_CPU_ISA) below its BF16 kernels: then
        // its BF16 matmul emulates the products and is slower than SGEMM.
        const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
        const unsigned need = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
        return (isa & need) == need;
    }();
    return on;
}

// The bf16 bits of x, rounded to nearest even; NaNs stay (quiet) NaNs.
inline uint16_t to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

struct Prim {
    dnnl::matmul p;
    dnnl::memory::desc a, b, c, scratch;
};

// Rows of a weight in BF16: F32 and F16 converted, BF16 as stored.
void weight_rows_bf16(const Tensor &w, int64_t r0, int64_t r1, uint16_t *dst) {
    const int64_t n_in = w.ne[0];
    const auto *base = static_cast<const uint8_t *>(w.raw());
    const size_t row_bytes = w.row_bytes();
    std::vector<float> row;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t *src = base + row_bytes * static_cast<size_t>(r);
        uint16_t *out = dst + r * n_in;
        if (w.type == GgmlType::BF16) {
            std::memcpy(out, src, static_cast<size_t>(n_in) * 2);
        } else if (w.type == GgmlType::F32) {
            f32_to_bf16(reinterpret_cast<const float *>(src), out, n_in);
        } else {
            row.resize(static_cast<size_t>(n_in));
            dequantize(w.type, src, row.data(), n_in);
            f32_to_bf16(row.data(), out, n_in);
        }
    }
}

} // namespace

bool bf16_matmul_available() { return cpu_level() == CpuLevel::avx512 && bf16_enabled_once(); }

void f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512BF16__)
    if (bf16_cpu().avx512_bf16)
        for (; i + 16 <= n; i += 16)
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i),
                                reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i))));
#endif
    for (; i < n; ++i) dst[i] = to_bf16(src[i]);
}

float bf16_to_f32(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

struct Bf16Matmul::Impl {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    std::mutex mutex;  // guards the maps below; held while weights are packed or a primitive created
    struct Range {
        const uint8_t *begin, *end;
        const void *owner;
    };
    std::vector<Range> ranges;
    // A weight in the blocked layout a primitive asked for (its VNNI/AMX tiles), 64-byte aligned.
    struct Packed {
        const void *owner = nullptr;
        dnnl::memory::desc md;
        std::vector<uint8_t> bytes;
        uint8_t *data() { return bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64; }
    };
    std::map<std::tuple<const void *, int64_t, int64_t, int>, std::vector<Packed>> packed;
    std::map<std::array<int64_t, 9>, Prim> prims;

    // w's rows in BF16 laid out as md wants, into p (p.md set by the caller).
    void pack(ThreadPool &pool, const Tensor &w, Packed &p) {
        const int64_t n_in = w.ne[0], n_out = w.ne[1];
        std::vector<uint16_t> plain;
        const uint16_t *rows = static_cast<const uint16_t *>(w.raw());
        if (w.type != GgmlType::BF16) {
            plain.resize(static_cast<size_t>(n_in * n_out));
            uint16_t *dst = plain.data();
            pool.parallel_for(n_out, [&](int64_t r0, int64_t r1) { weight_rows_bf16(w, r0, r1, dst); }, 16);
            rows = plain.data();
        }
        p.bytes.resize(p.md.get_size() + 64);
        // B[kk, j] = rows[j * n_in + kk]: the weight's rows are B's columns.
        const dnnl::memory::desc src_md({n_in, n_out}, dnnl::memory::data_type::bf16, {1, n_in});
        dnnl::memory src(src_md, engine, const_cast<uint16_t *>(rows)), dst(p.md, engine, p.data());
        dnnl::stream s(engine);
        dnnl::reorder(src, dst).execute(s, src, dst);
        s.wait();
    }

    // w packed for a primitive whose weights are laid out as md: the kept copy when w lies in
    // remembered memory (packed now if new), else packed into a new element of scratch.
    const uint8_t *weights(ThreadPool &pool, const Tensor &w, const dnnl::memory::desc &md,
                           std::vector<Packed> &scratch) {
        if (w.mapped && !w.buffer) {
            const auto *begin = static_cast<const uint8_t *>(w.raw());
            const uint8_t *end = begin + w.n_bytes();
            std::lock_guard<std::mutex> lock(mutex);
            for (const Range &r : ranges) {
                if (begin < r.begin || end > r.end) continue;
                std::vector<Packed> &kept = packed[{begin, w.ne[0], w.ne[1], static_cast<int>(w.type)}];
                for (Packed &p : kept)
                    if (p.md == md) return p.data();
                kept.emplace_back();
                kept.back().owner = r.owner;
                kept.back().md = md;
                pack(pool, w, kept.back());
                return kept.back().data();
            }
        }
        scratch.emplace_back();
        scratch.back().md = md;
        pack(pool, w, scratch.back());
        return scratch.back().data();
    }

    // Y[m, n] = X[m, k] W^T with X, Y dense row-major and W in the layout oneDNN picks (AMX /
    // VNNI blocks: a strided or transposed view would fall back to its slower gemm kernels).
    const Prim &linear_prim(int64_t m, int64_t n, int64_t k) {
        return cached({0, m, n, k, 0, 0, 0, 0, 0}, [&] {
            using dt = dnnl::memory::data_type;
            Prim p;
            p.a = dnnl::memory::desc({m, k}, dt::bf16, {k, 1});
            p.c = dnnl::memory::desc({m, n}, dt::f32, {n, 1});
            const dnnl::memory::desc any({k, n}, dt::bf16, dnnl::memory::format_tag::any);
            dnnl::primitive_attr attr;
            attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per-thread scratchpads (run)
            const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, any, p.c), attr, engine);
            p.b = pd.weights_desc();
            p.scratch = pd.scratchpad_desc();
            p.p = dnnl::matmul(pd);
            return p;
        });
    }

    // The primitive for C[m, n] = alpha * A[m, k] B[k, n] with these strides (created on the
    // calling thread, whose OpenMP team is one thread: the primitive is single-threaded).
    const Prim &prim(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, bool b_trans, int64_t ldc,
                     float alpha) {
        int32_t alpha_bits;
        std::memcpy(&alpha_bits, &alpha, 4);
        return cached({1, m, n, k, lda, ldb, b_trans ? 1 : 0, ldc, alpha_bits}, [&] {
            using dt = dnnl::memory::data_type;
            Prim p;
            p.a = dnnl::memory::desc({m, k}, dt::bf16, {lda, 1});
            p.b = b_trans ? dnnl::memory::desc({k, n}, dt::bf16, {1, ldb}) : dnnl::memory::desc({k, n}, dt::bf16, {ldb, 1});
            p.c = dnnl::memory::desc({m, n}, dt::f32, {ldc, 1});
            dnnl::primitive_attr attr;
            attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
            if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
            const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, p.b, p.c), attr, engine);
            p.scratch = pd.scratchpad_desc();
            p.p = dnnl::matmul(pd);
            return p;
        });
    }

    // The primitive under key, built by build() on first use (under the lock: primitives are
    // created once per shape).
    template <class Build>
    const Prim &cached(const std::array<int64_t, 9> &key, Build build) {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = prims.find(key);
        if (it != prims.end()) return it->second;
        return prims.emplace(key, build()).first->second;
    }

    void run(const Prim &p, const void *a, const void *b, float *c) {
        thread_local std::vector<uint8_t> scratch;
        scratch.resize(std::max<size_t>(p.scratch.get_size(), 1));
        dnnl::stream s(engine);
        p.p.execute(s, {{DNNL_ARG_SRC, dnnl::memory(p.a, engine, const_cast<void *>(a))},
                        {DNNL_ARG_WEIGHTS, dnnl::memory(p.b, engine, const_cast<void *>(b))},
                        {DNNL_ARG_DST, dnnl::memory(p.c, engine, c)},
                        {DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratch, engine, scratch.data())}});
        s.wait();
    }
};

Bf16Matmul::Bf16Matmul() : impl_(std::make_unique<Impl>()) {}
Bf16Matmul::~Bf16Matmul() = default;

void Bf16Matmul::remember(const void *owner, const void *begin, size_t bytes) {
    const auto *b = static_cast<const uint8_t *>(begin);
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->ranges.push_back({b, b + bytes, owner});
}

void Bf16Matmul::forget(const void *owner) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    std::erase_if(impl_->ranges, [&](const Impl::Range &r) { return r.owner == owner; });
    for (auto it = impl_->packed.begin(); it != impl_->packed.end();) {
        std::erase_if(it->second, [&](const Impl::Packed &p) { return p.owner == owner; });
        it = it->second.empty() ? impl_->packed.erase(it) : std::next(it);
    }
}

void Bf16Matmul::matmul(ThreadPool &pool, const Tensor &w, const float *x, int64_t n_tok, float *y) {
    static thread_local bool single = (omp_set_num_threads(1), true);  // primitives made here are single-threaded
    (void)single;
    const int64_t n_in = w.ne[0], n_out = w.ne[1];
    // Each share is a run of tokens times the whole weight: dense operands, which oneDNN's AMX
    // kernels need, and the weight packed once for all. Shares of up to ~512 tokens (at least one
    // per thread) are handed out one at a time, so a thread the OS deschedules on a shared
    // machine delays only its current share; all but the last have the same size (one primitive).
    constexpr int64_t kMinRows = 16, kMaxRows = 512;
    const int64_t shares = std::clamp<int64_t>(std::max<int64_t>(pool.size(), (n_tok + kMaxRows - 1) / kMaxRows), 1,
                                               std::max<int64_t>(n_tok / kMinRows, 1));
    const auto first = [&](int64_t i) { return n_tok * i / shares; };
    std::vector<const Prim *> prims(static_cast<size_t>(shares));
    std::vector<const uint8_t *> packed(static_cast<size_t>(shares));
    std::vector<Impl::Packed> scratch;
    scratch.reserve(static_cast<size_t>(shares));  // packed[] points into it
    try {
        for (int64_t i = 0; i < shares; ++i) {
            prims[static_cast<size_t>(i)] = &impl_->linear_prim(first(i + 1) - first(i), n_out, n_in);
            packed[static_cast<size_t>(i)] = impl_->weights(pool, w, prims[static_cast<size_t>(i)]->b, scratch);
        }
    } catch (const dnnl::error &e) {
        fail(MUSE_ERR_INTERNAL, "oneDNN bf16 matmul: ", e.what());
    }
    thread_local std::vector<uint16_t> xb;  // this caller's activations in BF16
    xb.resize(static_cast<size_t>(n_tok * n_in));
    uint16_t *xp = xb.data();
    pool.parallel_for(n_tok, [&](int64_t t0, int64_t t1) { f32_to_bf16(x + t0 * n_in, xp + t0 * n_in, (t1 - t0) * n_in); }, 16);
    std::atomic<int> failed{0};
    std::atomic<int64_t> next{0};
    pool.parallel_for(std::min<int64_t>(shares, pool.size()), [&](int64_t, int64_t) {
        static thread_local bool single_here = (omp_set_num_threads(1), true);
        (void)single_here;
        for (int64_t i = next++; i < shares; i = next++) {
            try {
                impl_->run(*prims[static_cast<size_t>(i)], xp + first(i) * n_in, packed[static_cast<size_t>(i)],
                           y + first(i) * n_out);
            } catch (const dnnl::error &) {
                failed.store(1);
            }
        }
    }, 1);
    if (failed.load()) fail(MUSE_ERR_INTERNAL, "oneDNN bf16 matmul failed");
}

void Bf16Matmul::gemm(int64_t m, int64_t n, int64_t k, float alpha, const uint16_t *a, int64_t lda, const uint16_t *b,
                      int64_t ldb, bool b_trans, float *c, int64_t ldc) {
    static thread_local bool single = (omp_set_num_threads(1), true);
    (void)single;
    try {
        impl_->run(impl_->prim(m, n, k, lda, ldb, b_trans, ldc, alpha), a, b, c);
    } catch (const dnnl::error &e) {
        fail(MUSE_ERR_INTERNAL, "oneDNN bf16 matmul failed: ", e.what());
    }
}

} // namespace muse::cpu
