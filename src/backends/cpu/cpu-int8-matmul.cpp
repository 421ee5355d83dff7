#include "backends/cpu/cpu-int8-matmul.h"

#include "backends/cpu/cpu-amx-tiles.h"
#include "backends/cpu/cpu-int8-layout.h"
#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "core/dequant.h"
#include "core/ggml-types.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <unistd.h>
#include <vector>

#if defined(MUSE_HAVE_AVX512) && defined(__AVX512VNNI__)
#define MUSE_HAVE_AVX512_VNNI 1
#endif
#if defined(MUSE_HAVE_AVX512_VNNI) && defined(__AMX_TILE__) && defined(__AMX_INT8__)
#define MUSE_HAVE_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#endif

namespace muse::cpu {

namespace {

using namespace packed;

constexpr int32_t weight_offset(GgmlType t) { return t == GgmlType::Q4_0 ? 8 : 128; }

inline float f16_round(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

inline uint16_t read_u16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return h;
}

// ---- activation quantization

void quantize_block_scalar(const float *x, int8_t *q, float *d, int32_t *s) {
    float amax = 0.0f;
    for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float dd = amax / 127.0f;
    const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    int32_t sum = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
        // Finite activations give |x * id| <= 127; a NaN or infinite one (a diverged model)
        // becomes 0 here rather than an undefined conversion (the VNNI path's value differs).
        const float f = x[j] * id;
        const auto v = f >= -127.5f && f <= 127.5f ? static_cast<int32_t>(std::nearbyint(f)) : 0;
        q[j] = static_cast<int8_t>(v);
        sum += v;
    }
    *d = f16_round(dd);
    *s = sum;
}

#if defined(MUSE_HAVE_AVX512_VNNI)
void quantize_block_avx512(const float *x, int8_t *q, float *d, int32_t *s) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const __m512 amax_v = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1));
    const float amax = _mm512_reduce_max_ps(amax_v);  // a max: exact in any order
    const float dd = amax / 127.0f;
    const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    const __m512 idv = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(x0, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(x1, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(q), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(q + 16), _mm512_cvtepi32_epi8(q1));
    *d = _cvtsh_ss(_cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT));  // f16_round by F16C: the same bits
    *s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
}
#endif

// ---- the dot kernels: one group of 16 rows against NT tokens

struct Operands {
    const uint8_t *group;  // the group's first block
    int64_t nb;            // blocks per row
    // Token 0's quantized activations, in either layout (Int8Layout): block b of token t at
    // q + t * q_tok + b * q_blk, its scale and sum at d / s [t * ds_tok + b * ds_blk].
    const int8_t *q;
    const float *d;
    const int32_t *s;
    int64_t q_tok, q_blk, ds_tok, ds_blk;
    int rows;              // valid rows of the group (16 but for the last one)
    float *y;              // row 0 of the group, token 0
    int64_t ldy;

    const int8_t *qx(int64_t t, int64_t b) const { return q + t * q_tok + b * q_blk; }
    float dx(int64_t t, int64_t b) const { return d[t * ds_tok + b * ds_blk]; }
    int32_t sx(int64_t t, int64_t b) const { return s[t * ds_tok + b * ds_blk]; }
};

// The unsigned weight of row r, element e (0..31) of a packed group block.
inline int32_t packed_weight(GgmlType type, const uint8_t *blk, int r, int e) {
    if (type == GgmlType::Q4_0) {
        const uint8_t b = blk[kScaleBytes + 64 * ((e % 16) / 4) + 4 * r + e % 4];
        return e < 16 ? (b & 0x0F) : (b >> 4);
    }
    return blk[kScaleBytes + 64 * (e / 4) + 4 * r + e % 4];
}

void group_scalar(GgmlType type, const Operands &o, int nt) {
    const size_t block_bytes = group_block_bytes(type);
    const int32_t offset = weight_offset(type);
    for (int r = 0; r < o.rows; ++r)
        for (int t = 0; t < nt; ++t) {
            float acc = 0.0f;
            for (int64_t b = 0; b < o.nb; ++b) {
                const uint8_t *blk = o.group + static_cast<size_t>(b) * block_bytes;
                const int8_t *qx = o.qx(t, b);
                int32_t isum = 0;
                for (int e = 0; e < kBlock; ++e) isum += packed_weight(type, blk, r, e) * qx[e];
                isum -= offset * o.sx(t, b);
                const float scale = fp16_to_fp32(read_u16(blk + 2 * r)) * o.dx(t, b);
                acc = std::fma(static_cast<float>(isum), scale, acc);
            }
            o.y[r + t * o.ldy] = acc;
        }
}

#if defined(MUSE_HAVE_AVX512_VNNI)
// A decode step streams every weight once, and the hardware prefetchers, which stop at each
// 4 KB page, leave the memory bus idle between pages: the kernels ask for the bytes 32 KB
// ahead into L2 as they go, one line per 64-byte chunk they read (the groups of a share lie
// back to back; a prefetch past the end does not fault). One prefetch per chunk, among the
// chunk's work: a burst of a whole block's lines at once left the Q4_K kernel 20% slower on
// some builds (decode tg64, 2 threads, Muse Glimmer slice Q4_K 29 vs 35-36 t/s). Q8_0: 0.5B
// 39 -> 45-49 t/s, Glimmer 19.1 -> 21-23; 8 / 16 KB ahead gained about half as much,
// 70-140 KB the same.
constexpr size_t kStreamAhead = size_t(32) << 10;
inline void prefetch_ahead(const uint8_t *p) { _mm_prefetch(reinterpret_cast<const char *>(p + kStreamAhead), _MM_HINT_T1); }
// The lines of [p, p + bytes) ahead, for bytes no chunk load covers (K-quant scales, the
// AMX path's packed tiles).
inline void stream_ahead(const uint8_t *p, size_t bytes) {
    for (size_t l = 0; l < bytes; l += 64) prefetch_ahead(p + l);
}

inline __m512i dot4(__m512i acc, __m512i w, const int8_t *x) {
    int32_t x4;
    std::memcpy(&x4, x, 4);
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(x4));
}

// Block b of one group into acc (NT tokens).
template <GgmlType T, int NT>
inline void group_vnni_step(const Operands &o, int64_t b, __m512 *acc) {
    constexpr size_t block_bytes = group_block_bytes(T);
    constexpr int32_t offset = weight_offset(T);
    const uint8_t *blk = o.group + static_cast<size_t>(b) * block_bytes;
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    if constexpr (T == GgmlType::Q4_0) {
        const __m512i low = _mm512_set1_epi8(0x0F);
        for (int k = 0; k < 4; ++k) {
            prefetch_ahead(blk + kScaleBytes + 64 * k);
            const __m512i raw = _mm512_loadu_si512(blk + kScaleBytes + 64 * k);
            const __m512i lo = _mm512_and_si512(raw, low), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
            for (int t = 0; t < NT; ++t) {
                const int8_t *x = o.qx(t, b);
                isum[t] = dot4(dot4(isum[t], lo, x + 4 * k), hi, x + 16 + 4 * k);
            }
        }
    } else {
        for (int k = 0; k < 8; ++k) {
            prefetch_ahead(blk + kScaleBytes + 64 * k);
            const __m512i w = _mm512_loadu_si512(blk + kScaleBytes + 64 * k);
            for (int t = 0; t < NT; ++t) isum[t] = dot4(isum[t], w, o.qx(t, b) + 4 * k);
        }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk)));
    for (int t = 0; t < NT; ++t) {
        const __m512i exact = _mm512_sub_epi32(isum[t], _mm512_set1_epi32(offset * o.sx(t, b)));
        const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(o.dx(t, b)));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, acc[t]);
    }
}

