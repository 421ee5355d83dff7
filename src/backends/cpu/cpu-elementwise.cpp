#include "backends/cpu/cpu-elementwise.h"

#include "backends/cpu/cpu-int8-matmul.h"
#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "core/dequant.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace muse::cpu {

namespace {

// Rows per chunk so that a chunk holds at least ~16k elements: smaller jobs (a decode
// step's rows) run on the calling thread without a pool round trip.
int64_t rows_per_chunk(int64_t n0) { return std::max<int64_t>(1, (int64_t(16) << 10) / std::max<int64_t>(n0, 1)); }

void for_rows(ThreadPool &pool, int64_t rows, int64_t n0, const std::function<void(int64_t, int64_t)> &fn) {
    const int64_t chunk = rows_per_chunk(n0);
    if (rows <= chunk) {
        fn(0, rows);
        return;
    }
    pool.parallel_for(rows, fn, chunk);
}

// exp(-x) for the logistic function, with -x clamped below e^88 (beyond it the result is
// 0 or x anyway, and the integer exponent trick of exp_scalar / exp256 would overflow).
constexpr float kNegExpMax = 88.0f;

// Per element: g / (1 + exp(-g)) (times u for swiglu), at the active level.
template <bool kTimesUp>
void silu_row(float *g, const float *u, int64_t n) {
    int64_t i = 0;
#if defined(MUSE_HAVE_AVX512)
    if (cpu_level() == CpuLevel::avx512) {
        const __m512 one = _mm512_set1_ps(1.0f), cap = _mm512_set1_ps(kNegExpMax);
        for (; i + 16 <= n; i += 16) {
            const __m512 x = _mm512_loadu_ps(g + i);
            const __m512 e = simd::exp512(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), cap));
            __m512 y = _mm512_div_ps(x, _mm512_add_ps(one, e));
            if constexpr (kTimesUp) y = _mm512_mul_ps(y, _mm512_loadu_ps(u + i));
            _mm512_storeu_ps(g + i, y);
        }
    }
#endif
#if defined(MUSE_HAVE_AVX2)
    if (cpu_level() >= CpuLevel::avx2) {
        const __m256 one = _mm256_set1_ps(1.0f), cap = _mm256_set1_ps(kNegExpMax);
        for (; i + 8 <= n; i += 8) {
            const __m256 x = _mm256_loadu_ps(g + i);
            const __m256 e = simd::exp256(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), x), cap));
            __m256 y = _mm256_div_ps(x, _mm256_add_ps(one, e));
            if constexpr (kTimesUp) y = _mm256_mul_ps(y, _mm256_loadu_ps(u + i));
            _mm256_storeu_ps(g + i, y);
        }
    }
#endif
    for (; i < n; ++i) {
        float y = g[i] / (1.0f + simd::exp_scalar(std::min(-g[i], kNegExpMax)));
        if constexpr (kTimesUp) y *= u[i];
        g[i] = y;
    }
}

} // namespace

void row_to_f32(const Tensor &w, int64_t r, float *out) {
    if (w.layout == WeightLayout::rows16) {
        int8_unpack_row(w.type, static_cast<const uint8_t *>(w.raw()), w.ne[0], r, out);
        return;
    }
    const auto *base = static_cast<const uint8_t *>(w.raw()) + w.row_bytes() * static_cast<size_t>(r);
    dequantize(w.type, base, out, w.ne[0]);
}

void add(ThreadPool &pool, const Tensor &x, const Tensor &b) {
    float *xs = x.f32();
    const int64_t n0 = x.ne[0], rows = x.n_rows();
    if (b.n_elements() == n0) {
        std::vector<float> bias(static_cast<size_t>(n0));
        row_to_f32(b, 0, bias.data());
        for_rows(pool, rows, n0, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t i = 0; i < n0; ++i) xs[r * n0 + i] += bias[static_cast<size_t>(i)];
        });
        return;
    }
    if (b.n_elements() != x.n_elements()) fail(MUSE_ERR_INTERNAL, "add shape mismatch");
    const float *bs = static_cast<const float *>(b.raw());
    for_rows(pool, rows, n0, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n0; i < r1 * n0; ++i) xs[i] += bs[i];
    });
}

void mul_row(ThreadPool &pool, const Tensor &x, const Tensor &w) {
    float *xs = x.f32();
    const int64_t n0 = x.ne[0], rows = x.n_rows();
    if (w.n_elements() != n0) fail(MUSE_ERR_INTERNAL, "mul_row shape mismatch");
    std::vector<float> ws(static_cast<size_t>(n0));
    row_to_f32(w, 0, ws.data());
    for_rows(pool, rows, n0, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < n0; ++i) xs[r * n0 + i] *= ws[static_cast<size_t>(i)];
    });
}

void scale(ThreadPool &pool, const Tensor &x, float s) {
    float *xs = x.f32();
    const int64_t n0 = x.ne[0];
    for_rows(pool, x.n_rows(), n0, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n0; i < r1 * n0; ++i) xs[i] *= s;
    });
}

