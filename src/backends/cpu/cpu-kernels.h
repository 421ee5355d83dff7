// The CPU backend's SIMD kernels, chosen at run time by dispatch level.
//
// Every kernel with SIMD variants is compiled once per level the build supports
// (a level's code is guarded by its compile-time macros, so a build without AVX-512
// still compiles) and picked by cpu_level() when an op starts: callers fetch a
// function pointer once per op call, never per element.
//
// Matmul numerics: every weight type is handled as "dequantize a run of the row to
// F32 exactly as core/dequant.cpp does, then an F32 dot", fused per block so the row
// is read once for all the tokens of a call. The dot for one token is the same
// sequence of float operations whatever the number of tokens processed together,
// so a decode batch gives each sequence bit-identical results to decoding it alone.
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
// Tokens one call of a RowDotMultiFn handles together (their accumulators stay in registers).
constexpr int kMaxDotTokens = 8;

// y[t * ldy] = dot(row, x + t * ldx, n) for t in [0, nt), 1 <= nt <= kMaxDotTokens.
// Returns nullptr for types without a fused kernel: the caller dequantizes the row
// (core/dequant.h) and uses the F32 kernel, which gives the same arithmetic.
using RowDotMultiFn = void (*)(const void *row, const float *x, int64_t ldx, int64_t n, int nt, float *y,
                               int64_t ldy);
RowDotMultiFn row_dot_multi_kernel(GgmlType type, CpuLevel level);
inline RowDotMultiFn row_dot_multi_kernel(GgmlType type) { return row_dot_multi_kernel(type, cpu_level()); }

// Single-token form of the same kernels (nullptr as above).
using RowDotFn = float (*)(const void *row, const float *x, int64_t n);
RowDotFn row_dot_kernel(GgmlType type, CpuLevel level);
inline RowDotFn row_dot_kernel(GgmlType type) { return row_dot_kernel(type, cpu_level()); }

// Plain F32 dot at a level, and at the active level (the lookup is cheap but belongs
// outside inner loops: fetch dot_f32_kernel() once).
using DotF32Fn = float (*)(const float *a, const float *b, int64_t n);
DotF32Fn dot_f32_kernel(CpuLevel level);
inline DotF32Fn dot_f32_kernel() { return dot_f32_kernel(cpu_level()); }
inline float dot_f32(const float *a, const float *b, int64_t n) { return dot_f32_kernel()(a, b, n); }

} // namespace muse::cpu
