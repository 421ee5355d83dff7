// Rotary embedding in place on x [hd, n_head, n_tok]: pair i of each head turns by the angle
// whose cosine and sine the host computed (table [n_tok, n_rot / 2, 2], in double then
// rounded, as the CPU backend does: large positions need the precision). NORM mode pairs
// dims (2i, 2i + 1), NEOX (i, i + n_rot / 2).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Table { float cs[]; };
layout(push_constant) uniform Params {
    uint hd, n_head, n_tok, n_rot, neox, x_off, table_off;
} p;

void main() {
    const uint half_rot = p.n_rot / 2u, total = half_rot * p.n_head * p.n_tok, stride = gl_NumWorkGroups.x * 256u;
    for (uint e = gl_GlobalInvocationID.x; e < total; e += stride) {
        const uint i = e % half_rot, h = (e / half_rot) % p.n_head, t = e / (half_rot * p.n_head);
        const uint base = p.x_off + (t * p.n_head + h) * p.hd;
        const uint a = base + (p.neox != 0u ? i : 2u * i), b = base + (p.neox != 0u ? i + half_rot : 2u * i + 1u);
        const float c = cs[p.table_off + (t * half_rot + i) * 2u], s = cs[p.table_off + (t * half_rot + i) * 2u + 1u];
        const float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}
