#include "backends/cpu/cpu-vision-ops.h"

#include "backends/cpu/cpu-bf16-matmul.h"

#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "core/error.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

// GCC 12 reports its own AVX-512 intrinsic headers (_mm512_undefined_ps) as reading
// uninitialized values once inlined here; a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// From the OpenMP runtime oneDNN is built on (see cpu-backend.cpp).
extern "C" void omp_set_num_threads(int);

namespace muse::cpu {
namespace {

void need_f32(const Tensor &t, const char *op, const char *what) {
    if (t.type != GgmlType::F32) fail(MUSE_ERR_INTERNAL, op, ": ", what, " must be F32");
}

// oneDNN's SGEMM spins up its own OpenMP team unless told otherwise; inside the
// pool every thread runs single-threaded GEMMs (same reasoning as CpuBackend::gemm).
void single_threaded_sgemm() {
    static thread_local bool once = (omp_set_num_threads(1), true);
    (void)once;
}

// ---- softmax pieces for attention_windows and the erf GELU, one variant per dispatch
// level (picked once per op call). exp is the hot spot of the softmax once the two products
// are GEMMs (n_tok^2 * n_head calls per layer), so it is vectorized (simd::exp*, relative
// error < 2e-7, far below the 1e-4 the encoders are tested to).
//
// GELU (erf form): erf is the hot spot of the encoders' FFNs after the GEMMs (n_tok * n_ff
// calls per layer), so it is vectorized with Abramowitz & Stegun 7.1.26:
// erf|z| = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z^2), t = 1 / (1 + p|z|), absolute
// error <= 1.5e-7 -- below float32 resolution of the result where it matters.
void gelu_erf_scalar(float *v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = 0.5f * v[i] * (1.0f + std::erf(v[i] * static_cast<float>(M_SQRT1_2)));
}

#if defined(MUSE_HAVE_AVX512)
void gelu_erf_avx512(float *v, int64_t n) {
    int64_t i = 0;
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    const __m512i sign = _mm512_set1_epi32(static_cast<int32_t>(0x80000000u));
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(v + i);
        const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(static_cast<float>(M_SQRT1_2)));
        const __m512 az = _mm512_abs_ps(z);
        const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, one));
        __m512 p = _mm512_set1_ps(1.061405429f);
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
        p = _mm512_mul_ps(p, t);
        const __m512 e = simd::exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
        const __m512 erf_abs = _mm512_fnmadd_ps(p, e, one);
        const __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(erf_abs), _mm512_and_si512(_mm512_castps_si512(z), sign)));
        _mm512_storeu_ps(v + i, _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, erf)));
    }
    gelu_erf_scalar(v + i, n - i);
}

#endif

#if defined(MUSE_HAVE_AVX2)
void gelu_erf_avx2(float *v, int64_t n) {
    int64_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(0x80000000u)));
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(v + i);
        const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(static_cast<float>(M_SQRT1_2)));
        const __m256 az = _mm256_andnot_ps(sign, z);
        const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), az, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        p = _mm256_mul_ps(p, t);
        const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(az, az)));
        const __m256 erf = _mm256_or_ps(_mm256_fnmadd_ps(p, e, one), _mm256_and_ps(z, sign));
        _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, erf)));
    }
    gelu_erf_scalar(v + i, n - i);
}

#endif

struct SoftmaxFns {
    void (*gelu_erf)(float *, int64_t);
    float (*row_max)(const float *, int64_t);
    float (*exp_shift_sum)(float *, int64_t, float);
};

SoftmaxFns softmax_fns() {
    switch (cpu_level()) {
#if defined(MUSE_HAVE_AVX512)
    case CpuLevel::avx512: return {gelu_erf_avx512, simd::row_max_avx512, simd::exp_shift_sum_avx512};
#endif
#if defined(MUSE_HAVE_AVX2)
    case CpuLevel::avx2: return {gelu_erf_avx2, simd::row_max_avx2, simd::exp_shift_sum_avx2};
#endif
    default: return {gelu_erf_scalar, simd::row_max_scalar, simd::exp_shift_sum_scalar};
    }
}

} // namespace

