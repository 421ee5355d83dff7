// The CPU backend: host memory, a thread pool, and straightforward kernels.
// Quantized matmuls dequantize one weight row at a time into F32 and dot it
// with every input column, so results match the F32 reference to rounding;
// the fast SIMD kernels of the [cpu-perf] work replace these paths per type.
#pragma once

#include "backends/backend.h"

namespace muse {

std::unique_ptr<Backend> make_cpu_backend(int n_threads);

} // namespace muse
