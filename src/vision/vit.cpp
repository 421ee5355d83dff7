#include "vision/vit.h"

#include "core/error.h"

#include <cmath>
#include <numeric>

namespace muse {

Tensor Arena::f32(int64_t ne0, int64_t ne1, int64_t ne2) {
    constexpr size_t kChunk = size_t(32) << 20;  // activations of a few layers' worth per buffer
    const size_t bytes = static_cast<size_t>(ne0 * ne1 * ne2) * 4;
    const size_t aligned = (bytes + 63) / 64 * 64;
    if (buffers_.empty() || used_ + aligned > buffers_.back()->size()) {
        buffers_.push_back(backend_.alloc(std::max(aligned, kChunk)));
        used_ = 0;
    }
    Tensor t;
    t.type = GgmlType::F32;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.buffer = buffers_.back().get();
    t.offset = used_;
    used_ += aligned;
    return t;
}

namespace {

// A bias that is a row range of a fused [q + 2kv] vector, as its own [n] tensor.
Tensor bias_slice(const Tensor &b, int64_t first, int64_t n) {
    if (b.type != GgmlType::F32 && b.type != GgmlType::F16 && b.type != GgmlType::BF16)
        fail(MUSE_ERR_UNSUPPORTED, "mmproj: a fused attn_qkv bias must be F32, F16 or BF16");
    return b.reshape(1, b.ne[0]).rows(first, n).reshape(n, 1);
}

} // namespace

void require_plain_multi_head(const VisionHParams &hp, const char *encoder) {
    if (hp.n_head_kv != hp.n_head || hp.head_dim * hp.n_head != hp.n_embd)
        fail(MUSE_ERR_UNSUPPORTED, "mmproj: the ", encoder, " encoder has no grouped-query attention or custom head_dim");
}

VitWeights load_vit(const MmprojReader &r, const VisionHParams &hp, bool legacy_ffn_swap) {
    const int64_t e = hp.n_embd, q = hp.n_embd_q(), kv = hp.n_embd_kv(), ff = hp.n_ff, ps = hp.patch_size;
    VitWeights w;
    w.patch_w = r.tensor("v.patch_embd.weight", {ps, ps, 3, e}).reshape(ps * ps * 3, e);
    w.patch_b = r.tensor("v.patch_embd.bias", {e}, false);
    w.pos_embd = r.tensor("v.position_embd.weight", {e, -1});
    w.pre_ln_w = r.tensor("v.pre_ln.weight", {e}, false);
    w.pre_ln_b = r.tensor("v.pre_ln.bias", {e}, false);
    w.post_ln_w = r.tensor("v.post_ln.weight", {e}, false);
    w.post_ln_b = r.tensor("v.post_ln.bias", {e}, false);
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string p = "v.blk." + std::to_string(il) + ".";
        for (const char *extra : {"ffn_gate.weight", "attn_q_norm.weight", "attn_k_norm.weight", "ls1.weight",
                                  "ls2.weight"})
            if (r.has_tensor(p + extra))
                fail(MUSE_ERR_UNSUPPORTED, "mmproj: tensor '", p, extra, "' (a ViT variant muse does not implement)");
        VitLayer L;
        L.ln1_w = r.tensor(p + "ln1.weight", {e}, false);
        L.ln1_b = r.tensor(p + "ln1.bias", {e}, false);
        L.ln2_w = r.tensor(p + "ln2.weight", {e}, false);
        L.ln2_b = r.tensor(p + "ln2.bias", {e}, false);
        if (r.has_tensor(p + "attn_qkv.weight")) {
            // Fused alternative: Q, K, V are consecutive row ranges of one matrix, so views.
            const Tensor qkv = r.tensor(p + "attn_qkv.weight", {e, q + 2 * kv});
            L.wq = qkv.rows(0, q);
            L.wk = qkv.rows(q, kv);
            L.wv = qkv.rows(q + kv, kv);
            if (const Tensor b = r.tensor(p + "attn_qkv.bias", {q + 2 * kv}, false); b.valid()) {
                L.bq = bias_slice(b, 0, q);
                L.bk = bias_slice(b, q, kv);
                L.bv = bias_slice(b, q + kv, kv);
            }
        } else {
            L.wq = r.tensor(p + "attn_q.weight", {e, q});
            L.wk = r.tensor(p + "attn_k.weight", {e, kv});
            L.wv = r.tensor(p + "attn_v.weight", {e, kv});
            L.bq = r.tensor(p + "attn_q.bias", {q}, false);
            L.bk = r.tensor(p + "attn_k.bias", {kv}, false);
            L.bv = r.tensor(p + "attn_v.bias", {kv}, false);
        }
        L.wo = r.tensor(p + "attn_out.weight", {q, e});
        L.bo = r.tensor(p + "attn_out.bias", {e}, false);
        std::string up = p + "ffn_up", down = p + "ffn_down";
        if (legacy_ffn_swap) {
            // clip.cpp's test, verbatim in effect: it also fires when n_ff == n_embd.
            const gguf::TensorInfo *d = r.file().find_tensor(down + ".weight");
            if (d && r.has_tensor(up + ".weight") && d->ne[0] == e) std::swap(up, down);
        }
        L.up_w = r.tensor(up + ".weight", {e, ff});
        L.up_b = r.tensor(up + ".bias", {ff}, false);
        L.down_w = r.tensor(down + ".weight", {ff, e});
        L.down_b = r.tensor(down + ".bias", {e}, false);
        w.layers.push_back(L);
    }
    return w;
}

