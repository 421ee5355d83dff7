// Compiled with -ffp-contract=off (see src/CMakeLists.txt): `a * b - c` must
// round twice, exactly as the format's definition, never fuse into an FMA.
#include "core/dequant.h"

#include "core/error.h"

#include <cstring>

namespace muse {
namespace {

constexpr int QK_K = 256;

inline float load_f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

void deq_q4_0(const uint8_t *b, float *y) {  // d:f16 qs[16]
    const float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

void deq_q4_1(const uint8_t *b, float *y) {  // d:f16 m:f16 qs[16]
    const float d = load_f16(b), m = load_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
}

void deq_q5_0(const uint8_t *b, float *y) {  // d:f16 qh[4] qs[16]
    const float d = load_f16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int xh0 = static_cast<int>(((qh >> j) << 4) & 0x10);
        const int xh1 = static_cast<int>((qh >> (j + 12)) & 0x10);
        y[j] = static_cast<float>(((qs[j] & 0x0F) | xh0) - 16) * d;
        y[j + 16] = static_cast<float>(((qs[j] >> 4) | xh1) - 16) * d;
    }
}

void deq_q5_1(const uint8_t *b, float *y) {  // d:f16 m:f16 qh[4] qs[16]
    const float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int xh0 = static_cast<int>(((qh >> j) << 4) & 0x10);
        const int xh1 = static_cast<int>((qh >> (j + 12)) & 0x10);
        y[j] = static_cast<float>((qs[j] & 0x0F) | xh0) * d + m;
        y[j + 16] = static_cast<float>((qs[j] >> 4) | xh1) * d + m;
    }
}

void deq_q8_0(const uint8_t *b, float *y) {  // d:f16 qs[32] int8
    const float d = load_f16(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

void deq_q8_1(const uint8_t *b, float *y) {  // d:f16 s:f16 qs[32] int8 (s is a cached sum)
    const float d = load_f16(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[4 + j])) * d;
}

void deq_q2_k(const uint8_t *b, float *y) {  // scales[16] qs[64] d:f16 dmin:f16
    const uint8_t *scales = b;
    const uint8_t *q = b + 16;
    const float d = load_f16(b + 80), min = load_f16(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            for (int half = 0; half < 2; ++half) {
                const uint8_t sc = scales[is++];
                const float dl = d * static_cast<float>(sc & 0xF);
                const float ml = min * static_cast<float>(sc >> 4);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
            }
            shift += 2;
        }
        q += 32;
    }
}

void deq_q3_k(const uint8_t *b, float *y) {  // hmask[32] qs[64] scales[12] d:f16
    const uint8_t *hm = b;
    const uint8_t *q = b + 32;
    const uint8_t *s = b + 96;
    const float d_all = load_f16(b + 108);
    // 16 six-bit scales: low 4 bits in s[0..7] (two nibbles each), high 2 bits in s[8..11].
    int8_t scales[16];
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
        const int high = (s[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        scales[i] = static_cast<int8_t>(low | (high << 4));
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            for (int half = 0; half < 2; ++half) {
                const float dl = d_all * static_cast<float>(scales[is++] - 32);
                for (int l = 16 * half; l < 16 * half + 16; ++l) {
                    const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                    *y++ = dl * static_cast<float>(v);
                }
            }
            shift += 2;
            m = static_cast<uint8_t>(m << 1);
        }
        q += 32;
    }
}


void deq_q4_k(const uint8_t *b, float *y) {  // d:f16 dmin:f16 scales[12] qs[128]
    const float d = load_f16(b), min = load_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *q = b + 16;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
}

void deq_q5_k(const uint8_t *b, float *y) {  // d dmin scales[12] qh[32] qs[128]
    const float d = load_f16(b), min = load_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qh = b + 16;
    const uint8_t *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; ++l)
            *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l)
            *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        u1 = static_cast<uint8_t>(u1 << 2);
        u2 = static_cast<uint8_t>(u2 << 2);
    }
}

void deq_q6_k(const uint8_t *b, float *y) {  // ql[128] qh[64] scales[16] int8, d:f16
    const uint8_t *ql = b;
    const uint8_t *qh = b + 128;
    const int8_t *sc = reinterpret_cast<const int8_t *>(b + 192);
    const float d = load_f16(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
            y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
            y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
            y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void deq_q8_k(const uint8_t *b, float *y) {  // d:f32 qs[256] int8 bsums[16] int16
    float d;
    std::memcpy(&d, b, 4);
    for (int j = 0; j < QK_K; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
}

using BlockFn = void (*)(const uint8_t *, float *);

BlockFn block_fn(GgmlType t) {
    switch (t) {
    case GgmlType::Q4_0: return deq_q4_0;
    case GgmlType::Q4_1: return deq_q4_1;
    case GgmlType::Q5_0: return deq_q5_0;
    case GgmlType::Q5_1: return deq_q5_1;
    case GgmlType::Q8_0: return deq_q8_0;
    case GgmlType::Q8_1: return deq_q8_1;
    case GgmlType::Q2_K: return deq_q2_k;
    case GgmlType::Q3_K: return deq_q3_k;
    case GgmlType::Q4_K: return deq_q4_k;
    case GgmlType::Q5_K: return deq_q5_k;
    case GgmlType::Q6_K: return deq_q6_k;
    case GgmlType::Q8_K: return deq_q8_k;
    default: return nullptr;
    }
}

template <class T>
void convert_plain(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
        dst[i] = static_cast<float>(v);
    }
}

} // namespace

void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

uint64_t type_row_bytes(GgmlType type, int64_t n) {
    const TypeTraits &tt = type_traits(type);
    if (!tt.supported || n < 0 || n % tt.block_size != 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "type_row_bytes: bad type or count");
    return static_cast<uint64_t>(n / tt.block_size) * tt.type_size;
}

void dequantize(GgmlType type, const void *src_v, float *dst, int64_t n) {
    const TypeTraits &tt = type_traits(type);
    if (!tt.supported)
        fail(MUSE_ERR_UNSUPPORTED, "cannot dequantize type ", tt.name ? tt.name : "unknown");
    if (n < 0 || n % tt.block_size != 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "dequantize: ", n, " is not a multiple of the ", tt.name,
             " block size ", tt.block_size);
    if (n == 0) return;  // empty tensors: src/dst may legitimately be null
    const auto *src = static_cast<const uint8_t *>(src_v);
    switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
        for (int64_t i = 0; i < n; ++i) dst[i] = load_f16(src + 2 * i);
        return;
    case GgmlType::BF16:
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            dst[i] = bf16_to_fp32(h);
        }
        return;
    case GgmlType::F64: convert_plain<double>(src, dst, n); return;
    case GgmlType::I8: convert_plain<int8_t>(src, dst, n); return;
    case GgmlType::I16: convert_plain<int16_t>(src, dst, n); return;
    case GgmlType::I32: convert_plain<int32_t>(src, dst, n); return;
    case GgmlType::I64: convert_plain<int64_t>(src, dst, n); return;
    default: break;
    }
    const BlockFn fn = block_fn(type);
    const int64_t nb = n / tt.block_size;
    for (int64_t i = 0; i < nb; ++i) fn(src + i * static_cast<int64_t>(tt.type_size), dst + i * tt.block_size);
}

} // namespace muse
