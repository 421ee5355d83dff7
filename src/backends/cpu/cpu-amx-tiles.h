// The AMX tile configuration block (palette 1) shared by the CPU kernels that use tiles, and
// the configuration that makes all eight tiles 16 rows of 64 bytes.
#pragma once

#include <cstdint>

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

} // namespace muse::cpu
