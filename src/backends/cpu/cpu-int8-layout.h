// The packed group layouts of repacked quantized weights (cpu-int8-matmul.h describes the
// idea; these are the byte offsets), shared by the integer kernels and the AMX-BF16 prompt
// kernel (cpu-amx-bf16-matmul.h), which both read them.
#pragma once

#include "backends/cpu/cpu-int8-matmul.h"
#include "core/ggml-types.h"

#include <cstddef>
#include <cstdint>

namespace muse::cpu::packed {

constexpr int64_t kBlock = 32;
constexpr size_t kScaleBytes = 32;  // 16 F16 scales at the head of a group block

// Q8_0 keeps one byte per weight (8 chunks of 4 per row and block, stored + 128); Q4_0
// keeps its nibbles as the file has them (4 chunks of 4 bytes per row and block: the low
// nibbles are elements 4k..4k+3, the high ones 16+4k..16+4k+3, stored + 8).
// Q4_K (super-blocks of 256 = 8 sub-blocks of 32) is packed per super-block, 2368 bytes for
// 16 rows (the rows' 2304 plus their scales unpacked from 6 bits to bytes):
//   16 F16 d, 16 F16 dmin, sc[j][r] (8 x 16 bytes), m[j][r] (8 x 16 bytes), then for each
//   pair i of sub-blocks (2i, 2i + 1), chunk k = 0..7, row r: the file's qs[32 i + 4 k ..
//   + 4) (low nibbles: sub-block 2i, high: 2i + 1, elements 4k..4k+3 of each; q unsigned).
// A weight is d sc q - dmin m (core/dequant.cpp); per sub-block the kernel adds
// (d sc) dx (q . qx) and subtracts (dmin m) dx (sum qx).
constexpr size_t kQ4KGroupBytes = 2368;
constexpr size_t kQ4KScales = 64, kQ4KMins = 64 + 128, kQ4KQuants = 64 + 256;
// Q5_K is Q4_K's layout plus the fifth bits (512 bytes: 2.3% larger than the file): for
// sub-block j, chunk k, a 64-bit mask with bit 4 r + i set when element 4 k + i of row r
// has it. The kernels add 16 to the nibbles where the mask says.
constexpr size_t kQ5KGroupBytes = kQ4KGroupBytes + 512, kQ5KHighBits = kQ4KGroupBytes;

// Q4_K and Q5_K share their kernels; these say which.
constexpr bool is_k4(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K; }
constexpr size_t k4_group_bytes(bool five) { return five ? kQ5KGroupBytes : kQ4KGroupBytes; }

// Q6_K (super-blocks of 256, a signed 8-bit scale per 16 elements) is packed per super-block,
// 4384 bytes for 16 rows (1.3x the file's 3360: each 6-bit weight gets a byte):
//   16 F16 d, sc[j][r] (16 sub-blocks x 16 rows, int8), then for each block b of 32
//   elements, chunk k = 0..7, row r: q[32 b + 4 k .. + 4) (0..63, the weight + 32).
// A weight is (d sc) (q - 32) (core/dequant.cpp); per half block the kernel adds
// (d sc) dx (q . qx - 32 sum qx).
constexpr size_t kQ6KGroupBytes = 4384;
constexpr size_t kQ6KScales = 32, kQ6KQuants = 32 + 256;

constexpr size_t group_block_bytes(GgmlType t) {  // per 32 elements of 16 rows
    return t == GgmlType::Q4_0   ? 288
           : t == GgmlType::Q4_K ? kQ4KGroupBytes / 8
           : t == GgmlType::Q5_K ? kQ5KGroupBytes / 8
           : t == GgmlType::Q6_K ? kQ6KGroupBytes / 8
                                 : kInt8GroupBlockBytes;
}

} // namespace muse::cpu::packed
