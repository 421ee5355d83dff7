// SIMD building blocks shared by the CPU kernels: which levels this build compiled
// in, a vectorized exp per level, and the two softmax row passes built on it (the
// attention kernels and the vision ops both use them). Each level's code exists only when the compiler
// targets it (-march=native); cpu_level() (cpu-kernels.h) says which one runs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <immintrin.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define MUSE_HAVE_AVX2 1
#endif
#if defined(MUSE_HAVE_AVX2) && defined(__AVX512F__)
#define MUSE_HAVE_AVX512 1
#endif

namespace muse::cpu::simd {

// exp(x) = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite
// split of ln 2), e^r by its degree-6 Taylor polynomial: relative error < 2e-7. Inputs are
// clamped at -87 so that 2^n stays a normal float (e^-87 is 1.6e-38: a zero weight); the
// callers pass x <= 0 (a softmax row minus its max) or erf's -z^2.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpMin = -87.0f;

inline float exp_scalar(float x) {
    x = std::max(x, kExpMin);
    const float n = std::floor(x * kLog2e + 0.5f);
    const float r = (x - n * kLn2Hi) - n * kLn2Lo;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    return p * scale;
}

#if defined(MUSE_HAVE_AVX512)
inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(kExpMin));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#endif

#if defined(MUSE_HAVE_AVX2)
inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// The softmax row passes, per level: the largest value, and s[i] = exp(s[i] - m) with its sum.
inline float row_max_scalar(const float *s, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, s[i]);
    return m;
}

inline float exp_shift_sum_scalar(float *s, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += s[i] = exp_scalar(s[i] - m);
    return sum;
}

#if defined(MUSE_HAVE_AVX512)
inline float row_max_avx512(const float *s, int64_t n) {
    int64_t i = 0;
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + i));
    return std::max(_mm512_reduce_max_ps(vm), row_max_scalar(s + i, n - i));
}

inline float exp_shift_sum_avx512(float *s, int64_t n, float m) {
    int64_t i = 0;
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i), vm));
        _mm512_storeu_ps(s + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc) + exp_shift_sum_scalar(s + i, n - i, m);
}
#endif

#if defined(MUSE_HAVE_AVX2)
inline float row_max_avx2(const float *s, int64_t n) {
    int64_t i = 0;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vm);
    return std::max(row_max_scalar(lanes, 8), row_max_scalar(s + i, n - i));
}

inline float exp_shift_sum_avx2(float *s, int64_t n, float m) {
    int64_t i = 0;
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), vm));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    return hsum256(acc) + exp_shift_sum_scalar(s + i, n - i, m);
}
#endif

} // namespace muse::cpu::simd
