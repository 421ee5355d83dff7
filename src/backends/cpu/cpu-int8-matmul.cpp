#include "backends/cpu/cpu-int8-matmul.h"

#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "core/dequant.h"
#include "core/ggml-types.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(MUSE_HAVE_AVX512) && defined(__AVX512VNNI__)
#define MUSE_HAVE_AVX512_VNNI 1
#endif

namespace muse::cpu {

namespace {

constexpr int64_t kBlock = 32;
constexpr size_t kScaleBytes = 32;  // 16 F16 scales at the head of a group block

// Q8_0 keeps one byte per weight (8 chunks of 4 per row and block, stored + 128); Q4_0
// keeps its nibbles as the file has them (4 chunks of 4 bytes per row and block: the low
// nibbles are elements 4k..4k+3, the high ones 16+4k..16+4k+3, stored + 8).
// Q4_K (super-blocks of 256 = 8 sub-blocks of 32) is packed per super-block, 2368 bytes for
// 16 rows (the rows' 2304 plus their scales unpacked from 6 bits to bytes):
//   16 F16 d, 16 F16 dmin, sc[j][r] (8 x 16 bytes), m[j][r] (8 x 16 bytes), then for each
//   pair i of sub-blocks (2i, 2i + 1), chunk k = 0..7, row r: the file's qs[32 i + 4 k ..
//   + 4) (low nibbles: sub-block 2i, high: 2i + 1, elements 4k..4k+3 of each; q unsigned).
// A weight is d sc q - dmin m (core/dequant.cpp); per sub-block the kernel adds
// (d sc) dx (q . qx) and subtracts (dmin m) dx (sum qx).
constexpr size_t kQ4KGroupBytes = 2368;
constexpr size_t kQ4KScales = 64, kQ4KMins = 64 + 128, kQ4KQuants = 64 + 256;

constexpr size_t group_block_bytes(GgmlType t) {  // per 32 elements of 16 rows
    return t == GgmlType::Q4_0 ? 288 : t == GgmlType::Q4_K ? kQ4KGroupBytes / 8 : kInt8GroupBlockBytes;
}
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
    *d = f16_round(dd);
    *s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
}
#endif

// ---- the dot kernels: one group of 16 rows against NT tokens

struct Operands {
    const uint8_t *group;  // the group's first block
    int64_t nb;            // blocks per row
    const int8_t *q;       // token 0's quantized row; token t at q + t * n_in
    const float *d;        // token 0's block scales; token t at d + t * nb
    const int32_t *s;
    int64_t n_in;
    int rows;              // valid rows of the group (16 but for the last one)
    float *y;              // row 0 of the group, token 0
    int64_t ldy;
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
                const int8_t *qx = o.q + t * o.n_in + b * kBlock;
                int32_t isum = 0;
                for (int e = 0; e < kBlock; ++e) isum += packed_weight(type, blk, r, e) * qx[e];
                isum -= offset * o.s[t * o.nb + b];
                const float scale = fp16_to_fp32(read_u16(blk + 2 * r)) * o.d[t * o.nb + b];
                acc = std::fma(static_cast<float>(isum), scale, acc);
            }
            o.y[r + t * o.ldy] = acc;
        }
}

#if defined(MUSE_HAVE_AVX512_VNNI)
inline __m512i dot4(__m512i acc, __m512i w, const int8_t *x) {
    int32_t x4;
    std::memcpy(&x4, x, 4);
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(x4));
}

template <GgmlType T, int NT>
void group_vnni(const Operands &o) {
    constexpr size_t block_bytes = group_block_bytes(T);
    constexpr int32_t offset = weight_offset(T);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < o.nb; ++b) {
        const uint8_t *blk = o.group + static_cast<size_t>(b) * block_bytes;
        __m512i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
        if constexpr (T == GgmlType::Q4_0) {
            const __m512i low = _mm512_set1_epi8(0x0F);
            for (int k = 0; k < 4; ++k) {
                const __m512i raw = _mm512_loadu_si512(blk + kScaleBytes + 64 * k);
                const __m512i lo = _mm512_and_si512(raw, low), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
                for (int t = 0; t < NT; ++t) {
                    const int8_t *x = o.q + t * o.n_in + b * kBlock;
                    isum[t] = dot4(dot4(isum[t], lo, x + 4 * k), hi, x + 16 + 4 * k);
                }
            }
        } else {
            for (int k = 0; k < 8; ++k) {
                const __m512i w = _mm512_loadu_si512(blk + kScaleBytes + 64 * k);
                for (int t = 0; t < NT; ++t) isum[t] = dot4(isum[t], w, o.q + t * o.n_in + b * kBlock + 4 * k);
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk)));
        for (int t = 0; t < NT; ++t) {
            const __m512i exact = _mm512_sub_epi32(isum[t], _mm512_set1_epi32(offset * o.s[t * o.nb + b]));
            const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(o.d[t * o.nb + b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, acc[t]);
        }
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << o.rows) - 1u);
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(o.y + t * o.ldy, keep, acc[t]);
}

