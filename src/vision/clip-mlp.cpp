// CLIP/SigLIP ViT with the LLaVA-1.5 "mlp" projector, as llama.cpp's
// tools/mtmd/models/llava.cpp builds it: patch conv, class token, learned
// positions, pre-LN, quick-GELU (or clip.use_gelu / use_silu) encoder layers up to
// the feature layer, optional post-LN, the patch rows (class token dropped),
// then mm.0 -> GELU -> mm.2 with biases.
//
// Feature layer (clip.vision.feature_layer, llama.cpp's semantics):
//   absent  -> run the first n_layer - 1 layers (LLaVA's "select layer -2"; the
//              legacy converter also drops the unused last layer from the file);
//   present -> run up to the deepest listed index L; index i < L contributes the
//              input of layer i (0 = the encoder input after pre-LN), L the final
//              output (after post-LN when present); all listed ones are concatenated
//              along the embedding, shallowest first.
// The class token is row 0 with position 0, as in HF CLIP and llama.cpp before its
// graph refactor (a later llama.cpp appended it last while still dropping row 0:
// a known regression, not followed here). The projector GELU is ggml_gelu (tanh form)
// as in llama.cpp, where HF LLaVA uses the erf form (differences ~1e-3).
#include "core/error.h"
#include "vision/vision-encoder.h"

#include <algorithm>
#include <set>

namespace muse {
namespace {

class ClipMlpVision final : public VisionEncoder {
public:
    ClipMlpVision(const gguf::File &file, Backend &backend) : VisionEncoder(file, backend) {
        hp_ = read_vision_hparams(reader_, "mlp");
        require_plain_multi_head(hp_, "mlp (CLIP)");
        grid_ = square_patch_grid();
        vit_ = load_vit(reader_, hp_, true);
        class_embd_ = reader_.tensor("v.class_embd", {hp_.n_embd}, false);
        n_pos_ = int64_t(grid_) * grid_ + (class_embd_.valid() ? 1 : 0);
        if (vit_.pos_embd.ne[1] < n_pos_)
            fail(MUSE_ERR_FORMAT, "mmproj: v.position_embd.weight has ", vit_.pos_embd.ne[1], " rows; a ",
                 hp_.image_size, "-pixel image with patch ", hp_.patch_size, " needs ", n_pos_);

        if (auto layers = reader_.int_array("clip.vision.feature_layer")) {
            for (int64_t l : *layers) {
                if (l < 0 || l > hp_.n_layer)
                    fail(MUSE_ERR_FORMAT, "mmproj: clip.vision.feature_layer ", l, " is not in [0, ", hp_.n_layer, "]");
                features_.insert(static_cast<int>(l));
            }
            hp_.feature_layers.assign(features_.begin(), features_.end());
        }
        n_run_ = features_.empty() ? std::max<int64_t>(hp_.n_layer - 1, 0) : *features_.rbegin();

        if (reader_.has_tensor("mm.3.weight"))
            fail(MUSE_ERR_UNSUPPORTED, "mmproj: the mlp_norm projector (mm.3 / mm.4, Yi-VL style) is not supported");
        const int64_t n_feat = features_.empty() ? 1 : static_cast<int64_t>(features_.size());
        mm0_ = reader_.tensor("mm.0.weight", {n_feat * hp_.n_embd, -1});
        mm0_b_ = reader_.tensor("mm.0.bias", {mm0_.ne[1]});
        mm2_ = reader_.tensor("mm.2.weight", {mm0_.ne[1], -1}, false);
        if (mm2_.valid()) mm2_b_ = reader_.tensor("mm.2.bias", {mm2_.ne[1]});
        hp_.n_embd_out = mm2_.valid() ? mm2_.ne[1] : mm0_.ne[1];
    }

