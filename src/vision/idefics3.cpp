// Idefics3 / SmolVLM: a SigLIP ViT (no class token, learned positions added as they
// are, optional pre-LN, post-LN) followed by llama.cpp's pixel shuffle
// (clip.cpp build_patch_merge_permute, = transformers' Idefics3Connector.pixel_shuffle)
// with factor s = clip.vision.projector.scale_factor and the linear mm.model.fc.
//
// The shuffle's feature order is sub-position-major: merged token (ox, oy) gets
// [x(ry=0,rx=0) | x(0,1) | ... | x(s-1,s-1)], each block n_embd wide, i.e. element
// (ry*s + rx)*n_embd + c -- unlike Muse Glimmer's channel-major c*f² + s. A grid that
// is not a multiple of s is padded with zero patches at the right and bottom, as
// llama.cpp does.
#include "core/error.h"
#include "vision/patch-layout.h"
#include "vision/vision-encoder.h"

namespace muse {
namespace {

class Idefics3Vision final : public VisionEncoder {
public:
    Idefics3Vision(const gguf::File &file, Backend &backend) : VisionEncoder(file, backend) {
        hp_ = read_vision_hparams(reader_, "idefics3");
        require_plain_multi_head(hp_, "idefics3 (SigLIP)");
        const auto scale = reader_.optional_count("clip.vision.projector.scale_factor");
        if (!scale) fail(MUSE_ERR_FORMAT, "mmproj: missing required metadata 'clip.vision.projector.scale_factor'");
        if (*scale < 2 || *scale > 16)
            fail(MUSE_ERR_FORMAT, "mmproj: clip.vision.projector.scale_factor ", *scale, " is not in [2, 16]");
        hp_.n_merge = static_cast<int>(*scale);
        grid_ = square_patch_grid();
        vit_ = load_vit(reader_, hp_, true);
        if (vit_.pos_embd.ne[1] != int64_t(grid_) * grid_)  // added as is (no interpolation for idefics3)
            fail(MUSE_ERR_FORMAT, "mmproj: v.position_embd.weight has ", vit_.pos_embd.ne[1], " rows, expected ",
                 int64_t(grid_) * grid_, " (", grid_, "x", grid_, " patches)");
        const int64_t s2 = int64_t(hp_.n_merge) * hp_.n_merge;
        fc_ = reader_.tensor("mm.model.fc.weight", {s2 * hp_.n_embd, -1});
        hp_.n_embd_out = fc_.ne[1];
    }

    int64_t n_output_tokens(int width, int height) const override {
        if (width != hp_.image_size || height != hp_.image_size)
            fail(MUSE_ERR_INVALID_ARGUMENT, "idefics3 vision: the encoder takes ", hp_.image_size, "x",
                 hp_.image_size, " images (its position table is fixed), got ", width, "x", height,
                 "; the preprocessor cuts images into tiles of that size");
        const int64_t side = (grid_ + hp_.n_merge - 1) / hp_.n_merge;
        return side * side;
    }

protected:
    Tensor forward(Arena &ar, Graph &g, const Tensor &img) const override {
        const int64_t e = hp_.n_embd, n = int64_t(grid_) * grid_, s2 = int64_t(hp_.n_merge) * hp_.n_merge;
        // One extra zero row past the patches: the source of the padding in the shuffle.
        const Tensor padded = ar.f32(e, n + 1);
        const std::vector<float> zeros(static_cast<size_t>(e), 0.0f);
        g.input(padded.rows(n, 1), zeros.data(), zeros.size() * 4);
        const Tensor x = padded.rows(0, n);
        patch_embed(g, ar, vit_, img, hp_.patch_size, x);
        g.add(x, rows_f32(g, ar, vit_.pos_embd, n));
        if (vit_.pre_ln_w.valid() || vit_.pre_ln_b.valid()) g.layer_norm(x, vit_.pre_ln_w, vit_.pre_ln_b, hp_.eps, x);

        const VitScratch s = make_vit_scratch(ar, hp_, n);
        const int32_t all = static_cast<int32_t>(n);
        VitAttention a;
        a.windows = g.input_i32(&all, 1);
        for (const VitLayer &L : vit_.layers) vit_layer(g, hp_, L, x, s, a);
        if (vit_.post_ln_w.valid() || vit_.post_ln_b.valid())
            g.layer_norm(x, vit_.post_ln_w, vit_.post_ln_b, hp_.eps, x);

        std::vector<int32_t> ids = merge_gather(grid_, grid_, hp_.n_merge);
        for (int32_t &id : ids)
            if (id < 0) id = static_cast<int32_t>(n);
        const int64_t n_out = static_cast<int64_t>(ids.size()) / s2;
        const Tensor y = ar.f32(e, s2 * n_out);
        g.get_rows(padded, g.input_i32(ids), y);
        const Tensor out = ar.f32(hp_.n_embd_out, n_out);
        g.matmul(fc_, y.reshape(s2 * e, n_out), out);
        return out;
    }

private:
    VitWeights vit_;
    Tensor fc_;
    int grid_ = 0;
};

} // namespace

std::unique_ptr<VisionEncoder> make_idefics3_vision(const gguf::File &file, Backend &backend) {
    return std::make_unique<Idefics3Vision>(file, backend);
}

} // namespace muse
