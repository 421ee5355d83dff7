#include "backends/cpu/cpu-attention-amx.h"

#include "backends/cpu/cpu-amx-bf16-matmul.h"
#include "backends/cpu/cpu-amx-tiles.h"
#include "backends/cpu/cpu-bf16-matmul.h"
#include "backends/cpu/cpu-simd.h"
#include "backends/cpu/thread-pool.h"
#include "core/error.h"
#include "core/ggml-types.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(MUSE_HAVE_AVX512) && defined(__AVX512BF16__) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define MUSE_HAVE_AMX_ATTENTION 1
#endif

namespace muse::cpu {

namespace {

#if defined(MUSE_HAVE_AMX_ATTENTION)
constexpr int64_t kCells = 32;      // cells per chunk: the depth of one P tile
constexpr int64_t kTileElems = 512;  // one tile: 16 rows of 64 bytes, as BF16

// Tiles 0-1: S (16 queries x 16 cells each); 2: a Q tile; 3-4: two K tiles; 5: P; 6: a
// P V product (16 queries x 16 dims); 7: a V tile. All 16 x 64 bytes.
constexpr TileConfig kTileConfig = full_tile_config();

// The queries that share a first visible cell, and the cells [begin, end) any of them sees:
// their K and V rows of one kv head, converted once into tiles.
struct Group {
    int32_t begin = 0, end = 0;
    std::vector<int32_t> tokens;
    int64_t chunks() const { return (end - begin + kCells - 1) / kCells; }
};

struct Geometry {
    int64_t hd, n_head, group, n_head_kv;
    int64_t nks() const { return hd / 32; }   // K tiles per 16 cells (32 dims each)
    int64_t ndj() const { return hd / 16; }   // V tiles per chunk (16 dims each)
    int64_t k_elems(const Group &g) const { return g.chunks() * nks() * 2 * kTileElems; }
    int64_t v_elems(const Group &g) const { return g.chunks() * ndj() * kTileElems; }
};

// Row `cell` of a cache (F16 or F32), kv head hk's hd values, as F32.
void cache_row(const Tensor &t, int32_t cell, int64_t hk, int64_t hd, float *out) {
    const uint8_t *row = static_cast<const uint8_t *>(t.raw()) + t.row_bytes() * static_cast<size_t>(cell);
    if (t.type == GgmlType::F16) {
        const auto *h = reinterpret_cast<const uint16_t *>(row) + hk * hd;
        for (int64_t i = 0; i < hd; i += 16)
            _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(h + i))));
    } else {
        std::memcpy(out, reinterpret_cast<const float *>(row) + hk * hd, static_cast<size_t>(hd) * 4);
    }
}

// K tiles: chunk c, dims 32 ks.., cells 16 h..: B[p][n] = the pair (2p, 2p + 1) of those dims of
// cell n. V tiles: chunk c, dims 16 dj..: B[p][d] = dim d of the cells 2p and 2p + 1. Cells
// past the group's end are zero (their weights are 0, and 0 x 0 stays 0).
void convert_kv(const Geometry &gm, const Group &g, int64_t hk, const Tensor &k, const Tensor &v, const int32_t *cells,
                uint16_t *kt, uint16_t *vt) {
    const int64_t hd = gm.hd, nks = gm.nks(), ndj = gm.ndj();
    std::vector<float> row(static_cast<size_t>(hd));
    std::vector<uint16_t> kb(static_cast<size_t>(kCells * hd)), vb(static_cast<size_t>(kCells * hd));
    for (int64_t c = 0; c < g.chunks(); ++c) {
        for (int64_t n = 0; n < kCells; ++n) {
            const int64_t i = g.begin + c * kCells + n;
            uint16_t *kr = kb.data() + n * hd, *vr = vb.data() + n * hd;
            if (i >= g.end) {
                std::fill(kr, kr + hd, uint16_t(0));
                std::fill(vr, vr + hd, uint16_t(0));
                continue;
            }
            cache_row(k, cells[i], hk, hd, row.data());
            f32_to_bf16(row.data(), kr, hd);
            cache_row(v, cells[i], hk, hd, row.data());
            f32_to_bf16(row.data(), vr, hd);
        }
        for (int64_t ks = 0; ks < nks; ++ks)
            for (int h = 0; h < 2; ++h) {
                uint16_t *tile = kt + ((c * nks + ks) * 2 + h) * kTileElems;
                for (int p = 0; p < 16; ++p)
                    for (int n = 0; n < 16; ++n)
                        for (int j = 0; j < 2; ++j)
                            tile[p * 32 + n * 2 + j] = kb[static_cast<size_t>((16 * h + n) * hd + 32 * ks + 2 * p + j)];
            }
        for (int64_t dj = 0; dj < ndj; ++dj) {
            uint16_t *tile = vt + (c * ndj + dj) * kTileElems;
            for (int p = 0; p < 16; ++p)
                for (int d = 0; d < 16; ++d)
                    for (int j = 0; j < 2; ++j)
                        tile[p * 32 + d * 2 + j] = vb[static_cast<size_t>((2 * p + j) * hd + 16 * dj + d)];
        }
    }
}

