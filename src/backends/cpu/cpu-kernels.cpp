#include "backends/cpu/cpu-kernels.h"

#include "backends/cpu/cpu-simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <cpuid.h>

#include <immintrin.h>

// GCC 12 reports its own AVX-512 intrinsic headers as reading uninitialized values once
// inlined (_mm512_undefined_ps); a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace muse::cpu {

// ---- dispatch levels

// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports has no "f16c".
[[maybe_unused]] static bool cpu_has_f16c() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}

CpuLevel detected_cpu_level() {
    static const CpuLevel level = [] {
        __builtin_cpu_init();
#if defined(MUSE_HAVE_AVX2)
        const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#endif
#if defined(MUSE_HAVE_AVX512)
        if (avx2 && __builtin_cpu_supports("avx512f")) return CpuLevel::avx512;
#endif
#if defined(MUSE_HAVE_AVX2)
        if (avx2) return CpuLevel::avx2;
#endif
        return CpuLevel::scalar;
    }();
    return level;
}

namespace {

CpuLevel clamp_level(CpuLevel l) {
    return static_cast<int>(l) > static_cast<int>(detected_cpu_level()) ? detected_cpu_level() : l;
}

CpuLevel initial_level() {
    const char *env = std::getenv("MUSE_CPU_LEVEL");
    if (!env) return detected_cpu_level();
    const std::string_view v(env);
    if (v == "scalar") return CpuLevel::scalar;
    if (v == "avx2") return clamp_level(CpuLevel::avx2);
    if (v == "avx512") return clamp_level(CpuLevel::avx512);
    return detected_cpu_level();  // unknown: ignored rather than failing a host at load
}

std::atomic<CpuLevel> &active_level() {
    static std::atomic<CpuLevel> level{initial_level()};
    return level;
}

inline float load_half(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}
#if defined(MUSE_HAVE_AVX2)
// The block scales of the SIMD loaders: F16C's conversion (exact, as fp16_to_fp32, but one
// instruction instead of a branchy bit manipulation in the innermost loop).
inline float load_half_f16c(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
#endif
inline float load_bf16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return bf16_to_fp32(h);
}

// ---- scalar level: F32 rows only (other types are dequantized by the caller). Four
// partial sums over i mod 4 for some instruction-level parallelism; a fixed order either way.
template <int NT>
void acc_scalar_n(const float *w, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
    float s[NT][4];
    for (int t = 0; t < NT; ++t)
        for (int k = 0; k < 4; ++k) s[t][k] = state[t * 4 + k];
    for (int64_t i = s0 * kStep; i < (s0 + n_steps) * kStep; i += 4)
        for (int t = 0; t < NT; ++t)
            for (int k = 0; k < 4; ++k) s[t][k] += w[i + k] * x[t * ldx + i + k];
    for (int t = 0; t < NT; ++t)
        for (int k = 0; k < 4; ++k) state[t * 4 + k] = s[t][k];
}

void acc_scalar(const void *row, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, int nt, float *state) {
    const float *w = static_cast<const float *>(row);
    for (int t0 = 0; t0 < nt; t0 += 4) {
        const float *xt = x + t0 * ldx;
        float *st = state + t0 * 4;
        switch (nt - t0 >= 4 ? 4 : nt - t0) {
        case 1: acc_scalar_n<1>(w, s0, n_steps, xt, ldx, st); break;
        case 2: acc_scalar_n<2>(w, s0, n_steps, xt, ldx, st); break;
        case 3: acc_scalar_n<3>(w, s0, n_steps, xt, ldx, st); break;
        default: acc_scalar_n<4>(w, s0, n_steps, xt, ldx, st); break;
        }
    }
}

void finish_scalar(const void *row, int64_t n, const float *x, int64_t ldx, int nt, const float *state, float *y,
                   int64_t ldy) {
    const float *w = static_cast<const float *>(row);
    for (int t = 0; t < nt; ++t) {
        const float *s = state + t * 4;
        float r = (s[0] + s[1]) + (s[2] + s[3]);
        for (int64_t i = n / kStep * kStep; i < n; ++i) r += w[i] * x[t * ldx + i];
        y[t * ldy] = r;
    }
}

// ---- block loaders: one 32-element step of a row as exact F32 values (the same
// products core/dequant.cpp computes, no FMA), plus the element-wise form for the
// tail of F32/F16/BF16 rows whose length is not a multiple of 32.
struct LoadF32 {
    static constexpr int64_t kBytes = 128;
    static float at(const uint8_t *row, int64_t i) {
        float f;
        std::memcpy(&f, row + 4 * i, 4);
        return f;
    }
};
struct LoadF16 {
    static constexpr int64_t kBytes = 64;
    static float at(const uint8_t *row, int64_t i) { return load_half(row + 2 * i); }
};
struct LoadBF16 {
    static constexpr int64_t kBytes = 64;
    static float at(const uint8_t *row, int64_t i) { return load_bf16(row + 2 * i); }
};
struct LoadQ8_0 {  // d:f16 qs[32]
    static constexpr int64_t kBytes = 34;
    static float at(const uint8_t *, int64_t) { return 0.0f; }  // rows are whole blocks
};
struct LoadQ4_0 {  // d:f16 qs[16]: low nibbles are elements 0..15, high 16..31
    static constexpr int64_t kBytes = 18;
    static float at(const uint8_t *, int64_t) { return 0.0f; }
};
struct LoadQ4_1 {  // d:f16 m:f16 qs[16]
    static constexpr int64_t kBytes = 20;
    static float at(const uint8_t *, int64_t) { return 0.0f; }
};

struct LoadQ4_K {  // d dmin scales[12] qs[128] per 256: step j of a block is sub-block j
    static constexpr int64_t kBytes = 144;
    static float at(const uint8_t *, int64_t) { return 0.0f; }
};
struct LoadQ5_K {  // d dmin scales[12] qh[32] qs[128] per 256: as Q4_K plus a fifth bit in qh
    static constexpr int64_t kBytes = 176;
    static float at(const uint8_t *, int64_t) { return 0.0f; }
};
struct LoadQ6_K {  // ql[128] qh[64] scales[16] d per 256
    static constexpr int64_t kBytes = 210;
    static float at(const uint8_t *, int64_t) { return 0.0f; }
};

#if defined(MUSE_HAVE_AVX2)
// One 32-element step of a K-quant row as int8 quants q (elements 0..15 in q0, 16..31 in q1)
// and the affine map core/dequant.cpp applies: y = q * scale - min, per half.
struct KStep {
    __m128i q0, q1;
    float s0, s1, m0, m1;
};

inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

inline KStep kstep_q4_k(const uint8_t *row, int64_t s) {
    const uint8_t *b = row + (s / 8) * LoadQ4_K::kBytes;
    const int j = static_cast<int>(s % 8);
    int sc, m;
    scale_min_k4(j, b + 4, &sc, &m);
    const float d = load_half_f16c(b) * static_cast<float>(sc), mn = load_half_f16c(b + 2) * static_cast<float>(m);
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + 16 + 32 * (j / 2)));
    const __m256i q = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(raw, 4) : raw, _mm256_set1_epi8(0x0F));
    return {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1), d, d, mn, mn};
}

