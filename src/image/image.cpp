#include "image/image.h"

#include "core/error.h"

#include <cstring>

namespace muse {

void check_image_size(int64_t width, int64_t height, uint64_t max_pixels, muse_status empty_status,
                      const char *what) {
    if (width <= 0 || height <= 0)
        fail(empty_status, what, " is ", width, "x", height, " pixels: an image needs at least one pixel");
    if (width > kMaxImageSide || height > kMaxImageSide)
        fail(MUSE_ERR_OUT_OF_RANGE, what, " is ", width, "x", height, " pixels: a side longer than ", kMaxImageSide,
             " pixels is not supported");
    const uint64_t pixels = uint64_t(width) * uint64_t(height);
    if (pixels > max_pixels)
        fail(MUSE_ERR_OUT_OF_RANGE, what, " is ", width, "x", height, " = ", pixels,
             " pixels, over the limit of ", max_pixels, " (raise max_pixels to accept it)");
}

uint8_t composite_on_white(uint8_t c, uint8_t a) {
    if (a == 0) return 255;
    // Pillow's AlphaComposite.c with dst = (255, 255, 255, 255): coef1 = a * 128,
    // coef2 = (255 - a) * 128, plus its rounding term 0x80 << 7.
    const uint32_t t = 128u * (uint32_t(c) * a + 255u * (255u - a) + 128u);
    return uint8_t((((t >> 8) + t) >> 8) >> 7);
}

Image image_from_pixels(const uint8_t *pixels, int width, int height, int channels, size_t stride_bytes) {
    if (channels < 1 || channels > 4)
        fail(MUSE_ERR_INVALID_ARGUMENT, "channels is ", channels,
             "; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)");
    check_image_size(width, height, UINT64_MAX, MUSE_ERR_INVALID_ARGUMENT, "the pixel buffer");
    if (!pixels) fail(MUSE_ERR_INVALID_ARGUMENT, "pixels is NULL");
    const size_t row_bytes = size_t(width) * size_t(channels);
    if (stride_bytes == 0) stride_bytes = row_bytes;
    if (stride_bytes < row_bytes)
        fail(MUSE_ERR_INVALID_ARGUMENT, "stride_bytes is ", stride_bytes, ", less than width * channels = ", row_bytes);

    Image img;
    img.width = width;
    img.height = height;
    img.rgb.resize(size_t(width) * size_t(height) * 3);
    for (int y = 0; y < height; ++y) {
        const uint8_t *src = pixels + size_t(y) * stride_bytes;
        uint8_t *dst = img.rgb.data() + size_t(y) * size_t(width) * 3;
        switch (channels) {
        case 1:
            for (int x = 0; x < width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
            break;
        case 2:
            for (int x = 0; x < width; ++x)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = composite_on_white(src[2 * x], src[2 * x + 1]);
            break;
        case 3: std::memcpy(dst, src, row_bytes); break;
        case 4:
            for (int x = 0; x < width; ++x)
                for (int c = 0; c < 3; ++c) dst[3 * x + c] = composite_on_white(src[4 * x + c], src[4 * x + 3]);
            break;
        }
    }
    return img;
}

} // namespace muse
