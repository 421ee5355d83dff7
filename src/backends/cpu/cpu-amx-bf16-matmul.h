// Prompt rows against repacked quantized weights on AMX-BF16 tiles.
//
// The integer kernels (cpu-int8-matmul.h) turn each 32-element block's exact integer sum
// into float with its two scales. On AMX that scale step is more vector work than the tile
// multiply itself, so a prompt's matmul runs at a fraction of the tiles' rate. Here each
// group's weights are dequantized once per call into BF16 B tiles (the scales folded in),
// the activations are rounded to BF16 once, and TDPBF16PS accumulates whole dot products
// in F32 tiles: nothing is left to do per block.
//
// Numerics: a weight becomes BF16(w), w exactly the float core/dequant.cpp gives (one fma of
// the quant with the row's scale and offset, each product exact in F32), an activation BF16(x),
// both rounded to nearest even; the products are exact in F32 and the tiles sum them in a
// fixed order per (row, token): 32 elements per multiply, blocks in ascending order. So a
// token's result does not depend on the other tokens of its call, on the chunking of its
// prompt or on the thread split. It differs from the integer kernels' result (BF16 keeps 8
// significant bits of every activation where Q8 blocks keep 8 of the block's largest, and
// the weights lose ~2^-9 relative), so the engine sends only the rows it classes as a long
// prompt's here (Batch::bulk) -- a property of each request, never of the batch it rides in.
#pragma once

#include "core/ggml-types.h"

#include <cstdint>

namespace muse::cpu {

// True where this path runs: AMX-INT8 and AMX-BF16 in the CPU, the tile state granted, the
// integer kernels on (int8_amx_available), and MUSE_AMX_BF16 is not "0".
bool amx_bf16_available();
// Tests: compare against the integer path in one process (off: amx_bf16_available is false).
void amx_bf16_set_enabled(bool on);

// Activations as BF16 A tiles, 16 tokens per tile (the last one padded with zero tokens):
// element k of token t at a[((t / 16) nb + k / 32) 512 + 32 (t % 16) + k % 32], nb = n_in / 32.
int64_t amx_bf16_panel_elements(int64_t n_in, int64_t n_tok);
// Converts tokens [t0, t1) (of the padded count) of the n_tok rows x [n_in] into the panel.
void amx_bf16_convert(const float *x, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1, uint16_t *a);

// y[r + t ldy] for rows r in groups [g0, g1) (rows >= n_out skipped) and tokens t < n_tok,
// from a packed weight (int8_pack's layout; any int8_packable type) and a converted panel.
void amx_bf16_matmul(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1,
                     const uint16_t *a, int64_t n_tok, float *y, int64_t ldy);

} // namespace muse::cpu