VitScratch make_vit_scratch(Arena &ar, const VisionHParams &hp, int64_t n) {
    VitScratch s;
    s.h = ar.f32(hp.n_embd, n);
    s.q = ar.f32(hp.n_embd_q(), n);
    s.k = ar.f32(hp.n_embd_kv(), n);
    s.v = ar.f32(hp.n_embd_kv(), n);
    s.att = ar.f32(hp.n_embd_q(), n);
    s.y = ar.f32(hp.n_embd, n);
    s.up = ar.f32(hp.n_ff, n);
    return s;
}

void linear(Graph &g, const Tensor &w, const Tensor &b, const Tensor &x, const Tensor &y) {
    g.matmul(w, x, y);
    if (b.valid()) g.add(y, b);
}

void patch_embed(Graph &g, Arena &ar, const VitWeights &w, const Tensor &img, int patch, const Tensor &out) {
    const int64_t n = (img.ne[0] / patch) * (img.ne[1] / patch);
    Tensor cols = ar.f32(w.patch_w.ne[0], n);
    g.patches(img, patch, cols);
    linear(g, w.patch_w, w.patch_b, cols, out);
}

Tensor rows_f32(Graph &g, Arena &ar, const Tensor &w, int64_t n) {
    if (n > w.ne[1]) fail(MUSE_ERR_INTERNAL, "rows_f32: ", n, " rows requested of ", w.ne[1]);
    Tensor t = ar.f32(w.ne[0], n);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    std::iota(ids.begin(), ids.end(), 0);
    g.get_rows(w, g.input_i32(ids), t);
    return t;
}

void vit_layer(Graph &g, const VisionHParams &hp, const VitLayer &L, const Tensor &x, const VitScratch &s,
               const VitAttention &a) {
    const int64_t n = x.ne[1], hd = hp.head_dim;
    g.layer_norm(x, L.ln1_w, L.ln1_b, hp.eps, s.h);
    linear(g, L.wq, L.bq, s.h, s.q);
    linear(g, L.wk, L.bk, s.h, s.k);
    linear(g, L.wv, L.bv, s.h, s.v);
    const Tensor qh = s.q.reshape(hd, hp.n_head, n), kh = s.k.reshape(hd, hp.n_head_kv, n);
    if (a.pos_w.valid()) {
        g.rope_2d(qh, a.pos_w, a.pos_h, a.rope_base);
        g.rope_2d(kh, a.pos_w, a.pos_h, a.rope_base);
    }
    g.attention_windows(qh, s.k, s.v, a.windows, static_cast<int>(hp.n_head_kv),
                         1.0f / std::sqrt(static_cast<float>(hd)), s.att);
    linear(g, L.wo, L.bo, s.att, s.y);
    g.add(x, s.y);

    g.layer_norm(x, L.ln2_w, L.ln2_b, hp.eps, s.h);
    linear(g, L.up_w, L.up_b, s.h, s.up);
    g.activation(s.up, hp.ffn_act);
    linear(g, L.down_w, L.down_b, s.up, s.y);
    g.add(x, s.y);
}

} // namespace muse
