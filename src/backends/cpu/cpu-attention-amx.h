// Attention of bulk prompt rows (Batch::bulk) on AMX-BF16 tiles, flash style.
//
// The F32 kernels (cpu-attention.cpp) spend ~12 cycles per (query, cell) score of a prompt: a
// dot and an axpy of the head size each, in FMAs. Here 16 query tokens that share their first
// visible cell go through each chunk of 32 cells together: S = Q K^T and O += P V are tile
// multiplies, and only the online softmax is vector work.
//
// Numerics, per row (query token and head): q scale, K, the softmax weights P and V are rounded
// to BF16 (nearest even); the tiles sum exact products in F32. Cells go in chunks of 32 counted
// from the row's first visible cell, the softmax is online per chunk in F32 (running max and
// sum; the sum adds the F32 weights), cells past the row's last are weight 0 exactly. A row's
// result therefore depends only on its own query, cells and range -- not on the rows sharing its
// tiles, its batch or how its prompt is chunked.
#pragma once

#include "backends/backend.h"
#include "backends/cpu/cpu-attention.h"

#include <cstdint>
#include <vector>

namespace muse {
class ThreadPool;
}

namespace muse::cpu {

// Whether bulk rows of this head size take the tiles (AMX-BF16 runs here, head size a multiple
// of 32 up to 256).
bool amx_attention_takes(int64_t head_dim);

// attention() (cpu-attention.h) for the query tokens listed in `tokens` only: their rows of out.
void amx_attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvRangesHost &kv,
                   int n_head_kv, float scale, const Tensor &out, const std::vector<int32_t> &tokens);

} // namespace muse::cpu
