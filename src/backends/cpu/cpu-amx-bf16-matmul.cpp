#include "backends/cpu/cpu-amx-bf16-matmul.h"

#include "backends/cpu/cpu-amx-tiles.h"
#include "backends/cpu/cpu-int8-layout.h"
#include "backends/cpu/cpu-int8-matmul.h"
#include "backends/cpu/cpu-simd.h"
#include "core/error.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(MUSE_HAVE_AVX512) && defined(__AVX512BF16__) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define MUSE_HAVE_AMX_BF16 1
#include <cpuid.h>
#endif

namespace muse::cpu {

namespace {

using namespace packed;

std::atomic<bool> &bf16_switch() {
    static std::atomic<bool> on{true};
    return on;
}

#if defined(MUSE_HAVE_AMX_BF16)
// AMX-BF16 in the CPU and MUSE_AMX_BF16 not "0"; the tile permission is int8_amx_available's.
bool cpu_has_amx_bf16() {
    static const bool has = [] {
        const char *env = std::getenv("MUSE_AMX_BF16");
        if (env && std::strcmp(env, "0") == 0) return false;
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
        constexpr unsigned kAmxBf16 = 1u << 22;
        return (d & kAmxBf16) != 0;
    }();
    return has;
}

constexpr int64_t kTileElems = 512;  // one tile: 16 rows of 64 bytes, as BF16

// Tiles 0-3: C (16 tokens x 16 rows, F32); 4-5: A (16 tokens x 32 elements); 6-7: B (16
// pairs of elements x 16 rows x 2). All eight are 16 x 64 bytes.
constexpr TileConfig kTileConfig = full_tile_config();

// ---- weights to B tiles
//
// A B tile holds, for one block of 32 elements, row p (0..15) = the pair of elements
// (2p, 2p + 1) of each of the 16 weight rows: 16 x 2 BF16. A packed chunk (64 bytes: 4
// consecutive elements 4k..4k+3 of each row) fills tile rows 2k and 2k + 1.

// Lane l of quarter i of a chunk belongs to weight row 4 i + l / 4: the per-row scales
// spread that way.
inline void spread_rows(__m512 per_row, __m512 out[4]) {
    for (int i = 0; i < 4; ++i) {
        alignas(64) int32_t idx[16];
        for (int l = 0; l < 16; ++l) idx[l] = 4 * i + l / 4;
        out[i] = _mm512_permutexvar_ps(_mm512_load_si512(idx), per_row);
    }
}

// 64 unsigned quants (byte 4 r + e: row r, element e of the chunk) to tile rows 2k and 2k + 1
// at dst: w = fma(q, scale, bias) per row, then BF16.
inline void chunk_to_tile_rows(__m512i q, const __m512 scale[4], const __m512 bias[4], uint16_t *dst) {
    auto widen = [&](__m128i bytes, int i) {
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)), scale[i], bias[i]);
    };
    const __m512 f0 = widen(_mm512_extracti32x4_epi32(q, 0), 0), f1 = widen(_mm512_extracti32x4_epi32(q, 1), 1);
    const __m512 f2 = widen(_mm512_extracti32x4_epi32(q, 2), 2), f3 = widen(_mm512_extracti32x4_epi32(q, 3), 3);
    // Rows 0-7 and 8-15, 4 elements each; as dwords, row r's pair (0, 1) is dword 2 r and
    // (2, 3) dword 2 r + 1 of its half.
    const __m512i lo = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(f1, f0));
    const __m512i hi = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(f3, f2));
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    _mm512_store_si512(dst, _mm512_permutex2var_epi32(lo, even, hi));
    _mm512_store_si512(dst + 32, _mm512_permutex2var_epi32(lo, odd, hi));
}

inline __m512 load_f16x16(const uint8_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
}
inline __m512 load_u8x16(const uint8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))));
}

