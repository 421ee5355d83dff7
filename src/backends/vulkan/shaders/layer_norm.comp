// LayerNorm per row of ne0 (Graph::layer_norm): y = (x - mean) / sqrt(var + eps), then * w and
// + b (optional F32 rows). A workgroup per row (grid-stride over rows); the mean first, then the
// variance as the mean of (x - mean)^2 (two passes, as the CPU backend: one pass of x^2 would
// cancel catastrophically for rows with a large mean), each a tree sum. In place allowed.
// USE_SUBGROUPS: subgroupAdd, then one partial per subgroup through shared memory (as matmul).
#version 450
#if defined(USE_SUBGROUPS)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x = 128) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint ne0, rows, x_off, w_off, b_off, y_off, has_w, has_b;
    float eps;
} p;
shared float partial[128];

float row_sum(float s) {
#if defined(USE_SUBGROUPS)
    const float sg = subgroupAdd(s);
    if (subgroupElect()) partial[gl_SubgroupID] = sg;
    barrier();
    float total = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) total += partial[i];
#else
    const uint tid = gl_LocalInvocationID.x;
    partial[tid] = s;
    barrier();
    for (uint k = 64u; k > 0u; k >>= 1) {
        if (tid < k) partial[tid] += partial[tid + k];
        barrier();
    }
    const float total = partial[0];
#endif
    barrier();  // every invocation has read the partials before they are reused
    return total;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint xb = p.x_off + r * p.ne0, yb = p.y_off + r * p.ne0;
        float s = 0.0;
        for (uint i = tid; i < p.ne0; i += 128u) s += x[xb + i];
        const float mean = row_sum(s) / float(p.ne0);
        float v = 0.0;
        for (uint i = tid; i < p.ne0; i += 128u) v += (x[xb + i] - mean) * (x[xb + i] - mean);
        const float inv = 1.0 / sqrt(row_sum(v) / float(p.ne0) + p.eps);
        for (uint i = tid; i < p.ne0; i += 128u) {
            float o = (x[xb + i] - mean) * inv;
            if (p.has_w != 0u) o *= w[p.w_off + i];
            if (p.has_b != 0u) o += b[p.b_off + i];
            y[yb + i] = o;
        }
        barrier();
    }
}