// One group: its steps in order (blocks, or super-blocks of the K-quants), then the stores.
template <int NT, class Step>
void group_steps(const Operands &o, int64_t n_steps, Step step) {
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t u = 0; u < n_steps; ++u) step(o, u, acc);
    const __mmask16 keep = static_cast<__mmask16>((1u << o.rows) - 1u);
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(o.y + t * o.ldy, keep, acc[t]);
}

// One token against kStreams groups at once, step by step: each group is its own stream of
// weights from a different part of the thread's share. The hardware prefetchers follow
// several streams at a time, and one stream leaves the memory bus idle part of the time: a
// read probe on the 2-core Xeon moved 25-27 GB/s from one stream per thread (with the
// software prefetch the kernels use) and 35 GB/s from eight. Decode tg64, 2 threads, median of
// 3 interleaved runs per variant: Muse Glimmer slice Q8_0 21.0 t/s with one stream, 21.1 / 23.4
// / 23.6 / 21.7 / 21.9 with 2 / 3 / 4 / 5 / 6 streams, 22.2 with 8; the 0.5B shape 47.7 with
// one, 53.4 with 4; K-quants (super-block steps) 0.5B Q4_K 90.2 -> 95.6, the Glimmer slice's
// Q4_K unchanged at 40. Each group's float steps are group_steps', in the same order: the bits
// do not change.
constexpr int kStreams = 4;

template <class Step>
void groups_streamed(const Operands *o, int64_t n_steps, Step step) {
    __m512 acc[kStreams];
    for (auto &a : acc) a = _mm512_setzero_ps();
    for (int64_t u = 0; u < n_steps; ++u)
        for (int s = 0; s < kStreams; ++s) step(o[s], u, &acc[s]);
    for (int s = 0; s < kStreams; ++s)
        _mm512_mask_storeu_ps(o[s].y, static_cast<__mmask16>((1u << o[s].rows) - 1u), acc[s]);
}

// Calls f(std::integral_constant<int, N>) for N = nt tokens (1..8; more take 8).
template <class F>
void with_tile_tokens(int nt, F f) {
    switch (nt) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
    }
}
#endif

// ---- Q4_K

// The nibble of row r, element e (0..31) of sub-block j in a packed super-block.
inline int32_t q4k_weight(const uint8_t *sb, int r, int j, int e, bool five = false) {
    const uint8_t b = sb[kQ4KQuants + static_cast<size_t>(((j / 2) * 8 + e / 4) * 64 + 4 * r + e % 4)];
    const int32_t nibble = j % 2 ? b >> 4 : b & 0x0F;
    if (!five) return nibble;
    uint64_t mask;
    std::memcpy(&mask, sb + kQ5KHighBits + static_cast<size_t>(j * 8 + e / 4) * 8, 8);
    return nibble + 16 * static_cast<int32_t>((mask >> (4 * r + e % 4)) & 1);
}

template <bool kFive>
void q4k_group_scalar(const Operands &o, int nt) {
    const int64_t n_super = o.nb / 8;
    for (int r = 0; r < o.rows; ++r)
        for (int t = 0; t < nt; ++t) {
            float acc = 0.0f;
            for (int64_t u = 0; u < n_super; ++u) {
                const uint8_t *sb = o.group + static_cast<size_t>(u) * k4_group_bytes(kFive);
                const float d = fp16_to_fp32(read_u16(sb + 2 * r)), dmin = fp16_to_fp32(read_u16(sb + 32 + 2 * r));
                for (int j = 0; j < 8; ++j) {
                    const int64_t b = u * 8 + j;
                    const int8_t *qx = o.qx(t, b);
                    int32_t isum = 0;
                    for (int e = 0; e < kBlock; ++e) isum += q4k_weight(sb, r, j, e, kFive) * qx[e];
                    const float d1 = d * static_cast<float>(sb[kQ4KScales + 16 * j + r]);
                    const float m1 = dmin * static_cast<float>(sb[kQ4KMins + 16 * j + r]);
                    const float dx = o.dx(t, b);
                    acc = std::fma(static_cast<float>(isum), d1 * dx, acc);
                    acc = std::fma(-(m1 * dx), static_cast<float>(o.sx(t, b)), acc);
                }
            }
            o.y[r + t * o.ldy] = acc;
        }
}

#if defined(MUSE_HAVE_AVX512_VNNI)
// Super-block u of one group into acc (NT tokens).
template <bool kFive, int NT>
inline void q4k_group_vnni_step(const Operands &o, int64_t u, __m512 *acc) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    const uint8_t *sb = o.group + static_cast<size_t>(u) * k4_group_bytes(kFive);
    stream_ahead(sb, kQ4KQuants);  // the scales; the quants (and Q5_K's masks) chunk by chunk below
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb + 32)));
    for (int i = 0; i < 4; ++i) {
        __m512i lo_sum[NT], hi_sum[NT];
        for (int t = 0; t < NT; ++t) lo_sum[t] = hi_sum[t] = _mm512_setzero_si512();
        for (int k = 0; k < 8; ++k) {
            prefetch_ahead(sb + kQ4KQuants + static_cast<size_t>((i * 8 + k) * 64));
            const __m512i raw = _mm512_loadu_si512(sb + kQ4KQuants + static_cast<size_t>((i * 8 + k) * 64));
            __m512i lo = _mm512_and_si512(raw, low), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
            if constexpr (kFive) {
                if (k < 2) prefetch_ahead(sb + kQ5KHighBits + static_cast<size_t>(i * 128 + k * 64));
                uint64_t m_lo, m_hi;
                std::memcpy(&m_lo, sb + kQ5KHighBits + static_cast<size_t>((2 * i) * 8 + k) * 8, 8);
                std::memcpy(&m_hi, sb + kQ5KHighBits + static_cast<size_t>((2 * i + 1) * 8 + k) * 8, 8);
                const __m512i sixteen = _mm512_set1_epi8(16);
                lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(m_lo), lo, sixteen);
                hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(m_hi), hi, sixteen);
            }
            for (int t = 0; t < NT; ++t) {
                lo_sum[t] = dot4(lo_sum[t], lo, o.qx(t, u * 8 + 2 * i) + 4 * k);
                hi_sum[t] = dot4(hi_sum[t], hi, o.qx(t, u * 8 + 2 * i + 1) + 4 * k);
            }
        }
        for (int h = 0; h < 2; ++h) {
            const int j = 2 * i + h;
            const int64_t b = u * 8 + j;
            const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                _mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ4KScales + 16 * j))));
            const __m512 mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                _mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ4KMins + 16 * j))));
            const __m512 d1 = _mm512_mul_ps(d, sc), m1 = _mm512_mul_ps(dmin, mn);
            for (int t = 0; t < NT; ++t) {
                const __m512 dx = _mm512_set1_ps(o.dx(t, b));
                const __m512i isum = h ? hi_sum[t] : lo_sum[t];
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d1, dx), acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(m1, dx), _mm512_set1_ps(static_cast<float>(o.sx(t, b))),
                                          acc[t]);
            }
        }
    }
}
#endif