// Up to 16 queries of a group (rows r < n of the tile) against its cells, for query head h:
// out rows written.
void attend_tile(const Geometry &gm, const Group &g, const int32_t *tokens, int n, int64_t h, const float *q,
                 float scale, const int32_t *end, const uint16_t *kt, const uint16_t *vt, float *out) {
    const int64_t hd = gm.hd, nks = gm.nks(), ndj = gm.ndj();
    alignas(64) uint16_t qt[8][kTileElems];  // Q tiles: 16 rows x 32 dims, hd <= 256
    alignas(64) uint16_t pt[kTileElems];     // P tile: 16 rows x 32 cells
    alignas(64) float s[16][kCells];
    alignas(64) float pv[16][16];
    alignas(64) float o[16][256];
    float m[16], l[16], corr[16];
    for (int64_t ks = 0; ks < nks; ++ks)
        for (int r = 0; r < 16; ++r) {
            uint16_t *dst = qt[ks] + 32 * r;
            if (r >= n) {
                std::fill(dst, dst + 32, uint16_t(0));
                continue;
            }
            const float *qr = q + (tokens[r] * gm.n_head + h) * hd + 32 * ks;
            const __m512 sv = _mm512_set1_ps(scale);
            const __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(qr), sv), hi = _mm512_mul_ps(_mm512_loadu_ps(qr + 16), sv);
            _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
        }
    for (int r = 0; r < 16; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        std::fill(o[r], o[r] + hd, 0.0f);
    }
    int32_t last = g.begin;  // the tile's own end
    for (int r = 0; r < n; ++r) last = std::max(last, end[tokens[r]]);
    const int64_t chunks = (last - g.begin + kCells - 1) / kCells;
    for (int64_t c = 0; c < chunks; ++c) {
        _tile_zero(0);
        _tile_zero(1);
        for (int64_t ks = 0; ks < nks; ++ks) {
            _tile_loadd(2, qt[ks], 64);
            _tile_loadd(3, kt + ((c * nks + ks) * 2 + 0) * kTileElems, 64);
            _tile_loadd(4, kt + ((c * nks + ks) * 2 + 1) * kTileElems, 64);
            _tile_dpbf16ps(0, 2, 3);
            _tile_dpbf16ps(1, 2, 4);
        }
        _tile_stored(0, &s[0][0], kCells * 4);
        _tile_stored(1, &s[0][16], kCells * 4);
        const int32_t c0 = static_cast<int32_t>(g.begin + c * kCells);
        for (int r = 0; r < 16; ++r) {
            uint16_t *prow = pt + 32 * r;
            const int64_t valid = r < n ? std::clamp<int64_t>(end[tokens[r]] - c0, 0, kCells) : 0;
            if (valid == 0) {  // past the row's cells: weight 0, nothing rescaled
                std::fill(prow, prow + 32, uint16_t(0));
                corr[r] = 1.0f;
                continue;
            }
            const __mmask16 k0 = static_cast<__mmask16>(valid >= 16 ? 0xFFFF : (1u << valid) - 1u);
            const __mmask16 k1 = static_cast<__mmask16>(valid >= 32 ? 0xFFFF : valid > 16 ? (1u << (valid - 16)) - 1u : 0u);
            const __m512 ninf = _mm512_set1_ps(-INFINITY);
            const __m512 s0 = _mm512_mask_loadu_ps(ninf, k0, s[r]), s1 = _mm512_mask_loadu_ps(ninf, k1, s[r] + 16);
            const float m_new = std::max(m[r], _mm512_reduce_max_ps(_mm512_max_ps(s0, s1)));
            corr[r] = m[r] == -INFINITY ? 0.0f : std::exp(m[r] - m_new);
            const __m512 mv = _mm512_set1_ps(m_new);
            const __m512 p0 = _mm512_maskz_mov_ps(k0, simd::exp512(_mm512_sub_ps(s0, mv)));
            const __m512 p1 = _mm512_maskz_mov_ps(k1, simd::exp512(_mm512_sub_ps(s1, mv)));
            l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
            m[r] = m_new;
            _mm512_storeu_si512(prow, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(p1, p0)));
        }
        _tile_loadd(5, pt, 64);
        for (int64_t dj = 0; dj < ndj; ++dj) {
            _tile_zero(6);
            _tile_loadd(7, vt + (c * ndj + dj) * kTileElems, 64);
            _tile_dpbf16ps(6, 5, 7);
            _tile_stored(6, &pv[0][0], 64);
            for (int r = 0; r < n; ++r) {
                float *orow = o[r] + 16 * dj;
                _mm512_storeu_ps(orow, _mm512_fmadd_ps(_mm512_loadu_ps(orow), _mm512_set1_ps(corr[r]), _mm512_load_ps(pv[r])));
            }
        }
    }
    for (int r = 0; r < n; ++r) {
        float *dst = out + (tokens[r] * gm.n_head + h) * hd;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, _mm512_mul_ps(_mm512_loadu_ps(o[r] + d), _mm512_set1_ps(inv)));
    }
}
#endif

} // namespace