inline KStep kstep_q5_k(const uint8_t *row, int64_t s) {
    const uint8_t *b = row + (s / 8) * LoadQ5_K::kBytes;
    const int j = static_cast<int>(s % 8);
    int sc, m;
    scale_min_k4(j, b + 4, &sc, &m);
    const float d = load_half_f16c(b) * static_cast<float>(sc), mn = load_half_f16c(b + 2) * static_cast<float>(m);
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + 48 + 32 * (j / 2)));
    const __m256i lo = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(raw, 4) : raw, _mm256_set1_epi8(0x0F));
    // Bit j of qh[l] is the fifth bit of element l of step j.
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + 16));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(1));
    const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    return {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1), d, d, mn, mn};
}

inline KStep kstep_q6_k(const uint8_t *row, int64_t s) {
    const uint8_t *b = row + (s / 8) * LoadQ6_K::kBytes;
    const int h = static_cast<int>(s % 8) / 4, k = static_cast<int>(s % 4);
    const uint8_t *ql = b + 64 * h + 32 * (k & 1), *qh = b + 128 + 32 * h;
    const auto *sc = reinterpret_cast<const int8_t *>(b + 192 + 8 * h);
    const float d = load_half_f16c(b + 208);
    const __m256i lraw = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(ql));
    const __m256i lo = _mm256_and_si256(k >= 2 ? _mm256_srli_epi16(lraw, 4) : lraw, _mm256_set1_epi8(0x0F));
    const __m256i hraw = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qh));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hraw, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3));
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
    // (d * scale) first, then * q: the order of core/dequant.cpp's products.
    return {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1), d * static_cast<float>(sc[2 * k]),
            d * static_cast<float>(sc[2 * k + 1]), 0.0f, 0.0f};
}