void rms_norm(ThreadPool &pool, const Tensor &x, const Tensor &w, float eps, const Tensor &y) {
    const float *xs = static_cast<const float *>(x.raw());
    float *ys = y.f32();
    const int64_t n0 = x.ne[0], rows = x.n_rows();
    std::vector<float> ws;
    if (w.valid()) {
        if (w.n_elements() != n0) fail(MUSE_ERR_INTERNAL, "rms_norm weight has ", w.n_elements(), " elements, rows have ", n0);
        ws.resize(static_cast<size_t>(n0));
        row_to_f32(w, 0, ws.data());
    }
    for_rows(pool, rows, n0, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = xs + r * n0;
            float *yr = ys + r * n0;
            double ss = 0.0;  // double: the mean of squares is the only long sum here
            for (int64_t i = 0; i < n0; ++i) ss += static_cast<double>(xr[i]) * xr[i];
            const float s = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n0) + eps));
            for (int64_t i = 0; i < n0; ++i) yr[i] = xr[i] * s * (ws.empty() ? 1.0f : ws[static_cast<size_t>(i)]);
        }
    });
}

void layer_norm(ThreadPool &pool, const Tensor &x, const Tensor &w, const Tensor &b, float eps, const Tensor &y) {
    const float *xs = static_cast<const float *>(x.raw());
    float *ys = y.f32();
    const int64_t n0 = x.ne[0], rows = x.n_rows();
    std::vector<float> ws, bs;
    if (w.valid()) {
        ws.resize(static_cast<size_t>(n0));
        row_to_f32(w, 0, ws.data());
    }
    if (b.valid()) {
        bs.resize(static_cast<size_t>(n0));
        row_to_f32(b, 0, bs.data());
    }
    for_rows(pool, rows, n0, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = xs + r * n0;
            float *yr = ys + r * n0;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < n0; ++i) mean += xr[i];
            mean /= static_cast<double>(n0);
            for (int64_t i = 0; i < n0; ++i) var += (xr[i] - mean) * (xr[i] - mean);
            const double inv = 1.0 / std::sqrt(var / static_cast<double>(n0) + eps);
            for (int64_t i = 0; i < n0; ++i) {
                float v = static_cast<float>((xr[i] - mean) * inv);
                if (!ws.empty()) v *= ws[static_cast<size_t>(i)];
                if (!bs.empty()) v += bs[static_cast<size_t>(i)];
                yr[i] = v;
            }
        }
    });
}

void rope(ThreadPool &pool, const Tensor &x, const int32_t *pos, const RopeParams &p) {
    float *xs = x.f32();
    const int64_t hd = x.ne[0], n_head = x.ne[1], n_tok = x.ne[2];
    const int n_rot = p.n_rot > 0 ? p.n_rot : static_cast<int>(hd);
    // The inverse frequencies, once: base^(-2i/n_rot) in double, as before per token.
    std::vector<double> inv_freq(static_cast<size_t>(n_rot / 2));
    for (int i = 0; i < n_rot / 2; ++i)
        inv_freq[static_cast<size_t>(i)] = std::pow(static_cast<double>(p.freq_base), -2.0 * i / n_rot);
    for_rows(pool, n_tok, hd * n_head, [&](int64_t t0, int64_t t1) {
        std::vector<float> cos_t(static_cast<size_t>(n_rot / 2)), sin_t(static_cast<size_t>(n_rot / 2));
        for (int64_t t = t0; t < t1; ++t) {
            for (int i = 0; i < n_rot / 2; ++i) {
                // theta_i = pos * scale * base^(-2i/n_rot), computed in double then rounded.
                const double theta = static_cast<double>(pos[t]) * p.freq_scale * inv_freq[static_cast<size_t>(i)];
                cos_t[static_cast<size_t>(i)] = static_cast<float>(std::cos(theta));
                sin_t[static_cast<size_t>(i)] = static_cast<float>(std::sin(theta));
            }
            for (int64_t h = 0; h < n_head; ++h) {
                float *v = xs + (t * n_head + h) * hd;
                for (int i = 0; i < n_rot / 2; ++i) {
                    const int64_t a = p.mode == RopeMode::Norm ? 2 * i : i;
                    const int64_t b = p.mode == RopeMode::Norm ? 2 * i + 1 : i + n_rot / 2;
                    const float x0 = v[a], x1 = v[b];
                    v[a] = x0 * cos_t[static_cast<size_t>(i)] - x1 * sin_t[static_cast<size_t>(i)];
                    v[b] = x0 * sin_t[static_cast<size_t>(i)] + x1 * cos_t[static_cast<size_t>(i)];
                }
            }
        }
    });
}

void swiglu(ThreadPool &pool, const Tensor &gate, const Tensor &up) {
    float *g = gate.f32();
    const float *u = static_cast<const float *>(up.raw());
    const int64_t n0 = gate.ne[0];
    for_rows(pool, gate.n_rows(), n0, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) silu_row<true>(g + r * n0, u + r * n0, n0);
    });
}

void sigmoid_mul(ThreadPool &pool, const Tensor &x, const Tensor &g) {
    float *v = x.f32();
    const float *gs = static_cast<const float *>(g.raw());
    const int64_t n0 = x.ne[0];
    for_rows(pool, x.n_rows(), n0, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n0; i < r1 * n0; ++i)
            v[i] *= 1.0f / (1.0f + simd::exp_scalar(std::min(-gs[i], kNegExpMax)));
    });
}

void softcap(ThreadPool &pool, const Tensor &x, float c) {
    float *v = x.f32();
    const int64_t n0 = x.ne[0];
    for_rows(pool, x.n_rows(), n0, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n0; i < r1 * n0; ++i) v[i] = c * std::tanh(v[i] / c);
    });
}

} // namespace muse::cpu
