#include "vision/patch-layout.h"

#include "core/error.h"

#include <limits>

namespace muse {

WindowLayout window_layout(int grid_w, int grid_h, int G) {
    if (grid_w <= 0 || grid_h <= 0 || G <= 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "window layout of a ", grid_w, "x", grid_h, " grid with windows of ", G);
    WindowLayout l;
    const int64_t n = int64_t(grid_w) * grid_h;
    l.perm.reserve(static_cast<size_t>(n));
    const int nwin_h = (grid_h + G - 1) / G, nwin_w = (grid_w + G - 1) / G;
    for (int wy = 0; wy < nwin_h; ++wy) {
        for (int wx = 0; wx < nwin_w; ++wx) {
            int32_t size = 0;
            for (int hh = 0; hh < G; ++hh) {
                for (int ww = 0; ww < G; ++ww) {
                    const int gy = wy * G + hh, gx = wx * G + ww;
                    if (gy < grid_h && gx < grid_w) {
                        l.perm.push_back(gy * grid_w + gx);
                        ++size;
                    }
                }
            }
            if (size > 0) l.windows.push_back(size);
        }
    }
    l.inv_perm.resize(l.perm.size());
    l.pos_w.resize(l.perm.size());
    l.pos_h.resize(l.perm.size());
    for (size_t i = 0; i < l.perm.size(); ++i) {
        const int32_t o = l.perm[i];
        l.inv_perm[static_cast<size_t>(o)] = static_cast<int32_t>(i);
        l.pos_w[i] = o % grid_w + 1;
        l.pos_h[i] = o / grid_w + 1;
    }
    return l;
}

std::vector<int32_t> merge_gather(int grid_w, int grid_h, int f) {
    if (grid_w <= 0 || grid_h <= 0 || f <= 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "patch merge of a ", grid_w, "x", grid_h, " grid by ", f);
    const int mw = (grid_w + f - 1) / f, mh = (grid_h + f - 1) / f;
    std::vector<int32_t> ids;
    ids.reserve(static_cast<size_t>(mw) * mh * f * f);
    for (int oy = 0; oy < mh; ++oy)
        for (int ox = 0; ox < mw; ++ox)
            for (int ry = 0; ry < f; ++ry)
                for (int rx = 0; rx < f; ++rx) {
                    const int y = oy * f + ry, x = ox * f + rx;
                    ids.push_back(y < grid_h && x < grid_w ? y * grid_w + x : -1);
                }
    return ids;
}

} // namespace muse