template <class L>
inline KStep kstep(const uint8_t *row, int64_t s);
template <>
inline KStep kstep<LoadQ4_K>(const uint8_t *row, int64_t s) { return kstep_q4_k(row, s); }
template <>
inline KStep kstep<LoadQ5_K>(const uint8_t *row, int64_t s) { return kstep_q5_k(row, s); }
template <>
inline KStep kstep<LoadQ6_K>(const uint8_t *row, int64_t s) { return kstep_q6_k(row, s); }
#endif

#if defined(MUSE_HAVE_AVX512)
// ---- avx512 level: a step is two vectors; each token keeps two accumulators
// (even / odd vector of the step), reduced with _mm512_reduce_add_ps at the end.
template <class L>
inline void load512(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1);  // step s of the row
template <>
inline void load512<LoadF32>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) {
    const uint8_t *b = row + s * LoadF32::kBytes;
    w0 = _mm512_loadu_ps(b);
    w1 = _mm512_loadu_ps(b + 64);
}
template <>
inline void load512<LoadF16>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) {
    const uint8_t *b = row + s * LoadF16::kBytes;
    w0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b)));
    w1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + 32)));
}
template <>
inline void load512<LoadBF16>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) {
    const uint8_t *b = row + s * LoadBF16::kBytes;
    const __m512i h0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b)));
    const __m512i h1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + 32)));
    w0 = _mm512_castsi512_ps(_mm512_slli_epi32(h0, 16));
    w1 = _mm512_castsi512_ps(_mm512_slli_epi32(h1, 16));
}
template <>
inline void load512<LoadQ4_1>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) {
    const uint8_t *b = row + s * LoadQ4_1::kBytes;
    const __m512 d = _mm512_set1_ps(load_half_f16c(b)), m = _mm512_set1_ps(load_half_f16c(b + 2));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 4));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(qs, mask), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
    w0 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d), m);
    w1 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d), m);
}
template <class L>
inline void load512_k(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) {
    const KStep k = kstep<L>(row, s);
    w0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(k.q0)), _mm512_set1_ps(k.s0)), _mm512_set1_ps(k.m0));
    w1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(k.q1)), _mm512_set1_ps(k.s1)), _mm512_set1_ps(k.m1));
}
template <>
inline void load512<LoadQ4_K>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) { load512_k<LoadQ4_K>(row, s, w0, w1); }
template <>
inline void load512<LoadQ5_K>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) { load512_k<LoadQ5_K>(row, s, w0, w1); }
template <>
inline void load512<LoadQ6_K>(const uint8_t *row, int64_t s, __m512 &w0, __m512 &w1) { load512_k<LoadQ6_K>(row, s, w0, w1); }

template <class L, int NT>
inline void acc512_row(const uint8_t *row, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
    __m512 a0[NT], a1[NT];
    for (int t = 0; t < NT; ++t) {
        a0[t] = _mm512_loadu_ps(state + t * 32);
        a1[t] = _mm512_loadu_ps(state + t * 32 + 16);
    }
    for (int64_t s = s0; s < s0 + n_steps; ++s) {
        __m512 w0, w1;
        load512<L>(row, s, w0, w1);
        const float *xs = x + s * kStep;
        for (int t = 0; t < NT; ++t) {
            a0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs + t * ldx), a0[t]);
            a1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs + t * ldx + 16), a1[t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        _mm512_storeu_ps(state + t * 32, a0[t]);
        _mm512_storeu_ps(state + t * 32 + 16, a1[t]);
    }
}


template <class L>
void finish512(const void *row, int64_t n, const float *x, int64_t ldx, int nt, const float *state, float *y,
               int64_t ldy) {
    const auto *r = static_cast<const uint8_t *>(row);
    for (int t = 0; t < nt; ++t) {
        float v = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(state + t * 32), _mm512_loadu_ps(state + t * 32 + 16)));
        for (int64_t i = n / kStep * kStep; i < n; ++i) v += L::at(r, i) * x[t * ldx + i];
        y[t * ldy] = v;
    }
}

