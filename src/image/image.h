// An RGB8 image, the one pixel format the rest of muse sees, and the conversion
// every source (decoded files, caller pixels) goes through to reach it.
#pragma once

#include "muse/muse.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace muse {

// Interleaved RGB, 8 bits per channel, row-major, no padding:
// rgb[(y * width + x) * 3 + c].
struct Image {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> rgb;
};

// Default decoding budget: 64 Mpx (2^26 pixels), checked from the file header
// before anything is decoded.
inline constexpr uint64_t kDefaultImageMaxPixels = uint64_t(64) << 20;
// No side may exceed this, whatever the pixel budget: JPEG's own limit is 65535,
// and a longer side is a corrupt header or an image no vision model can use.
inline constexpr int kMaxImageSide = 1 << 16;

// Throws muse::Error unless 1 <= width, height <= kMaxImageSide and
// width * height <= max_pixels: `empty_status` for a zero or negative side (a
// malformed file is MUSE_ERR_FORMAT, a caller's bad argument
// MUSE_ERR_INVALID_ARGUMENT), MUSE_ERR_OUT_OF_RANGE for sizes over a limit.
// `what` names the source in the message.
void check_image_size(int64_t width, int64_t height, uint64_t max_pixels, muse_status empty_status,
                      const char *what);

// Converts interleaved 8-bit pixels with 1 (gray), 2 (gray + alpha), 3 (RGB) or
// 4 (RGBA) channels, rows stride_bytes apart, to an RGB Image. Gray is replicated
// to R, G and B. Alpha is composited on opaque white exactly as Pillow's
// Image.alpha_composite(white, im.convert("RGBA")).convert("RGB") does:
//   a == 0:  out = 255
//   else:    t = 128 * (c * a + 255 * (255 - a) + 128)
//            out = ((t + (t >> 8)) >> 8) >> 7
// (Pillow's fixed point with 7 fractional bits and its shift-based /255, with
// the destination fixed to white; for a == 255 it returns c unchanged).
Image image_from_pixels(const uint8_t *pixels, int width, int height, int channels, size_t stride_bytes);

// One channel value composited on white with alpha a (the formula above).
uint8_t composite_on_white(uint8_t c, uint8_t a);

} // namespace muse