void patches(ThreadPool &pool, const Tensor &img, int patch, const Tensor &out) {
    need_f32(img, "patches", "the image");
    need_f32(out, "patches", "the output");
    const int64_t W = img.ne[0], H = img.ne[1], C = img.ne[2];
    if (patch <= 0 || W % patch || H % patch || img.ne[3] != 1)
        fail(MUSE_ERR_INTERNAL, "patches: image ", W, "x", H, " is not a whole number of ", patch, "-pixel patches");
    const int64_t gw = W / patch, gh = H / patch, rows = int64_t(patch) * patch * C;
    if (out.ne[0] != rows || out.n_rows() != gw * gh)
        fail(MUSE_ERR_INTERNAL, "patches: output is [", out.ne[0], ",", out.n_rows(), "], expected [", rows, ",",
             gw * gh, "]");
    const float *src = static_cast<const float *>(img.raw());
    float *dst = out.f32();
    pool.parallel_for(gw * gh, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const int64_t py = p / gw, px = p % gw;
            float *o = dst + p * rows;
            for (int64_t c = 0; c < C; ++c)
                for (int64_t ky = 0; ky < patch; ++ky)
                    std::memcpy(o + (c * patch + ky) * patch, src + c * W * H + (py * patch + ky) * W + px * patch,
                                static_cast<size_t>(patch) * 4);
        }
    }, 16);
}

void resize_bilinear(ThreadPool &pool, const Tensor &src, const Tensor &dst) {
    need_f32(src, "resize_bilinear", "the source");
    need_f32(dst, "resize_bilinear", "the destination");
    const int64_t C = src.ne[0], wi = src.ne[1], hi = src.ne[2], wo = dst.ne[1], ho = dst.ne[2];
    if (dst.ne[0] != C || src.ne[3] != 1 || dst.ne[3] != 1 || wi <= 0 || hi <= 0 || wo <= 0 || ho <= 0)
        fail(MUSE_ERR_INTERNAL, "resize_bilinear: shapes [", C, ",", wi, ",", hi, "] -> [", dst.ne[0], ",", wo, ",",
             ho, "] do not match");
    struct Tap {
        int64_t i0, i1;
        float f;
    };
    auto taps = [](int64_t in, int64_t out) {
        std::vector<Tap> t(static_cast<size_t>(out));
        for (int64_t d = 0; d < out; ++d) {
            const double s = (static_cast<double>(d) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
            const double fl = std::floor(s);
            const auto i = static_cast<int64_t>(fl);
            t[static_cast<size_t>(d)] = {std::clamp<int64_t>(i, 0, in - 1), std::clamp<int64_t>(i + 1, 0, in - 1),
                                         static_cast<float>(std::clamp(s - fl, 0.0, 1.0))};
        }
        return t;
    };
    const std::vector<Tap> tx = taps(wi, wo), ty = taps(hi, ho);
    const float *s = static_cast<const float *>(src.raw());
    float *d = dst.f32();
    pool.parallel_for(wo * ho, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const Tap &x = tx[static_cast<size_t>(p % wo)], &y = ty[static_cast<size_t>(p / wo)];
            const float *a = s + (y.i0 * wi + x.i0) * C, *b = s + (y.i0 * wi + x.i1) * C;
            const float *c = s + (y.i1 * wi + x.i0) * C, *e = s + (y.i1 * wi + x.i1) * C;
            float *o = d + p * C;
            for (int64_t k = 0; k < C; ++k) {
                const float top = a[k] + (b[k] - a[k]) * x.f, bottom = c[k] + (e[k] - c[k]) * x.f;
                o[k] = top + (bottom - top) * y.f;
            }
        }
    }, 4);
}