// ---- Q6_K

inline int32_t q6k_weight(const uint8_t *sb, int r, int e) {  // 0..63
    return sb[kQ6KQuants + static_cast<size_t>((e / 32) * 512 + ((e % 32) / 4) * 64 + 4 * r + e % 4)];
}

inline int32_t half_sum_scalar(const int8_t *x) {
    int32_t s = 0;
    for (int e = 0; e < 16; ++e) s += x[e];
    return s;
}

void q6k_group_scalar(const Operands &o, int nt) {
    const int64_t n_super = o.nb / 8;
    for (int r = 0; r < o.rows; ++r)
        for (int t = 0; t < nt; ++t) {
            float acc = 0.0f;
            for (int64_t u = 0; u < n_super; ++u) {
                const uint8_t *sb = o.group + static_cast<size_t>(u) * kQ6KGroupBytes;
                const float d = fp16_to_fp32(read_u16(sb + 2 * r));
                for (int j = 0; j < 8; ++j) {
                    const int64_t b = u * 8 + j;
                    const int8_t *qx = o.qx(t, b);
                    int32_t lo = 0, hi = 0;
                    for (int e = 0; e < 16; ++e) lo += q6k_weight(sb, r, 32 * j + e) * qx[e];
                    for (int e = 16; e < 32; ++e) hi += q6k_weight(sb, r, 32 * j + e) * qx[e];
                    const int32_t s_lo = half_sum_scalar(qx), s_hi = o.sx(t, b) - s_lo;
                    const auto *sc = reinterpret_cast<const int8_t *>(sb + kQ6KScales);
                    const float dx = o.dx(t, b);
                    const float d_lo = d * static_cast<float>(sc[16 * (2 * j) + r]);
                    const float d_hi = d * static_cast<float>(sc[16 * (2 * j + 1) + r]);
                    acc = std::fma(static_cast<float>(lo - 32 * s_lo), d_lo * dx, acc);
                    acc = std::fma(static_cast<float>(hi - 32 * s_hi), d_hi * dx, acc);
                }
            }
            o.y[r + t * o.ldy] = acc;
        }
}

#if defined(MUSE_HAVE_AVX512_VNNI)
// The sum of 16 signed bytes: |x + 128| summed by psadbw, less 16 * 128.
inline int32_t half_sum(const int8_t *x) {
    const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x)), _mm_set1_epi8(static_cast<char>(0x80)));
    const __m128i sad = _mm_sad_epu8(v, _mm_setzero_si128());
    return _mm_cvtsi128_si32(sad) + _mm_extract_epi32(sad, 2) - 16 * 128;
}

// Super-block u of one group into acc (NT tokens).
template <int NT>
inline void q6k_group_vnni_step(const Operands &o, int64_t u, __m512 *acc) {
    const uint8_t *sb = o.group + static_cast<size_t>(u) * kQ6KGroupBytes;
    stream_ahead(sb, kQ6KQuants);  // the scales; the quants chunk by chunk below
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb)));
    for (int j = 0; j < 8; ++j) {
        const int64_t b = u * 8 + j;
        __m512i lo[NT], hi[NT];
        for (int t = 0; t < NT; ++t) lo[t] = hi[t] = _mm512_setzero_si512();
        const uint8_t *qw = sb + kQ6KQuants + static_cast<size_t>(j) * 512;
        for (int k = 0; k < 4; ++k) {
            prefetch_ahead(qw + 64 * k);
            prefetch_ahead(qw + 64 * (k + 4));
            const __m512i w0 = _mm512_loadu_si512(qw + 64 * k), w1 = _mm512_loadu_si512(qw + 64 * (k + 4));
            for (int t = 0; t < NT; ++t) {
                const int8_t *x = o.qx(t, b);
                lo[t] = dot4(lo[t], w0, x + 4 * k);
                hi[t] = dot4(hi[t], w1, x + 16 + 4 * k);
            }
        }
        const __m512 d_lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                 _mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ6KScales + 32 * j)))));
        const __m512 d_hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                 _mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ6KScales + 32 * j + 16)))));
        for (int t = 0; t < NT; ++t) {
            const int8_t *x = o.qx(t, b);
            const int32_t s_lo = half_sum(x), s_hi = o.sx(t, b) - s_lo;
            const __m512 dx = _mm512_set1_ps(o.dx(t, b));
            const __m512i e_lo = _mm512_sub_epi32(lo[t], _mm512_set1_epi32(32 * s_lo));
            const __m512i e_hi = _mm512_sub_epi32(hi[t], _mm512_set1_epi32(32 * s_hi));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(e_lo), _mm512_mul_ps(d_lo, dx), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(e_hi), _mm512_mul_ps(d_hi, dx), acc[t]);
        }
    }
}

// Calls f(step, steps per group) with the type's step kernel for NT tokens (a block for Q8_0 /
// Q4_0, a super-block for the K-quants): group_steps runs it over one group,
// groups_streamed over kStreams.
template <int NT, class F>
void with_vnni_step(GgmlType type, int64_t nb, F f) {
    switch (type) {
    case GgmlType::Q8_0: f([](const Operands &o, int64_t b, __m512 *acc) { group_vnni_step<GgmlType::Q8_0, NT>(o, b, acc); }, nb); break;
    case GgmlType::Q4_0: f([](const Operands &o, int64_t b, __m512 *acc) { group_vnni_step<GgmlType::Q4_0, NT>(o, b, acc); }, nb); break;
    case GgmlType::Q4_K: f([](const Operands &o, int64_t u, __m512 *acc) { q4k_group_vnni_step<false, NT>(o, u, acc); }, nb / 8); break;
    case GgmlType::Q5_K: f([](const Operands &o, int64_t u, __m512 *acc) { q4k_group_vnni_step<true, NT>(o, u, acc); }, nb / 8); break;
    default: f([](const Operands &o, int64_t u, __m512 *acc) { q6k_group_vnni_step<NT>(o, u, acc); }, nb / 8); break;
    }
}
#endif

// ---- AMX: 16 tokens x 16 rows per tile multiply
//
// The packed group blocks keep VNNI's layout: 8 rows (chunks of 4 elements) of 64 bytes, 4
// bytes per output row, which is also the layout of an AMX B tile. Each group's weights are
// spread once per chunk into such tiles (signed, or Q4_K/Q5_K's unsigned nibbles), and the
// tokens' activation bytes are laid out as contiguous A tiles (16 tokens x 32 bytes). One
// tile multiply gives the 16 x 16 exact block sums, and the scale step is the VNNI kernel's,
// in the same order: the bits do not change.
#if defined(MUSE_HAVE_AMX)
constexpr size_t kTileBytes = 512;  // one B tile: 32 elements x 16 rows
// AMX pays from two tiles per call where the weights are spread into tiles (once per call;
// at decode sizes that extra pass over them costs more than the tiles save: matmul-bench,
// CPU time per pass, Q8_0, 4/8/16/32/64 tokens: 66/66/70/92/149 ms vs VNNI 47/56/76/117/220),
// from one (padded) 8-token tile where the tiles are read from the packed Q8_0 weights, and
// for a call's last partial tile from 8 tokens. Packed Q8_0 tiles serve calls of up to
// kAmxPackedMaxTiles tiles; larger ones spread (see BTiles).
constexpr int64_t kAmxMinTokens = 32, kAmxPackedMinTokens = 8, kAmxMinTileTokens = 8, kAmxPackedMaxTiles = 4;

