// libFuzzer target for the image loader: decode arbitrary bytes (every format
// stb_image knows, behind muse's header checks and allocation cap), then push
// the result through a Pillow-exact resize and the muse-glimmer preprocessing,
// whose sizes derive from the decoded image.
#include "api/api-guard.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "image/resize.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    muse::api::guard([&] {
        muse::ImageLoadOptions o;
        o.max_pixels = 1 << 20;  // bounded work per input; the limit logic itself is what is tested
        const muse::Image img = muse::decode_image(data, size, o);
        if (img.rgb.size() != size_t(img.width) * size_t(img.height) * 3) std::abort();
        const int ow = img.width % 37 + 1, oh = img.height % 29 + 1;
        const muse::Image small = muse::resize_image(img, ow, oh, muse::ResampleFilter::Lanczos,
                                                     size % 2 ? muse::PassOrder::Pillow13
                                                              : muse::PassOrder::HorizontalFirst);
        if (small.rgb.size() != size_t(ow) * size_t(oh) * 3) std::abort();
        muse::PreprocessParams p;
        p.max_tokens = 16;  // at most 16 merged tokens of 28 x 28 pixels
        const muse::GlimmerInput in = muse::preprocess_muse_glimmer(small, p);
        if (in.image.data.size() != size_t(in.image.width) * size_t(in.image.height) * 3) std::abort();
    });
    return 0;
}