// Q8_0 / Q4_0 keep the block scale out of the products: per token and block,
// d * (q[0..16) . x + q[16..32) . x) -- one multiply fewer per token than scaling the
// weights first, which is what n_tok = 1 (compute bound when the weights sit in cache)
// needs. Blocks alternate between two accumulators by the parity of their index (chunks
// start at even steps), so the running sums do not wait on each other.
template <class L>
inline __m512 qload512(const uint8_t *b, __m512 &q0, __m512 &q1);
template <>
inline __m512 qload512<LoadQ8_0>(const uint8_t *b, __m512 &q0, __m512 &q1) {
    q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 2))));
    q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 18))));
    return _mm512_set1_ps(load_half_f16c(b));
}
template <>
inline __m512 qload512<LoadQ4_0>(const uint8_t *b, __m512 &q0, __m512 &q1) {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 2));
    const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(_mm_and_si128(qs, mask), eight)));
    q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), eight)));
    return _mm512_set1_ps(load_half_f16c(b));
}

template <class L, int NT>
inline void qstep512(const uint8_t *row, int64_t s, const float *x, int64_t ldx, __m512 *acc) {
    __m512 q0, q1;
    const __m512 d = qload512<L>(row + s * L::kBytes, q0, q1);
    const float *xs = x + s * kStep;
    for (int t = 0; t < NT; ++t) {
        const __m512 blk = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xs + t * ldx + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(xs + t * ldx)));
        acc[t] = _mm512_fmadd_ps(d, blk, acc[t]);
    }
}

template <class L, int NT>
inline void accq512_row(const uint8_t *row, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
    __m512 a0[NT], a1[NT];
    for (int t = 0; t < NT; ++t) {
        a0[t] = _mm512_loadu_ps(state + t * 32);
        a1[t] = _mm512_loadu_ps(state + t * 32 + 16);
    }
    const int64_t end = s0 + n_steps;
    int64_t s = s0;
    for (; s + 2 <= end; s += 2) {
        qstep512<L, NT>(row, s, x, ldx, a0);
        qstep512<L, NT>(row, s + 1, x, ldx, a1);
    }
    if (s < end) qstep512<L, NT>(row, s, x, ldx, a0);
    for (int t = 0; t < NT; ++t) {
        _mm512_storeu_ps(state + t * 32, a0[t]);
        _mm512_storeu_ps(state + t * 32 + 16, a1[t]);
    }
}


float dot512_f32(const float *a, const float *b, int64_t n) {
    float state[32] = {}, y;
    acc512_row<LoadF32, 1>(reinterpret_cast<const uint8_t *>(a), 0, n / kStep, b, 0, state);
    finish512<LoadF32>(a, n, b, 0, 1, state, &y, 0);
    return y;
}
#endif

#if defined(MUSE_HAVE_AVX2)
// ---- avx2 level: a step is four vectors; each token keeps two accumulators (vectors
// 0, 2 and 1, 3 of the step). Up to four tokens at a time: 16 ymm registers.
inline __m256 widen_i8(__m128i q8) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)); }
inline __m256 widen_u8(__m128i q8) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q8)); }