// Tiles 0-3: C (16 tokens x 16 int32); 4-5: A (16 tokens x 32 bytes); 6-7: B (8 x 64
// bytes). The 2 x 2 kernel uses all eight; the single-tile one two sets of (C, A, B).
// (Tiles of 8 rows for 8-token calls measured no faster: matmul-bench, Q8_0, 8 tokens.)
constexpr TileConfig make_tile_config() {
    TileConfig c;
    for (int i = 0; i < 4; ++i) c.rows[i] = 16, c.colsb[i] = 64;
    for (int i = 4; i < 6; ++i) c.rows[i] = 16, c.colsb[i] = 32;
    for (int i = 6; i < 8; ++i) c.rows[i] = 8, c.colsb[i] = 64;
    return c;
}
constexpr TileConfig kTileConfig = make_tile_config();

void amx_configure() { _tile_loadconfig(&kTileConfig); }

// The B tiles of one group (block b's at b * kTileBytes), with the weights signed for
// Q8_0 and Q4_0 (TDPBSSD: no offset to take back out per token) and Q4_K's nibbles as they
// are (TDPBSUD: they are unsigned, and Q4_K's minimum is a separate term).
void amx_spread_group(GgmlType type, const Operands &o, uint8_t *tiles) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    const __m512i q4_offset = _mm512_set1_epi8(type == GgmlType::Q4_0 ? 8 : 0);
    auto spread = [&](const uint8_t *src, uint8_t *lo_dst, uint8_t *hi_dst, int chunks) {
        for (int k = 0; k < chunks; ++k) {
            const __m512i raw = _mm512_loadu_si512(src + 64 * k);
            const __m512i lo = _mm512_and_si512(raw, low), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
            _mm512_store_si512(lo_dst + 64 * k, _mm512_sub_epi8(lo, q4_offset));
            _mm512_store_si512(hi_dst + 64 * k, _mm512_sub_epi8(hi, q4_offset));
        }
    };
    if (type == GgmlType::Q8_0) {
        const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));  // stored + 128
        for (int64_t b = 0; b < o.nb; ++b) {
            const uint8_t *src = o.group + static_cast<size_t>(b) * kInt8GroupBlockBytes + kScaleBytes;
            uint8_t *t = tiles + static_cast<size_t>(b) * kTileBytes;
            for (int k = 0; k < 8; ++k)
                _mm512_store_si512(t + 64 * k, _mm512_xor_si512(_mm512_loadu_si512(src + 64 * k), flip));
        }
        return;
    }
    if (type == GgmlType::Q4_0) {
        // Low nibbles are elements 0..15 (B rows 0..3), high ones 16..31 (rows 4..7).
        for (int64_t b = 0; b < o.nb; ++b) {
            uint8_t *t = tiles + static_cast<size_t>(b) * kTileBytes;
            spread(o.group + static_cast<size_t>(b) * 288 + kScaleBytes, t, t + 256, 4);
        }
        return;
    }
    // Q4_K: pair i of a super-block holds sub-block 2i in its low nibbles, 2i + 1 in its high;
    // Q5_K adds 16 where its fifth-bit masks say.
    const bool five = type == GgmlType::Q5_K;
    for (int64_t u = 0; u < o.nb / 8; ++u) {
        const uint8_t *sb = o.group + static_cast<size_t>(u) * k4_group_bytes(five);
        for (int i = 0; i < 4; ++i) {
            uint8_t *t = tiles + static_cast<size_t>(u * 8 + 2 * i) * kTileBytes;
            spread(sb + kQ4KQuants + static_cast<size_t>(i) * 512, t, t + kTileBytes, 8);
            if (!five) continue;
            for (int h = 0; h < 2; ++h)
                for (int k = 0; k < 8; ++k) {
                    uint64_t m;
                    std::memcpy(&m, sb + kQ5KHighBits + static_cast<size_t>((2 * i + h) * 8 + k) * 8, 8);
                    uint8_t *row = t + h * kTileBytes + 64 * k;
                    const __m512i v = _mm512_load_si512(row);
                    _mm512_store_si512(row, _mm512_mask_add_epi8(v, _cvtu64_mask64(m), v, _mm512_set1_epi8(16)));
                }
        }
    }
}

// Where a kernel finds block b's B tile: in the group's spread tiles (512 bytes per block), or,
// for Q8_0, in the packed group itself (its 8 x 64 bytes after the block's scales: unsigned,
// the offset taken back out per token as in the VNNI kernel). Spreading costs a pass over the
// weights per call but gives aligned, signed tiles; reading the packed bytes costs a
// subtraction per product row and unaligned tile loads. The first pays when many token
// tiles share each group (prompts), the second when few do (batched decoding).
enum class BTiles { spread, packed };

template <GgmlType T, BTiles kB>
inline const uint8_t *amx_b_tile(const uint8_t *tiles, int64_t b) {
    if constexpr (kB == BTiles::packed) return tiles + static_cast<size_t>(b) * kInt8GroupBlockBytes + kScaleBytes;
    else return tiles + static_cast<size_t>(b) * kTileBytes;
}

// C += A . B: TDPBSUD where the B bytes are unsigned (Q4_K/Q5_K nibbles, packed Q8_0),
// TDPBSSD where the spread made them signed.
#define MUSE_AMX_DOT(T, kB, c, a, b)                                                                                   \
    do {                                                                                                               \
        if constexpr (is_k4(T) || kB == BTiles::packed) _tile_dpbsud(c, a, b);                                          \
        else _tile_dpbssd(c, a, b);                                                                                    \
    } while (0)

// One 16-token tile of activations in the tiles layout (Int8Layout): per block, the 16
// tokens' 32 bytes (one A tile, 512 contiguous bytes: a tile load streams it instead of
// gathering 16 rows n_in apart), and their 16 scales and 16 block sums.
struct AmxPanel {
    const int8_t *a;   // block b at a + 512 b
    const float *d;    // block b, token t at d[16 b + t]
    const int32_t *s;
};

