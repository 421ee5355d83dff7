#include "image/resample-float.h"

#include "core/error.h"

#include <cmath>

namespace muse {
namespace {

struct Axis {
    std::vector<int> i0, i1;
    std::vector<float> t;
};

// Half-pixel source coordinates of each output index along one axis.
Axis axis_taps(int in, int out) {
    Axis a;
    a.i0.resize(size_t(out));
    a.i1.resize(size_t(out));
    a.t.resize(size_t(out));
    const double scale = double(in) / double(out);
    for (int d = 0; d < out; ++d) {
        const double src = (d + 0.5) * scale - 0.5;
        const double f = std::floor(src);
        double t = src - f;
        t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
        const int i = int(f);
        a.i0[size_t(d)] = i < 0 ? 0 : i > in - 1 ? in - 1 : i;
        a.i1[size_t(d)] = i + 1 < 0 ? 0 : i + 1 > in - 1 ? in - 1 : i + 1;
        a.t[size_t(d)] = float(t);
    }
    return a;
}

} // namespace

std::vector<float> resize_bilinear_f32(const float *src, int in_w, int in_h, int channels, int out_w, int out_h) {
    if (in_w < 1 || in_h < 1 || out_w < 1 || out_h < 1 || channels < 1)
        fail(MUSE_ERR_INVALID_ARGUMENT, "bilinear resize of a ", in_w, "x", in_h, "x", channels, " grid to ", out_w,
             "x", out_h, ": sizes must be positive");
    if (!src) fail(MUSE_ERR_INVALID_ARGUMENT, "bilinear resize: source is NULL");
    const Axis ax = axis_taps(in_w, out_w), ay = axis_taps(in_h, out_h);
    const size_t C = size_t(channels);
    std::vector<float> out(size_t(out_w) * size_t(out_h) * C);
    for (int y = 0; y < out_h; ++y) {
        const float ty = ay.t[size_t(y)];
        const float *r0 = src + size_t(ay.i0[size_t(y)]) * size_t(in_w) * C;
        const float *r1 = src + size_t(ay.i1[size_t(y)]) * size_t(in_w) * C;
        float *o = out.data() + size_t(y) * size_t(out_w) * C;
        for (int x = 0; x < out_w; ++x) {
            const float tx = ax.t[size_t(x)];
            const size_t c0 = size_t(ax.i0[size_t(x)]) * C, c1 = size_t(ax.i1[size_t(x)]) * C;
            for (size_t c = 0; c < C; ++c) {
                const float top = (1.0f - tx) * r0[c0 + c] + tx * r0[c1 + c];
                const float bottom = (1.0f - tx) * r1[c0 + c] + tx * r1[c1 + c];
                o[size_t(x) * C + c] = (1.0f - ty) * top + ty * bottom;
            }
        }
    }
    return out;
}

} // namespace muse
