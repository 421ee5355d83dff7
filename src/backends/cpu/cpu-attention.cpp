// Attention over the KV cache, flash style: for one query token and one kv head, the
// group's query heads walk the token's cells in chunks; each K and V row is read once
// (F16 rows converted into a small chunk buffer, never the whole cache), scores of a
// chunk go through an online softmax (running max and sum, earlier output rescaled when
// the max grows). A chunk's V products are summed on their own before being added to
// the running output, which keeps float rounding to about chunk + n_chunks terms.
//
// Work is (token, kv head) pairs; when there are fewer pairs than threads (decode with
// one kv head) each pair's cells are split across threads and the partial softmaxes
// merged: out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M).
#include "backends/cpu/cpu-attention.h"

#include "backends/cpu/cpu-attention-amx.h"

#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace muse::cpu {
namespace {

constexpr int64_t kChunk = 64;           // cells per online-softmax step: scores stay in L1
constexpr int64_t kMinSplitCells = 256;  // smallest share of one token's cells worth a thread

// ---- per-level vector pieces
struct OpsScalar {
    static float dot(const float *a, const float *b, int64_t n) {
        float s = 0.0f;
        for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
        return s;
    }
    static void axpy(float *o, float p, const float *v, int64_t n) {
        for (int64_t i = 0; i < n; ++i) o[i] += p * v[i];
    }
    static void to_f32(const uint16_t *h, float *f, int64_t n) {
        for (int64_t i = 0; i < n; ++i) f[i] = fp16_to_fp32(h[i]);
    }
    static float max(const float *s, int64_t n) { return simd::row_max_scalar(s, n); }
    // s[i] = exp(s[i] - m); returns the sum.
    static float exp_sum(float *s, int64_t n, float m) { return simd::exp_shift_sum_scalar(s, n, m); }
};

#if defined(MUSE_HAVE_AVX2)
struct OpsAvx2 {
    static float dot(const float *a, const float *b, int64_t n) {
        int64_t i = 0;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (; i + 16 <= n; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
        }
        float s = simd::hsum256(_mm256_add_ps(a0, a1));
        for (; i < n; ++i) s += a[i] * b[i];
        return s;
    }
    static void axpy(float *o, float p, const float *v, int64_t n) {
        int64_t i = 0;
        const __m256 vp = _mm256_set1_ps(p);
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(vp, _mm256_loadu_ps(v + i), _mm256_loadu_ps(o + i)));
        for (; i < n; ++i) o[i] += p * v[i];
    }
    static void to_f32(const uint16_t *h, float *f, int64_t n) {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + i))));
        for (; i < n; ++i) f[i] = fp16_to_fp32(h[i]);
    }
    static float max(const float *s, int64_t n) { return simd::row_max_avx2(s, n); }
    static float exp_sum(float *s, int64_t n, float m) { return simd::exp_shift_sum_avx2(s, n, m); }
};
#endif

#if defined(MUSE_HAVE_AVX512)
struct OpsAvx512 {
    static float dot(const float *a, const float *b, int64_t n) {
        int64_t i = 0;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (; i + 32 <= n; i += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), a1);
        }
        if (i + 16 <= n) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
            i += 16;
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        for (; i < n; ++i) s += a[i] * b[i];
        return s;
    }
    static void axpy(float *o, float p, const float *v, int64_t n) {
        int64_t i = 0;
        const __m512 vp = _mm512_set1_ps(p);
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(o + i, _mm512_fmadd_ps(vp, _mm512_loadu_ps(v + i), _mm512_loadu_ps(o + i)));
        for (; i < n; ++i) o[i] += p * v[i];
    }
    static void to_f32(const uint16_t *h, float *f, int64_t n) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(f + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(h + i))));
        for (; i < n; ++i) f[i] = fp16_to_fp32(h[i]);
    }
    static float max(const float *s, int64_t n) { return simd::row_max_avx512(s, n); }
    static float exp_sum(float *s, int64_t n, float m) { return simd::exp_shift_sum_avx512(s, n, m); }
};
#endif