// Adds block b's products (16 x 16 int32 at c, token-major; the first NT tokens) into acc,
// as group_vnni_step and q4k_group_vnni_step scale them.
template <GgmlType T, BTiles kB, int NT = 16>
inline void amx_scale_block(const Operands &o, const AmxPanel &p, const int32_t *c, int64_t b, __m512 *acc) {
    const float *dx = p.d + 16 * b;
    const int32_t *sx = p.s + 16 * b;
    if constexpr (is_k4(T)) {
        const int64_t u = b / 8;
        const int j = static_cast<int>(b % 8);
        const uint8_t *sb = o.group + static_cast<size_t>(u) * k4_group_bytes(T == GgmlType::Q5_K);
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb + 32)));
        const __m512 sc = _mm512_cvtepi32_ps(
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ4KScales + 16 * j))));
        const __m512 mn = _mm512_cvtepi32_ps(
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ4KMins + 16 * j))));
        const __m512 d1 = _mm512_mul_ps(d, sc), m1 = _mm512_mul_ps(dmin, mn);
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
            const __m512 dxv = _mm512_set1_ps(dx[t]);
            const __m512i isum = _mm512_load_si512(c + 16 * t);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d1, dxv), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(m1, dxv), _mm512_set1_ps(static_cast<float>(sx[t])), acc[t]);
        }
    } else {
        const uint8_t *blk = o.group + static_cast<size_t>(b) * group_block_bytes(T);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk)));
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
            const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(dx[t]));
            __m512i isum = _mm512_load_si512(c + 16 * t);
            if constexpr (kB == BTiles::packed) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(128 * sx[t]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[t]);
        }
    }
}

// Tile loads straight from the packed weights do not draw the hardware prefetchers along:
// fetch a few blocks ahead into L1, and the stream further ahead into L2 as the VNNI
// kernels do (prefetches past the group's end do not fault).
template <BTiles kB>
inline void amx_prefetch_b(const uint8_t *tiles, int64_t b) {
    if constexpr (kB == BTiles::packed) {
        const uint8_t *next = tiles + static_cast<size_t>(b + 4) * kInt8GroupBlockBytes;
        for (int l = 0; l < 9; ++l) _mm_prefetch(reinterpret_cast<const char *>(next + 64 * l), _MM_HINT_T0);
        stream_ahead(tiles + static_cast<size_t>(b) * kInt8GroupBlockBytes, kInt8GroupBlockBytes);
    }
}

// One group against the first NT (8 or 16) tokens of a panel (the last, partial tile of a
// call, a group without a partner, or the single tile of a batched decoding step). The tile registers are not renamed: a C tile's next block waits for
// its store, so two sets alternate.
template <GgmlType T, BTiles kB, int NT>
void group_amx(const Operands &o, const AmxPanel &p, const uint8_t *tiles, int valid) {
    alignas(64) int32_t c0[256], c1[256];
    __m512 acc[NT];
    for (auto &a : acc) a = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= o.nb; b += 2) {
        amx_prefetch_b<kB>(tiles, b);
        amx_prefetch_b<kB>(tiles, b + 1);
        _tile_zero(0);
        _tile_zero(1);
        _tile_loadd(4, p.a + b * 512, kBlock);
        _tile_loadd(6, (amx_b_tile<T, kB>(tiles, b)), 64);
        _tile_loadd(5, p.a + (b + 1) * 512, kBlock);
        _tile_loadd(7, (amx_b_tile<T, kB>(tiles, b + 1)), 64);
        MUSE_AMX_DOT(T, kB, 0, 4, 6);
        MUSE_AMX_DOT(T, kB, 1, 5, 7);
        _tile_stored(0, c0, 64);
        _tile_stored(1, c1, 64);
        amx_scale_block<T, kB, NT>(o, p, c0, b, acc);
        amx_scale_block<T, kB, NT>(o, p, c1, b + 1, acc);
    }
    if (b < o.nb) {
        _tile_zero(0);
        _tile_loadd(4, p.a + b * 512, kBlock);
        _tile_loadd(6, (amx_b_tile<T, kB>(tiles, b)), 64);
        MUSE_AMX_DOT(T, kB, 0, 4, 6);
        _tile_stored(0, c0, 64);
        amx_scale_block<T, kB, NT>(o, p, c0, b, acc);
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << o.rows) - 1u);
    for (int t = 0; t < valid; ++t) _mm512_mask_storeu_ps(o.y + t * o.ldy, keep, acc[t]);
}

// Two groups against two 16-token panels: four independent C tiles per block, each A and
// B tile loaded once for two products. The accumulators (4 x 16 x 16 floats) live in L1.
// Software pipelined: block b's products leave the tiles, block b + 1's multiplies are
// issued, and only then are block b's products scaled (from the other half of c), so the
// tile unit and the vector units work at the same time.
template <GgmlType T, BTiles kB>
void group_amx_2x2(const Operands &o0, const Operands &o1, const AmxPanel &p0, const AmxPanel &p1,
                   const uint8_t *tiles0, const uint8_t *tiles1, int64_t y_next_tile) {
    alignas(64) int32_t c[2][4][256];
    alignas(64) __m512 acc[4][16];
    for (auto &a : acc)
        for (auto &v : a) v = _mm512_setzero_ps();
    auto multiply = [&](int64_t b) {
        amx_prefetch_b<kB>(tiles0, b);
        amx_prefetch_b<kB>(tiles1, b);
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        _tile_loadd(4, p0.a + b * 512, kBlock);
        _tile_loadd(5, p1.a + b * 512, kBlock);
        _tile_loadd(6, (amx_b_tile<T, kB>(tiles0, b)), 64);
        _tile_loadd(7, (amx_b_tile<T, kB>(tiles1, b)), 64);
        MUSE_AMX_DOT(T, kB, 0, 4, 6);
        MUSE_AMX_DOT(T, kB, 1, 4, 7);
        MUSE_AMX_DOT(T, kB, 2, 5, 6);
        MUSE_AMX_DOT(T, kB, 3, 5, 7);
    };
    multiply(0);
    for (int64_t b = 0; b < o0.nb; ++b) {
        int32_t(*cb)[256] = c[b & 1];
        _tile_stored(0, cb[0], 64);
        _tile_stored(1, cb[1], 64);
        _tile_stored(2, cb[2], 64);
        _tile_stored(3, cb[3], 64);
        if (b + 1 < o0.nb) multiply(b + 1);
        amx_scale_block<T, kB>(o0, p0, cb[0], b, acc[0]);
        amx_scale_block<T, kB>(o1, p0, cb[1], b, acc[1]);
        amx_scale_block<T, kB>(o0, p1, cb[2], b, acc[2]);
        amx_scale_block<T, kB>(o1, p1, cb[3], b, acc[3]);
    }
    const Operands *os[2] = {&o0, &o1};
    for (int i = 0; i < 4; ++i) {
        const Operands &o = *os[i % 2];
        float *y = o.y + (i / 2) * y_next_tile;
        const __mmask16 keep = static_cast<__mmask16>((1u << o.rows) - 1u);
        for (int t = 0; t < 16; ++t) _mm512_mask_storeu_ps(y + t * o.ldy, keep, acc[i][t]);
    }
}

