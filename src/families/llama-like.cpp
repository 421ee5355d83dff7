#include "families/llama-like.h"

#include "core/error.h"

namespace muse {

LlamaLikeDecoder::LlamaLikeDecoder(const gguf::File &file, Backend &backend, const LlamaLikeOptions &options)
    : Decoder(file, backend), options_(options) {
    hp_.arch = options.arch;
    load_common_hparams();
    hp_.rope.mode = options.rope_mode;
    const int64_t e = hp_.n_embd, q = hp_.n_embd_q(), kv = hp_.n_embd_kv(), ff = hp_.n_ff, hd = hp_.head_dim;
    // output.weight is optional: tied embeddings reuse token_embd (llama.cpp's fallback).
    output_ = tensor("output.weight", {e, hp_.n_vocab}, false);
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        Layer L;
        L.attn_norm = tensor(p + "attn_norm.weight", {e});
        L.wq = tensor(p + "attn_q.weight", {e, q});
        L.wk = tensor(p + "attn_k.weight", {e, kv});
        L.wv = tensor(p + "attn_v.weight", {e, kv});
        L.wo = tensor(p + "attn_output.weight", {q, e});
        if (options.qkv_bias) {
            L.bq = tensor(p + "attn_q.bias", {q}, false);
            L.bk = tensor(p + "attn_k.bias", {kv}, false);
            L.bv = tensor(p + "attn_v.bias", {kv}, false);
        }
        if (options.qk_norm) {
            L.q_norm = tensor(p + "attn_q_norm.weight", {hd});
            L.k_norm = tensor(p + "attn_k_norm.weight", {hd});
        }
        L.ffn_norm = tensor(p + "ffn_norm.weight", {e});
        L.ffn_gate = tensor(p + "ffn_gate.weight", {e, ff});
        L.ffn_up = tensor(p + "ffn_up.weight", {e, ff});
        L.ffn_down = tensor(p + "ffn_down.weight", {ff, e});
        layers_.push_back(L);
    }
}

void LlamaLikeDecoder::forward_layers(ForwardState &st, const Tensor &x, const Batch &batch, KvCache &cache) const {
    Graph &g = st.graph;
    const int64_t n = batch.size(), hd = hp_.head_dim;
    Tensor a = st.ws.f32(hp_.n_embd, n);
    Tensor q = st.ws.f32(hp_.n_embd_q(), n), k = st.ws.f32(hp_.n_embd_kv(), n), v = st.ws.f32(hp_.n_embd_kv(), n);
    Tensor o = st.ws.f32(hp_.n_embd_q(), n), y = st.ws.f32(hp_.n_embd, n);
    Tensor gate = st.ws.f32(hp_.n_ff, n), u = st.ws.f32(hp_.n_ff, n);
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const Layer &L = layers_[static_cast<size_t>(il)];
        g.rms_norm(x, L.attn_norm, hp_.eps, a);
        g.matmul(L.wq, a, q);
        g.matmul(L.wk, a, k);
        g.matmul(L.wv, a, v);
        if (L.bq.valid()) g.add(q, L.bq);
        if (L.bk.valid()) g.add(k, L.bk);
        if (L.bv.valid()) g.add(v, L.bv);
        const Tensor qh = q.reshape(hd, hp_.n_head, n), kh = k.reshape(hd, hp_.n_head_kv, n);
        if (options_.qk_norm) {
            g.rms_norm(qh, L.q_norm, hp_.eps, qh);
            g.rms_norm(kh, L.k_norm, hp_.eps, kh);
        }
        g.rope(qh, st.pos, hp_.rope);
        g.rope(kh, st.pos, hp_.rope);
        attend(st, static_cast<int>(il), qh, k, v, cache, o);
        g.matmul(L.wo, o, y);
        g.add(x, y);

        g.rms_norm(x, L.ffn_norm, hp_.eps, a);
        g.matmul(L.ffn_gate, a, gate);
        g.matmul(L.ffn_up, a, u);
        g.swiglu(gate, u);
        g.matmul(L.ffn_down, gate, y);
        g.add(x, y);
    }
}

} // namespace muse
