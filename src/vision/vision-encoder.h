// An image encoder loaded from an mmproj GGUF: the vision tower plus the projector
// that maps its output into the text model's embedding space. One family per file:
//   muse-glimmer-vision.cpp  projector "muse-glimmer" (../shared/docs/MUSE_GLIMMER.md §2)
//   clip-mlp.cpp             projector "mlp": CLIP/SigLIP ViT + LLaVA-1.5 MLP
//   idefics3.cpp             projector "idefics3": SigLIP ViT + pixel shuffle + linear (SmolVLM)
// The encoder takes the preprocessed (resized, normalized) image; src/image/ makes it.
#pragma once

#include "backends/backend.h"
#include "gguf/gguf-file.h"
#include "vision/mmproj.h"
#include "vision/vit.h"

#include <memory>
#include <vector>

namespace muse {

class VisionEncoder {
public:
    virtual ~VisionEncoder() = default;

    // Reads an mmproj (general.architecture "clip") and maps its weights through the
    // backend; both must outlive the encoder. Unknown projector types are refused with
    // MUSE_ERR_UNSUPPORTED naming the type; missing keys or tensors and wrong shapes with
    // MUSE_ERR_FORMAT naming them.
    static std::unique_ptr<VisionEncoder> load(const gguf::File &file, Backend &backend);

    const VisionHParams &hparams() const { return hp_; }

    // Embedding rows encode() returns for a width x height input. Throws
    // MUSE_ERR_INVALID_ARGUMENT, stating the rule, for a size this encoder cannot take
    // (muse-glimmer: multiples of patch * merge; mlp and idefics3: image_size square).
    virtual int64_t n_output_tokens(int width, int height) const = 0;

    // planar_rgb: the preprocessed image, plane c, row y, column x at c*height*width + y*width + x,
    // already normalized with hparams().image_mean / image_std. Returns
    // [n_output_tokens * n_embd_out] row-major. Thread-safe (the encoder is immutable;
    // concurrent calls share the backend's thread pool).
    std::vector<float> encode(const float *planar_rgb, int width, int height) const;

    // Largest patch grid any family accepts (256 x 256 patches): bounds the work and memory
    // of one call whatever the caller passes.
    static constexpr int64_t kMaxPatches = int64_t(1) << 16;

protected:
    VisionEncoder(const gguf::File &file, Backend &backend) : reader_(file, backend), be_(backend) {}
    // Records the family's pass into g: img [W, H, 3] -> projected embeddings
    // [n_embd_out, n_tokens] (activations from ar).
    virtual Tensor forward(Arena &ar, Graph &g, const Tensor &img) const = 0;
    // Patch grid side of a fixed-size (image_size square) encoder, from hp_; refuses an
    // image_size that is not a multiple of patch_size or that makes more than kMaxPatches.
    int square_patch_grid() const;

    MmprojReader reader_;
    Backend &be_;
    VisionHParams hp_;
};

// The families, one file each (VisionEncoder::load picks by clip.projector_type).
std::unique_ptr<VisionEncoder> make_muse_glimmer_vision(const gguf::File &file, Backend &backend);
std::unique_ptr<VisionEncoder> make_clip_mlp_vision(const gguf::File &file, Backend &backend);
std::unique_ptr<VisionEncoder> make_idefics3_vision(const gguf::File &file, Backend &backend);

} // namespace muse