// Runtime type and B-tile source to the kernels' template arguments.
template <class F>
void with_amx_kernel(GgmlType type, bool packed_b, F f) {
    using Q8 = std::integral_constant<GgmlType, GgmlType::Q8_0>;
    using Spread = std::integral_constant<BTiles, BTiles::spread>;
    if (type == GgmlType::Q4_K) f(std::integral_constant<GgmlType, GgmlType::Q4_K>{}, Spread{});
    else if (type == GgmlType::Q5_K) f(std::integral_constant<GgmlType, GgmlType::Q5_K>{}, Spread{});
    else if (type == GgmlType::Q4_0) f(std::integral_constant<GgmlType, GgmlType::Q4_0>{}, Spread{});
    else if (packed_b) f(Q8{}, std::integral_constant<BTiles, BTiles::packed>{});
    else f(Q8{}, Spread{});
}
#endif

bool cpu_has_vnni() {
#if defined(MUSE_HAVE_AVX512_VNNI)
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
    }();
    return has;
#else
    return false;
#endif
}

// MUSE_INT8_MATMUL=0 keeps Q8_0 weights in the file's layout with F32 activations (the
// exact path; read once, when the first model loads).
bool int8_matmul_enabled() {
    static const bool enabled = [] {
        const char *env = std::getenv("MUSE_INT8_MATMUL");
        return !(env && std::strcmp(env, "0") == 0);
    }();
    return enabled;
}

// AMX-INT8 in the CPU and granted by the kernel (Linux hands out the tile state only on
// request, per process); MUSE_AMX=0 turns it off. Asked once.
bool cpu_has_amx() {
#if defined(MUSE_HAVE_AMX)
    static const bool has = [] {
        const char *env = std::getenv("MUSE_AMX");
        if (env && std::strcmp(env, "0") == 0) return false;
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
        constexpr unsigned kAmxTile = 1u << 24, kAmxInt8 = 1u << 25;
        if ((d & (kAmxTile | kAmxInt8)) != (kAmxTile | kAmxInt8)) return false;
        constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return has;
#else
    return false;
#endif
}

std::atomic<bool> &amx_switch() {
    static std::atomic<bool> on{true};
    return on;
}

} // namespace

bool int8_matmul_available() { return cpu_level() == CpuLevel::avx512 && cpu_has_vnni() && int8_matmul_enabled(); }

bool int8_amx_available() { return int8_matmul_available() && cpu_has_amx() && amx_switch().load(std::memory_order_relaxed); }

void int8_set_amx_enabled(bool on) { amx_switch().store(on, std::memory_order_relaxed); }

bool int8_packable(GgmlType type) {
    return type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_K || type == GgmlType::Q5_K ||
           type == GgmlType::Q6_K;
}

namespace {

// Q4_K (file rows: d, dmin, scales[12], qs[128]) and Q5_K (d, dmin, scales[12], qh[32], qs[128]).
void pack_k4(bool five, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst) {
    const int64_t n_super = n_in / 256;
    const size_t in_block = five ? 176 : 144, qs_at = five ? 48 : 16, group_bytes = k4_group_bytes(five);
    const size_t row_bytes = static_cast<size_t>(n_super) * in_block;
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t *out = dst + static_cast<size_t>(g * n_super) * group_bytes;
        for (int64_t u = 0; u < n_super; ++u, out += group_bytes) {
            std::memset(out, 0, group_bytes);  // padding rows: d = dmin = 0
            for (int r = 0; r < kInt8Rows; ++r) {
                const int64_t row = g * kInt8Rows + r;
                if (row >= n_out) continue;
                const uint8_t *b = src + row_bytes * static_cast<size_t>(row) + static_cast<size_t>(u) * in_block;
                std::memcpy(out + 2 * r, b, 2);
                std::memcpy(out + 32 + 2 * r, b + 2, 2);
                for (int j = 0; j < 8; ++j) scale_min_k4(j, b + 4, out + kQ4KScales + 16 * j + r, out + kQ4KMins + 16 * j + r);
                for (int i = 0; i < 4; ++i)
                    for (int k = 0; k < 8; ++k)
                        std::memcpy(out + kQ4KQuants + static_cast<size_t>((i * 8 + k) * 64 + 4 * r),
                                    b + qs_at + 32 * i + 4 * k, 4);
                if (!five) continue;
                // Element l of sub-block j has its fifth bit in bit j of qh[l] (deq_q5_k).
                const uint8_t *qh = b + 16;
                for (int j = 0; j < 8; ++j)
                    for (int l = 0; l < 32; ++l)
                        if ((qh[l] >> j) & 1) {
                            uint8_t *mask = out + kQ5KHighBits + static_cast<size_t>(j * 8 + l / 4) * 8;
                            const int bit = 4 * r + l % 4;
                            mask[bit / 8] = static_cast<uint8_t>(mask[bit / 8] | (1u << (bit % 8)));
                        }
            }
        }
    }
}

void unpack_k4_row(bool five, const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    const int64_t n_super = n_in / 256;
    const int lane = static_cast<int>(r % kInt8Rows);
    const size_t group_bytes = k4_group_bytes(five);
    const uint8_t *sb = packed + static_cast<size_t>((r / kInt8Rows) * n_super) * group_bytes;
    for (int64_t u = 0; u < n_super; ++u, sb += group_bytes) {
        const float d = fp16_to_fp32(read_u16(sb + 2 * lane)), dmin = fp16_to_fp32(read_u16(sb + 32 + 2 * lane));
        for (int j = 0; j < 8; ++j) {
            const float d1 = d * static_cast<float>(sb[kQ4KScales + 16 * j + lane]);
            const float m1 = dmin * static_cast<float>(sb[kQ4KMins + 16 * j + lane]);
            for (int e = 0; e < kBlock; ++e)
                *out++ = d1 * static_cast<float>(q4k_weight(sb, lane, j, e, five)) - m1;
        }
    }
}

void pack_q6_k(const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst) {
    const int64_t n_super = n_in / 256;
    const size_t row_bytes = static_cast<size_t>(n_super) * 210;
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t *out = dst + static_cast<size_t>(g * n_super) * kQ6KGroupBytes;
        for (int64_t u = 0; u < n_super; ++u, out += kQ6KGroupBytes) {
            std::memset(out, 0, kQ6KGroupBytes);  // padding rows: d = 0
            for (int r = 0; r < kInt8Rows; ++r) {
                const int64_t row = g * kInt8Rows + r;
                if (row >= n_out) continue;
                const uint8_t *b = src + row_bytes * static_cast<size_t>(row) + static_cast<size_t>(u) * 210;
                const uint8_t *ql = b, *qh = b + 128, *sc = b + 192;
                std::memcpy(out + 2 * r, b + 208, 2);
                for (int j = 0; j < 16; ++j) out[kQ6KScales + 16 * j + r] = sc[j];
                // The file's order (core/dequant.cpp deq_q6_k): per half of 128, element l of
                // each quarter takes a nibble of ql and two bits of qh.
                for (int e = 0; e < 256; ++e) {
                    const int n = e / 128, l = e % 128, quarter = l / 32, i = l % 32;
                    const uint8_t lbyte = ql[64 * n + i + (quarter % 2) * 32];
                    const int low = quarter < 2 ? (lbyte & 0xF) : (lbyte >> 4);
                    const int high = (qh[32 * n + i] >> (2 * quarter)) & 3;
                    out[kQ6KQuants + static_cast<size_t>((e / 32) * 512 + ((e % 32) / 4) * 64 + 4 * r + e % 4)] =
                        static_cast<uint8_t>(low | (high << 4));
                }
            }
        }
    }
}

