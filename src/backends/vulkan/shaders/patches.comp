// Non-overlapping patches of a planar image as columns (Graph::patches): img [W, H, C]
// (element c*W*H + y*W + x) -> out [patch*patch*C, gw*gh], column py*gw + px holding, at row
// c*patch*patch + ky*patch + kx, the pixel img[c, py*patch + ky, px*patch + kx]. A copy: one
// invocation per output element (grid-stride).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Img { float img[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Params {
    uint W, H, ps, gw, rows, n, img_off, out_off;
} p;

void main() {
    const uint stride = gl_NumWorkGroups.x * 256u, pp = p.ps * p.ps;
    for (uint e = gl_GlobalInvocationID.x; e < p.n; e += stride) {
        const uint col = e / p.rows, r = e % p.rows;
        const uint py = col / p.gw, px = col % p.gw;
        const uint c = r / pp, ky = (r % pp) / p.ps, kx = r % p.ps;
        o[p.out_off + e] = img[p.img_off + c * p.W * p.H + (py * p.ps + ky) * p.W + px * p.ps + kx];
    }
}
