// Bilinear resize of a grid of vectors (Graph::resize_bilinear): src [C, wi, hi] ->
// dst [C, wo, ho]. The taps (i0, i1, weight) of every output column and row come from the
// host (table: wo triples for x, then ho for y), computed in double as the CPU backend does,
// so both interpolate between the same samples with the same float weights; x first, then y,
// in the CPU's order of operations.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Src { float s[]; };
layout(std430, binding = 1) readonly buffer Taps { float taps[]; };
layout(std430, binding = 2) writeonly buffer Dst { float d[]; };
layout(push_constant) uniform Params {
    uint C, wi, wo, n, src_off, taps_off, dst_off;
} p;

void main() {
    const uint stride = gl_NumWorkGroups.x * 256u;
    for (uint e = gl_GlobalInvocationID.x; e < p.n; e += stride) {
        const uint k = e % p.C, px = (e / p.C) % p.wo, py = e / (p.C * p.wo);
        const uint tx = p.taps_off + 3u * px, ty = p.taps_off + 3u * (p.wo + py);
        const uint x0 = uint(taps[tx]), x1 = uint(taps[tx + 1u]), y0 = uint(taps[ty]), y1 = uint(taps[ty + 1u]);
        const float fx = taps[tx + 2u], fy = taps[ty + 2u];
        const float a = s[p.src_off + (y0 * p.wi + x0) * p.C + k], b = s[p.src_off + (y0 * p.wi + x1) * p.C + k];
        const float c = s[p.src_off + (y1 * p.wi + x0) * p.C + k], f = s[p.src_off + (y1 * p.wi + x1) * p.C + k];
        const float top = a + (b - a) * fx, bottom = c + (f - c) * fx;
        d[p.dst_off + e] = top + (bottom - top) * fy;
    }
}
