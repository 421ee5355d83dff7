// CPU implementations of the row-wise ops of graph.h: bias and scale, norms, rope and
// the gated activations. Each runs on the backend's pool, split by rows (a token's row is
// computed the same way whatever batch it is in: the ops stay batch-invariant), and the
// activations use the vectorized exp of the active dispatch level.
#pragma once

#include "backends/backend.h"
#include "backends/cpu/thread-pool.h"

#include <cstdint>

namespace muse::cpu {

// Reads element row r of a weight-like tensor (any type or layout) into F32.
void row_to_f32(const Tensor &w, int64_t r, float *out);

void add(ThreadPool &pool, const Tensor &x, const Tensor &b);
void mul_row(ThreadPool &pool, const Tensor &x, const Tensor &w);
void scale(ThreadPool &pool, const Tensor &x, float s);
void rms_norm(ThreadPool &pool, const Tensor &x, const Tensor &w, float eps, const Tensor &y);
void layer_norm(ThreadPool &pool, const Tensor &x, const Tensor &w, const Tensor &b, float eps, const Tensor &y);
void rope(ThreadPool &pool, const Tensor &x, const int32_t *pos, const RopeParams &p);
void swiglu(ThreadPool &pool, const Tensor &gate, const Tensor &up);
void sigmoid_mul(ThreadPool &pool, const Tensor &x, const Tensor &g);
void softcap(ThreadPool &pool, const Tensor &x, float c);

} // namespace muse::cpu
