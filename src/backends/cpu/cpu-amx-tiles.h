// The AMX tile configuration block (palette 1) shared by the CPU kernels that use tiles, and
// the configuration that makes all eight tiles 16 rows of 64 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace muse::cpu {

struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

constexpr TileConfig full_tile_config() {
    TileConfig c;
    for (int i = 0; i < 8; ++i) c.rows[i] = 16, c.colsb[i] = 64;
    return c;
}

// Memory for tile operands in whole cache lines: a 64-byte tile row that straddles two lines
// costs two loads, and std::vector's large blocks start 16 bytes into a page (pp512 of the
// Muse Glimmer slice in Q8_0: +5% from aligned activation panels alone).
struct alignas(64) CacheLine {
    uint8_t bytes[64];
};
// n elements of T at the start of `store`, grown as needed (its old contents are kept).
template <class T>
T *cache_lines_for(std::vector<CacheLine> &store, size_t n) {
    store.resize((n * sizeof(T) + sizeof(CacheLine) - 1) / sizeof(CacheLine));
    return reinterpret_cast<T *>(store.data());
}

} // namespace muse::cpu
