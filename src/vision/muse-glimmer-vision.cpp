// Muse Glimmer's vision tower and adapter, exactly as ../shared/docs/MUSE_GLIMMER.md
// §2.1-§2.4: patch conv, learned G x G position table (bilinearly resized to the patch
// grid when it differs), tokens regrouped into G x G windows, 2D RoPE (width first,
// 1-indexed positions), windowed attention with a global layer every 4th layer and at
// the end, post-LN, 2 x 2 pixel shuffle (channel-major) and a 3-layer adapter without
// biases. GQA (head_count_kv) is honoured.
#include "core/error.h"
#include "vision/patch-layout.h"
#include "vision/vision-encoder.h"

#include <cmath>

namespace muse {
namespace {

constexpr float kRopeTheta = 10000.0f;  // §2.1: hard-coded, no GGUF key
constexpr int kGlobalEvery = 4;         // §2.1: "sparse factor", hard-coded

class MuseGlimmerVision final : public VisionEncoder {
public:
    MuseGlimmerVision(const gguf::File &file, Backend &backend) : VisionEncoder(file, backend) {
        hp_ = read_vision_hparams(reader_, "muse-glimmer");
        hp_.ffn_act = Activation::GeluErf;  // §2.4: every GELU is the erf form (clip.use_gelu is ignored)
        const int64_t merge = reader_.optional_count("clip.vision.spatial_merge_size").value_or(2);
        if (merge < 1 || merge > 16)
            fail(MUSE_ERR_FORMAT, "mmproj: clip.vision.spatial_merge_size ", merge, " is not in [1, 16]");
        hp_.n_merge = static_cast<int>(merge);
        if (hp_.head_dim % 4 != 0)
            fail(MUSE_ERR_FORMAT, "mmproj: head dim ", hp_.head_dim, " must be a multiple of 4 for the 2D RoPE");
        vit_ = load_vit(reader_, hp_, false);
        // §2.4: G = floor(sqrt(rows)); the table is read as a G x G image, row = h*G + w.
        const auto G = static_cast<int64_t>(std::sqrt(static_cast<double>(vit_.pos_embd.ne[1])));
        if (G < 1) fail(MUSE_ERR_FORMAT, "mmproj: v.position_embd.weight has no rows");
        hp_.pos_grid = static_cast<int>(G);

        const int64_t f2 = int64_t(hp_.n_merge) * hp_.n_merge;
        mm0_ = reader_.tensor("mm.0.weight", {f2 * hp_.n_embd, -1});  // no biases are loaded for mm.* (§2.2)
        mm1_ = reader_.tensor("mm.1.weight", {mm0_.ne[1], -1});
        mm2_ = reader_.tensor("mm.2.weight", {mm1_.ne[1], -1});
        hp_.n_embd_out = mm2_.ne[1];
    }