struct Shape {
    const float *q;
    const uint8_t *k, *v;
    size_t k_row, v_row;  // bytes per cache column
    bool f16;
    int64_t hd, n_head, group;
    float scale;
    const int32_t *cells;
};

// Running state of one (token, kv head[, split]): per query head of the group the max m,
// the sum l of e^(s - m) and the unnormalized output o[hd].
struct State {
    float *o;   // group * hd
    float *m;   // group
    double *l;  // group
};

// One chunk of n <= kChunk cells, the generic way (any level, any head size): each K / V row
// converted once into a row buffer, then one dot / axpy per query head of the group.
//   scores: sc[g * kChunk + c] = scale * q_g . k_c         values: oc[g * hd ..] = sum_c sc[g, c] v_c
template <class Ops>
struct ChunkGeneric {
    static void scores(const Shape &s, const int32_t *cells, int64_t n, const float *q, size_t col, float *sc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        for (int64_t c = 0; c < n; ++c) {
            const uint8_t *kr = s.k + s.k_row * static_cast<size_t>(cells[c]) + col;
            const float *kv = reinterpret_cast<const float *>(kr);
            if (s.f16) {
                Ops::to_f32(reinterpret_cast<const uint16_t *>(kr), buf, hd);
                kv = buf;
            }
            for (int64_t g = 0; g < G; ++g) sc[g * kChunk + c] = Ops::dot(kv, q + g * hd, hd) * s.scale;
        }
    }
    static void values(const Shape &s, const int32_t *cells, int64_t n, const float *sc, size_t col, float *oc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        std::fill(oc, oc + G * hd, 0.0f);
        for (int64_t c = 0; c < n; ++c) {
            const uint8_t *vr = s.v + s.v_row * static_cast<size_t>(cells[c]) + col;
            const float *vv = reinterpret_cast<const float *>(vr);
            if (s.f16) {
                Ops::to_f32(reinterpret_cast<const uint16_t *>(vr), buf, hd);
                vv = buf;
            }
            for (int64_t g = 0; g < G; ++g) Ops::axpy(oc + g * hd, sc[g * kChunk + c], vv, hd);
        }
    }
};