bool amx_attention_takes(int64_t head_dim) {
#if defined(MUSE_HAVE_AMX_ATTENTION)
    return head_dim % 32 == 0 && head_dim <= 256 && amx_bf16_available();
#else
    (void)head_dim;
    return false;
#endif
}

void amx_attention(ThreadPool &pool, const Tensor &q, const Tensor &k, const Tensor &v, const KvRangesHost &kv,
                   int n_head_kv, float scale, const Tensor &out, const std::vector<int32_t> &tokens) {
#if defined(MUSE_HAVE_AMX_ATTENTION)
    const Geometry gm{q.ne[0], q.ne[1], q.ne[1] / n_head_kv, n_head_kv};
    if (!amx_attention_takes(gm.hd)) fail(MUSE_ERR_INTERNAL, "amx_attention: head size ", gm.hd, " not supported");
    // Queries by first visible cell; each group's tokens in order.
    std::vector<int32_t> order(tokens);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return kv.begin[a] < kv.begin[b]; });
    std::vector<Group> groups;
    for (int32_t t : order) {
        if (kv.end[t] <= kv.begin[t]) {  // nothing visible: a zero row, as the F32 kernels give
            std::fill(out.f32() + t * gm.n_head * gm.hd, out.f32() + (t + 1) * gm.n_head * gm.hd, 0.0f);
            continue;
        }
        if (groups.empty() || groups.back().begin != kv.begin[t]) groups.push_back({kv.begin[t], kv.begin[t], {}});
        groups.back().tokens.push_back(t);
        groups.back().end = std::max(groups.back().end, kv.end[t]);
    }
    // K / V tiles per (group, kv head), converted once for all query heads and tiles.
    std::vector<size_t> k_at(groups.size() + 1, 0), v_at(groups.size() + 1, 0);
    for (size_t i = 0; i < groups.size(); ++i) {
        k_at[i + 1] = k_at[i] + static_cast<size_t>(gm.k_elems(groups[i]) * n_head_kv);
        v_at[i + 1] = v_at[i] + static_cast<size_t>(gm.v_elems(groups[i]) * n_head_kv);
    }
    std::vector<CacheLine> k_store, v_store;
    uint16_t *kt = cache_lines_for<uint16_t>(k_store, k_at.back()), *vt = cache_lines_for<uint16_t>(v_store, v_at.back());
    const int64_t n_groups = static_cast<int64_t>(groups.size());
    pool.parallel_for(n_groups * n_head_kv, [&](int64_t a, int64_t b) {
        for (int64_t j = a; j < b; ++j) {
            const Group &g = groups[static_cast<size_t>(j / n_head_kv)];
            const int64_t hk = j % n_head_kv, gi = j / n_head_kv;
            convert_kv(gm, g, hk, k, v, kv.cells, kt + k_at[static_cast<size_t>(gi)] + hk * gm.k_elems(g),
                       vt + v_at[static_cast<size_t>(gi)] + hk * gm.v_elems(g));
        }
    });
    // Work items: a tile of up to 16 queries of a group and one kv head (its query heads).
    struct Item {
        int32_t group, first, n, hk;
    };
    std::vector<Item> items;
    for (int32_t gi = 0; gi < static_cast<int32_t>(groups.size()); ++gi)
        for (int32_t f = 0; f < static_cast<int32_t>(groups[static_cast<size_t>(gi)].tokens.size()); f += 16)
            for (int32_t hk = 0; hk < n_head_kv; ++hk)
                items.push_back({gi, f, std::min<int32_t>(16, static_cast<int32_t>(groups[static_cast<size_t>(gi)].tokens.size()) - f), hk});
    const float *qd = q.f32();
    float *od = out.f32();
    pool.parallel_for(static_cast<int64_t>(items.size()), [&](int64_t a, int64_t b) {
        _tile_loadconfig(&kTileConfig);
        for (int64_t j = a; j < b; ++j) {
            const Item &it = items[static_cast<size_t>(j)];
            const Group &g = groups[static_cast<size_t>(it.group)];
            const uint16_t *kg = kt + k_at[static_cast<size_t>(it.group)] + it.hk * gm.k_elems(g);
            const uint16_t *vg = vt + v_at[static_cast<size_t>(it.group)] + it.hk * gm.v_elems(g);
            for (int64_t hq = 0; hq < gm.group; ++hq)
                attend_tile(gm, g, g.tokens.data() + it.first, it.n, it.hk * gm.group + hq, qd, scale, kv.end, kg, vg, od);
        }
        _tile_release();
    });
#else
    fail(MUSE_ERR_INTERNAL, "amx_attention: not built with AMX-BF16");
#endif
}

} // namespace muse::cpu
