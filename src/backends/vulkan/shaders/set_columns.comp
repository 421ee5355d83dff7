// dst[:, cells[c]] = src[:, c]: the K/V cache write. F32 caches copy; F16 caches round to
// nearest even, exactly as core's fp32_to_fp16 (done here in integer arithmetic, since
// packHalf2x16's rounding is the driver's choice). An invocation writes one 32-bit word: one
// F32 element, or two F16 ones (ne0 is even for F16 caches).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { uint d[]; };
layout(std430, binding = 1) readonly buffer Src { float s[]; };
layout(std430, binding = 2) readonly buffer Cells { int cells[]; };
layout(push_constant) uniform Params {
    uint ne0, n, dst_byte, src_off, cells_off, f16;
} p;

uint half_bits(float f) {
    const uint x = floatBitsToUint(f);
    const uint sign = (x >> 16) & 0x8000u;
    const uint e = (x >> 23) & 0xFFu;
    uint m = x & 0x7FFFFFu;
    if (e == 0xFFu) return sign | 0x7C00u | (m != 0u ? 0x200u | (m >> 13) : 0u);  // inf / NaN
    const int exp = int(e) - 127 + 15;
    if (exp >= 31) return sign | 0x7C00u;  // overflow: inf
    if (exp <= 0) {                        // subnormal half (or zero)
        if (exp < -10) return sign;
        m |= 0x800000u;
        const uint shift = uint(14 - exp);
        uint h = m >> shift;
        const uint rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u) != 0u)) ++h;
        return sign | h;
    }
    uint h = (uint(exp) << 10) | (m >> 13);
    const uint rem = m & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) ++h;  // a carry into the exponent is right
    return sign | h;
}

void main() {
    const uint per_col = p.f16 != 0u ? p.ne0 / 2u : p.ne0;
    const uint total = per_col * p.n, stride = gl_NumWorkGroups.x * 256u;
    for (uint e = gl_GlobalInvocationID.x; e < total; e += stride) {
        const uint c = e / per_col, j = e % per_col;
        const uint col = uint(cells[p.cells_off + c]);
        const uint src = p.src_off + c * p.ne0;
        if (p.f16 != 0u) {
            const uint word = (p.dst_byte + (col * p.ne0 + 2u * j) * 2u) >> 2;
            d[word] = half_bits(s[src + 2u * j]) | (half_bits(s[src + 2u * j + 1u]) << 16);
        } else {
            d[(p.dst_byte >> 2) + col * p.ne0 + j] = floatBitsToUint(s[src + j]);
        }
    }
}
