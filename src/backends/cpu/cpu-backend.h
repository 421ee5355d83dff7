// The CPU backend: host memory, a thread pool, and SIMD kernels picked at run time by
// dispatch level (cpu-kernels.h). Decode batches of up to 16 tokens use fused row-dot
// kernels that give each token the same bits as a single-token call; larger batches go
// through oneDNN's SGEMM on dequantized panels.
#pragma once

#include "backends/backend.h"

namespace muse {

std::unique_ptr<Backend> make_cpu_backend(int n_threads);

} // namespace muse
