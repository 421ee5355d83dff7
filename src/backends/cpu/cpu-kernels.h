// SIMD dot products of one weight row (in its GGUF type) with an F32 vector:
// the inner loop of every CPU matmul. Each kernel sums in a different order
// than the plain reference (core/dequant.cpp + a scalar dot), so results agree
// to float rounding, not bit for bit; tests/test-cpu-kernels.cpp bounds it.
#pragma once

#include "core/ggml-types.h"

#include <cstdint>

namespace muse::cpu {

// Returns nullptr when the type has no fused kernel (the caller dequantizes).
using RowDotFn = float (*)(const void *row, const float *x, int64_t n);
RowDotFn row_dot_kernel(GgmlType type);

// Plain F32 dot (vectorized).
float dot_f32(const float *a, const float *b, int64_t n);

} // namespace muse::cpu
