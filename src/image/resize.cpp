// Written from Pillow's libImaging/Resample.c (precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc,
// ImagingResampleInner): the arithmetic below follows it operation for
// operation, because a different order of the same double operations can move a
// weight across a rounding boundary and change an output byte.
#include "image/resize.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string_view>

namespace muse {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS
constexpr double kPi = 3.14159265358979323846;  // M_PI

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * kPi;
    // Pillow writes the constants as floats (0.54f, 0.46f); they widen to double.
    return std::sin(x) / x * (double(0.54f) + double(0.46f) * std::cos(x));
}

double bicubic_filter(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double sinc_filter(double x) {
    if (x == 0.0) return 1.0;
    x = x * kPi;
    return std::sin(x) / x;
}

double lanczos_filter(double x) {
    if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

struct Filter {
    double (*fn)(double);
    double support;
};

Filter filter_of(ResampleFilter f) {
    switch (f) {
    case ResampleFilter::Box: return {box_filter, 0.5};
    case ResampleFilter::Bilinear: return {bilinear_filter, 1.0};
    case ResampleFilter::Hamming: return {hamming_filter, 1.0};
    case ResampleFilter::Bicubic: return {bicubic_filter, 2.0};
    case ResampleFilter::Lanczos: return {lanczos_filter, 3.0};
    }
    fail(MUSE_ERR_INVALID_ARGUMENT, "unknown resample filter ", int(f));
}

// Fixed-point taps of one axis: output i reads inputs [start[i], start[i] + count[i])
// with weights k[i * ksize + j].
struct Taps {
    int ksize = 0;
    std::vector<int> start, count;
    std::vector<int32_t> k;
};

Taps precompute_taps(int in_size, int out_size, const Filter &filter) {
    // Pillow passes the box edges as floats: (in1 - in0) is float(in_size), exact here.
    const double scale = double(in_size) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filter.support * filterscale;
    Taps t;
    t.ksize = int(std::ceil(support)) * 2 + 1;
    t.start.resize(size_t(out_size));
    t.count.resize(size_t(out_size));
    t.k.assign(size_t(out_size) * size_t(t.ksize), 0);
    std::vector<double> w(size_t(t.ksize));
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = 0.0 + (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);  // truncation toward zero, as in C
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            const double v = filter.fn((x + xmin - center + 0.5) * ss);
            w[size_t(x)] = v;
            ww += v;
        }
        for (int x = 0; x < xmax; ++x) {
            double v = w[size_t(x)];
            if (ww != 0.0) v /= ww;
            // normalize_coeffs_8bpc: round half away from zero.
            t.k[size_t(xx) * size_t(t.ksize) + size_t(x)] =
                v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
        }
        t.start[size_t(xx)] = xmin;
        t.count[size_t(xx)] = xmax;
    }
    return t;
}

// Pillow's clip8: the accumulator >> 22, clamped. 64-bit sums cannot overflow
// (Pillow's 32-bit ones do not for any weights its filters produce).
inline uint8_t clip8(int64_t acc) {
    const int64_t v = acc >> kPrecisionBits;
    return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One row of the source, wherever it comes from: a pointer into an image, or a
// row assembled in `scratch` (in_w * channels bytes) for a virtual canvas.
using RowFn = std::function<const uint8_t *(int y, uint8_t *scratch)>;

// Rows [row0, row0 + rows) of the source, resampled horizontally into dst.
void horizontal_pass(const RowFn &row_of, int in_w, int channels, int row0, int rows, const Taps &t, int out_w,
                     uint8_t *dst) {
    const size_t out_stride = size_t(out_w) * size_t(channels);
    std::vector<uint8_t> scratch(size_t(in_w) * size_t(channels));
    for (int y = 0; y < rows; ++y) {
        const uint8_t *in = row_of(row0 + y, scratch.data());
        uint8_t *out = dst + size_t(y) * out_stride;
        for (int xx = 0; xx < out_w; ++xx) {
            const int32_t *k = &t.k[size_t(xx) * size_t(t.ksize)];
            const uint8_t *p = in + size_t(t.start[size_t(xx)]) * size_t(channels);
            const int n = t.count[size_t(xx)];
            for (int c = 0; c < channels; ++c) {
                int64_t acc = int64_t(1) << (kPrecisionBits - 1);
                for (int x = 0; x < n; ++x) acc += int64_t(p[size_t(x) * size_t(channels) + size_t(c)]) * k[x];
                out[size_t(xx) * size_t(channels) + size_t(c)] = clip8(acc);
            }
        }
    }
}

// Output row yy sums source rows start[yy] ... start[yy] + count[yy] - 1, read
// through row_of (which maps a source row index to its bytes).
void vertical_pass(const RowFn &row_of, int width, int channels, const Taps &t, int out_h, uint8_t *dst) {
    const size_t stride = size_t(width) * size_t(channels);
    std::vector<int64_t> acc(stride);
    std::vector<uint8_t> scratch(stride);
    for (int yy = 0; yy < out_h; ++yy) {
        std::fill(acc.begin(), acc.end(), int64_t(1) << (kPrecisionBits - 1));
        const int32_t *k = &t.k[size_t(yy) * size_t(t.ksize)];
        for (int y = 0; y < t.count[size_t(yy)]; ++y) {
            const uint8_t *row = row_of(t.start[size_t(yy)] + y, scratch.data());
            const int64_t w = k[y];
            for (size_t i = 0; i < stride; ++i) acc[i] += int64_t(row[i]) * w;
        }
        uint8_t *out = dst + size_t(yy) * stride;
        for (size_t i = 0; i < stride; ++i) out[i] = clip8(acc[i]);
    }
}

} // namespace