void unpack_q6_k_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    const int64_t n_super = n_in / 256;
    const int lane = static_cast<int>(r % kInt8Rows);
    const uint8_t *sb = packed + static_cast<size_t>((r / kInt8Rows) * n_super) * kQ6KGroupBytes;
    for (int64_t u = 0; u < n_super; ++u, sb += kQ6KGroupBytes) {
        const float d = fp16_to_fp32(read_u16(sb + 2 * lane));
        const auto *sc = reinterpret_cast<const int8_t *>(sb + kQ6KScales);
        for (int e = 0; e < 256; ++e)
            *out++ = d * static_cast<float>(sc[16 * (e / 16) + lane]) * static_cast<float>(q6k_weight(sb, lane, e) - 32);
    }
}

} // namespace

size_t int8_packed_bytes(GgmlType type, int64_t n_in, int64_t n_out) {
    const int64_t groups = (n_out + kInt8Rows - 1) / kInt8Rows;
    return static_cast<size_t>(groups) * static_cast<size_t>(n_in / kBlock) * group_block_bytes(type);
}

void int8_pack(GgmlType type, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst) {
    if (is_k4(type)) {
        pack_k4(type == GgmlType::Q5_K, src, n_in, n_out, g0, g1, dst);
        return;
    }
    if (type == GgmlType::Q6_K) {
        pack_q6_k(src, n_in, n_out, g0, g1, dst);
        return;
    }
    const int64_t nb = n_in / kBlock;
    const size_t in_block = type_traits(type).type_size, block_bytes = group_block_bytes(type);
    const size_t row_bytes = static_cast<size_t>(nb) * in_block;
    const bool q4 = type == GgmlType::Q4_0;
    const int chunks = q4 ? 4 : 8;
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t *out = dst + static_cast<size_t>(g * nb) * block_bytes;
        for (int64_t b = 0; b < nb; ++b, out += block_bytes) {
            std::memset(out, 0, block_bytes);
            for (int r = 0; r < kInt8Rows; ++r) {
                const int64_t row = g * kInt8Rows + r;
                if (row >= n_out) {  // padding rows: scale 0, weights 0 (stored + offset)
                    for (int k = 0; k < chunks; ++k) std::memset(out + kScaleBytes + 64 * k + 4 * r, q4 ? 0x88 : 0x80, 4);
                    continue;
                }
                const uint8_t *blk = src + row_bytes * static_cast<size_t>(row) + static_cast<size_t>(b) * in_block;
                std::memcpy(out + 2 * r, blk, 2);
                for (int k = 0; k < chunks; ++k)
                    for (int j = 0; j < 4; ++j) {
                        const uint8_t v = blk[2 + 4 * k + j];
                        out[kScaleBytes + 64 * k + 4 * r + j] = q4 ? v : static_cast<uint8_t>(v ^ 0x80);
                    }
            }
        }
    }
}

void int8_unpack_row(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    if (is_k4(type)) {
        unpack_k4_row(type == GgmlType::Q5_K, packed, n_in, r, out);
        return;
    }
    if (type == GgmlType::Q6_K) {
        unpack_q6_k_row(packed, n_in, r, out);
        return;
    }
    const int64_t nb = n_in / kBlock;
    const size_t block_bytes = group_block_bytes(type);
    const int32_t offset = weight_offset(type);
    const int64_t g = r / kInt8Rows;
    const int lane = static_cast<int>(r % kInt8Rows);
    const uint8_t *blk = packed + static_cast<size_t>(g * nb) * block_bytes;
    for (int64_t b = 0; b < nb; ++b, blk += block_bytes) {
        const float d = fp16_to_fp32(read_u16(blk + 2 * lane));
        for (int e = 0; e < kBlock; ++e)
            out[b * kBlock + e] = static_cast<float>(packed_weight(type, blk, lane, e) - offset) * d;
    }
}

Int8Layout int8_layout(int64_t n_tok) {
#if defined(MUSE_HAVE_AMX)
    if (n_tok >= kAmxPackedMinTokens && int8_amx_available()) return Int8Layout::tiles;
#endif
    (void)n_tok;
    return Int8Layout::rows;
}

int64_t int8_padded_tokens(Int8Layout layout, int64_t n_tok) {
    return layout == Int8Layout::tiles ? (n_tok + 15) / 16 * 16 : n_tok;
}

void int8_quantize_rows(const float *x, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1, Int8Layout layout,
                        int8_t *q, float *d, int32_t *s) {
    const int64_t nb = n_in / kBlock;
    auto quantize = [&](auto &&block) {
        for (int64_t t = t0; t < t1; ++t) {
            int8_t *qt = q + t * n_in;
            float *dt = d + t * nb;
            int32_t *st = s + t * nb;
            int64_t q_blk = kBlock, ds_blk = 1;
            if (layout == Int8Layout::tiles) {
                const int64_t tile = t / 16, r = t % 16;
                qt = q + tile * 16 * n_in + r * kBlock;
                dt = d + tile * 16 * nb + r;
                st = s + tile * 16 * nb + r;
                q_blk = 16 * kBlock;
                ds_blk = 16;
            }
            for (int64_t b = 0; b < nb; ++b) {
                if (t < n_tok) {
                    block(x + t * n_in + b * kBlock, qt + b * q_blk, dt + b * ds_blk, st + b * ds_blk);
                } else {  // padding of the last tile: zero bytes and scales
                    std::memset(qt + b * q_blk, 0, kBlock);
                    dt[b * ds_blk] = 0.0f;
                    st[b * ds_blk] = 0;
                }
            }
        }
    };
#if defined(MUSE_HAVE_AVX512_VNNI)
    if (int8_matmul_available()) {
        quantize(quantize_block_avx512);
        return;
    }
#endif
    quantize(quantize_block_scalar);
}

// Activation bytes per AMX chunk of tokens. Every chunk spreads each group's weights into
// tiles once more, while every group re-reads the chunk's activations (from L2 when they
// fit, else from the L3): on a Xeon with AMX the spreading costs more than L3 reads
// (pp512 of the 0.5B shape in Q8_0 / Q4_K and of the Muse Glimmer slice in Q8_0 / Q4_K:
// +12 / +10 / +9 / +19% with whole-prompt chunks instead of 1 MB ones), so a chunk takes a
// share of the L3 (capped: the L3 is shared, and streaming a huge chunk from DRAM per group
// would lose what the spreading saves).
namespace {
int64_t amx_chunk_bytes() {
    static const int64_t bytes = [] {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        return std::clamp<int64_t>(l3 > 0 ? l3 / 4 : int64_t(8) << 20, int64_t(1) << 20, int64_t(16) << 20);
    }();
    return bytes;
}
}  // namespace

