// The pre-norm transformer block shared by llama, qwen2 and qwen3:
//   x += Wo·attn(rope(norm_q(Wq·a + bq)), rope(norm_k(Wk·a + bk)), Wv·a + bv),  a = rms(x)·attn_norm
//   x += Wdown·(silu(Wgate·f) ⊙ Wup·f),                                         f = rms(x)·ffn_norm
// Families differ only in the options below (bias, per-head QK norm, rope style).
#pragma once

#include "families/decoder.h"

namespace muse {

struct LlamaLikeOptions {
    const char *arch;
    RopeMode rope_mode;
    bool qkv_bias;  // load attn_{q,k,v}.bias when present
    bool qk_norm;   // per-head attn_q_norm / attn_k_norm (qwen3)
};

class LlamaLikeDecoder : public Decoder {
public:
    LlamaLikeDecoder(const gguf::File &file, Backend &backend, const LlamaLikeOptions &options);

protected:
    void forward_layers(ForwardState &st, const Tensor &x, const Batch &batch, KvCache &cache) const override;

private:
    struct Layer {
        Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
        Tensor ffn_norm, ffn_gate, ffn_up, ffn_down;
    };
    LlamaLikeOptions options_;
    std::vector<Layer> layers_;
};

} // namespace muse
