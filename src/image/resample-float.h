// Bilinear resampling of float grids, the way PyTorch's
// F.interpolate(mode="bilinear", align_corners=False, antialias=False) and
// ggml_interpolate(GGML_SCALE_MODE_BILINEAR) do it: half-pixel centres, no
// antialiasing when shrinking, edges clamped. Vision encoders use it to fit a
// learned position table to the patch grid of an image.
//
// For each axis: src = (dst + 0.5) * (in / out) - 0.5, i0 = floor(src) and
// i1 = i0 + 1 both clamped to [0, in - 1], t = src - floor(src) clamped to
// [0, 1]; out = lerp over x, then over y: (1-ty)*((1-tx)*a + tx*b) + ty*(...).
#pragma once

#include <vector>

namespace muse {

// Layout (both input and output): channels innermost, then x, then y:
//   value(x, y, c) = data[(y * width + x) * channels + c]
// e.g. a position table of G*G rows of n_embd floats with row = y*G + x is
// (width = G, height = G, channels = n_embd). Returns out_w * out_h * channels
// floats. Sizes must be >= 1 (muse::Error MUSE_ERR_INVALID_ARGUMENT otherwise).
std::vector<float> resize_bilinear_f32(const float *src, int in_w, int in_h, int channels, int out_w, int out_h);

} // namespace muse
