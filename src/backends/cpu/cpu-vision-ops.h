// CPU implementations of the vision ops of graph.h (patches, resize_bilinear,
// rope_2d, activation, transpose, attention_windows). CpuBackend::compute runs
// these; each checks the shapes it is given and runs on the backend's pool.
#pragma once

#include "backends/backend.h"
#include "backends/cpu/thread-pool.h"

#include <cstdint>

namespace muse::cpu {

class Bf16Matmul;

void patches(ThreadPool &pool, const Tensor &img, int patch, const Tensor &out);
void resize_bilinear(ThreadPool &pool, const Tensor &src, const Tensor &dst);
void rope_2d(ThreadPool &pool, const Tensor &x, const int32_t *pos_a, const int32_t *pos_b, float freq_base);
void activation(ThreadPool &pool, const Tensor &x, Activation f);
void transpose(ThreadPool &pool, const Tensor &src, const Tensor &dst);
// With bf16 set, the two products of each block (Q K^T, softmax weights times V) round their
// operands to BF16 and sum in F32 (cpu-bf16-matmul.h); the softmax itself stays F32.
void attention_windows(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const int32_t *windows,
                       int64_t n_windows, int n_head_kv, float scale, const Tensor &out, Bf16Matmul *bf16 = nullptr);

} // namespace muse::cpu