template <class L>
inline void load256(const uint8_t *row, int64_t s, __m256 w[4]);  // step s of the row
template <>
inline void load256<LoadF32>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadF32::kBytes;
    for (int k = 0; k < 4; ++k) w[k] = _mm256_loadu_ps(reinterpret_cast<const float *>(b) + 8 * k);
}
template <>
inline void load256<LoadF16>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadF16::kBytes;
    for (int k = 0; k < 4; ++k) w[k] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 16 * k)));
}
template <>
inline void load256<LoadBF16>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadBF16::kBytes;
    for (int k = 0; k < 4; ++k) {
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 16 * k)));
        w[k] = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    }
}
template <>
inline void load256<LoadQ8_0>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadQ8_0::kBytes;
    const __m256 d = _mm256_set1_ps(load_half_f16c(b));
    for (int k = 0; k < 4; ++k)
        w[k] = _mm256_mul_ps(widen_i8(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(b + 2 + 8 * k))), d);
}
template <>
inline void load256<LoadQ4_0>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadQ4_0::kBytes;
    const __m256 d = _mm256_set1_ps(load_half_f16c(b));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 2));
    const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, mask), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), eight);
    w[0] = _mm256_mul_ps(widen_i8(lo), d);
    w[1] = _mm256_mul_ps(widen_i8(_mm_srli_si128(lo, 8)), d);
    w[2] = _mm256_mul_ps(widen_i8(hi), d);
    w[3] = _mm256_mul_ps(widen_i8(_mm_srli_si128(hi, 8)), d);
}
template <>
inline void load256<LoadQ4_1>(const uint8_t *row, int64_t s, __m256 w[4]) {
    const uint8_t *b = row + s * LoadQ4_1::kBytes;
    const __m256 d = _mm256_set1_ps(load_half_f16c(b)), m = _mm256_set1_ps(load_half_f16c(b + 2));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 4));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(qs, mask), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
    w[0] = _mm256_add_ps(_mm256_mul_ps(widen_u8(lo), d), m);
    w[1] = _mm256_add_ps(_mm256_mul_ps(widen_u8(_mm_srli_si128(lo, 8)), d), m);
    w[2] = _mm256_add_ps(_mm256_mul_ps(widen_u8(hi), d), m);
    w[3] = _mm256_add_ps(_mm256_mul_ps(widen_u8(_mm_srli_si128(hi, 8)), d), m);
}
template <class L>
inline void load256_k(const uint8_t *row, int64_t s, __m256 w[4]) {
    const KStep k = kstep<L>(row, s);
    const __m256 s0 = _mm256_set1_ps(k.s0), s1 = _mm256_set1_ps(k.s1), m0 = _mm256_set1_ps(k.m0), m1 = _mm256_set1_ps(k.m1);
    w[0] = _mm256_sub_ps(_mm256_mul_ps(widen_i8(k.q0), s0), m0);
    w[1] = _mm256_sub_ps(_mm256_mul_ps(widen_i8(_mm_srli_si128(k.q0, 8)), s0), m0);
    w[2] = _mm256_sub_ps(_mm256_mul_ps(widen_i8(k.q1), s1), m1);
    w[3] = _mm256_sub_ps(_mm256_mul_ps(widen_i8(_mm_srli_si128(k.q1, 8)), s1), m1);
}
template <>
inline void load256<LoadQ4_K>(const uint8_t *row, int64_t s, __m256 w[4]) { load256_k<LoadQ4_K>(row, s, w); }
template <>
inline void load256<LoadQ5_K>(const uint8_t *row, int64_t s, __m256 w[4]) { load256_k<LoadQ5_K>(row, s, w); }
template <>
inline void load256<LoadQ6_K>(const uint8_t *row, int64_t s, __m256 w[4]) { load256_k<LoadQ6_K>(row, s, w); }

using simd::hsum256;

template <class L, int NT>
inline void acc256_row(const uint8_t *row, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
    __m256 a0[NT], a1[NT];
    for (int t = 0; t < NT; ++t) {
        a0[t] = _mm256_loadu_ps(state + t * 16);
        a1[t] = _mm256_loadu_ps(state + t * 16 + 8);
    }
    for (int64_t s = s0; s < s0 + n_steps; ++s) {
        __m256 w[4];
        load256<L>(row, s, w);
        const float *xs = x + s * kStep;
        for (int t = 0; t < NT; ++t) {
            a0[t] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xs + t * ldx), a0[t]);
            a1[t] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xs + t * ldx + 8), a1[t]);
            a0[t] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xs + t * ldx + 16), a0[t]);
            a1[t] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xs + t * ldx + 24), a1[t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        _mm256_storeu_ps(state + t * 16, a0[t]);
        _mm256_storeu_ps(state + t * 16 + 8, a1[t]);
    }
}


template <class L>
void finish256(const void *row, int64_t n, const float *x, int64_t ldx, int nt, const float *state, float *y,
               int64_t ldy) {
    const auto *r = static_cast<const uint8_t *>(row);
    for (int t = 0; t < nt; ++t) {
        float v = hsum256(_mm256_add_ps(_mm256_loadu_ps(state + t * 16), _mm256_loadu_ps(state + t * 16 + 8)));
        for (int64_t i = n / kStep * kStep; i < n; ++i) v += L::at(r, i) * x[t * ldx + i];
        y[t * ldy] = v;
    }
}