ResampleFilter parse_resample_filter(const char *name) {
    const std::string_view n = name ? name : "";
    if (n == "box") return ResampleFilter::Box;
    if (n == "bilinear") return ResampleFilter::Bilinear;
    if (n == "hamming") return ResampleFilter::Hamming;
    if (n == "bicubic") return ResampleFilter::Bicubic;
    if (n == "lanczos") return ResampleFilter::Lanczos;
    fail(MUSE_ERR_INVALID_ARGUMENT, "unknown resample filter '", n, "' (box, bilinear, hamming, bicubic, lanczos)");
}

namespace {

void check_sizes(int in_w, int in_h, int out_w, int out_h, int channels) {
    if (in_w < 1 || in_h < 1 || out_w < 1 || out_h < 1)
        fail(MUSE_ERR_INVALID_ARGUMENT, "cannot resize ", in_w, "x", in_h, " to ", out_w, "x", out_h,
             ": sizes must be positive");
    const auto too_big = [](int w, int h) {
        return w > kMaxResizeSide || h > kMaxResizeSide || uint64_t(w) * uint64_t(h) > kMaxResizePixels;
    };
    if (too_big(in_w, in_h) || too_big(out_w, out_h))
        fail(MUSE_ERR_OUT_OF_RANGE, "cannot resize ", in_w, "x", in_h, " to ", out_w, "x", out_h, ": over ",
             kMaxResizeSide, " pixels per side or ", kMaxResizePixels, " pixels");
    if (channels < 1 || channels > 4) fail(MUSE_ERR_INVALID_ARGUMENT, "resize: channels must be 1..4, not ", channels);
}

RowFn rows_of_buffer(const uint8_t *buf, size_t stride, int row0 = 0) {
    return [buf, stride, row0](int y, uint8_t *) { return buf + size_t(y - row0) * stride; };
}

// ImagingResampleInner over any row source.
void resample(const RowFn &row_of, int in_w, int in_h, int channels, uint8_t *dst, int out_w, int out_h,
              ResampleFilter filter, PassOrder order) {
    const Filter f = filter_of(filter);
    const size_t in_stride = size_t(in_w) * size_t(channels);
    const size_t out_stride = size_t(out_w) * size_t(channels);
    const bool need_h = out_w != in_w;
    const bool need_v = out_h != in_h;
    if (!need_h && !need_v) {
        std::vector<uint8_t> scratch(in_stride);
        for (int y = 0; y < in_h; ++y) std::memcpy(dst + size_t(y) * in_stride, row_of(y, scratch.data()), in_stride);
        return;
    }
    // Pillow 13: "if height is being scaled down more than twice the amount the
    // width is, run the vertical pass first" (in plain int arithmetic).
    const bool horizontal_first =
        order == PassOrder::HorizontalFirst || !((in_h - out_h) > 0 && (in_h - out_h) > (in_w - out_w) * 2);
    if (!need_v) {
        horizontal_pass(row_of, in_w, channels, 0, in_h, precompute_taps(in_w, out_w, f), out_w, dst);
        return;
    }
    const Taps tv = precompute_taps(in_h, out_h, f);
    if (!need_h) {
        vertical_pass(row_of, in_w, channels, tv, out_h, dst);
        return;
    }
    const Taps th = precompute_taps(in_w, out_w, f);
    if (horizontal_first) {
        // As Pillow: the horizontal pass only produces the rows the vertical pass reads.
        const int row_first = tv.start.front();
        const int rows = tv.start.back() + tv.count.back() - row_first;
        std::vector<uint8_t> tmp(out_stride * size_t(rows));
        horizontal_pass(row_of, in_w, channels, row_first, rows, th, out_w, tmp.data());
        vertical_pass(rows_of_buffer(tmp.data(), out_stride, row_first), out_w, channels, tv, out_h, dst);
    } else {
        std::vector<uint8_t> tmp(in_stride * size_t(out_h));
        vertical_pass(row_of, in_w, channels, tv, out_h, tmp.data());
        horizontal_pass(rows_of_buffer(tmp.data(), in_stride), in_w, channels, 0, out_h, th, out_w, dst);
    }
}

} // namespace

