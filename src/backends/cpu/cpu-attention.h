// CPU implementation of Backend::attention (decode and prefill over the KV cache).
#pragma once

#include "backends/backend.h"
#include "backends/cpu/thread-pool.h"

namespace muse::cpu {

void attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvGather &kv, int n_head_kv,
               float scale, const Tensor &out);

} // namespace muse::cpu
