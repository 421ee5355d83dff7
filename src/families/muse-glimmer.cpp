// Muse Glimmer's text decoder, exactly as ../shared/docs/MUSE_GLIMMER.md §1:
// initial scaleless RMS norm, gated attention (o ⊙ sigmoid(Wgate·a)), per-head
// QK norms, SWA layers with NORM rope vs full layers with no positional
// encoding (NoPE), sandwich norms with eps 1e-8 on the post-norms, logit scale
// and a final softcap that defaults to 30.0 when the key is absent.
#include "core/dequant.h"
#include "core/error.h"
#include "families/registry.h"

namespace muse {
namespace {

constexpr float kPostNormEps = 1e-8f;       // §1.6: hard-coded for the two post-norms only
constexpr float kDefaultSoftcap = 30.0f;    // §1.1: struct default when the key is absent

class MuseGlimmerDecoder final : public Decoder {
public:
    MuseGlimmerDecoder(const gguf::File &file, Backend &backend) : Decoder(file, backend) {
        hp_.arch = "muse-glimmer";
        load_common_hparams();
        load_arch_hparams();
        const int64_t e = hp_.n_embd, q = hp_.n_embd_q(), kv = hp_.n_embd_kv(), ff = hp_.n_ff, hd = hp_.head_dim;
        output_ = tensor("output.weight", {e, hp_.n_vocab});  // required: no tying fallback
        for (int64_t il = 0; il < hp_.n_layer; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            Layer L;
            L.attn_norm = tensor(p + "attn_norm.weight", {e});
            if (file.find_tensor(p + "attn_qkv.weight")) {
                // Fused alternative (§1.3): Q, K, V are consecutive row ranges of one matrix
                // (and of its optional bias), so they are plain views, no copy.
                const Tensor qkv = tensor(p + "attn_qkv.weight", {e, q + 2 * kv});
                L.wq = qkv.rows(0, q);
                L.wk = qkv.rows(q, kv);
                L.wv = qkv.rows(q + kv, kv);
                const Tensor b = tensor(p + "attn_qkv.bias", {q + 2 * kv}, false);
                if (b.valid()) {
                    const Tensor cols = b.reshape(1, q + 2 * kv);
                    L.bq = cols.rows(0, q).reshape(q, 1);
                    L.bk = cols.rows(q, kv).reshape(kv, 1);
                    L.bv = cols.rows(q + kv, kv).reshape(kv, 1);
                }
            } else {
                L.wq = tensor(p + "attn_q.weight", {e, q});
                L.wk = tensor(p + "attn_k.weight", {e, kv});
                L.wv = tensor(p + "attn_v.weight", {e, kv});
                L.bq = tensor(p + "attn_q.bias", {q}, false);
                L.bk = tensor(p + "attn_k.bias", {kv}, false);
                L.bv = tensor(p + "attn_v.bias", {kv}, false);
            }
            L.q_scale = scalar(p + "attn_q.scale");
            L.k_scale = scalar(p + "attn_k.scale");
            L.v_scale = scalar(p + "attn_v.scale");
            L.o_scale = scalar(p + "attn_output.scale");
            L.wo = tensor(p + "attn_output.weight", {q, e});
            L.q_norm = tensor(p + "attn_q_norm.weight", {hd});
            L.k_norm = tensor(p + "attn_k_norm.weight", {hd});
            L.gate = tensor(p + "attn_gate.weight", {e, q});
            L.post_attn_norm = tensor(p + "post_attention_norm.weight", {e});
            L.ffn_norm = tensor(p + "ffn_norm.weight", {e});
            L.ffn_gate = tensor(p + "ffn_gate.weight", {e, ff});
            L.ffn_up = tensor(p + "ffn_up.weight", {e, ff});
            L.ffn_down = tensor(p + "ffn_down.weight", {ff, e});
            L.post_ffw_norm = tensor(p + "post_ffw_norm.weight", {e});
            layers_.push_back(L);
        }
    }

protected:
    void prepare_input(Graph &g, const Tensor &x) const override {
        g.rms_norm(x, Tensor{}, hp_.eps, x);  // scaleless; image embeddings pass here too
    }