    int64_t n_output_tokens(int width, int height) const override {
        if (width != hp_.image_size || height != hp_.image_size)
            fail(MUSE_ERR_INVALID_ARGUMENT, "mlp vision: the encoder takes ", hp_.image_size, "x", hp_.image_size,
                 " images (its position table is fixed), got ", width, "x", height,
                 "; the preprocessor pads and resizes to that size");
        return int64_t(grid_) * grid_;
    }

protected:
    Tensor forward(Arena &ar, Graph &g, const Tensor &img) const override {
        const int64_t e = hp_.n_embd, n_patch = int64_t(grid_) * grid_, first = class_embd_.valid() ? 1 : 0;
        const Tensor x = ar.f32(e, n_pos_);
        patch_embed(g, ar, vit_, img, hp_.patch_size, x.rows(first, n_patch));
        if (class_embd_.valid()) {
            const int32_t zero = 0;
            g.get_rows(class_embd_.reshape(e, 1), g.input_i32(&zero, 1), x.rows(0, 1));
        }
        g.add(x, rows_f32(g, ar, vit_.pos_embd, n_pos_));
        if (vit_.pre_ln_w.valid() || vit_.pre_ln_b.valid()) g.layer_norm(x, vit_.pre_ln_w, vit_.pre_ln_b, hp_.eps, x);

        const int64_t n_feat = static_cast<int64_t>(features_.size());
        const Tensor stack = ar.f32(e, n_pos_ * std::max<int64_t>(n_feat, 1));
        std::vector<int32_t> identity(static_cast<size_t>(n_pos_));
        for (size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<int32_t>(i);
        const Tensor identity_ids = g.input_i32(identity);
        int64_t captured = 0;
        auto capture = [&] {
            g.get_rows(x, identity_ids, stack.rows(captured * n_pos_, n_pos_));
            ++captured;
        };

        const VitScratch s = make_vit_scratch(ar, hp_, n_pos_);
        const int32_t all = static_cast<int32_t>(n_pos_);
        VitAttention a;
        a.windows = g.input_i32(&all, 1);
        for (int64_t il = 0; il < n_run_; ++il) {
            if (features_.count(static_cast<int>(il))) capture();
            vit_layer(g, hp_, vit_.layers[static_cast<size_t>(il)], x, s, a);
        }
        if (vit_.post_ln_w.valid() || vit_.post_ln_b.valid())
            g.layer_norm(x, vit_.post_ln_w, vit_.post_ln_b, hp_.eps, x);

        // The patch rows (class token dropped); with feature layers, row p*n_feat + k of the
        // gather is patch p of capture k, so each token's features sit side by side.
        const Tensor feats = ar.f32(e * std::max<int64_t>(n_feat, 1), n_patch);
        std::vector<int32_t> ids;
        if (features_.empty()) {
            for (int64_t p = 0; p < n_patch; ++p) ids.push_back(static_cast<int32_t>(p + first));
            g.get_rows(x, g.input_i32(ids), feats);
        } else {
            capture();  // the deepest listed layer is the final output
            for (int64_t p = 0; p < n_patch; ++p)
                for (int64_t k = 0; k < n_feat; ++k) ids.push_back(static_cast<int32_t>(k * n_pos_ + p + first));
            g.get_rows(stack, g.input_i32(ids), feats.reshape(e, n_patch * n_feat));
        }

        const Tensor hidden = ar.f32(mm0_.ne[1], n_patch);
        linear(g, mm0_, mm0_b_, feats, hidden);
        g.activation(hidden, Activation::GeluTanh);
        if (!mm2_.valid()) return hidden;
        const Tensor out = ar.f32(hp_.n_embd_out, n_patch);
        linear(g, mm2_, mm2_b_, hidden, out);
        return out;
    }

private:
    VitWeights vit_;
    Tensor class_embd_, mm0_, mm0_b_, mm2_, mm2_b_;
    int grid_ = 0;
    int64_t n_pos_ = 0, n_run_ = 0;
    std::set<int> features_;
};

} // namespace

std::unique_ptr<VisionEncoder> make_clip_mlp_vision(const gguf::File &file, Backend &backend) {
    return std::make_unique<ClipMlpVision>(file, backend);
}

} // namespace muse