template <GgmlType T>
void group_vnni_n(const Operands &o, int nt) {
    switch (nt) {
    case 1: group_vnni<T, 1>(o); break;
    case 2: group_vnni<T, 2>(o); break;
    case 3: group_vnni<T, 3>(o); break;
    case 4: group_vnni<T, 4>(o); break;
    case 5: group_vnni<T, 5>(o); break;
    case 6: group_vnni<T, 6>(o); break;
    case 7: group_vnni<T, 7>(o); break;
    default: group_vnni<T, 8>(o); break;
    }
}
#endif

// ---- Q4_K

// The nibble of row r, element e (0..31) of sub-block j in a packed super-block.
inline int32_t q4k_weight(const uint8_t *sb, int r, int j, int e) {
    const uint8_t b = sb[kQ4KQuants + static_cast<size_t>(((j / 2) * 8 + e / 4) * 64 + 4 * r + e % 4)];
    return j % 2 ? b >> 4 : b & 0x0F;
}

void q4k_group_scalar(const Operands &o, int nt) {
    const int64_t n_super = o.nb / 8;
    for (int r = 0; r < o.rows; ++r)
        for (int t = 0; t < nt; ++t) {
            float acc = 0.0f;
            for (int64_t u = 0; u < n_super; ++u) {
                const uint8_t *sb = o.group + static_cast<size_t>(u) * kQ4KGroupBytes;
                const float d = fp16_to_fp32(read_u16(sb + 2 * r)), dmin = fp16_to_fp32(read_u16(sb + 32 + 2 * r));
                for (int j = 0; j < 8; ++j) {
                    const int64_t b = u * 8 + j;
                    const int8_t *qx = o.q + t * o.n_in + b * kBlock;
                    int32_t isum = 0;
                    for (int e = 0; e < kBlock; ++e) isum += q4k_weight(sb, r, j, e) * qx[e];
                    const float d1 = d * static_cast<float>(sb[kQ4KScales + 16 * j + r]);
                    const float m1 = dmin * static_cast<float>(sb[kQ4KMins + 16 * j + r]);
                    const float dx = o.d[t * o.nb + b];
                    acc = std::fma(static_cast<float>(isum), d1 * dx, acc);
                    acc = std::fma(-(m1 * dx), static_cast<float>(o.s[t * o.nb + b]), acc);
                }
            }
            o.y[r + t * o.ldy] = acc;
        }
}

#if defined(MUSE_HAVE_AVX512_VNNI)
template <int NT>
void q4k_group_vnni(const Operands &o) {
    const int64_t n_super = o.nb / 8;
    const __m512i low = _mm512_set1_epi8(0x0F);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t u = 0; u < n_super; ++u) {
        const uint8_t *sb = o.group + static_cast<size_t>(u) * kQ4KGroupBytes;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(sb + 32)));
        for (int i = 0; i < 4; ++i) {
            __m512i lo_sum[NT], hi_sum[NT];
            for (int t = 0; t < NT; ++t) lo_sum[t] = hi_sum[t] = _mm512_setzero_si512();
            for (int k = 0; k < 8; ++k) {
                const __m512i raw = _mm512_loadu_si512(sb + kQ4KQuants + static_cast<size_t>((i * 8 + k) * 64));
                const __m512i lo = _mm512_and_si512(raw, low), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
                for (int t = 0; t < NT; ++t) {
                    const int8_t *x = o.q + t * o.n_in + (u * 8 + 2 * i) * kBlock + 4 * k;
                    lo_sum[t] = dot4(lo_sum[t], lo, x);
                    hi_sum[t] = dot4(hi_sum[t], hi, x + kBlock);
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
                    const __m512 dx = _mm512_set1_ps(o.d[t * o.nb + b]);
                    const __m512i isum = h ? hi_sum[t] : lo_sum[t];
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d1, dx), acc[t]);
                    acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(m1, dx), _mm512_set1_ps(static_cast<float>(o.s[t * o.nb + b])),
                                              acc[t]);
                }
            }
        }
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << o.rows) - 1u);
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(o.y + t * o.ldy, keep, acc[t]);
}

void q4k_group_vnni_n(const Operands &o, int nt) {
    switch (nt) {
    case 1: q4k_group_vnni<1>(o); break;
    case 2: q4k_group_vnni<2>(o); break;
    case 3: q4k_group_vnni<3>(o); break;
    case 4: q4k_group_vnni<4>(o); break;
    case 5: q4k_group_vnni<5>(o); break;
    case 6: q4k_group_vnni<6>(o); break;
    case 7: q4k_group_vnni<7>(o); break;
    default: q4k_group_vnni<8>(o); break;
    }
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

} // namespace

bool int8_matmul_available() { return cpu_level() == CpuLevel::avx512 && cpu_has_vnni() && int8_matmul_enabled(); }

bool int8_packable(GgmlType type) {
    return type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_K;
}

