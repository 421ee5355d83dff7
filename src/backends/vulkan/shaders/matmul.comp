// y[:, t] = W · x[:, t] for one weight type (WEIGHT_F32, WEIGHT_F16, WEIGHT_Q8_0, WEIGHT_Q4_0,
// WEIGHT_Q4_K, WEIGHT_Q5_K or WEIGHT_Q6_K): a workgroup per output row (several rows when there are more than the
// dispatch limit), its 64 invocations striding over the row, then a tree sum. The weight
// buffer is read as 32-bit words so that no 16-bit or 8-bit storage feature is needed.
//
// USE_SUBGROUPS (where the device has subgroup arithmetic in compute shaders): each subgroup
// sums its invocations' partial dots with subgroupAdd and one sum per subgroup goes through
// shared memory, instead of the log2(64) barrier steps of the tree (the portable path).
#version 450
#if defined(USE_SUBGROUPS)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer Input { float x[]; };
layout(std430, binding = 2) writeonly buffer Output { float y[]; };
layout(push_constant) uniform Params {
    uint n_in, n_out, n_tok;
    uint w_byte;      // byte offset of row 0 in the weight buffer
    uint w_row_bytes;
    uint x_off, y_off;  // in floats
} p;
shared float partial[64];

uint byte_at(uint b) { return (w[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
float half_at(uint b) {  // an F16 stored at byte b (2-aligned)
    uint word = w[b >> 2];
    return unpackHalf2x16((b & 2u) != 0u ? word >> 16 : word).x;
}
int sbyte(uint v) { return int(v) - (int(v & 0x80u) << 1); }

float row_dot(uint row, uint tok) {
    const uint base = p.w_byte + row * p.w_row_bytes, xb = p.x_off + tok * p.n_in;
    float acc = 0.0;
#if defined(WEIGHT_F32)
    for (uint k = gl_LocalInvocationID.x; k < p.n_in; k += 64u) acc += uintBitsToFloat(w[(base >> 2) + k]) * x[xb + k];
#elif defined(WEIGHT_F16)
    for (uint k2 = gl_LocalInvocationID.x; k2 < p.n_in / 2u; k2 += 64u) {
        const vec2 wv = unpackHalf2x16(w[(base >> 2) + k2]);
        acc += wv.x * x[xb + 2u * k2] + wv.y * x[xb + 2u * k2 + 1u];
    }
#elif defined(WEIGHT_Q8_0)
    // Blocks of 32: an F16 scale, then 32 signed bytes (34 bytes).
    for (uint e = gl_LocalInvocationID.x; e < p.n_in; e += 64u) {
        const uint blk = base + (e >> 5) * 34u;
        acc += half_at(blk) * float(sbyte(byte_at(blk + 2u + (e & 31u)))) * x[xb + e];
    }
#elif defined(WEIGHT_Q4_0)
    // Blocks of 32: an F16 scale, then 16 bytes; element i < 16 is the low nibble of byte i,
    // element i >= 16 the high nibble of byte i - 16; value (q - 8) * scale (18 bytes).
    for (uint e = gl_LocalInvocationID.x; e < p.n_in; e += 64u) {
        const uint blk = base + (e >> 5) * 18u, i = e & 31u;
        const uint q = (byte_at(blk + 2u + (i & 15u)) >> (i < 16u ? 0u : 4u)) & 15u;
        acc += half_at(blk) * float(int(q) - 8) * x[xb + e];
    }
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
    // Super-blocks of 256 (core/dequant.cpp, deq_q4_k / deq_q5_k): F16 d and dmin, 12 bytes of
    // 6-bit scales and mins (8 pairs, one per 32 elements), [Q5_K: 32 bytes of high bits], then
    // 128 bytes of nibbles. Element i: chunk j = i / 64 reads byte 32j + i % 32, low nibble in
    // the first half of the chunk, high in the second; value d * sc * q - dmin * m.
    for (uint e = gl_LocalInvocationID.x; e < p.n_in; e += 64u) {
#if defined(WEIGHT_Q4_K)
        const uint blk = base + (e >> 8) * 144u, qs = blk + 16u;
#else
        const uint blk = base + (e >> 8) * 176u, qs = blk + 48u;
#endif
        const uint i = e & 255u, j = i >> 6, hi = (i >> 5) & 1u, l = i & 31u, is = 2u * j + hi;
        uint sc, m;
        if (is < 4u) {
            sc = byte_at(blk + 4u + is) & 63u;
            m = byte_at(blk + 8u + is) & 63u;
        } else {
            sc = (byte_at(blk + 8u + is) & 15u) | ((byte_at(blk + is) >> 6) << 4);
            m = (byte_at(blk + 8u + is) >> 4) | ((byte_at(blk + 4u + is) >> 6) << 4);
        }
        uint q = (byte_at(qs + 32u * j + l) >> (4u * hi)) & 15u;
#if defined(WEIGHT_Q5_K)
        q += ((byte_at(blk + 16u + l) >> is) & 1u) << 4;  // qh bit 2j (low half) or 2j + 1 (high)
#endif
        const float d1 = half_at(blk) * float(sc), m1 = half_at(blk + 2u) * float(m);
        acc += (d1 * float(q) - m1) * x[xb + e];
    }
#elif defined(WEIGHT_Q6_K)
    // Super-blocks of 256 (deq_q6_k): ql[128], qh[64], 16 int8 scales, F16 d (210 bytes). Half
    // n = i / 128 reads ql from 64n, qh from 32n, scales from 8n; its part = (i % 128) / 32 takes
    // the low (parts 0, 1) or high (2, 3) nibble of ql[l + 32 * (part & 1)] and bits 2 * part of
    // qh[l]; value d * scale[l / 16 + 2 * part] * (q - 32).
    for (uint e = gl_LocalInvocationID.x; e < p.n_in; e += 64u) {
        const uint blk = base + (e >> 8) * 210u, i = e & 255u;
        const uint n = i >> 7, part = (i >> 5) & 3u, l = i & 31u;
        const uint lo = (byte_at(blk + 64u * n + l + 32u * (part & 1u)) >> (4u * (part >> 1))) & 15u;
        const uint hb = (byte_at(blk + 128u + 32u * n + l) >> (2u * part)) & 3u;
        const int q = int(lo | (hb << 4)) - 32;
        const float sc = float(sbyte(byte_at(blk + 192u + 8u * n + l / 16u + 2u * part)));
        acc += half_at(blk + 208u) * sc * float(q) * x[xb + e];
    }
#endif
    return acc;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint tok = gl_WorkGroupID.y; tok < p.n_tok; tok += gl_NumWorkGroups.y)
        for (uint row = gl_WorkGroupID.x; row < p.n_out; row += gl_NumWorkGroups.x) {
#if defined(USE_SUBGROUPS)
            const float sg = subgroupAdd(row_dot(row, tok));
            if (subgroupElect()) partial[gl_SubgroupID] = sg;
            barrier();
            if (tid == 0u) {
                float sum = 0.0;
                for (uint i = 0u; i < gl_NumSubgroups; ++i) sum += partial[i];
                y[p.y_off + tok * p.n_out + row] = sum;
            }
#else
            partial[tid] = row_dot(row, tok);
            barrier();
            for (uint s = 32u; s > 0u; s >>= 1) {
                if (tid < s) partial[tid] += partial[tid + s];
                barrier();
            }
            if (tid == 0u) y[p.y_off + tok * p.n_out + row] = partial[0];
#endif
            barrier();
        }
}