float dot256_f32(const float *a, const float *b, int64_t n) {
    float state[16] = {}, y;
    acc256_row<LoadF32, 1>(reinterpret_cast<const uint8_t *>(a), 0, n / kStep, b, 0, state);
    finish256<LoadF32>(a, n, b, 0, 1, state, &y, 0);
    return y;
}
#endif

float scalar_dot_f32(const float *a, const float *b, int64_t n) {
    float state[4] = {}, y;
    acc_scalar(a, 0, n / kStep, b, 0, 1, state);
    finish_scalar(a, n, b, 0, 1, state, &y, 0);
    return y;
}

// Row-block forms for the scalar level (the SIMD dispatchers loop over the rows themselves).
using AccFn = void (*)(const void *, int64_t, int64_t, const float *, int64_t, int, float *);
using FinishFn = void (*)(const void *, int64_t, const float *, int64_t, int, const float *, float *, int64_t);
using AccRowsFn = void (*)(const void *, size_t, int, int64_t, int64_t, const float *, int64_t, int, float *);

template <AccFn Acc, int State>
void acc_rows(const void *row0, size_t stride, int nr, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, int nt,
              float *state) {
    for (int r = 0; r < nr; ++r)
        Acc(static_cast<const uint8_t *>(row0) + stride * static_cast<size_t>(r), s0, n_steps, x, ldx, nt,
            state + r * nt * State);
}

template <FinishFn Finish, int State>
[[gnu::flatten]] void finish_rows(const void *row0, size_t stride, int nr, int64_t n, const float *x, int64_t ldx, int nt,
                 const float *state, float *y, int64_t ldy) {
    for (int r = 0; r < nr; ++r)
        Finish(static_cast<const uint8_t *>(row0) + stride * static_cast<size_t>(r), n, x, ldx, nt,
               state + r * nt * State, y + r, ldy);
}

template <AccRowsFn Acc, FinishFn Finish, int State>
RowDotKernel make_kernel(bool fused) {
    return {State, fused, Acc, finish_rows<Finish, State>};
}

// Row kernels of one level and weight type as a family over NT, the tokens of one pass.
#if defined(MUSE_HAVE_AVX512)
template <class L>
struct Rows512 {
    template <int NT>
    static void row(const uint8_t *r, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
        acc512_row<L, NT>(r, s0, n_steps, x, ldx, state);
    }
};
template <class L>
struct RowsQ512 {  // block-scaled integer quants (Q8_0, Q4_0)
    template <int NT>
    static void row(const uint8_t *r, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
        accq512_row<L, NT>(r, s0, n_steps, x, ldx, state);
    }
};
#endif
#if defined(MUSE_HAVE_AVX2)
template <class L>
struct Rows256 {
    template <int NT>
    static void row(const uint8_t *r, int64_t s0, int64_t n_steps, const float *x, int64_t ldx, float *state) {
        acc256_row<L, NT>(r, s0, n_steps, x, ldx, state);
    }
};
#endif

// Rows r < nr of a block, one after the other (no call per row), for n (<= MaxNT) tokens:
// NT is a compile-time count, so each token's accumulators live in registers.
template <class Rows, int NT, int MaxNT>
void rows_for_tokens(int n, const uint8_t *row0, size_t stride, int nr, int64_t s0, int64_t n_steps, const float *x,
                     int64_t ldx, float *state, int64_t state_stride) {
    if constexpr (NT < MaxNT)
        if (n > NT)
            return rows_for_tokens<Rows, NT + 1, MaxNT>(n, row0, stride, nr, s0, n_steps, x, ldx, state, state_stride);
    for (int r = 0; r < nr; ++r)
        Rows::template row<NT>(row0 + stride * static_cast<size_t>(r), s0, n_steps, x, ldx, state + r * state_stride);
}