void rope_2d(ThreadPool &pool, const Tensor &x, const int32_t *pos_a, const int32_t *pos_b, float freq_base) {
    need_f32(x, "rope_2d", "x");
    const int64_t hd = x.ne[0], n_head = x.ne[1], n_tok = x.ne[2];
    if (hd % 4 != 0 || x.ne[3] != 1) fail(MUSE_ERR_INTERNAL, "rope_2d: head dim ", hd, " is not a multiple of 4");
    const int64_t half = hd / 2, pairs = half / 2;
    std::vector<double> inv_freq(static_cast<size_t>(pairs));
    for (int64_t i = 0; i < pairs; ++i)
        inv_freq[static_cast<size_t>(i)] =
            std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(half));
    float *xs = x.f32();
    pool.parallel_for(n_tok, [&](int64_t t0, int64_t t1) {
        std::vector<float> cs(static_cast<size_t>(4 * pairs));  // cos_a, sin_a, cos_b, sin_b
        for (int64_t t = t0; t < t1; ++t) {
            for (int64_t i = 0; i < pairs; ++i) {
                const double ta = pos_a[t] * inv_freq[static_cast<size_t>(i)];
                const double tb = pos_b[t] * inv_freq[static_cast<size_t>(i)];
                cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(ta));
                cs[static_cast<size_t>(pairs + i)] = static_cast<float>(std::sin(ta));
                cs[static_cast<size_t>(2 * pairs + i)] = static_cast<float>(std::cos(tb));
                cs[static_cast<size_t>(3 * pairs + i)] = static_cast<float>(std::sin(tb));
            }
            for (int64_t h = 0; h < n_head; ++h) {
                float *v = xs + (t * n_head + h) * hd;
                for (int part = 0; part < 2; ++part) {
                    const float *c = cs.data() + 2 * part * pairs, *sn = c + pairs;
                    float *u = v + part * half;
                    for (int64_t i = 0; i < pairs; ++i) {
                        const float x0 = u[2 * i], x1 = u[2 * i + 1];
                        u[2 * i] = x0 * c[i] - x1 * sn[i];
                        u[2 * i + 1] = x0 * sn[i] + x1 * c[i];
                    }
                }
            }
        }
    }, 8);
}

void activation(ThreadPool &pool, const Tensor &x, Activation f) {
    need_f32(x, "activation", "x");
    if (f != Activation::GeluErf && f != Activation::GeluTanh && f != Activation::GeluQuick && f != Activation::Silu)
        fail(MUSE_ERR_INTERNAL, "activation: unknown function ", static_cast<int>(f));  // not from a pool thread
    float *v = x.f32();
    const auto gelu_erf = softmax_fns().gelu_erf;
    pool.parallel_for(x.n_elements(), [&](int64_t i0, int64_t i1) {
        switch (f) {
        case Activation::GeluErf: gelu_erf(v + i0, i1 - i0); break;
        case Activation::GeluTanh: {
            const float k = 0.79788456080286535588f;  // sqrt(2/pi)
            for (int64_t i = i0; i < i1; ++i)
                v[i] = 0.5f * v[i] * (1.0f + std::tanh(k * v[i] * (1.0f + 0.044715f * v[i] * v[i])));
            break;
        }
        case Activation::GeluQuick:
            for (int64_t i = i0; i < i1; ++i) v[i] = v[i] / (1.0f + std::exp(-1.702f * v[i]));
            break;
        case Activation::Silu:
            for (int64_t i = i0; i < i1; ++i) v[i] = v[i] / (1.0f + std::exp(-v[i]));
            break;
        }
    }, 16384);
}