#if defined(MUSE_HAVE_AVX512)
// AVX-512 chunks for head sizes that are whole vectors (hd % 16 == 0: every common model).
// The chunk's K / V rows are first converted side by side into a buffer (F16 read once);
// scores then take 16 cells at a time, their 16 partial-sum vectors reduced together by a
// transpose-and-add tree (3 operations per score instead of a full horizontal sum each),
// and the values keep 64 output columns of one head in registers across the chunk's cells.
inline __m512 pair_sum(__m512 a, __m512 b) { return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b)); }
inline __m512 quad_sum(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline __m512 lane_sum(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}
// Lane i of the result is the sum of the 16 lanes of v[i].
inline __m512 reduce16(const __m512 v[16]) {
    __m512 q[4];
    for (int j = 0; j < 4; ++j) q[j] = quad_sum(pair_sum(v[4 * j], v[4 * j + 1]), pair_sum(v[4 * j + 2], v[4 * j + 3]));
    return lane_sum(lane_sum(q[0], q[1]), lane_sum(q[2], q[3]));
}

struct ChunkAvx512 {
    // Rows of the chunk's cells as F32, hd apart (F32 caches are copied too: one layout).
    static void gather(const uint8_t *base, size_t row, bool f16, const int32_t *cells, int64_t n, int64_t hd,
                       size_t col, float *buf) {
        for (int64_t c = 0; c < n; ++c) {
            const uint8_t *r = base + row * static_cast<size_t>(cells[c]) + col;
            float *d = buf + c * hd;
            for (int64_t i = 0; i < hd; i += 16)
                _mm512_storeu_ps(d + i, f16 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(r + 2 * i)))
                                            : _mm512_loadu_ps(reinterpret_cast<const float *>(r) + i));
        }
    }
    static void scores(const Shape &s, const int32_t *cells, int64_t n, const float *q, size_t col, float *sc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        gather(s.k, s.k_row, s.f16, cells, n, hd, col, buf);
        const __m512 scale = _mm512_set1_ps(s.scale);
        for (int64_t c0 = 0; c0 < n; c0 += 16) {
            const int64_t m = std::min<int64_t>(16, n - c0);
            for (int64_t g = 0; g < G; ++g) {
                const float *qg = q + g * hd;
                __m512 acc[16];
                for (int c = 0; c < 16; ++c) acc[c] = _mm512_setzero_ps();
                for (int64_t i = 0; i < hd; i += 16) {
                    const __m512 qv = _mm512_loadu_ps(qg + i);
                    for (int c = 0; c < m; ++c) acc[c] = _mm512_fmadd_ps(_mm512_loadu_ps(buf + (c0 + c) * hd + i), qv, acc[c]);
                }
                const __m512 r = _mm512_mul_ps(reduce16(acc), scale);
                _mm512_mask_storeu_ps(sc + g * kChunk + c0, static_cast<__mmask16>((1u << m) - 1), r);
            }
        }
    }
    // H query heads at once over NV * 16 output columns: each V vector loaded once for H
    // heads, and H * NV independent accumulator chains (4 alone leave the FMA units half idle
    // on their latency). Each head's sums are formed in the same order whatever H is.
    template <int H, int NV>
    static void values_heads(const float *sc, int64_t g, int64_t n, int64_t hd, int64_t i0, const float *buf,
                             float *oc) {
        __m512 acc[H][NV];
        for (int h = 0; h < H; ++h)
            for (int j = 0; j < NV; ++j) acc[h][j] = _mm512_setzero_ps();
        for (int64_t c = 0; c < n; ++c) {
            const float *vr = buf + c * hd + i0;
            __m512 v[NV];
            for (int j = 0; j < NV; ++j) v[j] = _mm512_loadu_ps(vr + 16 * j);
            for (int h = 0; h < H; ++h) {
                const __m512 pc = _mm512_set1_ps(sc[(g + h) * kChunk + c]);
                for (int j = 0; j < NV; ++j) acc[h][j] = _mm512_fmadd_ps(pc, v[j], acc[h][j]);
            }
        }
        for (int h = 0; h < H; ++h)
            for (int j = 0; j < NV; ++j) _mm512_storeu_ps(oc + (g + h) * hd + i0 + 16 * j, acc[h][j]);
    }
    static void values(const Shape &s, const int32_t *cells, int64_t n, const float *sc, size_t col, float *oc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        gather(s.v, s.v_row, s.f16, cells, n, hd, col, buf);
        for (int64_t i0 = 0; i0 < hd; i0 += 64) {
            if (hd - i0 < 64) {  // a last 16, 32 or 48 columns, one head at a time
                for (int64_t g = 0; g < G; ++g) {
                    if (hd - i0 == 16) values_heads<1, 1>(sc, g, n, hd, i0, buf, oc);
                    else if (hd - i0 == 32) values_heads<1, 2>(sc, g, n, hd, i0, buf, oc);
                    else values_heads<1, 3>(sc, g, n, hd, i0, buf, oc);
                }
                continue;
            }
            int64_t g = 0;
            for (; g + 4 <= G; g += 4) values_heads<4, 4>(sc, g, n, hd, i0, buf, oc);
            for (; g + 2 <= G; g += 2) values_heads<2, 4>(sc, g, n, hd, i0, buf, oc);
            for (; g < G; ++g) values_heads<1, 4>(sc, g, n, hd, i0, buf, oc);
        }
    }
};
#endif

