// Reference dequantization of every supported ggml type to float32.
// These are the plain, bit-exact definitions of the block formats (the same
// arithmetic, in the same order, as ggml's dequantize_row_* functions). Fast
// kernels in src/backends/ are tested against them.
#pragma once

#include "core/ggml-types.h"

#include <cstdint>

namespace muse {

// Dequantizes n elements (a multiple of the type's block size) from src to dst.
// Throws muse::Error for unsupported types or a bad n.
void dequantize(GgmlType type, const void *src, float *dst, int64_t n);

// Bytes occupied by n elements of a type (n a multiple of the block size).
uint64_t type_row_bytes(GgmlType type, int64_t n);

// Six-bit scale and min number j (0..7) of a Q4_K / Q5_K super-block (`q`: its 12-byte
// scales field).
void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m);

} // namespace muse
