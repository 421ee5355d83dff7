// out[:, i] = table[:, ids[i]] for an F32 or F16 table (TYPE 0 / 1), or, with a WEIGHT_* define,
// a quantized one (dequant.glsl: the values of core/dequant.cpp, bit for bit). ids are checked
// on the host before the pass runs.
#version 450
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Table { uint w[]; };
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Params {
    uint ne0, n, t_byte, row_bytes, ids_off, o_off, type;
} p;

#include "dequant.glsl"

void main() {
    const uint total = p.ne0 * p.n, stride = gl_NumWorkGroups.x * 256u;
    for (uint e = gl_GlobalInvocationID.x; e < total; e += stride) {
        const uint i = e / p.ne0, j = e % p.ne0;
        const uint b = p.t_byte + uint(ids[p.ids_off + i]) * p.row_bytes;
        float v;
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
        v = dequant(b, j);
#else
        if (p.type == 0u) {
            v = uintBitsToFloat(w[(b >> 2) + j]);
        } else {
            const uint word = w[(b + 2u * j) >> 2];
            v = unpackHalf2x16(((b + 2u * j) & 2u) != 0u ? word >> 16 : word).x;
        }
#endif
        o[p.o_off + e] = v;
    }
}