#if defined(MUSE_HAVE_AVX2)
// The same chunk scheme with 8-wide vectors (hd % 8 == 0): 8 scores per hadd tree, 32 output
// columns of a head in registers.
inline __m256 reduce8(const __m256 v[8]) {
    const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

struct ChunkAvx2 {
    static void gather(const uint8_t *base, size_t row, bool f16, const int32_t *cells, int64_t n, int64_t hd,
                       size_t col, float *buf) {
        for (int64_t c = 0; c < n; ++c) {
            const uint8_t *r = base + row * static_cast<size_t>(cells[c]) + col;
            float *d = buf + c * hd;
            for (int64_t i = 0; i < hd; i += 8)
                _mm256_storeu_ps(d + i, f16 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(r + 2 * i)))
                                            : _mm256_loadu_ps(reinterpret_cast<const float *>(r) + i));
        }
    }
    static void scores(const Shape &s, const int32_t *cells, int64_t n, const float *q, size_t col, float *sc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        gather(s.k, s.k_row, s.f16, cells, n, hd, col, buf);
        const __m256 scale = _mm256_set1_ps(s.scale);
        for (int64_t c0 = 0; c0 < n; c0 += 8) {
            const int64_t m = std::min<int64_t>(8, n - c0);
            for (int64_t g = 0; g < G; ++g) {
                const float *qg = q + g * hd;
                __m256 acc[8];
                for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
                for (int64_t i = 0; i < hd; i += 8) {
                    const __m256 qv = _mm256_loadu_ps(qg + i);
                    for (int c = 0; c < m; ++c) acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(buf + (c0 + c) * hd + i), qv, acc[c]);
                }
                alignas(32) float r[8];
                _mm256_store_ps(r, _mm256_mul_ps(reduce8(acc), scale));
                std::copy(r, r + m, sc + g * kChunk + c0);
            }
        }
    }
    static void values(const Shape &s, const int32_t *cells, int64_t n, const float *sc, size_t col, float *oc,
                       float *buf) {
        const int64_t hd = s.hd, G = s.group;
        gather(s.v, s.v_row, s.f16, cells, n, hd, col, buf);
        for (int64_t g = 0; g < G; ++g) {
            const float *p = sc + g * kChunk;
            for (int64_t i0 = 0; i0 < hd; i0 += 32) {
                const int nv = static_cast<int>(std::min<int64_t>(4, (hd - i0) / 8));
                __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
                for (int64_t c = 0; c < n; ++c) {
                    const __m256 pc = _mm256_set1_ps(p[c]);
                    const float *vr = buf + c * hd + i0;
                    for (int j = 0; j < nv; ++j) acc[j] = _mm256_fmadd_ps(pc, _mm256_loadu_ps(vr + 8 * j), acc[j]);
                }
                for (int j = 0; j < nv; ++j) _mm256_storeu_ps(oc + g * hd + i0 + 8 * j, acc[j]);
            }
        }
    }
};
#endif

template <class Ops, class Chunk>
void attend(const Shape &s, int64_t t, int64_t hk, int64_t c0, int64_t c1, const State &st, std::vector<float> &scratch) {
    const int64_t hd = s.hd, G = s.group;
    scratch.resize(static_cast<size_t>(kChunk * hd + G * kChunk + G * hd));
    float *buf = scratch.data(), *sc = buf + kChunk * hd, *oc = sc + G * kChunk;
    const float *q = s.q + (t * s.n_head + hk * G) * hd;
    const size_t col = static_cast<size_t>(hk * hd) * (s.f16 ? 2 : 4);
    for (int64_t g = 0; g < G; ++g) {
        st.m[g] = -INFINITY;
        st.l[g] = 0.0;
    }
    std::fill(st.o, st.o + G * hd, 0.0f);
    for (int64_t b = c0; b < c1; b += kChunk) {
        const int64_t n = std::min(kChunk, c1 - b);
        Chunk::scores(s, s.cells + b, n, q, col, sc, buf);
        for (int64_t g = 0; g < G; ++g) {
            float *sg = sc + g * kChunk;
            const float m_new = std::max(st.m[g], Ops::max(sg, n));
            // The first chunk has no earlier output (m = -inf): nothing to rescale.
            const float corr = st.m[g] == -INFINITY ? 0.0f : std::exp(st.m[g] - m_new);
            st.l[g] = st.l[g] * corr + Ops::exp_sum(sg, n, m_new);
            st.m[g] = m_new;
            if (corr != 1.0f)
                for (int64_t i = 0; i < hd; ++i) st.o[g * hd + i] *= corr;
        }
        Chunk::values(s, s.cells + b, n, sc, col, oc, buf);
        for (int64_t i = 0; i < G * hd; ++i) st.o[i] += oc[i];
    }
}

