#include "image/preprocess.h"

#include "core/error.h"
#include "image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace muse {
namespace {

void require_image(const Image &img) {
    if (img.width < 1 || img.height < 1 || img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        fail(MUSE_ERR_INVALID_ARGUMENT, "preprocess: the image is empty or inconsistent (", img.width, "x",
             img.height, ", ", img.rgb.size(), " bytes)");
}

void require_normalization(const PreprocessParams &p) {
    for (int c = 0; c < 3; ++c)
        if (!std::isfinite(p.mean[c]) || !std::isfinite(p.std[c]) || p.std[c] == 0.0f)
            fail(MUSE_ERR_INVALID_ARGUMENT, "preprocess: image_mean/image_std[", c, "] = ", p.mean[c], "/", p.std[c],
                 " (std must be finite and non-zero)");
}

void require_positive(int v, const char *name) {
    if (v < 1 || v > kMaxImageSide)
        fail(MUSE_ERR_INVALID_ARGUMENT, "preprocess: ", name, " is ", v, "; expected 1..", kMaxImageSide);
}

// A target size from a size rule, checked before any pixel is allocated for it.
void require_target(int64_t w, int64_t h, const char *what) {
    if (w < 1 || h < 1 || w > kMaxResizeSide || h > kMaxResizeSide || uint64_t(w) * uint64_t(h) > kMaxResizePixels)
        fail(MUSE_ERR_OUT_OF_RANGE, "preprocess: the ", what, " size ", w, "x", h, " is outside 1..", kMaxResizeSide,
             " per side or over ", kMaxResizePixels, " pixels (an extreme aspect ratio?)");
}

Image crop(const Image &src, int x0, int y0, int w, int h) {
    Image out;
    out.width = w;
    out.height = h;
    out.rgb.resize(size_t(w) * size_t(h) * 3);
    for (int y = 0; y < h; ++y) {
        const size_t from = (size_t(y0 + y) * size_t(src.width) + size_t(x0)) * 3;
        std::memcpy(&out.rgb[size_t(y) * size_t(w) * 3], &src.rgb[from], size_t(w) * 3);
    }
    return out;
}

// Python's int(): truncation toward zero of a double (HF's size rules).
int py_int(double v) { return int(std::trunc(v)); }

int ceil_div(int a, int b) { return (a + b - 1) / b; }

} // namespace

ImageTensor normalize_image(const Image &img, const float mean[3], const float std[3]) {
    require_image(img);
    ImageTensor t;
    t.width = img.width;
    t.height = img.height;
    const size_t plane = size_t(img.width) * size_t(img.height);
    t.data.resize(plane * 3);
    for (size_t i = 0; i < plane; ++i)
        for (size_t c = 0; c < 3; ++c)
            t.data[c * plane + i] = (static_cast<float>(img.rgb[i * 3 + c]) / 255.0f - mean[c]) / std[c];
    return t;
}

// ---------------------------------------------------------------- muse-glimmer

GlimmerGrid glimmer_grid_size(int width, int height, int patch_size, int merge, int max_tokens) {
    require_positive(width, "width");
    require_positive(height, "height");
    require_positive(patch_size, "patch_size");
    require_positive(merge, "merge");
    if (max_tokens < 1) fail(MUSE_ERR_INVALID_ARGUMENT, "preprocess: max_tokens is ", max_tokens, "; expected >= 1");
    const double P = double(patch_size) * double(merge);
    const double T = double(max_tokens);
    double nh = double(height) / P, nw = double(width) / P;
    const double r = nh == 0.0 ? 1.0 : nw / nh;
    if (nh * nw > T) {
        nh = std::sqrt(T / r);
        nw = nh * r;
    }
    const double target_ratio = double(height) / double(width);
    bool found = false;
    double best_d = 0.0;
    int64_t best_h = 0, best_w = 0;
    for (double ch : {std::floor(nh), std::ceil(nh)}) {
        for (double cw : {std::floor(nw), std::ceil(nw)}) {
            if (ch < 1.0 || cw < 1.0 || ch * cw > T) continue;
            const double d = std::fabs(ch / cw - target_ratio);
            const int64_t hh = int64_t(ch), ww = int64_t(cw);
            if (!found || d < best_d || (d == best_d && hh * ww > best_h * best_w)) {
                found = true;
                best_d = d;
                best_h = hh;
                best_w = ww;
            }
        }
    }
    if (!found) {
        best_h = std::max<int64_t>(1, std::llround(nh));
        best_w = std::max<int64_t>(1, std::llround(nw));
    }
    require_target(best_w * int64_t(P), best_h * int64_t(P), "muse-glimmer grid");
    return {int(best_w), int(best_h)};
}

GlimmerInput preprocess_muse_glimmer(const Image &img, const PreprocessParams &p) {
    require_image(img);
    require_normalization(p);
    GlimmerInput in;
    in.grid = glimmer_grid_size(img.width, img.height, p.patch_size, p.merge, p.max_tokens);
    const int P = p.patch_size * p.merge;
    const Image resized = resize_image(img, in.grid.nw * P, in.grid.nh * P, ResampleFilter::Lanczos, p.pass_order);
    in.image = normalize_image(resized, p.mean, p.std);
    return in;
}

// ---------------------------------------------------------------- CLIP / SigLIP

ImageTensor preprocess_clip(const Image &img, const PreprocessParams &p) {
    require_image(img);
    require_normalization(p);
    require_positive(p.image_size, "image_size");
    const int S = p.image_size;
    switch (p.clip_resize) {
    case ClipResize::PadToSquare: {
        // LLaVA's expand2square: the image centred on a square of background
        // tuple(int(x * 255) for x in image_mean), then the processor's resize.
        const int side = std::max(img.width, img.height);
        uint8_t bg[3];
        for (int c = 0; c < 3; ++c) {
            const double v = double(p.mean[c]) * 255.0;
            bg[c] = uint8_t(v < 0.0 ? 0 : v > 255.0 ? 255 : int(v));
        }
        const Image resized = resize_on_canvas(img, side, side, (side - img.width) / 2, (side - img.height) / 2, bg, S,
                                               S, ResampleFilter::Bicubic, p.pass_order);
        return normalize_image(resized, p.mean, p.std);
    }
    case ClipResize::ShortestEdgeCenterCrop: {
        const bool portrait = img.width <= img.height;
        const int64_t shorter = portrait ? img.width : img.height, longer = portrait ? img.height : img.width;
        const int64_t new_long = py_int(double(int64_t(S) * longer) / double(shorter));
        const int64_t rw = portrait ? S : new_long, rh = portrait ? new_long : S;
        require_target(rw, rh, "shortest-edge resize");
        const Image resized = resize_image(img, int(rw), int(rh), ResampleFilter::Bicubic, p.pass_order);
        // HF center_crop; the crop is never larger than the image here (new_long >= S).
        const int top = (resized.height - S) / 2, left = (resized.width - S) / 2;
        return normalize_image(crop(resized, left, top, S, S), p.mean, p.std);
    }
    case ClipResize::Stretch:
        return normalize_image(resize_image(img, S, S, ResampleFilter::Bicubic, p.pass_order), p.mean, p.std);
    }
    fail(MUSE_ERR_INVALID_ARGUMENT, "preprocess: unknown CLIP resize mode ", int(p.clip_resize));
}

// ---------------------------------------------------------------- Idefics3

void idefics3_sizes(int width, int height, int longest_edge, int tile, int *resized_w, int *resized_h, int *tiled_w,
                    int *tiled_h) {
    require_positive(width, "width");
    require_positive(height, "height");
    require_positive(longest_edge, "longest_edge");
    require_positive(tile, "image_size (tile)");
    // _resize_output_size_rescale_to_max_len(height, width, min_len=1, max_len=longest_edge)
    int64_t w = width, h = height;
    {
        const double aspect = double(w) / double(h);
        if (w >= h) {
            w = longest_edge;
            h = py_int(double(w) / aspect);
            if (h % 2 != 0) h += 1;
        } else {
            h = longest_edge;
            w = py_int(double(h) * aspect);
            if (w % 2 != 0) w += 1;
        }
        h = std::max<int64_t>(h, 1);
        w = std::max<int64_t>(w, 1);
    }
    // _resize_output_size_scale_below_upper_bound(max_len=4096), transformers'
    // MAX_IMAGE_SIZE: only changes anything when longest_edge > 4096.
    {
        constexpr int64_t kMax = 4096;
        const double aspect = double(w) / double(h);
        if (w >= h && w > kMax) {
            w = kMax;
            h = py_int(double(w) / aspect);
        } else if (h > w && h > kMax) {
            h = kMax;
            w = py_int(double(h) * aspect);
        }
        h = std::max<int64_t>(h, 1);
        w = std::max<int64_t>(w, 1);
    }
    require_target(w, h, "Idefics3 longest-edge");
    // resize_for_vision_encoder(vision_encoder_max_size=tile)
    int64_t tw, th;
    {
        const double aspect = double(w) / double(h);
        if (w >= h) {
            tw = ceil_div(int(w), tile) * int64_t(tile);
            th = py_int(double(tw) / aspect);
            th = ceil_div(int(th), tile) * int64_t(tile);
        } else {
            th = ceil_div(int(h), tile) * int64_t(tile);
            tw = py_int(double(th) * aspect);
            tw = ceil_div(int(tw), tile) * int64_t(tile);
        }
        // HF would try to resize to 0 pixels if int() rounded below 1 (it cannot
        // reach 1 tile otherwise); one tile is what it means.
        tw = std::max<int64_t>(tw, tile);
        th = std::max<int64_t>(th, tile);
    }
    require_target(tw, th, "Idefics3 tiled");
    *resized_w = int(w);
    *resized_h = int(h);
    *tiled_w = int(tw);
    *tiled_h = int(th);
}

Idefics3Input preprocess_idefics3(const Image &img, const PreprocessParams &p) {
    require_image(img);
    require_normalization(p);
    const int M = p.image_size;
    int rw = 0, rh = 0, tw = 0, th = 0;
    idefics3_sizes(img.width, img.height, p.longest_edge, M, &rw, &rh, &tw, &th);
    const Image resized = resize_image(img, rw, rh, ResampleFilter::Lanczos, p.pass_order);
    const Image tiled = resize_image(resized, tw, th, ResampleFilter::Lanczos, p.pass_order);
    Idefics3Input out;
    if (tw > M || th > M) {
        // split_image: tiles of ceil(size / n) = M exactly, since tw, th are multiples of M.
        out.rows = th / M;
        out.cols = tw / M;
        for (int r = 0; r < out.rows; ++r)
            for (int c = 0; c < out.cols; ++c)
                out.tiles.push_back(normalize_image(crop(tiled, c * M, r * M, M, M), p.mean, p.std));
        // The global image is resized from the tiled image, not from the original.
        out.global = normalize_image(resize_image(tiled, M, M, ResampleFilter::Lanczos, p.pass_order), p.mean, p.std);
    } else {
        out.global = normalize_image(tiled, p.mean, p.std);
    }
    return out;
}

} // namespace muse
