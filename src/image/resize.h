// Pillow's convolution resampler (libImaging/Resample.c), reproduced exactly so
// that muse's pixels equal those of Image.resize(size, filter) byte for byte:
//
//   - separable: a horizontal pass, then a vertical pass, each skipped when that
//     dimension does not change (the same size is a copy); the intermediate is
//     uint8, rounded and clamped like the output. (Pillow 13 runs the vertical
//     pass first when the height shrinks by more than twice as many pixels as
//     the width: PassOrder::Pillow13 reproduces that; the uint8 intermediate
//     makes the two orders differ by one level here and there.)
//   - per output pixel: center = (i + 0.5) * scale with scale = in / out,
//     support = filter_support * max(1, scale), taps xmin = int(center - support
//     + 0.5) clamped to 0, xmax = int(center + support + 0.5) clamped to in, and
//     weight(x) = filter((x + xmin - center + 0.5) / max(1, scale)) divided by
//     the sum of the taps' weights (all in double);
//   - fixed point: each weight becomes int(w * 2^22 +- 0.5) (half away from zero),
//     the sum starts at 2^21, and the result is (sum >> 22) clamped to [0, 255].
//
// Filters (Pillow's definitions, support in brackets): BOX [0.5] 1 on (-0.5, 0.5];
// BILINEAR [1] triangle; HAMMING [1] sinc(x) * (0.54 + 0.46 cos(pi x)) with
// float constants; BICUBIC [2] Keys' cubic with a = -0.5; LANCZOS [3]
// sinc(x) * sinc(x/3) on [-3, 3).
#pragma once

#include "image/image.h"

namespace muse {

enum class ResampleFilter { Box, Bilinear, Hamming, Bicubic, Lanczos };

enum class PassOrder {
    // Always horizontal then vertical: Pillow up to 12.x (what the models muse
    // serves were trained with), llama.cpp's Pillow ports, MUSE_GLIMMER.md §2.3.
    HorizontalFirst,
    // Pillow 13's rule: vertical first when in_h - out_h > 0 and
    // in_h - out_h > 2 * (in_w - out_w).
    Pillow13,
};

// Resizes accept sides up to 2^20 and 2^27 pixels (input and output): the
// preprocessing rules can stretch a thin image far along one axis, but never
// into gigabytes.
inline constexpr int kMaxResizeSide = 1 << 20;
inline constexpr uint64_t kMaxResizePixels = uint64_t(1) << 27;

// Parses "box", "bilinear", "hamming", "bicubic", "lanczos" (MUSE_ERR_INVALID_ARGUMENT otherwise).
ResampleFilter parse_resample_filter(const char *name);

// Resizes interleaved 8-bit pixels with `channels` channels (1..4), tightly
// packed, from in_w x in_h to out_w x out_h into dst (out_w * out_h * channels
// bytes). Every size must be >= 1 (MUSE_ERR_INVALID_ARGUMENT otherwise).
void resize_u8(const uint8_t *src, int in_w, int in_h, int channels, uint8_t *dst, int out_w, int out_h,
               ResampleFilter filter, PassOrder order = PassOrder::HorizontalFirst);

// The same on an RGB Image.
Image resize_image(const Image &src, int out_w, int out_h, ResampleFilter filter,
                   PassOrder order = PassOrder::HorizontalFirst);

// Resizes the canvas_w x canvas_h image that is `fill` everywhere except where
// `src` is pasted with its top-left corner at (x0, y0) — the same bytes as
// building that canvas and calling resize_image — without materializing the
// canvas (padding a 65536 x 1 image to a square would take 12 GiB).
Image resize_on_canvas(const Image &src, int canvas_w, int canvas_h, int x0, int y0, const uint8_t fill[3], int out_w,
                       int out_h, ResampleFilter filter, PassOrder order = PassOrder::HorizontalFirst);

} // namespace muse