// Blocks [b0, b1) of one group's weights into B tiles (block b's at tiles + (b - b0) 512);
// the K-quants' b0 and b1 are multiples of 8 (whole super-blocks).
void spread_group(GgmlType type, const uint8_t *group, int64_t b0, int64_t b1, uint16_t *tiles) {
    __m512 scale[4], bias[4];
    const __m512i low = _mm512_set1_epi8(0x0F);
    if (type == GgmlType::Q8_0 || type == GgmlType::Q4_0) {
        const bool q8 = type == GgmlType::Q8_0;
        for (int64_t b = b0; b < b1; ++b, tiles += kTileElems) {
            const uint8_t *blk = group + static_cast<size_t>(b) * group_block_bytes(type);
            const __m512 d = load_f16x16(blk);
            spread_rows(d, scale);
            spread_rows(_mm512_mul_ps(d, _mm512_set1_ps(q8 ? -128.0f : -8.0f)), bias);  // stored + 128 / + 8
            const uint8_t *q = blk + kScaleBytes;
            if (q8) {
                for (int k = 0; k < 8; ++k) chunk_to_tile_rows(_mm512_loadu_si512(q + 64 * k), scale, bias, tiles + 64 * k);
            } else {  // low nibbles: elements 4k..4k+3, high ones 16 + 4k..
                for (int k = 0; k < 4; ++k) {
                    const __m512i raw = _mm512_loadu_si512(q + 64 * k);
                    chunk_to_tile_rows(_mm512_and_si512(raw, low), scale, bias, tiles + 64 * k);
                    chunk_to_tile_rows(_mm512_and_si512(_mm512_srli_epi16(raw, 4), low), scale, bias, tiles + 256 + 64 * k);
                }
            }
        }
        return;
    }
    if (is_k4(type)) {
        const bool five = type == GgmlType::Q5_K;
        for (int64_t u = b0 / 8; u < b1 / 8; ++u) {
            const uint8_t *sb = group + static_cast<size_t>(u) * k4_group_bytes(five);
            const __m512 d = load_f16x16(sb), dmin = load_f16x16(sb + 32);
            for (int j = 0; j < 8; ++j) {
                spread_rows(_mm512_mul_ps(d, load_u8x16(sb + kQ4KScales + 16 * j)), scale);
                spread_rows(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, load_u8x16(sb + kQ4KMins + 16 * j))),
                            bias);
                uint16_t *tile = tiles + (u * 8 + j - b0) * kTileElems;
                const uint8_t *pair = sb + kQ4KQuants + static_cast<size_t>(j / 2) * 512;
                for (int k = 0; k < 8; ++k) {
                    const __m512i raw = _mm512_loadu_si512(pair + 64 * k);
                    __m512i q = j % 2 ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), low) : _mm512_and_si512(raw, low);
                    if (five) {
                        uint64_t m;
                        std::memcpy(&m, sb + kQ5KHighBits + static_cast<size_t>(j * 8 + k) * 8, 8);
                        q = _mm512_mask_add_epi8(q, _cvtu64_mask64(m), q, _mm512_set1_epi8(16));
                    }
                    chunk_to_tile_rows(q, scale, bias, tile + 64 * k);
                }
            }
        }
        return;
    }
    // Q6_K: a scale per 16 elements, so chunks 0-3 and 4-7 of a block take different ones.
    for (int64_t u = b0 / 8; u < b1 / 8; ++u) {
        const uint8_t *sb = group + static_cast<size_t>(u) * kQ6KGroupBytes;
        const __m512 d = load_f16x16(sb);
        for (int b = 0; b < 8; ++b) {
            uint16_t *tile = tiles + (u * 8 + b - b0) * kTileElems;
            for (int h = 0; h < 2; ++h) {
                const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i *>(sb + kQ6KScales + 16 * (2 * b + h)));
                const __m512 ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
                spread_rows(ds, scale);
                spread_rows(_mm512_mul_ps(ds, _mm512_set1_ps(-32.0f)), bias);  // stored + 32
                const uint8_t *q = sb + kQ6KQuants + static_cast<size_t>(b) * 512;
                for (int k = 4 * h; k < 4 * h + 4; ++k)
                    chunk_to_tile_rows(_mm512_loadu_si512(q + 64 * k), scale, bias, tile + 64 * k);
            }
        }
    }
}

// ---- the tile kernel: NA token tiles x NB groups over n_k blocks, F32 sums in the C tiles,
// which start at zero (first) or from c.