    void forward_layers(ForwardState &st, const Tensor &x, const Batch &batch, KvCache &cache) const override {
        Graph &g = st.graph;
        const int64_t n = batch.size(), hd = hp_.head_dim;
        Tensor a = st.ws.f32(hp_.n_embd, n);
        Tensor q = st.ws.f32(hp_.n_embd_q(), n), k = st.ws.f32(hp_.n_embd_kv(), n), v = st.ws.f32(hp_.n_embd_kv(), n);
        Tensor gt = st.ws.f32(hp_.n_embd_q(), n), o = st.ws.f32(hp_.n_embd_q(), n), y = st.ws.f32(hp_.n_embd, n);
        Tensor fg = st.ws.f32(hp_.n_ff, n), fu = st.ws.f32(hp_.n_ff, n);
        for (int64_t il = 0; il < hp_.n_layer; ++il) {
            const Layer &L = layers_[static_cast<size_t>(il)];
            const bool swa = hp_.is_swa[static_cast<size_t>(il)];
            g.rms_norm(x, L.attn_norm, hp_.eps, a);
            // The four projections of the same normed input first (a backend may run them as
            // one matmul), then each one's optional scale and bias.
            g.matmul(L.wq, a, q);
            g.matmul(L.wk, a, k);
            g.matmul(L.wv, a, v);
            g.matmul(L.gate, a, gt);
            scale_and_bias(g, q, L.q_scale, L.bq);
            scale_and_bias(g, k, L.k_scale, L.bk);
            scale_and_bias(g, v, L.v_scale, L.bv);
            const Tensor qh = q.reshape(hd, hp_.n_head, n), kh = k.reshape(hd, hp_.n_head_kv, n);
            g.rms_norm(qh, L.q_norm, hp_.eps, qh);
            g.rms_norm(kh, L.k_norm, hp_.eps, kh);
            if (swa) {
                g.rope(qh, st.pos, hp_.rope_swa);
                g.rope(kh, st.pos, hp_.rope_swa);
            }
            attend(st, static_cast<int>(il), qh, k, v, cache, o);
            g.sigmoid_mul(o, gt);
            g.matmul(L.wo, o, y);
            if (L.o_scale != 1.0f) g.scale(y, L.o_scale);
            g.rms_norm(y, L.post_attn_norm, kPostNormEps, y);
            g.add(x, y);

            g.rms_norm(x, L.ffn_norm, hp_.eps, a);
            g.matmul(L.ffn_gate, a, fg);
            g.matmul(L.ffn_up, a, fu);
            g.swiglu(fg, fu);
            g.matmul(L.ffn_down, fg, y);
            g.rms_norm(y, L.post_ffw_norm, kPostNormEps, y);
            g.add(x, y);
        }
    }

private:
    struct Layer {
        Tensor attn_norm, wq, wk, wv, bq, bk, bv, wo, q_norm, k_norm, gate, post_attn_norm;
        Tensor ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm;
        float q_scale = 1, k_scale = 1, v_scale = 1, o_scale = 1;
    };

    static void scale_and_bias(Graph &g, const Tensor &out, float s, const Tensor &bias) {
        if (s != 1.0f) g.scale(out, s);  // §1.6: optional scale before optional bias
        if (bias.valid()) g.add(out, bias);
    }

    // Optional {1} per-tensor scale (NVFP4 exports); 1.0 when absent.
    float scalar(const std::string &name) const {
        const gguf::TensorInfo *t = file_.find_tensor(name);
        if (!t) return 1.0f;
        if (t->n_elements != 1) fail(MUSE_ERR_FORMAT, "tensor '", name, "' should hold one value");
        float v;
        dequantize(t->type, file_.tensor_data(*t), &v, 1);
        return v;
    }

    void load_arch_hparams() {
        const std::string a = "muse-glimmer.";
        auto eps = file_.get_float(a + "attention.layer_norm_rms_epsilon");
        if (!eps) fail(MUSE_ERR_FORMAT, "missing required metadata '", a, "attention.layer_norm_rms_epsilon'");
        auto swa = file_.get_int(a + "attention.sliding_window");
        if (!swa || *swa <= 0) fail(MUSE_ERR_FORMAT, "missing or invalid '", a, "attention.sliding_window'");
        hp_.n_swa = static_cast<int32_t>(*swa);
        auto scale = file_.get_float(a + "logit_scale");
        if (!scale) fail(MUSE_ERR_FORMAT, "missing required metadata '", a, "logit_scale'");
        hp_.logit_scale = static_cast<float>(*scale);
        hp_.final_softcap = static_cast<float>(file_.get_float(a + "final_logit_softcapping").value_or(kDefaultSoftcap));
        // SWA layers: rope with the SWA base and no frequency scaling (§1.4).
        hp_.rope_swa.mode = RopeMode::Norm;
        hp_.rope_swa.freq_scale = 1.0f;
        hp_.rope_swa.freq_base = static_cast<float>(file_.get_float(a + "rope.freq_base_swa").value_or(hp_.rope.freq_base));
        hp_.rope_swa.n_rot = static_cast<int>(file_.get_int(a + "rope.dimension_count_swa").value_or(hp_.rope.n_rot));
        // Layer typing (§1.4): scalar period, per-layer array, or absent = all full attention.
        const gguf::Value *pat = file_.find(a + "attention.sliding_window_pattern");
        if (pat && pat->type != gguf::ValueType::ARRAY) {
            const int64_t p = file_.get_int(a + "attention.sliding_window_pattern").value();
            if (p < 0) fail(MUSE_ERR_FORMAT, "sliding_window_pattern must not be negative");
            for (int64_t il = 0; il < hp_.n_layer; ++il) hp_.is_swa[static_cast<size_t>(il)] = p == 0 || il % p < p - 1;
        } else if (pat) {
            if (pat->length != static_cast<uint64_t>(hp_.n_layer) || gguf::value_type_size(pat->elem_type) == 0 ||
                gguf::is_float_type(pat->elem_type))
                fail(MUSE_ERR_FORMAT, "sliding_window_pattern must be a bool/integer array of length block_count (",
                     hp_.n_layer, ")");
            for (int64_t il = 0; il < hp_.n_layer; ++il)
                hp_.is_swa[static_cast<size_t>(il)] = pat->element(static_cast<uint64_t>(il)).u != 0;
        }
    }

    std::vector<Layer> layers_;
};

} // namespace

std::unique_ptr<Decoder> make_muse_glimmer(const gguf::File &f, Backend &b) {
    return std::make_unique<MuseGlimmerDecoder>(f, b);
}

} // namespace muse
