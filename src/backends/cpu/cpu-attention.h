// CPU implementation of Graph::attention (decode and prefill over the KV cache).
#pragma once

#include "backends/backend.h"
#include "backends/cpu/thread-pool.h"

namespace muse::cpu {

// The host arrays of a KvRanges (graph.h): per token t, cells[begin[t] .. end[t]).
struct KvRangesHost {
    const int32_t *cells, *begin, *end;
};

void attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvRangesHost &kv, int n_head_kv,
               float scale, const Tensor &out);

} // namespace muse::cpu
