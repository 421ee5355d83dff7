// The CPU backend's SIMD kernels, chosen at run time by dispatch level.
//
// Every kernel with SIMD variants is compiled once per level the build supports
// (a level's code is guarded by its compile-time macros, so a build without AVX-512
// still compiles) and picked by cpu_level() when an op starts: callers fetch a
// function pointer once per op call, never per element.
//
// Matmul numerics: a weight row is handled as "dequantize a 32-element step to F32
// exactly as core/dequant.cpp does, then FMA it into the token's accumulators", fused so
// the row is read once for all the tokens of a call (Q8_0 and Q4_0 instead multiply the
// block scale into each block's integer dot, one operation fewer per token). The dot for
// one token is the same sequence of float operations whatever the number of tokens
// processed together, so a decode batch gives each sequence bit-identical results to
// decoding it alone.
#pragma once

#include "core/ggml-types.h"

#include <cstdint>

namespace muse::cpu {

// ---- dispatch levels
enum class CpuLevel { scalar, avx2, avx512 };  // avx2 = AVX2 + FMA + F16C; avx512 = AVX-512F on top

// The best level this CPU supports and this build compiled in.
CpuLevel detected_cpu_level();
// The active level: MUSE_CPU_LEVEL (scalar|avx2|avx512, clamped to detected; unknown
// values are ignored) when first asked, else detected.
CpuLevel cpu_level();
// Changes the active level (clamped to detected). For tests and benchmarks: not
// meant to change while ops run.
void set_cpu_level(CpuLevel level);
const char *to_string(CpuLevel level);

// ---- row dots (matmul)
// A row-dot kernel for one weight type at one level, in two parts so that a matmul can
// walk a row in chunks (keeping a chunk of every token's x in L1 while several rows go by)
// and resume: accumulate() runs whole steps of kStep elements into per-token accumulator
// state, finish() reduces the state and adds the elements after the last whole step.
// Storing and reloading the state is exact, so any chunking gives the same bits as one pass.
constexpr int64_t kStep = 32;
constexpr int kMaxDotTokens = 16;  // tokens one call handles (the decode-batch limit)
constexpr int kMaxDotState = 32;   // floats of state per token at any level

struct RowDotKernel {
    int state = 0;       // floats of state per token (zeroed by the caller before the first step)
    bool fused = false;  // false: rows must be given as F32 (the caller dequantizes with core/dequant.h,
                         // which yields the same values the fused loaders compute)
    // For rows r < nr (row r at row0 + r * stride bytes) and tokens t < nt (<= kMaxDotTokens):
    // state[(r * nt + t) * state ..] += steps [s0, s0 + n_steps) of row r · (x + t * ldx);
    // rows and x point at element 0.
    void (*accumulate)(const void *row0, size_t stride, int nr, int64_t s0, int64_t n_steps, const float *x,
                       int64_t ldx, int nt, float *state) = nullptr;
    // y[r + t * ldy] = the reduced state plus the products of elements [n / kStep * kStep, n).
    void (*finish)(const void *row0, size_t stride, int nr, int64_t n, const float *x, int64_t ldx, int nt,
                   const float *state, float *y, int64_t ldy) = nullptr;
};
// The kernel for rows of `type` (its F32 kernel, fused = false, when the type has no loader).
RowDotKernel row_dot_kernel(GgmlType type, CpuLevel level);
inline RowDotKernel row_dot_kernel(GgmlType type) { return row_dot_kernel(type, cpu_level()); }

// Plain F32 dot at a level, and at the active level (the lookup is cheap but belongs
// outside inner loops: fetch dot_f32_kernel() once).
using DotF32Fn = float (*)(const float *a, const float *b, int64_t n);
DotF32Fn dot_f32_kernel(CpuLevel level);
inline DotF32Fn dot_f32_kernel() { return dot_f32_kernel(cpu_level()); }
inline float dot_f32(const float *a, const float *b, int64_t n) { return dot_f32_kernel()(a, b, n); }

// y[i] = fp32_to_fp16(x[i]) (core/ggml-types.h), bit for bit, with F16C where the level has it.
void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);

} // namespace muse::cpu
