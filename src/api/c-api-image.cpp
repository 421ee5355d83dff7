// C entry points for images (src/image/decode.h, image.h).
#include "api/api-guard.h"
#include "api/image-handle.h"
#include "image/decode.h"

#include <cstring>

using namespace muse;
using namespace muse::api;

namespace {

// Sizes of every released muse_image_params, oldest first.
constexpr size_t kImageParamsSizes[] = {sizeof(muse_image_params)};

ImageLoadOptions load_options(const muse_image_params *params) {
    const muse_image_params p = read_params(params, muse_image_params_init, kImageParamsSizes, "muse_image_params");
    if (p.max_pixels == 0)
        fail(MUSE_ERR_INVALID_ARGUMENT,
             "muse_image_params.max_pixels is 0; fill the struct with muse_image_params_init()");
    ImageLoadOptions o;
    o.max_pixels = p.max_pixels;
    return o;
}

const Image &image_of(const muse_image *img) {
    if (!img) fail(MUSE_ERR_INVALID_ARGUMENT, "image handle is NULL");
    return img->impl;
}

} // namespace

extern "C" {

MUSE_API void muse_image_params_init(muse_image_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->max_pixels = kDefaultImageMaxPixels;
}

MUSE_API muse_status muse_image_load_file(const char *path, const muse_image_params *params, muse_image **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(path, "path");
        require(out, "out_image");
        const ImageLoadOptions o = load_options(params);
        *out = new muse_image{load_image_file(path, o)};
    });
}

MUSE_API muse_status muse_image_load_memory(const void *data, size_t size, const muse_image_params *params,
                                            muse_image **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(data, "data");
        require(out, "out_image");
        const ImageLoadOptions o = load_options(params);
        *out = new muse_image{decode_image(data, size, o)};
    });
}

MUSE_API muse_status muse_image_from_pixels(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                                            int32_t stride_bytes, muse_image **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(pixels, "pixels");
        require(out, "out_image");
        if (stride_bytes < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "stride_bytes is ", stride_bytes, "; expected >= 0");
        *out = new muse_image{image_from_pixels(pixels, width, height, channels, size_t(stride_bytes))};
    });
}

MUSE_API void muse_image_free(muse_image *img) { delete img; }

MUSE_API int32_t muse_image_width(const muse_image *img) {
    return guard_value<int32_t>(-1, [&] { return image_of(img).width; });
}

MUSE_API int32_t muse_image_height(const muse_image *img) {
    return guard_value<int32_t>(-1, [&] { return image_of(img).height; });
}

MUSE_API const uint8_t *muse_image_pixels(const muse_image *img) {
    return guard_value<const uint8_t *>(nullptr, [&] { return image_of(img).rgb.data(); });
}

} // extern "C"