template <int NA, int NB>
void multiply(const uint16_t *const a[2], const uint16_t *const b[2], int64_t n_k, bool first, float *const c[4],
              const int64_t ldc[4]) {
    if (first) {
        _tile_zero(0);
        if constexpr (NB > 1) _tile_zero(1);
        if constexpr (NA > 1) _tile_zero(2);
        if constexpr (NA > 1 && NB > 1) _tile_zero(3);
    } else {
        _tile_loadd(0, c[0], ldc[0] * 4);
        if constexpr (NB > 1) _tile_loadd(1, c[1], ldc[1] * 4);
        if constexpr (NA > 1) _tile_loadd(2, c[2], ldc[2] * 4);
        if constexpr (NA > 1 && NB > 1) _tile_loadd(3, c[3], ldc[3] * 4);
    }
    for (int64_t k = 0; k < n_k; ++k) {
        _tile_loadd(4, a[0] + k * kTileElems, 64);
        if constexpr (NB > 1) _tile_loadd(7, b[1] + k * kTileElems, 64);
        _tile_loadd(6, b[0] + k * kTileElems, 64);
        if constexpr (NA > 1) _tile_loadd(5, a[1] + k * kTileElems, 64);
        _tile_dpbf16ps(0, 4, 6);
        if constexpr (NB > 1) _tile_dpbf16ps(1, 4, 7);
        if constexpr (NA > 1) _tile_dpbf16ps(2, 5, 6);
        if constexpr (NA > 1 && NB > 1) _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c[0], ldc[0] * 4);
    if constexpr (NB > 1) _tile_stored(1, c[1], ldc[1] * 4);
    if constexpr (NA > 1) _tile_stored(2, c[2], ldc[2] * 4);
    if constexpr (NA > 1 && NB > 1) _tile_stored(3, c[3], ldc[3] * 4);
}

#endif

} // namespace

bool amx_bf16_available() {
#if defined(MUSE_HAVE_AMX_BF16)
    return int8_amx_available() && cpu_has_amx_bf16() && bf16_switch().load(std::memory_order_relaxed);
#else
    return false;
#endif
}

void amx_bf16_set_enabled(bool on) { bf16_switch().store(on, std::memory_order_relaxed); }

int64_t amx_bf16_panel_elements(int64_t n_in, int64_t n_tok) { return (n_tok + 15) / 16 * 16 * n_in; }

void amx_bf16_convert(const float *x, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1, uint16_t *a) {
#if defined(MUSE_HAVE_AMX_BF16)
    const int64_t nb = n_in / kBlock;
    for (int64_t t = t0; t < t1; ++t) {
        uint16_t *row = a + (t / 16) * nb * kTileElems + 32 * (t % 16);
        for (int64_t b = 0; b < nb; ++b) {
            __m512i v = _mm512_setzero_si512();
            if (t < n_tok) {
                const float *xb = x + t * n_in + b * kBlock;
                v = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(xb + 16), _mm512_loadu_ps(xb)));
            }
            _mm512_storeu_si512(row + b * kTileElems, v);
        }
    }
#else
    fail(MUSE_ERR_INTERNAL, "amx_bf16_convert: not built with AMX-BF16");
#endif
}

