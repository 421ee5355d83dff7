// y[:, t] = W · x[:, t] for one weight type (WEIGHT_F32, WEIGHT_F16, or a quantized type of
// dequant.glsl): a workgroup per output row (several rows when there are more than the dispatch
// limit), its 64 invocations striding over the row, then a tree sum. The weight buffer is read
// as 32-bit words so that no 16-bit or 8-bit storage feature is needed.
//
// USE_SUBGROUPS (where the device has subgroup arithmetic in compute shaders): each subgroup
// sums its invocations' partial dots with subgroupAdd and one sum per subgroup goes through
// shared memory, instead of the log2(64) barrier steps of the tree (the portable path).
#version 450
#extension GL_GOOGLE_include_directive : require
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

#include "dequant.glsl"

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
#else
    // The quantized types, one element at a time (dequant.glsl).
    for (uint e = gl_LocalInvocationID.x; e < p.n_in; e += 64u) acc += dequant(base, e) * x[xb + e];
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