void int8_matmul(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1,
                 const Int8Activations &x, float *y, int64_t ldy) {
    const int64_t nb = n_in / kBlock, n_tok = x.n_tok;
    const size_t block_bytes = group_block_bytes(type);
    const bool tiled = x.layout == Int8Layout::tiles;
    // Tokens in chunks whose quantized rows stay in L2 while every group of the share
    // passes over them; within a chunk, tiles of 16 tokens (AMX) or up to 8 (VNNI) share
    // each weight load.
    const bool vnni = int8_matmul_available();
#if defined(MUSE_HAVE_AMX)
    // AMX reads the tiled layout only. Q6_K's scales change every 16 elements, half an AMX
    // tile's depth: VNNI only.
    const int64_t amx_min = type == GgmlType::Q8_0 ? kAmxPackedMinTokens : kAmxMinTokens;
    const bool amx = tiled && n_tok >= amx_min && type != GgmlType::Q6_K && int8_amx_available();
#else
    const bool amx = false;
#endif
    // AMX chunks are larger (see amx_chunk_bytes). Chunks start on whole tiles.
    const int64_t chunk_bytes = amx ? amx_chunk_bytes() : int64_t(256) << 10;
    const int64_t chunk = std::max<int64_t>(32, chunk_bytes / std::max<int64_t>(n_in, 1) / 32 * 32);
    auto operands = [&](int64_t g, int64_t t) {
        Operands o;
        o.group = packed + static_cast<size_t>(g * nb) * block_bytes;
        o.nb = nb;
        o.rows = static_cast<int>(std::min<int64_t>(kInt8Rows, n_out - g * kInt8Rows));
        o.ldy = ldy;
        if (tiled) {  // a VNNI call's tokens (at most 8, from a multiple of 8) lie in one tile
            const int64_t tile = t / 16, r = t % 16;
            o.q = x.q + tile * 16 * n_in + r * kBlock;
            o.d = x.d + tile * 16 * nb + r;
            o.s = x.s + tile * 16 * nb + r;
            o.q_tok = kBlock, o.q_blk = 16 * kBlock, o.ds_tok = 1, o.ds_blk = 16;
        } else {
            o.q = x.q + t * n_in;
            o.d = x.d + t * nb;
            o.s = x.s + t * nb;
            o.q_tok = n_in, o.q_blk = kBlock, o.ds_tok = nb, o.ds_blk = 1;
        }
        o.y = y + g * kInt8Rows + t * ldy;
        return o;
    };
#if defined(MUSE_HAVE_AMX)
    struct alignas(64) Line {
        uint8_t bytes[64];
    };
    // Per thread: the spread B tiles of two groups.
    thread_local std::vector<Line> tile_store;
    const size_t group_lines = static_cast<size_t>(nb) * kTileBytes / 64;
    if (amx) {
        amx_configure();
        if (tile_store.size() < 2 * group_lines) tile_store.resize(2 * group_lines);
    }
    uint8_t *tiles[2] = {reinterpret_cast<uint8_t *>(tile_store.data()),
                         reinterpret_cast<uint8_t *>(tile_store.data()) + group_lines * 64};
    auto panel = [&](int64_t tile) {  // tile: from token 0
        return AmxPanel{x.q + tile * 16 * n_in, x.d + tile * 16 * nb, x.s + tile * 16 * nb};
    };
#endif
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
        const int64_t t1 = std::min(n_tok, t0 + chunk);
        int64_t t_vnni = t0;  // tokens from here on take the VNNI kernel
#if defined(MUSE_HAVE_AMX)
        if (amx && t1 - t0 >= amx_min) {
            const int64_t n_full = (t1 - t0) / 16, rest = (t1 - t0) % 16;
            const int64_t n_tiles = n_full + (rest >= kAmxMinTileTokens ? 1 : 0);
            const bool packed_b = type == GgmlType::Q8_0 && n_tiles <= kAmxPackedMaxTiles;
            with_amx_kernel(type, packed_b, [&](auto type_c, auto b_c) {
                constexpr GgmlType T = decltype(type_c)::value;
                constexpr BTiles kB = decltype(b_c)::value;
                for (int64_t g = g0; g < g1; g += 2) {
                    const bool pair = g + 1 < g1;
                    const uint8_t *b_tiles[2] = {tiles[0], tiles[1]};
                    for (int j = 0; j < (pair ? 2 : 1); ++j) {
                        if constexpr (kB == BTiles::packed) b_tiles[j] = operands(g + j, t0).group;
                        else amx_spread_group(type, operands(g + j, t0), tiles[j]);
                    }
                    int64_t tile = 0;
                    if (pair)
                        for (; tile + 2 <= n_full; tile += 2)
                            group_amx_2x2<T, kB>(operands(g, t0 + 16 * tile), operands(g + 1, t0 + 16 * tile),
                                                 panel(t0 / 16 + tile), panel(t0 / 16 + tile + 1), b_tiles[0],
                                                 b_tiles[1], 16 * ldy);
                    for (; tile < n_tiles; ++tile) {
                        const int valid = static_cast<int>(std::min<int64_t>(16, t1 - t0 - 16 * tile));
                        for (int j = 0; j < (pair ? 2 : 1); ++j) {
                            const Operands o = operands(g + j, t0 + 16 * tile);
                            if (valid <= 8) group_amx<T, kB, 8>(o, panel(t0 / 16 + tile), b_tiles[j], valid);
                            else group_amx<T, kB, 16>(o, panel(t0 / 16 + tile), b_tiles[j], valid);
                        }
                    }
                }
            });
            t_vnni = std::min(t1, t0 + 16 * n_tiles);
        }
#endif
#if defined(MUSE_HAVE_AVX512_VNNI)
        // One token (a decode step): the share as kStreams streams of groups, a quarter apart.
        if (vnni && t1 - t_vnni == 1) {
            const int64_t len = (g1 - g0 + kStreams - 1) / kStreams;
            for (int64_t i = 0; i < len; ++i) {
                Operands os[kStreams];
                int m = 0;
                for (int s = 0; s < kStreams; ++s)
                    if (g0 + s * len + i < g1) os[m++] = operands(g0 + s * len + i, t_vnni);
                with_vnni_step<1>(type, nb, [&](auto step, int64_t n_steps) {
                    if (m == kStreams) groups_streamed(os, n_steps, step);
                    else
                        for (int j = 0; j < m; ++j) group_steps<1>(os[j], n_steps, step);
                });
            }
            continue;
        }
#endif
        for (int64_t g = g0; g < g1; ++g)
            for (int64_t t = t_vnni; t < t1; t += 8) {
                const int nt = static_cast<int>(std::min<int64_t>(8, t1 - t));
                const Operands o = operands(g, t);
#if defined(MUSE_HAVE_AVX512_VNNI)
                if (vnni) {
                    with_tile_tokens(nt, [&](auto n) {
                        with_vnni_step<decltype(n)::value>(
                            type, nb, [&](auto step, int64_t n_steps) { group_steps<decltype(n)::value>(o, n_steps, step); });
                    });
                    continue;
                }
#endif
                if (type == GgmlType::Q6_K) q6k_group_scalar(o, nt);
                else if (type == GgmlType::Q4_K) q4k_group_scalar<false>(o, nt);
                else if (type == GgmlType::Q5_K) q4k_group_scalar<true>(o, nt);
                else group_scalar(type, o, nt);
            }
    }
#if defined(MUSE_HAVE_AMX)
    if (amx) _tile_release();  // the next user of the tiles (another library) starts clean
#endif
}

} // namespace muse::cpu
