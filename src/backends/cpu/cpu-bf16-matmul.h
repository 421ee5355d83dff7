// Matmuls with BF16 products and F32 sums, for the ops that carry OpNode::bf16_ok (the
// vision towers), on CPUs whose BF16 units make them several times faster than SGEMM.
//
// Both operands are rounded to BF16 (round to nearest even, as oneDNN and PyTorch do) and
// oneDNN's matmul primitive multiplies them, accumulating in F32 (AMX-BF16 tiles where the
// CPU has them, AVX-512 BF16 dot products otherwise). A product then carries ~2^-9 relative
// error per operand; over a dot of K terms the errors are random in sign, so the relative
// error of a result is ~2^-8 / sqrt(K) x sqrt(sum of squared terms) / |sum| -- what the
// vision embeddings tolerate (tests/python/test_vision_bf16.py holds them to 1e-2 of F32).
//
// Weights are converted once: weight buffers register the memory they own (remember), and
// the first matmul on a weight inside it keeps a BF16 copy, reordered into the blocked layout
// the primitive asks for, until that buffer is freed (forget), i.e. for the model's life.
// Weights from anywhere else are converted per call.
//
// oneDNN 2.6 runs its AMX kernels only on dense operands (strided views get its much slower
// gemm kernels), so each pool thread takes runs of tokens against the whole weight, with dense
// X and Y, and runs a single-threaded primitive on them (oneDNN's OpenMP team would spin
// against the pool, as for the SGEMM path). Primitives are created once per shape and kept,
// with their scratchpads per thread.
#pragma once

#include "backends/backend.h"

#include <cstdint>
#include <memory>

namespace muse {
class ThreadPool;
}

namespace muse::cpu {

// Whether BF16 matmuls run here: the CPU has AVX-512 BF16 or AMX-BF16, oneDNN dispatches to
// them, the dispatch level is AVX-512 (MUSE_CPU_LEVEL caps it) and MUSE_VISION_BF16 is not
// "0" (the switch that keeps the F32 reference reachable). Asked once.
bool bf16_matmul_available();

// dst[i] = BF16(src[i]), round to nearest even (NaN stays NaN).
void f32_to_bf16(const float *src, uint16_t *dst, int64_t n);
float bf16_to_f32(uint16_t h);

class Bf16Matmul {
public:
    Bf16Matmul();
    ~Bf16Matmul();
    Bf16Matmul(const Bf16Matmul &) = delete;
    Bf16Matmul &operator=(const Bf16Matmul &) = delete;

    // Weights inside [begin, begin + bytes) belong to owner (a weight buffer) and stay
    // unchanged until forget(owner), which also frees their BF16 copies.
    void remember(const void *owner, const void *begin, size_t bytes);
    void forget(const void *owner);

    // y [n_out, n_tok] = w · x per column, w [n_in, n_out] F32 or F16 (host), x [n_in, n_tok] F32.
    void matmul(ThreadPool &pool, const Tensor &w, const float *x, int64_t n_tok, float *y);

    // One single-threaded product on the calling thread, all row-major with leading dimensions:
    //   C[m, n] = alpha * A[m, k] B[k, n],   A, B BF16;  B read as B[kk, j] = b[j * ldb + kk]
    //   when b_trans, else b[kk * ldb + j]; C F32. (The windowed attention's blocks.)
    void gemm(int64_t m, int64_t n, int64_t k, float alpha, const uint16_t *a, int64_t lda, const uint16_t *b,
              int64_t ldb, bool b_trans, float *c, int64_t ldc);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace muse::cpu
