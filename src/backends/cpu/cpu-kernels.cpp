#include "backends/cpu/cpu-kernels.h"

#include <cstring>
#include <immintrin.h>

namespace muse::cpu {
namespace {

inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

#if defined(__AVX512F__)
inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

float dot_f16(const void *row, const float *x, int64_t n) {
    const auto *w = static_cast<const uint16_t *>(row);
    int64_t i = 0;
    float s = 0.0f;
#if defined(__AVX512F__)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(w + i)));
        const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(w + i + 16)));
        acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), acc1);
    }
    s = hsum(_mm512_add_ps(acc0, acc1));
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w + i)));
        acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), acc);
    }
    s = hsum(acc);
#endif
    for (; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
    return s;
}

float dot_q8_0(const void *row, const float *x, int64_t n) {
    const auto *b = static_cast<const uint8_t *>(row);
    const int64_t nb = n / 32;
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < nb; ++k, b += 34, x += 32) {
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 2));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 18));
        __m512 blk = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), _mm512_loadu_ps(x));
        blk = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), _mm512_loadu_ps(x + 16), blk);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(b)), blk, acc);
    }
    return hsum(acc);
#else
    float s = 0.0f;
    for (int64_t k = 0; k < nb; ++k, b += 34, x += 32) {
        float blk = 0.0f;
        for (int j = 0; j < 32; ++j) blk += static_cast<float>(static_cast<int8_t>(b[2 + j])) * x[j];
        s += half_to_float(b) * blk;
    }
    return s;
#endif
}

float dot_q4_0(const void *row, const float *x, int64_t n) {
    const auto *b = static_cast<const uint8_t *>(row);
    const int64_t nb = n / 32;
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    const __m128i low_mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t k = 0; k < nb; ++k, b += 18, x += 32) {
        const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, low_mask), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), low_mask), eight);
        __m512 blk = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), _mm512_loadu_ps(x));
        blk = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), _mm512_loadu_ps(x + 16), blk);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(b)), blk, acc);
    }
    return hsum(acc);
#else
    float s = 0.0f;
    for (int64_t k = 0; k < nb; ++k, b += 18, x += 32) {
        float blk = 0.0f;
        for (int j = 0; j < 16; ++j) {
            blk += static_cast<float>((b[2 + j] & 0x0F) - 8) * x[j];
            blk += static_cast<float>((b[2 + j] >> 4) - 8) * x[j + 16];
        }
        s += half_to_float(b) * blk;
    }
    return s;
#endif
}

float dot_f32_row(const void *row, const float *x, int64_t n) { return dot_f32(static_cast<const float *>(row), x, n); }

} // namespace

float dot_f32(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float s = 0.0f;
#if defined(__AVX512F__)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    s = hsum(_mm512_add_ps(acc0, acc1));
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    s = hsum(acc);
#endif
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

RowDotFn row_dot_kernel(GgmlType type) {
    switch (type) {
    case GgmlType::F32: return dot_f32_row;
    case GgmlType::F16: return dot_f16;
    case GgmlType::Q8_0: return dot_q8_0;
    case GgmlType::Q4_0: return dot_q4_0;
    default: return nullptr;
    }
}

} // namespace muse::cpu
