// y = x / sqrt(mean(x^2) + eps) per row of ne0, times an optional F32 weight row: a
// workgroup per row (grid-stride over rows), a tree sum of the squares. In place allowed.
// USE_SUBGROUPS: subgroupAdd, then one partial per subgroup through shared memory (as matmul).
#version 450
#if defined(USE_SUBGROUPS)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x = 128) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint ne0, rows, x_off, w_off, y_off, has_w;
    float eps;
} p;
shared float partial[128];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint xb = p.x_off + r * p.ne0, yb = p.y_off + r * p.ne0;
        float s = 0.0;
        for (uint i = tid; i < p.ne0; i += 128u) s += x[xb + i] * x[xb + i];
#if defined(USE_SUBGROUPS)
        const float sg = subgroupAdd(s);
        if (subgroupElect()) partial[gl_SubgroupID] = sg;
        barrier();
        float total = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; ++i) total += partial[i];
#else
        partial[tid] = s;
        barrier();
        for (uint k = 64u; k > 0u; k >>= 1) {
            if (tid < k) partial[tid] += partial[tid + k];
            barrier();
        }
        const float total = partial[0];
#endif
        const float inv = 1.0 / sqrt(total / float(p.ne0) + p.eps);
        barrier();  // every invocation has read partial[0] before the next row reuses it
        for (uint i = tid; i < p.ne0; i += 128u) {
            const float v = x[xb + i] * inv;
            y[yb + i] = p.has_w != 0u ? v * w[p.w_off + i] : v;
        }
        barrier();
    }
}