    int64_t n_output_tokens(int width, int height) const override {
        const int P = hp_.patch_size * hp_.n_merge;
        if (width <= 0 || height <= 0 || width % P || height % P)
            fail(MUSE_ERR_INVALID_ARGUMENT, "muse-glimmer vision: a ", width, "x", height,
                 " image is not a positive multiple of ", P, " pixels (patch ", hp_.patch_size, " x merge ",
                 hp_.n_merge, ") on each side; the preprocessor's grid rule produces such sizes");
        const int64_t patches = int64_t(width / hp_.patch_size) * (height / hp_.patch_size);
        if (patches > kMaxPatches)
            fail(MUSE_ERR_INVALID_ARGUMENT, "muse-glimmer vision: ", width, "x", height, " makes ", patches,
                 " patches, more than ", kMaxPatches);
        return int64_t(width / P) * (height / P);
    }

protected:
    Tensor forward(Arena &ar, Graph &g, const Tensor &img) const override {
        const int ps = hp_.patch_size, f = hp_.n_merge, G = hp_.pos_grid;
        const int gw = static_cast<int>(img.ne[0]) / ps, gh = static_cast<int>(img.ne[1]) / ps;
        const int64_t n = int64_t(gw) * gh, e = hp_.n_embd, f2 = int64_t(f) * f, n_out = n / f2;
        const WindowLayout layout = window_layout(gw, gh, G);

        // 1-2. patches, then the position table (resized when the grid is not G x G).
        Tensor x0 = ar.f32(e, n);
        patch_embed(g, ar, vit_, img, ps, x0);
        const Tensor table = rows_f32(g, ar, vit_.pos_embd, int64_t(G) * G);
        if (gw == G && gh == G) {
            g.add(x0, table);
        } else {
            const Tensor resized = ar.f32(e, gw, gh);
            g.resize_bilinear(table.reshape(e, G, G), resized);
            g.add(x0, resized.reshape(e, n));
        }
        // 3-4. into window order, pre-LN.
        const Tensor x = ar.f32(e, n);
        g.get_rows(x0, g.input_i32(layout.perm), x);
        if (vit_.pre_ln_w.valid() || vit_.pre_ln_b.valid()) g.layer_norm(x, vit_.pre_ln_w, vit_.pre_ln_b, hp_.eps, x);
        // 5. layers: windowed (block-diagonal) or global (one window of all tokens).
        const VitScratch s = make_vit_scratch(ar, hp_, n);
        const int32_t all = static_cast<int32_t>(n);
        VitAttention windowed, global_attention;
        windowed.pos_w = g.input_i32(layout.pos_w);
        windowed.pos_h = g.input_i32(layout.pos_h);
        windowed.rope_base = kRopeTheta;
        global_attention = windowed;
        windowed.windows = g.input_i32(layout.windows);
        global_attention.windows = g.input_i32(&all, 1);
        for (int64_t il = 0; il < hp_.n_layer; ++il) {
            const bool global = il == hp_.n_layer - 1 || (il + 1) % kGlobalEvery == 0;
            const VitAttention &a = global ? global_attention : windowed;
            vit_layer(g, hp_, vit_.layers[static_cast<size_t>(il)], x, s, a);
        }
        // 6. post-LN.
        if (vit_.post_ln_w.valid() || vit_.post_ln_b.valid())
            g.layer_norm(x, vit_.post_ln_w, vit_.post_ln_b, hp_.eps, x);
        // 7-8. back to raster order and the f x f pixel shuffle in one gather (row o*f² + s is
        // the patch at sub-position s of merged token o), then channel-major: y[c*f² + s].
        std::vector<int32_t> ids = merge_gather(gw, gh, f);
        for (int32_t &id : ids) id = layout.inv_perm[static_cast<size_t>(id)];
        const Tensor merged = ar.f32(e, n);
        g.get_rows(x, g.input_i32(ids), merged);
        const Tensor y = ar.f32(f2, e, n_out);
        g.transpose(merged.reshape(e, f2, n_out), y);
        // 9. adapter: mm.2 · gelu(mm.1 · gelu(mm.0 · y)).
        const Tensor z0 = ar.f32(mm0_.ne[1], n_out), z1 = ar.f32(mm1_.ne[1], n_out);
        const Tensor out = ar.f32(hp_.n_embd_out, n_out);
        g.matmul(mm0_, y.reshape(f2 * e, n_out), z0);
        g.activation(z0, Activation::GeluErf);
        g.matmul(mm1_, z0, z1);
        g.activation(z1, Activation::GeluErf);
        g.matmul(mm2_, z1, out);
        return out;
    }

private:
    VitWeights vit_;
    Tensor mm0_, mm1_, mm2_;
};

} // namespace

std::unique_ptr<VisionEncoder> make_muse_glimmer_vision(const gguf::File &file, Backend &backend) {
    return std::make_unique<MuseGlimmerVision>(file, backend);
}

} // namespace muse