void amx_bf16_matmul(GgmlType type, const uint8_t *packed, int64_t n_in, int64_t n_out, int64_t g0, int64_t g1,
                     const uint16_t *a, int64_t n_tok, float *y, int64_t ldy) {
#if defined(MUSE_HAVE_AMX_BF16)
    // Tile loads bound the multiplies: a 2 x 2 step reads two A and two B tiles (4 KB) per
    // four multiplies, and L2 feeds that at about half the tiles' rate. So a group pair's B
    // tiles are spread per slice of K (64 KB: mostly L1) while the chunk's A tiles, sized to
    // stay in L2 (1 MB), stream past them; C goes back to y between slices. (pp512, 0.5B Q8_0:
    // slices of 8 / 16 / 32 / 64 blocks and 1 / 2 MB chunks all within ~5% of one another on
    // this noisy host; 32 blocks and 1 MB were at the top.)
    constexpr int64_t slice = 32;                 // blocks: whole K-quant super-blocks
    constexpr int64_t chunk_bytes = int64_t(1) << 20;
    const int64_t nb = n_in / kBlock, n_tiles = (n_tok + 15) / 16;
    const int64_t chunk = std::max<int64_t>(2, chunk_bytes / (std::min(slice, nb) * 1024) / 2 * 2);  // token tiles
    const size_t group_bytes = static_cast<size_t>(nb) * group_block_bytes(type);
    struct alignas(64) Tile {
        uint16_t e[kTileElems];
    };
    thread_local std::vector<Tile> spread;  // the B tiles of a group pair's slice
    thread_local std::vector<Tile> partial;  // C tiles that do not fit y: a partial group or token tile
    if (spread.size() < static_cast<size_t>(2 * slice)) spread.resize(static_cast<size_t>(2 * slice));
    const size_t n_partial = static_cast<size_t>(g1 - g0 + n_tiles);
    if (partial.size() < n_partial) partial.resize(n_partial);
    uint16_t *tiles[2] = {spread[0].e, spread[static_cast<size_t>(slice)].e};
    // A C tile partial in tokens (the last token tile) lives at slot g - g0, one partial only
    // in rows (the last group) at slot g1 - g0 + tile.
    auto c_tile = [&](int64_t tile, int64_t g, float *&c, int64_t &ldc) {
        const bool direct = (g + 1) * 16 <= n_out && (tile + 1) * 16 <= n_tok;
        if (direct) {
            c = y + g * 16 + tile * 16 * ldy;
            ldc = ldy;
        } else {
            c = reinterpret_cast<float *>(partial[static_cast<size_t>((tile + 1) * 16 > n_tok ? g - g0 : g1 - g0 + tile)].e);
            ldc = 16;
        }
        return direct;
    };
    _tile_loadconfig(&kTileConfig);
    for (int64_t c0 = 0; c0 < n_tiles; c0 += chunk) {
        const int64_t c1 = std::min(n_tiles, c0 + chunk);
        for (int64_t k0 = 0; k0 < nb; k0 += slice) {
            const int64_t k1 = std::min(nb, k0 + slice);
            for (int64_t g = g0; g < g1; g += 2) {
                const int ng = g + 1 < g1 ? 2 : 1;
                for (int j = 0; j < ng; ++j)
                    spread_group(type, packed + static_cast<size_t>(g + j) * group_bytes, k0, k1, tiles[j]);
                for (int64_t tt = c0; tt < c1; tt += 2) {
                    const int na = tt + 1 < c1 ? 2 : 1;
                    const uint16_t *at[2] = {a + (tt * nb + k0) * kTileElems, a + ((tt + 1) * nb + k0) * kTileElems};
                    float *c[4] = {};
                    int64_t ldc[4] = {};
                    for (int i = 0; i < na; ++i)
                        for (int j = 0; j < ng; ++j) c_tile(tt + i, g + j, c[2 * i + j], ldc[2 * i + j]);
                    const bool first = k0 == 0;
                    if (na == 2 && ng == 2) multiply<2, 2>(at, tiles, k1 - k0, first, c, ldc);
                    else if (na == 2) multiply<2, 1>(at, tiles, k1 - k0, first, c, ldc);
                    else if (ng == 2) multiply<1, 2>(at, tiles, k1 - k0, first, c, ldc);
                    else multiply<1, 1>(at, tiles, k1 - k0, first, c, ldc);
                }
            }
        }
        // The partial tiles' valid rows and tokens into y.
        for (int64_t g = g0; g < g1; ++g)
            for (int64_t tt = c0; tt < c1; ++tt) {
                float *c;
                int64_t ldc;
                if (c_tile(tt, g, c, ldc)) continue;
                const int64_t rows = std::min<int64_t>(16, n_out - g * 16), toks = std::min<int64_t>(16, n_tok - tt * 16);
                for (int64_t t = 0; t < toks; ++t)
                    std::memcpy(y + g * 16 + (tt * 16 + t) * ldy, c + 16 * t, static_cast<size_t>(rows) * 4);
            }
    }
    _tile_release();
#else
    fail(MUSE_ERR_INTERNAL, "amx_bf16_matmul: not built with AMX-BF16");
#endif
}

} // namespace muse::cpu