// The query tokens listed in `tokens` (all n_tok when empty).
template <class Ops, class Chunk = ChunkGeneric<Ops>>
void run(ThreadPool &pool, const Shape &s, const KvRangesHost &kv, int64_t n_tok, int64_t n_head_kv, float *out,
         const std::vector<int32_t> &tokens) {
    const int64_t n_listed = tokens.empty() ? n_tok : static_cast<int64_t>(tokens.size());
    auto token = [&](int64_t i) { return tokens.empty() ? i : static_cast<int64_t>(tokens[static_cast<size_t>(i)]); };
    const int64_t hd = s.hd, G = s.group, pairs = n_listed * n_head_kv;
    int64_t longest = 0;
    for (int64_t i = 0; i < n_listed; ++i) longest = std::max<int64_t>(longest, kv.end[token(i)] - kv.begin[token(i)]);
    int64_t splits = 1;
    if (pairs < pool.size())
        splits = std::clamp<int64_t>(longest / kMinSplitCells, 1, (pool.size() + pairs - 1) / pairs);

    if (splits == 1) {
        pool.parallel_for(pairs, [&](int64_t j0, int64_t j1) {
            thread_local std::vector<float> scratch;
            std::vector<float> m(static_cast<size_t>(G));
            std::vector<double> l(static_cast<size_t>(G));
            for (int64_t j = j0; j < j1; ++j) {
                const int64_t t = token(j / n_head_kv), hk = j % n_head_kv;
                float *o = out + (t * s.n_head + hk * G) * hd;
                attend<Ops, Chunk>(s, t, hk, kv.begin[t], std::max(kv.begin[t], kv.end[t]), {o, m.data(), l.data()},
                            scratch);
                for (int64_t g = 0; g < G; ++g) {
                    // An empty range leaves l = 0 and o = 0: a zero row.
                    const float inv = l[static_cast<size_t>(g)] > 0.0 ? static_cast<float>(1.0 / l[static_cast<size_t>(g)]) : 0.0f;
                    for (int64_t i = 0; i < hd; ++i) o[g * hd + i] *= inv;
                }
            }
        });
        return;
    }

    // Split each pair's cells into `splits` shares, then merge the partial softmaxes.
    const int64_t items = pairs * splits;
    std::vector<float> po(static_cast<size_t>(items * G * hd)), pm(static_cast<size_t>(items * G));
    std::vector<double> pl(static_cast<size_t>(items * G));
    pool.parallel_for(items, [&](int64_t j0, int64_t j1) {
        thread_local std::vector<float> scratch;
        for (int64_t j = j0; j < j1; ++j) {
            const int64_t pair = j / splits, part = j % splits;
            const int64_t t = token(pair / n_head_kv), hk = pair % n_head_kv;
            const int64_t b = kv.begin[t], len = std::max<int64_t>(kv.end[t] - b, 0);
            attend<Ops, Chunk>(s, t, hk, b + len * part / splits, b + len * (part + 1) / splits,
                        {po.data() + j * G * hd, pm.data() + j * G, pl.data() + j * G}, scratch);
        }
    });
    for (int64_t pair = 0; pair < pairs; ++pair) {
        const int64_t t = token(pair / n_head_kv), hk = pair % n_head_kv;
        for (int64_t g = 0; g < G; ++g) {
            float *o = out + (t * s.n_head + hk * G + g) * hd;
            std::fill(o, o + hd, 0.0f);
            float M = -INFINITY;
            for (int64_t p = 0; p < splits; ++p) M = std::max(M, pm[static_cast<size_t>((pair * splits + p) * G + g)]);
            if (M == -INFINITY) continue;  // no cells at all
            double l = 0.0;
            for (int64_t p = 0; p < splits; ++p) {
                const int64_t j = pair * splits + p;
                const float mp = pm[static_cast<size_t>(j * G + g)];
                if (mp == -INFINITY) continue;
                const float w = std::exp(mp - M);
                l += pl[static_cast<size_t>(j * G + g)] * w;
                const float *op = po.data() + (j * G + g) * hd;
                for (int64_t i = 0; i < hd; ++i) o[i] += op[i] * w;
            }
            const auto inv = static_cast<float>(1.0 / l);
            for (int64_t i = 0; i < hd; ++i) o[i] *= inv;
        }
    }
}

} // namespace

void attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvRangesHost &kv, int n_head_kv,
               float scale, const Tensor &out, const int32_t *bulk) {
    const int64_t hd = q.ne[0], n_head = q.ne[1], n_tok = q.ne[2];
    if (q.type != GgmlType::F32 || n_head_kv <= 0 || n_head % n_head_kv != 0)
        fail(MUSE_ERR_INTERNAL, "attention: q must be F32 with a multiple of ", n_head_kv, " heads");
    if (k.type != v.type || (k.type != GgmlType::F32 && k.type != GgmlType::F16))
        fail(MUSE_ERR_INTERNAL, "attention: the cache must be F32 or F16 (both K and V)");
    if (k.ne[0] != hd * n_head_kv || v.ne[0] != hd * n_head_kv || out.ne[0] * out.n_rows() != hd * n_head * n_tok)
        fail(MUSE_ERR_INTERNAL, "attention: q/k/v/out shapes do not match");
    const Shape s{static_cast<const float *>(q.raw()),
                  static_cast<const uint8_t *>(k.raw()),
                  static_cast<const uint8_t *>(v.raw()),
                  k.row_bytes(),
                  v.row_bytes(),
                  k.type == GgmlType::F16,
                  hd,
                  n_head,
                  n_head / n_head_kv,
                  scale,
                  kv.cells};
    float *o = out.f32();
    // Bulk prompt rows on AMX-BF16 tiles where the CPU has them; the others (all when there are
    // no marks) on the F32 kernels below.
    std::vector<int32_t> rest;
    if (bulk && cpu_level() == CpuLevel::avx512 && amx_attention_takes(hd)) {
        std::vector<int32_t> marked;
        for (int32_t t = 0; t < static_cast<int32_t>(n_tok); ++t) (bulk[t] ? marked : rest).push_back(t);
        if (!marked.empty()) amx_attention(pool, q, k, v, kv, n_head_kv, scale, out, marked);
        if (rest.empty()) return;
    }
    switch (cpu_level()) {
#if defined(MUSE_HAVE_AVX512)
    case CpuLevel::avx512:
        if (hd % 16 == 0)
            run<OpsAvx512, ChunkAvx512>(pool, s, kv, n_tok, n_head_kv, o, rest);
        else
            run<OpsAvx512>(pool, s, kv, n_tok, n_head_kv, o, rest);
        return;
#endif
#if defined(MUSE_HAVE_AVX2)
    case CpuLevel::avx2:
        if (hd % 8 == 0)
            run<OpsAvx2, ChunkAvx2>(pool, s, kv, n_tok, n_head_kv, o, rest);
        else
            run<OpsAvx2>(pool, s, kv, n_tok, n_head_kv, o, rest);
        return;
#endif
    default: run<OpsScalar>(pool, s, kv, n_tok, n_head_kv, o, rest); return;
    }
}

} // namespace muse::cpu
