// The in-place elementwise ops of graph.h on F32 tensors, picked by `op`:
//   0 add (b broadcast: element i reads b[i % nb])   1 scale by f
//   2 swiglu: x = silu(x) * b                         3 sigmoid_mul: x *= sigmoid(b)
//   4 softcap: x = f * tanh(x / f)                    5 mul_row: x *= b[i % nb]
//   6..9 the activations of backend.h: GELU (erf), GELU (tanh), quick GELU, SiLU
// GLSL has no erf: GELU (erf) uses Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), the
// polynomial the CPU backend's vector kernels use. tanh's argument is clamped to +-10 (tanh is
// 1 - 4e-9 there, 1.0 in float) because a driver may build tanh from exp(2x), which overflows.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(push_constant) uniform Params {
    uint op, n, nb, x_off, b_off;
    float f;
} p;

float erf_as(float z) {
    const float a = abs(z), t = 1.0 / (1.0 + 0.3275911 * a);
    const float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(z) * (1.0 - poly * exp(-a * a));
}

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
        else if (p.op == 6u) r = 0.5 * v * (1.0 + erf_as(v * 0.70710678118654752));
        else if (p.op == 7u) r = 0.5 * v * (1.0 + tanh(clamp(0.79788456080286535588 * v * (1.0 + 0.044715 * v * v), -10.0, 10.0)));
        else if (p.op == 8u) r = v / (1.0 + exp(-1.702 * v));
        else if (p.op == 9u) r = v / (1.0 + exp(-v));
        x[p.x_off + i] = r;
    }
}
