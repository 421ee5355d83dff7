// Vision Transformer building blocks shared by the encoder families: the weights
// of llama.cpp's generic ViT (tools/mtmd/clip.cpp build_vit: v.patch_embd,
// v.position_embd, v.pre_ln, v.blk.N.{ln1, attn_q/k/v/out, ln2, ffn_up/down},
// v.post_ln), their loader, an activation arena, and the forward pieces, all on
// the Backend interface.
#pragma once

#include "backends/backend.h"
#include "backends/graph.h"
#include "vision/mmproj.h"

#include <memory>
#include <vector>

namespace muse {

// The F32 activations of one encode, carved from backend buffers and freed together.
class Arena {
public:
    explicit Arena(Backend &backend) : backend_(backend) {}
    Tensor f32(int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1);

private:
    Backend &backend_;
    std::vector<std::unique_ptr<Buffer>> buffers_;
    size_t used_ = 0;  // bytes used in buffers_.back()
};

struct VitLayer {
    Tensor ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, up_w, up_b, down_w, down_b;
};

struct VitWeights {
    Tensor patch_w;     // the conv kernel [ps, ps, 3, n_embd] viewed as the matmul weight [ps*ps*3, n_embd]
    Tensor patch_b;     // optional [n_embd]
    Tensor pos_embd;    // [n_embd, n_pos]
    Tensor pre_ln_w, pre_ln_b, post_ln_w, post_ln_b;  // optional
    std::vector<VitLayer> layers;
};

// Refuses hyperparameters that the plain CLIP/SigLIP ViT graph (one K/V head per query head,
// head_dim * n_head == n_embd) cannot run; `encoder` names the projector in the message.
void require_plain_multi_head(const VisionHParams &hp, const char *encoder);

// Loads the ViT of an mmproj. legacy_ffn_swap: llama.cpp's repair for old converters
// that stored fc1 as ffn_down and fc2 as ffn_up (detected as ffn_down.ne[0] == n_embd;
// clip.cpp applies it to the mlp and idefics3 projectors among others).
// Tensors muse does not implement (gated FFN, q/k norms, layer scales) are refused by name.
VitWeights load_vit(const MmprojReader &r, const VisionHParams &hp, bool legacy_ffn_swap);

// Scratch of the transformer layers for n_tok tokens, reused layer after layer.
struct VitScratch {
    Tensor h, q, k, v, att, y, up;
};
VitScratch make_vit_scratch(Arena &ar, const VisionHParams &hp, int64_t n_tok);

// What one layer's attention sees: optional 2D RoPE positions and the windows.
struct VitAttention {
    Tensor pos_w, pos_h;  // I32 [n_tok]; invalid: no RoPE
    float rope_base = 10000.0f;
    Tensor windows;       // I32: lengths of the consecutive runs of tokens that attend among themselves
};

// y = W·x (+ b): w [in, out], x [in, n], y [out, n].
void linear(Graph &g, const Tensor &w, const Tensor &b, const Tensor &x, const Tensor &y);
// out [n_embd, n_patches] = conv2d(img [W, H, 3], patch_w, stride ps) + patch_b, patches in raster order.
void patch_embed(Graph &g, Arena &ar, const VitWeights &w, const Tensor &img, int patch, const Tensor &out);
// The first n rows of a weight (any type) as an F32 activation [ne0, n].
Tensor rows_f32(Graph &g, Arena &ar, const Tensor &w, int64_t n);
// One pre-LN encoder layer, in place on x [n_embd, n_tok]:
//   x += Wo·attn(LN1(x)) + bo;  x += Wdown·act(Wup·LN2(x) + bup) + bdown.
void vit_layer(Graph &g, const VisionHParams &hp, const VitLayer &L, const Tensor &x, const VitScratch &s,
               const VitAttention &a);

} // namespace muse
