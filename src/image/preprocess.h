// Turning a decoded image into the normalized tensors a vision encoder takes,
// one function per model family, each matching the reference processor the
// family was trained with (all resizing is Pillow-exact, see resize.h):
//
//   muse-glimmer  ../shared/docs/MUSE_GLIMMER.md §2.3: grid rule, Lanczos stretch.
//   CLIP / SigLIP llama.cpp's choice for LLaVA-style projectors (mlp, mlp_norm,
//                 ldp, ldpv2): pad to a square with the mean colour, then resize,
//                 as LLaVA-1.5's expand2square + CLIPImageProcessor (bicubic).
//                 Also HF CLIPImageProcessor's shortest-edge + center crop, and
//                 SigLIP's plain stretch, for mmprojs that want those.
//   Idefics3      HF Idefics3ImageProcessor / SmolVLMImageProcessor: longest edge
//                 to `longest_edge`, then to multiples of the tile size, tiles
//                 (row-major) plus a global image, all Lanczos.
//
// Normalization everywhere: v = (float(u8) / 255.0f - mean[c]) / std[c] in
// float32 (llama.cpp's normalize_image_u8_to_f32; HF's rescale-then-normalize
// can differ from it by one float ulp).
#pragma once

#include "image/image.h"
#include "image/resize.h"

#include <vector>

namespace muse {

// A normalized planar float image: data[c * height * width + y * width + x], c in R, G, B.
struct ImageTensor {
    int width = 0;
    int height = 0;
    std::vector<float> data;
};

// How a CLIP-style (fixed square input) encoder fits an image into image_size².
enum class ClipResize {
    // Pad the shorter side to a square with the mean colour (int(mean * 255) per
    // channel, the image centred at ((long - short) / 2)), then resize bicubic.
    // The decision is llama.cpp's for PROJECTOR_TYPE_MLP / MLP_NORM / LDP / LDPV2
    // without clip.vision.image_grid_pinpoints (pad, never crop; colour
    // 122,116,104 for CLIP's mean). The pixels follow LLaVA-1.5's own pipeline
    // (expand2square, then CLIPImageProcessor's Pillow bicubic): llama.cpp
    // resizes first and pads at the target size with its own interpolation,
    // which has changed between its versions (bilinear, then a non-Pillow
    // bicubic), so it is no fixed reference to match byte for byte.
    PadToSquare,
    // HF CLIPImageProcessor: shortest edge to image_size (the other side
    // int(size * long / short)), bicubic, then a centered image_size² crop.
    ShortestEdgeCenterCrop,
    // HF SiglipImageProcessor: bicubic resize straight to image_size².
    Stretch,
};

// Family-independent inputs, filled by the caller from the mmproj keys.
struct PreprocessParams {
    int patch_size = 14;     // clip.vision.patch_size
    int merge = 2;           // clip.vision.spatial_merge_size (muse-glimmer)
    int max_tokens = 4096;   // muse-glimmer: merged-token budget T (llama.cpp's image_max_tokens)
    int image_size = 0;      // clip.vision.image_size: CLIP square side, Idefics3 tile side
    int longest_edge = 0;    // Idefics3: clip.vision.preproc_image_size (HF size["longest_edge"])
    ClipResize clip_resize = ClipResize::PadToSquare;
    PassOrder pass_order = PassOrder::HorizontalFirst;  // see resize.h
    float mean[3] = {0.5f, 0.5f, 0.5f};  // clip.vision.image_mean
    float std[3] = {0.5f, 0.5f, 0.5f};   // clip.vision.image_std
};

// (float(u8) / 255.0f - mean[c]) / std[c], planar.
ImageTensor normalize_image(const Image &img, const float mean[3], const float std[3]);

// ---- muse-glimmer

// Merged-token grid: nw tokens across, nh down (image becomes nw*P x nh*P pixels).
struct GlimmerGrid {
    int nw = 0;
    int nh = 0;
};

// Spec §2.3 grid selection (llama.cpp's muse_glimmer_grid_size, a port of
// transformers' get_aspect_ratio_preserving_size) for a width x height image,
// P = patch_size * merge pixels per merged token and T = max_tokens.
GlimmerGrid glimmer_grid_size(int width, int height, int patch_size, int merge, int max_tokens);

struct GlimmerInput {
    ImageTensor image;  // (nw * P) x (nh * P), Lanczos stretch of the whole image
    GlimmerGrid grid;   // nw * nh merged tokens
};

GlimmerInput preprocess_muse_glimmer(const Image &img, const PreprocessParams &p);

// ---- CLIP / SigLIP (one image_size x image_size tensor)

ImageTensor preprocess_clip(const Image &img, const PreprocessParams &p);

// ---- Idefics3 / SmolVLM

struct Idefics3Input {
    std::vector<ImageTensor> tiles;  // rows * cols tiles of image_size², row-major; empty when not split
    ImageTensor global;              // the whole image at image_size², after the tiles in the prompt
    int rows = 0;                    // 0 when the image fits one tile (then only `global`)
    int cols = 0;
};

// The two resize targets of HF's processor, exposed for tests: the longest-edge
// size (HF's get_resize_output_image_size) and the tile-multiple size
// (resize_for_vision_encoder) of a w x h input.
void idefics3_sizes(int width, int height, int longest_edge, int tile, int *resized_w, int *resized_h, int *tiled_w,
                    int *tiled_h);

Idefics3Input preprocess_idefics3(const Image &img, const PreprocessParams &p);

} // namespace muse
