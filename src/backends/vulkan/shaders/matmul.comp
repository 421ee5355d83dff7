// y[:, t] = W · x[:, t] for one weight type (WEIGHT_F32, WEIGHT_F16, WEIGHT_Q8_0 or
// WEIGHT_Q4_0): a workgroup per output row (several rows when there are more than the
// dispatch limit), its 64 invocations striding over the row, then a tree sum. The weight
// buffer is read as 32-bit words so that no 16-bit or 8-bit storage feature is needed.
#version 450
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
#endif
    return acc;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint tok = gl_WorkGroupID.y; tok < p.n_tok; tok += gl_NumWorkGroups.y)
        for (uint row = gl_WorkGroupID.x; row < p.n_out; row += gl_NumWorkGroups.x) {
            partial[tid] = row_dot(row, tok);
            barrier();
            for (uint s = 32u; s > 0u; s >>= 1) {
                if (tid < s) partial[tid] += partial[tid + s];
                barrier();
            }
            if (tid == 0u) y[p.y_off + tok * p.n_out + row] = partial[0];
            barrier();
        }
}