namespace {

void pack_q4_k(const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst) {
    const int64_t n_super = n_in / 256;
    const size_t row_bytes = static_cast<size_t>(n_super) * 144;
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t *out = dst + static_cast<size_t>(g * n_super) * kQ4KGroupBytes;
        for (int64_t u = 0; u < n_super; ++u, out += kQ4KGroupBytes) {
            std::memset(out, 0, kQ4KGroupBytes);  // padding rows: d = dmin = 0
            for (int r = 0; r < kInt8Rows; ++r) {
                const int64_t row = g * kInt8Rows + r;
                if (row >= n_out) continue;
                const uint8_t *b = src + row_bytes * static_cast<size_t>(row) + static_cast<size_t>(u) * 144;
                std::memcpy(out + 2 * r, b, 2);
                std::memcpy(out + 32 + 2 * r, b + 2, 2);
                for (int j = 0; j < 8; ++j) scale_min_k4(j, b + 4, out + kQ4KScales + 16 * j + r, out + kQ4KMins + 16 * j + r);
                for (int i = 0; i < 4; ++i)
                    for (int k = 0; k < 8; ++k)
                        std::memcpy(out + kQ4KQuants + static_cast<size_t>((i * 8 + k) * 64 + 4 * r), b + 16 + 32 * i + 4 * k, 4);
            }
        }
    }
}

void unpack_q4_k_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    const int64_t n_super = n_in / 256;
    const int lane = static_cast<int>(r % kInt8Rows);
    const uint8_t *sb = packed + static_cast<size_t>((r / kInt8Rows) * n_super) * kQ4KGroupBytes;
    for (int64_t u = 0; u < n_super; ++u, sb += kQ4KGroupBytes) {
        const float d = fp16_to_fp32(read_u16(sb + 2 * lane)), dmin = fp16_to_fp32(read_u16(sb + 32 + 2 * lane));
        for (int j = 0; j < 8; ++j) {
            const float d1 = d * static_cast<float>(sb[kQ4KScales + 16 * j + lane]);
            const float m1 = dmin * static_cast<float>(sb[kQ4KMins + 16 * j + lane]);
            for (int e = 0; e < kBlock; ++e)
                *out++ = d1 * static_cast<float>(q4k_weight(sb, lane, j, e)) - m1;
        }
    }
}

} // namespace

size_t int8_packed_bytes(GgmlType type, int64_t n_in, int64_t n_out) {
    const int64_t groups = (n_out + kInt8Rows - 1) / kInt8Rows;
    return static_cast<size_t>(groups) * static_cast<size_t>(n_in / kBlock) * group_block_bytes(type);
}

void int8_pack(GgmlType type, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst) {
    if (type == GgmlType::Q4_K) {
        pack_q4_k(src, n_in, n_out, g0, g1, dst);
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
    if (type == GgmlType::Q4_K) {
        unpack_q4_k_row(packed, n_in, r, out);
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

void int8_quantize_rows(const float *x, int64_t n_in, int64_t n_tok, int8_t *q, float *d, int32_t *s) {
    const int64_t nb = n_in / kBlock;
#if defined(MUSE_HAVE_AVX512_VNNI)
    if (int8_matmul_available()) {
        for (int64_t i = 0; i < n_tok * nb; ++i) quantize_block_avx512(x + i * kBlock, q + i * kBlock, d + i, s + i);
        return;
    }
#endif
    for (int64_t i = 0; i < n_tok * nb; ++i) quantize_block_scalar(x + i * kBlock, q + i * kBlock, d + i, s + i);
}

void int8_matmul(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1,
                 const int8_t *q, const float *d, const int32_t *s, int64_t n_tok, float *y, int64_t ldy) {
    const int64_t nb = n_in / kBlock;
    const size_t block_bytes = group_block_bytes(type);
    // Tokens in chunks whose quantized rows stay in L2 while every group of the share
    // passes over them; within a chunk, tiles of up to 8 tokens share each weight load.
    const int64_t chunk = std::max<int64_t>(8, (int64_t(256) << 10) / std::max<int64_t>(n_in, 1) / 8 * 8);
    const bool vnni = int8_matmul_available();
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
        const int64_t t1 = std::min(n_tok, t0 + chunk);
        for (int64_t g = g0; g < g1; ++g) {
            Operands o;
            o.group = packed + static_cast<size_t>(g * nb) * block_bytes;
            o.nb = nb;
            o.n_in = n_in;
            o.rows = static_cast<int>(std::min<int64_t>(kInt8Rows, n_out - g * kInt8Rows));
            o.ldy = ldy;
            for (int64_t t = t0; t < t1; t += 8) {
                const int nt = static_cast<int>(std::min<int64_t>(8, t1 - t));
                o.q = q + t * n_in;
                o.d = d + t * nb;
                o.s = s + t * nb;
                o.y = y + g * kInt8Rows + t * ldy;
#if defined(MUSE_HAVE_AVX512_VNNI)
                if (vnni) {
                    if (type == GgmlType::Q4_K) q4k_group_vnni_n(o, nt);
                    else if (type == GgmlType::Q4_0) group_vnni_n<GgmlType::Q4_0>(o, nt);
                    else group_vnni_n<GgmlType::Q8_0>(o, nt);
                    continue;
                }
#endif
                if (type == GgmlType::Q4_K) q4k_group_scalar(o, nt);
                else group_scalar(type, o, nt);
            }
        }
    }
}

} // namespace muse::cpu