void resize_u8(const uint8_t *src, int in_w, int in_h, int channels, uint8_t *dst, int out_w, int out_h,
               ResampleFilter filter, PassOrder order) {
    check_sizes(in_w, in_h, out_w, out_h, channels);
    if (!src || !dst) fail(MUSE_ERR_INVALID_ARGUMENT, "resize: NULL pixel buffer");
    const size_t stride = size_t(in_w) * size_t(channels);
    resample(rows_of_buffer(src, stride), in_w, in_h, channels, dst, out_w, out_h, filter, order);
}

Image resize_on_canvas(const Image &src, int canvas_w, int canvas_h, int x0, int y0, const uint8_t fill[3], int out_w,
                       int out_h, ResampleFilter filter, PassOrder order) {
    if (src.rgb.size() != size_t(src.width) * size_t(src.height) * 3 || src.width < 1 || src.height < 1)
        fail(MUSE_ERR_INVALID_ARGUMENT, "resize: the source image is empty or inconsistent");
    check_sizes(canvas_w, canvas_h, out_w, out_h, 3);
    if (x0 < 0 || y0 < 0 || int64_t(x0) + src.width > canvas_w || int64_t(y0) + src.height > canvas_h)
        fail(MUSE_ERR_INVALID_ARGUMENT, "resize: a ", src.width, "x", src.height, " image at (", x0, ", ", y0,
             ") does not fit on a ", canvas_w, "x", canvas_h, " canvas");
    const size_t stride = size_t(canvas_w) * 3;
    std::vector<uint8_t> background(stride);
    for (size_t i = 0; i < stride; i += 3) std::memcpy(&background[i], fill, 3);
    const RowFn row_of = [&](int y, uint8_t *scratch) -> const uint8_t * {
        if (y < y0 || y >= y0 + src.height) return background.data();
        std::memcpy(scratch, background.data(), stride);
        std::memcpy(scratch + size_t(x0) * 3, &src.rgb[size_t(y - y0) * size_t(src.width) * 3], size_t(src.width) * 3);
        return scratch;
    };
    Image out;
    out.width = out_w;
    out.height = out_h;
    out.rgb.resize(size_t(out_w) * size_t(out_h) * 3);
    resample(row_of, canvas_w, canvas_h, 3, out.rgb.data(), out_w, out_h, filter, order);
    return out;
}

Image resize_image(const Image &src, int out_w, int out_h, ResampleFilter filter, PassOrder order) {
    if (src.rgb.size() != size_t(src.width) * size_t(src.height) * 3 || src.width < 1 || src.height < 1)
        fail(MUSE_ERR_INVALID_ARGUMENT, "resize: the source image is empty or inconsistent");
    check_sizes(src.width, src.height, out_w, out_h, 3);
    Image out;
    out.width = out_w;
    out.height = out_h;
    out.rgb.resize(size_t(out_w) * size_t(out_h) * 3);
    resize_u8(src.rgb.data(), src.width, src.height, 3, out.rgb.data(), out_w, out_h, filter, order);
    return out;
}

} // namespace muse
