// The in-place elementwise ops of graph.h on F32 tensors, picked by `op`:
//   0 add (b broadcast: element i reads b[i % nb])   1 scale by f
//   2 swiglu: x = silu(x) * b                         3 sigmoid_mul: x *= sigmoid(b)
//   4 softcap: x = f * tanh(x / f)                    5 mul_row: x *= b[i % nb]
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(push_constant) uniform Params {
    uint op, n, nb, x_off, b_off;
    float f;
} p;

void main() {
    const uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        const float v = x[p.x_off + i];
        float r = v;
        if (p.op == 0u) r = v + b[p.b_off + i % p.nb];
        else if (p.op == 1u) r = v * p.f;
        else if (p.op == 2u) r = v / (1.0 + exp(-v)) * b[p.b_off + i];
        else if (p.op == 3u) r = v / (1.0 + exp(-b[p.b_off + i]));
        else if (p.op == 4u) r = p.f * tanh(v / p.f);
        else if (p.op == 5u) r = v * b[p.b_off + i % p.nb];
        x[p.x_off + i] = r;
    }
}
