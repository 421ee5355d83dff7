// Attention over gathered KV cells (graph.h, Graph::attention), flash-style: a workgroup per
// (query token, head) walks its cells cells[begin[t] .. end[t]) in chunks of 64. Each
// invocation scores one cell of the chunk, the chunk's maximum rescales the running sums
// (online softmax), and each invocation accumulates its share of the head's output dims.
// K and V are F32 or F16 (KV_F16) caches read as 32-bit words. An empty range gives zeros.
#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint k[]; };
layout(std430, binding = 2) readonly buffer V { uint v[]; };
layout(std430, binding = 3) readonly buffer Cells { int cells[]; };
layout(std430, binding = 4) readonly buffer Begin { int begin_[]; };
layout(std430, binding = 5) readonly buffer End { int end_[]; };
layout(std430, binding = 6) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Params {
    uint hd, n_head, n_tok, group;     // group = n_head / n_head_kv
    uint q_off, k_byte, v_byte;        // q in floats; the caches' byte offsets
    uint row_elems;                    // hd * n_head_kv: one cell's elements
    uint cells_off, begin_off, end_off, o_off;
    float scale;
} p;
shared float scores[64];
shared float chunk_max;

float load_kv(bool is_v, uint cell, uint d) {
    const uint byte0 = is_v ? p.v_byte : p.k_byte;
#if defined(KV_F16)
    const uint b = byte0 + (cell * p.row_elems + d) * 2u;
    const uint word = is_v ? v[b >> 2] : k[b >> 2];
    return unpackHalf2x16((b & 2u) != 0u ? word >> 16 : word).x;
#else
    const uint w = (byte0 >> 2) + cell * p.row_elems + d;
    return uintBitsToFloat(is_v ? v[w] : k[w]);
#endif
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint wg = gl_WorkGroupID.x; wg < p.n_tok * p.n_head; wg += gl_NumWorkGroups.x) {
        const uint t = wg / p.n_head, h = wg % p.n_head, kvh = h / p.group;
        const uint qb = p.q_off + (t * p.n_head + h) * p.hd;
        const int b0 = begin_[p.begin_off + t], b1 = max(end_[p.end_off + t], b0);
        float m = -1.0 / 0.0, l = 0.0;
        float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);  // dims tid, tid + 64, ... (hd <= 256)
        for (int c0 = b0; c0 < b1; c0 += 64) {
            const int n = min(64, b1 - c0);
            float s = -1.0 / 0.0;
            if (int(tid) < n) {
                const uint cell = uint(cells[p.cells_off + uint(c0) + tid]);
                float dot = 0.0;
                for (uint d = 0u; d < p.hd; ++d) dot += q[qb + d] * load_kv(false, cell, kvh * p.hd + d);
                s = dot * p.scale;
            }
            scores[tid] = s;
            barrier();
            if (tid == 0u) {
                float cm = scores[0];
                for (int j = 1; j < n; ++j) cm = max(cm, scores[j]);
                chunk_max = cm;
            }
            barrier();
            const float m_new = max(m, chunk_max);
            const float factor = exp(m - m_new);
            l *= factor;
            for (uint r = 0u; r < 4u; ++r) acc[r] *= factor;
            for (int j = 0; j < n; ++j) {
                const float w = exp(scores[j] - m_new);
                l += w;
                const uint cell = uint(cells[p.cells_off + uint(c0 + j)]);
                for (uint r = 0u; r < 4u; ++r) {
                    const uint d = tid + 64u * r;
                    if (d < p.hd) acc[r] += w * load_kv(true, cell, kvh * p.hd + d);
                }
            }
            m = m_new;
            barrier();
        }
        for (uint r = 0u; r < 4u; ++r) {
            const uint d = tid + 64u * r;
            if (d < p.hd) o[p.o_off + (t * p.n_head + h) * p.hd + d] = l > 0.0 ? acc[r] / l : 0.0;
        }
    }
}
