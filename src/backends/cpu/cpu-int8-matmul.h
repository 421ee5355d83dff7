// Q8_0, Q4_0, Q4_K, Q5_K and Q6_K matmul with 8-bit activations and integer dot products (AVX-512 VNNI).
//
// Decoding and prefill with quantized weights are limited by how fast weights become
// products: widening every weight byte to F32 costs more instructions than the
// products themselves. Instead, as llama.cpp does, each token's activations are
// quantized on the fly to 8-bit blocks of 32 and every block dot is an exact
// integer sum; only one scale multiply per block remains in float.
//
// Weights are repacked once at load (cpu-backend.cpp, when the CPU has AVX-512 VNNI)
// into groups of 16 rows so that one 64-byte load holds 4 bytes of each of the 16
// rows: a VNNI instruction then adds 4 products into each row's own lane, no
// horizontal sums. The packed group of rows [16 g, 16 g + 16), block b, holds exactly the
// 16 rows' bytes of that block (544 for Q8_0, 288 for Q4_0):
//   16 F16 block scales (32 bytes), then
//   Q8_0: for k = 0..7: for row r = 0..15: bytes q[r][4k .. 4k + 4) + 128;
//   Q4_0: for k = 0..3: for row r = 0..15: the file's bytes qs[r][4k .. 4k + 4), whose low
//         nibbles are elements 4k..4k+3 and high nibbles elements 16+4k..16+4k+3 (q + 8).
// Weights are stored unsigned because VNNI multiplies unsigned by signed bytes; the offset
// comes back out exactly as offset * (sum of the block's activation bytes). Rows past the
// tensor's last row (n_out not a multiple of 16) are zero. The K-quants' layouts are
// described in the .cpp: Q4_K per super-block of 256, its 6-bit scales unpacked to bytes
// (2.8% larger than the file), Q5_K the same plus its fifth bits as byte masks; Q6_K with a byte per weight (1.3x the file), its scales per
// 16 elements taken per half block.
//
// Activation quantization (per token, per block of 32), as ggml's x86 quantize_row_q8_0:
//   amax = max |x|,  d = amax / 127,  q = round_nearest_even(x * (d ? 1/d : 0)),
//   the block's scale is F16(d) (rounded to half, as ggml stores it).
// The result for (row, token) is, block by block in order,
//   acc = fma(float(sum_j q_w q_x), F16(d_w) * F16(d_x), acc)
// a fixed sequence of float operations whatever the number of tokens, the tiling or
// the dispatch level: the scalar kernel gives the same bits as the VNNI one, and a
// token's column does not depend on the batch it rides in.
#pragma once

#include "core/ggml-types.h"

#include <cstddef>
#include <cstdint>

namespace muse::cpu {

constexpr int64_t kInt8Rows = 16;            // rows per packed group
constexpr size_t kInt8GroupBlockBytes = 544;  // one Q8_0 block of one group: 16 * 34

// True when this CPU (and build) runs the VNNI kernel at the active level, i.e. when
// repacking pays, unless the environment sets MUSE_INT8_MATMUL=0.
bool int8_matmul_available();

// True when, in addition, 16-token tiles run on AMX-INT8 (Sapphire Rapids and later, with
// the kernel's permission; MUSE_AMX=0 turns it off). Same bits as the VNNI kernel.
bool int8_amx_available();
// Tests: compare AMX against VNNI in one process.
void int8_set_amx_enabled(bool on);

// The weight types the integer kernels take (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K).
bool int8_packable(GgmlType type);
// Bytes of the packed form of a [n_in, n_out] weight of `type` (n_out rounded up to 16).
size_t int8_packed_bytes(GgmlType type, int64_t n_in, int64_t n_out);
// Packs groups [g0, g1) of the rows `src` (the file's layout, n_out rows) into dst
// (int8_packed_bytes long).
void int8_pack(GgmlType type, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1, uint8_t *dst);
// Row `r` of a packed weight, dequantized to F32 (the values core/dequant.cpp gives for
// the original row).
void int8_unpack_row(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t r, float *out);

// The 8-bit form of n_tok activation rows x [n_in] (n_in a multiple of 32): n_in bytes per
// token in q, and per block of 32 a scale in d (already rounded to F16) and the sum of the
// block's bytes in s (the correction for the unsigned weights). Two layouts:
//   rows:  token t, block b at q[t n_in + 32 b], d/s[t nb + b];
//   tiles: 16-token tiles as AMX multiplies them, the last one padded with zero tokens:
//          token t, block b at q[(t / 16) 16 n_in + 512 b + 32 (t % 16)],
//          d/s[(t / 16) 16 nb + 16 b + t % 16].
// Quantizing straight into tiles spares each thread (and each matmul sharing the input)
// a copy of the activations into them.
enum class Int8Layout { rows, tiles };

// The layout int8_matmul takes fastest for n_tok tokens on this CPU (tiles where AMX runs).
Int8Layout int8_layout(int64_t n_tok);
// Tokens the q / d / s buffers hold for n_tok tokens (tiles: rounded up to 16).
int64_t int8_padded_tokens(Int8Layout layout, int64_t n_tok);

// Quantizes tokens [t0, t1) of the n_tok rows x into q / d / s in the layout; tokens from
// n_tok on (a last tile's padding) become zero bytes, scales and sums.
void int8_quantize_rows(const float *x, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1, Int8Layout layout,
                        int8_t *q, float *d, int32_t *s);

struct Int8Activations {
    const int8_t *q;
    const float *d;
    const int32_t *s;
    int64_t n_tok;
    Int8Layout layout;
};

// y[r + t * ldy] for rows r in groups [g0, g1) (rows >= n_out skipped) and tokens
// t < x.n_tok, from packed weights and quantized activations (either layout; the bits do
// not depend on it).
void int8_matmul(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1,
                 const Int8Activations &x, float *y, int64_t ldy);

} // namespace muse::cpu