// Every row of a block for tokens [0, nt), MaxNT at a time (as many as have accumulators in
// the registers); State floats of partial sums per token and row.
template <class Rows, int MaxNT, int State>
void acc_token_groups(const void *row0, size_t stride, int nr, int64_t s0, int64_t n_steps, const float *x, int64_t ldx,
                      int nt, float *state) {
    const auto *r = static_cast<const uint8_t *>(row0);
    const int64_t ss = int64_t(nt) * State;  // state floats per row
    for (int t0 = 0; t0 < nt; t0 += MaxNT)
        rows_for_tokens<Rows, 1, MaxNT>(std::min(nt - t0, MaxNT), r, stride, nr, s0, n_steps, x + t0 * ldx, ldx,
                                         state + t0 * State, ss);
}

#if defined(MUSE_HAVE_AVX512)
template <class L>
RowDotKernel k512(bool fused = true) {
    return make_kernel<acc_token_groups<Rows512<L>, 8, 32>, finish512<L>, 32>(fused);
}
#endif
#if defined(MUSE_HAVE_AVX2)
template <class L>
RowDotKernel k256(bool fused = true) {
    return make_kernel<acc_token_groups<Rows256<L>, 4, 16>, finish256<L>, 16>(fused);
}
#endif

} // namespace

CpuLevel cpu_level() { return active_level().load(std::memory_order_relaxed); }
void set_cpu_level(CpuLevel level) { active_level().store(clamp_level(level), std::memory_order_relaxed); }

const char *to_string(CpuLevel level) {
    switch (level) {
    case CpuLevel::scalar: return "scalar";
    case CpuLevel::avx2: return "avx2";
    case CpuLevel::avx512: return "avx512";
    }
    return "?";
}

RowDotKernel row_dot_kernel(GgmlType type, CpuLevel level) {
    switch (clamp_level(level)) {
    case CpuLevel::avx512:
#if defined(MUSE_HAVE_AVX512)
        switch (type) {
        case GgmlType::F32: return k512<LoadF32>();
        case GgmlType::F16: return k512<LoadF16>();
        case GgmlType::BF16: return k512<LoadBF16>();
        case GgmlType::Q8_0: return make_kernel<acc_token_groups<RowsQ512<LoadQ8_0>, 8, 32>, finish512<LoadQ8_0>, 32>(true);
        case GgmlType::Q4_0: return make_kernel<acc_token_groups<RowsQ512<LoadQ4_0>, 8, 32>, finish512<LoadQ4_0>, 32>(true);
        case GgmlType::Q4_1: return k512<LoadQ4_1>();
        case GgmlType::Q4_K: return k512<LoadQ4_K>();
        case GgmlType::Q5_K: return k512<LoadQ5_K>();
        case GgmlType::Q6_K: return k512<LoadQ6_K>();
        default: return k512<LoadF32>(false);
        }
#endif
        [[fallthrough]];
    case CpuLevel::avx2:
#if defined(MUSE_HAVE_AVX2)
        switch (type) {
        case GgmlType::F32: return k256<LoadF32>();
        case GgmlType::F16: return k256<LoadF16>();
        case GgmlType::BF16: return k256<LoadBF16>();
        case GgmlType::Q8_0: return k256<LoadQ8_0>();
        case GgmlType::Q4_0: return k256<LoadQ4_0>();
        case GgmlType::Q4_1: return k256<LoadQ4_1>();
        case GgmlType::Q4_K: return k256<LoadQ4_K>();
        case GgmlType::Q5_K: return k256<LoadQ5_K>();
        case GgmlType::Q6_K: return k256<LoadQ6_K>();
        default: return k256<LoadF32>(false);
        }
#endif
        [[fallthrough]];
    case CpuLevel::scalar: break;
    }
    return make_kernel<acc_rows<acc_scalar, 4>, finish_scalar, 4>(type == GgmlType::F32);
}

DotF32Fn dot_f32_kernel(CpuLevel level) {
    switch (clamp_level(level)) {
    case CpuLevel::avx512:
#if defined(MUSE_HAVE_AVX512)
        return dot512_f32;
#endif
        [[fallthrough]];
    case CpuLevel::avx2:
#if defined(MUSE_HAVE_AVX2)
        return dot256_f32;
#endif
        [[fallthrough]];
    case CpuLevel::scalar: break;
    }
    return scalar_dot_f32;
}

void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
#if defined(MUSE_HAVE_AVX2)
    // F16C rounds to nearest even, NaNs quieted with their top payload bits: as fp32_to_fp16.
    if (clamp_level(cpu_level()) != CpuLevel::scalar)
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i),
                             _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

} // namespace muse::cpu
