// Element e of a quantized weight row starting at byte `row`, for the type the including shader
// defines (WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K or WEIGHT_Q6_K), in the GGUF block
// layouts core/dequant.cpp reads and with its arithmetic in its order: the values are
// bit-identical to its dequantize() (`precise` forbids fusing d * q - m into an fma, as
// dequant.cpp is compiled with -ffp-contract=off). The including shader declares the weights as
// 32-bit words `uint w[]`, so no 8/16-bit storage feature is needed.

uint byte_at(uint b) { return (w[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
float half_at(uint b) {  // an F16 stored at byte b (2-aligned)
    uint word = w[b >> 2];
    return unpackHalf2x16((b & 2u) != 0u ? word >> 16 : word).x;
}
int sbyte(uint v) { return int(v) - (int(v & 0x80u) << 1); }

#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
float dequant(uint row, uint e) {
#if defined(WEIGHT_Q8_0)
    // Blocks of 32: an F16 scale, then 32 signed bytes (34 bytes).
    const uint blk = row + (e >> 5) * 34u;
    return half_at(blk) * float(sbyte(byte_at(blk + 2u + (e & 31u))));
#elif defined(WEIGHT_Q4_0)
    // Blocks of 32: an F16 scale, then 16 bytes; element i < 16 is the low nibble of byte i,
    // element i >= 16 the high nibble of byte i - 16; value (q - 8) * scale (18 bytes).
    const uint blk = row + (e >> 5) * 18u, i = e & 31u;
    const uint q = (byte_at(blk + 2u + (i & 15u)) >> (i < 16u ? 0u : 4u)) & 15u;
    return float(int(q) - 8) * half_at(blk);
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
    // Super-blocks of 256 (deq_q4_k / deq_q5_k): F16 d and dmin, 12 bytes of 6-bit scales and
    // mins (8 pairs, one per 32 elements), [Q5_K: 32 bytes of high bits], then 128 bytes of
    // nibbles. Element i: chunk j = i / 64 reads byte 32j + i % 32, low nibble in the first half
    // of the chunk, high in the second; value (d * sc) * q - dmin * m.
#if defined(WEIGHT_Q4_K)
    const uint blk = row + (e >> 8) * 144u, qs = blk + 16u;
#else
    const uint blk = row + (e >> 8) * 176u, qs = blk + 48u;
#endif
    const uint i = e & 255u, j = i >> 6, hi = (i >> 5) & 1u, l = i & 31u, is = 2u * j + hi;
    uint sc, m;
    if (is < 4u) {  // core/dequant.cpp scale_min_k4
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
    precise float v = d1 * float(q) - m1;
    return v;
#elif defined(WEIGHT_Q6_K)
    // Super-blocks of 256 (deq_q6_k): ql[128], qh[64], 16 int8 scales, F16 d (210 bytes). Half
    // n = i / 128 reads ql from 64n, qh from 32n, scales from 8n; its part = (i % 128) / 32 takes
    // the low (parts 0, 1) or high (2, 3) nibble of ql[l + 32 * (part & 1)] and bits 2 * part of
    // qh[l]; value (d * scale[l / 16 + 2 * part]) * (q - 32).
    const uint blk = row + (e >> 8) * 210u, i = e & 255u;
    const uint n = i >> 7, part = (i >> 5) & 3u, l = i & 31u;
    const uint lo = (byte_at(blk + 64u * n + l + 32u * (part & 1u)) >> (4u * (part >> 1))) & 15u;
    const uint hb = (byte_at(blk + 128u + 32u * n + l) >> (2u * part)) & 3u;
    const int q = int(lo | (hb << 4)) - 32;
    return half_at(blk + 208u) * float(sbyte(byte_at(blk + 192u + 8u * n + l / 16u + 2u * part))) * float(q);
#endif
}
#endif
