// Index bookkeeping of the vision encoders, computed on the host: Muse Glimmer's
// window grouping (permutation, RoPE positions, window sizes, the block-diagonal
// mask they imply) and the patch-merge gather shared by Muse Glimmer's pixel
// shuffle and idefics3's. Pure functions of the grid, so they are unit-tested alone.
#pragma once

#include <cstdint>
#include <vector>

namespace muse {

// ../shared/docs/MUSE_GLIMMER.md §2.4: G x G windows tile the patch grid (edge windows
// partial); windows row-major, patches row-major inside a window.
struct WindowLayout {
    std::vector<int32_t> perm;          // sp_perm: slot i holds raster patch perm[i] = gy*grid_w + gx
    std::vector<int32_t> inv_perm;      // inv_perm[perm[i]] = i
    std::vector<int32_t> pos_w, pos_h;  // RoPE positions of slot i, 1-indexed: gx + 1, gy + 1
    std::vector<int32_t> windows;       // sizes of the non-empty windows, in slot order
};
WindowLayout window_layout(int grid_w, int grid_h, int G);

// Patch-merge gather for a merge factor f: for each merged token o in raster order of the
// merged grid (ceil(grid_w/f) x ceil(grid_h/f)) and each sub-position s = ry*f + rx,
// entry o*f*f + s is the raster patch (oy*f + ry)*grid_w + (ox*f + rx), or -1 where that
// lies outside the grid (llama.cpp pads the grid with zeros up to a multiple of f).
// Muse Glimmer's ds_perm is this gather on a grid divisible by f.
std::vector<int32_t> merge_gather(int grid_w, int grid_h, int f);

} // namespace muse
