// Swaps the first two axes (Graph::transpose): src [a, b, n] -> dst [b, a, n],
// dst[j, i, k] = src[i, j, k]. A copy: one invocation per output element (grid-stride).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Src { float s[]; };
layout(std430, binding = 1) writeonly buffer Dst { float d[]; };
layout(push_constant) uniform Params {
    uint a, b, n, src_off, dst_off;
} p;

void main() {
    const uint stride = gl_NumWorkGroups.x * 256u, ab = p.a * p.b;
    for (uint e = gl_GlobalInvocationID.x; e < p.n; e += stride) {
        const uint k = e / ab, r = e % ab, i = r / p.b, j = r % p.b;
        d[p.dst_off + e] = s[p.src_off + k * ab + j * p.a + i];
    }
}