void transpose(ThreadPool &pool, const Tensor &src, const Tensor &dst) {
    need_f32(src, "transpose", "the source");
    need_f32(dst, "transpose", "the destination");
    const int64_t a = src.ne[0], b = src.ne[1], n = src.ne[2] * src.ne[3];
    if (dst.ne[0] != b || dst.ne[1] != a || dst.ne[2] * dst.ne[3] != n)
        fail(MUSE_ERR_INTERNAL, "transpose: [", a, ",", b, ",", n, "] cannot become [", dst.ne[0], ",", dst.ne[1], ",",
             dst.ne[2] * dst.ne[3], "]");
    const float *s = static_cast<const float *>(src.raw());
    float *d = dst.f32();
    pool.parallel_for(n, [&](int64_t n0, int64_t n1) {
        for (int64_t k = n0; k < n1; ++k) {
            const float *sk = s + k * a * b;
            float *dk = d + k * a * b;
            for (int64_t j = 0; j < b; ++j)
                for (int64_t i = 0; i < a; ++i) dk[i * b + j] = sk[j * a + i];
        }
    }, 4);
}

// Per window and head: S = scale * Q K^T and O = softmax(S) V as two single-threaded
// SGEMMs over strided views of q/k/v (no copies), in blocks of query rows so that the
// scores stay in cache; the pool runs the (window, head, block) tasks.
void attention_windows(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const int32_t *windows,
                       int64_t n_windows, int n_head_kv, float scale, const Tensor &out, Bf16Matmul *bf16) {
    for (const Tensor *t : {&q, &k, &v, &out}) need_f32(*t, "attention_windows", "every operand");
    const int64_t hd = q.ne[0], n_head = q.ne[1], n_tok = q.ne[2];
    if (n_head_kv <= 0 || n_head % n_head_kv != 0)
        fail(MUSE_ERR_INTERNAL, "attention_windows: ", n_head, " heads are not a multiple of ", n_head_kv, " kv heads");
    const int64_t kv_width = hd * n_head_kv, q_width = hd * n_head, group = n_head / n_head_kv;
    if (k.ne[0] != kv_width || v.ne[0] != kv_width || k.n_rows() != n_tok || v.n_rows() != n_tok ||
        out.ne[0] != q_width || out.n_rows() != n_tok || q.ne[3] != 1)
        fail(MUSE_ERR_INTERNAL, "attention_windows: q/k/v/out shapes do not match");
    int64_t total = 0, longest = 0;
    for (int64_t w = 0; w < n_windows; ++w) {
        if (windows[w] <= 0) fail(MUSE_ERR_INTERNAL, "attention_windows: window ", w, " is empty");
        total += windows[w];
        longest = std::max<int64_t>(longest, windows[w]);
    }
    if (total != n_tok) fail(MUSE_ERR_INTERNAL, "attention_windows: windows cover ", total, " of ", n_tok, " tokens");

    constexpr int64_t kBlock = 128;  // query rows per task: a 128 x 1024 score block is 512 KiB
    struct Task {
        int64_t start, len, row0, rows, head;
    };
    std::vector<Task> tasks;
    for (int64_t w = 0, start = 0; w < n_windows; start += windows[w], ++w)
        for (int64_t h = 0; h < n_head; ++h)
            for (int64_t r = 0; r < windows[w]; r += kBlock)
                tasks.push_back({start, windows[w], r, std::min<int64_t>(kBlock, windows[w] - r), h});

    const float *qs = static_cast<const float *>(q.raw());
    const float *ks = static_cast<const float *>(k.raw()), *vs = static_cast<const float *>(v.raw());
    float *os = out.f32();
    const SoftmaxFns fns = softmax_fns();
    // BF16: q, k and v converted once into one dense [n_tok, hd] matrix per head (oneDNN's AMX
    // kernels want dense operands; on strided views it falls back to much slower ones), the
    // weights of each block before the second product.
    std::vector<uint16_t> qkv16;
    const uint16_t *q16 = nullptr, *k16 = nullptr, *v16 = nullptr;
    if (bf16) {
        const int64_t nq = q_width * n_tok, nk = kv_width * n_tok;
        qkv16.resize(static_cast<size_t>(nq + 2 * nk));
        uint16_t *p = qkv16.data();
        pool.parallel_for(n_tok, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                for (int64_t h = 0; h < n_head; ++h)
                    f32_to_bf16(qs + t * q_width + h * hd, p + (h * n_tok + t) * hd, hd);
                for (int64_t h = 0; h < n_head_kv; ++h) {
                    f32_to_bf16(ks + t * kv_width + h * hd, p + nq + (h * n_tok + t) * hd, hd);
                    f32_to_bf16(vs + t * kv_width + h * hd, p + nq + nk + (h * n_tok + t) * hd, hd);
                }
            }
        }, 16);
        q16 = p;
        k16 = p + nq;
        v16 = p + nq + nk;
    }
    std::atomic<int> failed{0};
    // Tasks are handed out one at a time rather than in fixed shares: on a machine shared with
    // other jobs a descheduled thread then delays only its current task.
    std::atomic<int64_t> next{0};
    const auto n_tasks = static_cast<int64_t>(tasks.size());
    pool.parallel_for(std::min<int64_t>(n_tasks, pool.size()), [&](int64_t, int64_t) {
        single_threaded_sgemm();
        std::vector<float> scores(static_cast<size_t>(std::min(kBlock, longest) * longest));
        std::vector<float> inv(static_cast<size_t>(kBlock));
        std::vector<uint16_t> scores16(bf16 ? scores.size() : 0);
        std::vector<float> block(bf16 ? static_cast<size_t>(kBlock * hd) : 0);
        for (int64_t ti = next++; ti < n_tasks; ti = next++) {
            const Task &t = tasks[static_cast<size_t>(ti)];
            const int64_t hk = t.head / group;
            const float *qb = qs + (t.start + t.row0) * q_width + t.head * hd;
            const float *kb = ks + t.start * kv_width + hk * hd, *vb = vs + t.start * kv_width + hk * hd;
            float *ob = os + (t.start + t.row0) * q_width + t.head * hd;
            float *s = scores.data();
            const int64_t qoff = (t.head * n_tok + t.start + t.row0) * hd, kvoff = (hk * n_tok + t.start) * hd;
            if (bf16)
                bf16->gemm(t.rows, t.len, hd, scale, q16 + qoff, hd, k16 + kvoff, hd, true, s, t.len);
            else if (dnnl_sgemm('N', 'T', t.rows, t.len, hd, scale, qb, q_width, kb, kv_width, 0.0f, s, t.len) !=
                     dnnl_success)
                failed.store(1);
            for (int64_t r = 0; r < t.rows; ++r) {
                float *sr = s + r * t.len;
                inv[static_cast<size_t>(r)] = 1.0f / fns.exp_shift_sum(sr, t.len, fns.row_max(sr, t.len));
            }
            // O = E V with the unnormalized weights, then each row divided by its sum.
            if (bf16) {
                f32_to_bf16(s, scores16.data(), t.rows * t.len);
                bf16->gemm(t.rows, hd, t.len, 1.0f, scores16.data(), t.len, v16 + kvoff, hd, false, block.data(), hd);
                for (int64_t r = 0; r < t.rows; ++r)
                    std::memcpy(ob + r * q_width, block.data() + r * hd, static_cast<size_t>(hd) * 4);
            } else if (dnnl_sgemm('N', 'N', t.rows, hd, t.len, 1.0f, s, t.len, vb, kv_width, 0.0f, ob, q_width) !=
                       dnnl_success) {
                failed.store(1);
            }
            for (int64_t r = 0; r < t.rows; ++r)
                for (int64_t i = 0; i < hd; ++i) ob[r * q_width + i] *= inv[static_cast<size_t>(r)];
        }
    });
    if (failed.load()) fail(MUSE_ERR_INTERNAL, "oneDNN sgemm failed");
}

} // namespace muse::cpu
