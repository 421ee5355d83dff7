// CPU implementation of Graph::attention (decode and prefill over the KV cache).
#pragma once

#include "backends/backend.h"
#include "backends/cpu/thread-pool.h"

namespace muse::cpu {

// The host arrays of a KvRanges (graph.h): per token t, cells[begin[t] .. end[t]).
struct KvRangesHost {
    const int32_t *cells, *begin, *end;
};

// bulk: nullptr, or per query token nonzero where the row may take BF16 products (Batch::bulk:
// AMX-BF16 tiles where the CPU has them, cpu-attention-amx.h).
void attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvRangesHost &kv, int n_head_kv,
               float scale, const Tensor &out, const int32_t *bulk = nullptr);

} // namespace muse::cpu
