// Decoding image files (stb_image) into RGB8, safe on hostile input.
//
// Formats: PNG (8/16-bit, palette, interlaced), JPEG (baseline, progressive),
// BMP, GIF (first frame), TGA, PNM (binary P5/P6), PSD (composited image) and
// Radiance HDR. 16-bit samples keep their high byte; HDR goes through stb's
// tone map (gamma 1/2.2, scale 1, clamped to [0, 255]) — what llama.cpp's
// stbi_load gives for the same file. Alpha is composited on white (image.h).
//
// The budget (pixel count, side length) is checked from the header before any
// pixel is decoded, and every allocation stb makes while decoding is capped by
// what that header allows, so a small file that inflates far beyond its stated
// size (a PNG zlib bomb) fails instead of allocating gigabytes.
#pragma once

#include "image/image.h"

#include <string>

namespace muse {

struct ImageLoadOptions {
    uint64_t max_pixels = kDefaultImageMaxPixels;  // width * height limit
};

// Decodes an encoded image held in memory (stb never reads outside [data, data + size)).
// Errors: MUSE_ERR_FORMAT (not an image, corrupt, truncated), MUSE_ERR_OUT_OF_RANGE
// (over the pixel or side limit), MUSE_ERR_INVALID_ARGUMENT (NULL data, empty input).
Image decode_image(const void *data, size_t size, const ImageLoadOptions &options = {});

// Reads a file with our own I/O (MUSE_ERR_IO when it cannot be read), then decode_image.
Image load_image_file(const std::string &path, const ImageLoadOptions &options = {});

} // namespace muse
