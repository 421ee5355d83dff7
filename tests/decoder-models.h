// Tiny random decoder models of every supported family, written with the
// project's GGUF writer, for the C++ decoder tests.
#pragma once

#include "gguf/gguf-writer.h"
#include "model/model.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace muse::test {

struct TinyDecoderSpec {
    std::string arch = "llama";
    GgmlType type = GgmlType::F32;
    // For matrices whose rows are not a whole number of `type`'s blocks (Q4_K's 256 on an
    // 896-wide model), as llama-quantize falls back to a smaller block type.
    GgmlType fallback_type = GgmlType::Q4_0;
    int64_t n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 96, n_vocab = 64;
    int64_t head_dim = 0;      // 0: n_embd / n_head
    int32_t n_swa = 4;         // muse-glimmer window
    float weight_std = 0.3f;
    bool tied_output = false;
    // muse-glimmer: "array", "scalar" or "absent" sliding_window_pattern
    std::string swa_pattern = "array";
    bool softcap_key = true;
    bool fused_qkv = false;  // muse-glimmer: one attn_qkv.weight (+ bias) instead of q/k/v
    bool qkv_bias = false;   // muse-glimmer: optional Q/K/V biases
    uint32_t seed = 7;
    // Chat models: control tokens placed right after the byte pieces (n_vocab must be
    // >= 259 + their count), the end-of-turn one among them, and a chat template.
    std::vector<std::string> control_tokens;
    std::string eot_token;
    std::string chat_template;
};

inline gguf::Writer tiny_decoder_writer(const TinyDecoderSpec &s) {
    gguf::Writer w;
    const std::string a = s.arch + ".";
    const int64_t hd = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
    w.set_string("general.architecture", s.arch);
    w.set_u32(a + "context_length", 256);
    w.set_u32(a + "embedding_length", static_cast<uint32_t>(s.n_embd));
    w.set_u32(a + "block_count", static_cast<uint32_t>(s.n_layer));
    w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
    w.set_u32(a + "attention.head_count", static_cast<uint32_t>(s.n_head));
    w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
    w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32(a + "rope.freq_base", 10000.0f);
    if (s.head_dim) {
        w.set_u32(a + "attention.key_length", static_cast<uint32_t>(hd));
        w.set_u32(a + "attention.value_length", static_cast<uint32_t>(hd));
    }
    if (s.arch == "muse-glimmer") {
        w.set_f32(a + "logit_scale", 0.5f);
        w.set_u32(a + "attention.sliding_window", static_cast<uint32_t>(s.n_swa));
        if (s.softcap_key) w.set_f32(a + "final_logit_softcapping", 20.0f);
        if (s.swa_pattern == "array") {
            std::vector<bool> pat;
            for (int64_t l = 0; l < s.n_layer; ++l) pat.push_back(l % 2 == 0);
            w.set_array_bool(a + "attention.sliding_window_pattern", pat);
        } else if (s.swa_pattern == "scalar") {
            w.set_u32(a + "attention.sliding_window_pattern", 2);
        }
    }
    // A placeholder SPM vocabulary (one piece per row of token_embd) so that llama.cpp
    // loads these files too; ids 0..2 are <unk> <s> </s>.
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    const bool bytes = s.n_vocab >= 3 + 256;  // llama.cpp's SPM needs the <0xXX> byte pieces
    for (int64_t i = 0; i < s.n_vocab; ++i) {
        char byte_piece[8];
        std::snprintf(byte_piece, sizeof byte_piece, "<0x%02X>", static_cast<int>((i - 3) & 0xFF));
        const bool is_byte = bytes && i >= 3 && i < 3 + 256;
        const int64_t ctl = i - (3 + 256);
        const int64_t n_ctl = static_cast<int64_t>(s.control_tokens.size());
        const bool is_ctl = bytes && ctl >= 0 && ctl < n_ctl;
        // Chat models also get the SPM space piece, so spaces survive a round trip.
        const bool is_space = bytes && n_ctl > 0 && ctl == n_ctl;
        tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : is_byte ? byte_piece
                         : is_ctl ? s.control_tokens[static_cast<size_t>(ctl)] : is_space ? "\xE2\x96\x81"
                         : "t" + std::to_string(i));
        types.push_back(i == 0 ? 2 : i < 3 ? 3 : is_byte ? 6 : is_ctl ? 3 : 1);
        if (is_ctl && tokens.back() == s.eot_token) w.set_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(i));
    }
    if (!s.chat_template.empty()) w.set_string("tokenizer.chat_template", s.chat_template);
    if (!s.control_tokens.empty()) w.set_bool("tokenizer.ggml.add_space_prefix", false);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_array_strings("tokenizer.ggml.tokens", tokens);
    w.set_array_f32("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
    w.set_array_i32("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    std::mt19937 rng(s.seed);
    std::normal_distribution<float> nd(0.0f, s.weight_std);
    // Values are drawn in a fixed order whatever the layout, so the fused-QKV variant holds
    // exactly the same weights as the separate one.
    std::vector<float> pending_qkv, pending_qkv_bias;
    auto draw = [&](std::vector<int64_t> ne, bool norm) {
        int64_t n = 1;
        for (auto d : ne) n *= d;
        std::vector<float> x(static_cast<size_t>(n));
        for (auto &v : x) v = norm ? 1.0f + 0.03f * (nd(rng) / s.weight_std) : nd(rng);
        return x;
    };
    auto add = [&](const std::string &name, std::vector<int64_t> ne, bool norm = false) {
        const std::vector<float> x = draw(ne, norm);
        const bool small = ne.size() == 1;
        const bool whole = ne[0] % type_traits(s.type).block_size == 0;
        w.add_tensor_f32(name, small ? GgmlType::F32 : whole ? s.type : s.fallback_type, ne, x.data());
    };
    const int64_t e = s.n_embd, q = hd * s.n_head, kv = hd * s.n_head_kv;
    add("token_embd.weight", {e, s.n_vocab});
    add("output_norm.weight", {e}, true);
    if (!s.tied_output) add("output.weight", {e, s.n_vocab});
    for (int64_t l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {e}, true);
        if (s.fused_qkv) {
            std::vector<float> fused;
            for (int64_t rows : {q, kv, kv}) {
                const auto part = draw({e, rows}, false);
                fused.insert(fused.end(), part.begin(), part.end());
            }
            w.add_tensor_f32(p + "attn_qkv.weight", e % type_traits(s.type).block_size == 0 ? s.type : s.fallback_type,
                             {e, q + 2 * kv}, fused.data());
            if (s.qkv_bias) {
                std::vector<float> bias;
                for (int64_t rows : {q, kv, kv}) {
                    const auto part = draw({rows}, false);
                    bias.insert(bias.end(), part.begin(), part.end());
                }
                w.add_tensor_f32(p + "attn_qkv.bias", GgmlType::F32, {q + 2 * kv}, bias.data());
            }
        } else {
            add(p + "attn_q.weight", {e, q});
            add(p + "attn_k.weight", {e, kv});
            add(p + "attn_v.weight", {e, kv});
            if (s.qkv_bias && s.arch == "muse-glimmer") {
                add(p + "attn_q.bias", {q});
                add(p + "attn_k.bias", {kv});
                add(p + "attn_v.bias", {kv});
            }
        }
        add(p + "attn_output.weight", {q, e});
        add(p + "ffn_norm.weight", {e}, true);
        add(p + "ffn_gate.weight", {e, s.n_ff});
        add(p + "ffn_up.weight", {e, s.n_ff});
        add(p + "ffn_down.weight", {s.n_ff, e});
        if (s.arch == "qwen2") {
            add(p + "attn_q.bias", {q});
            add(p + "attn_k.bias", {kv});
            add(p + "attn_v.bias", {kv});
        }
        if (s.arch == "qwen3" || s.arch == "muse-glimmer") {
            add(p + "attn_q_norm.weight", {hd}, true);
            add(p + "attn_k_norm.weight", {hd}, true);
        }
        if (s.arch == "muse-glimmer") {
            add(p + "attn_gate.weight", {e, q});
            add(p + "post_attention_norm.weight", {e}, true);
            add(p + "post_ffw_norm.weight", {e}, true);
        }
    }
    return w;
}

// A model loaded from a spec held in memory (the bytes must outlive the model).
struct Loaded {
    std::vector<uint8_t> bytes;
    std::unique_ptr<Model> model;
};

inline Loaded load(const TinyDecoderSpec &spec) {
    Loaded l;
    l.bytes = tiny_decoder_writer(spec).to_bytes();
    l.model = Model::load_from_memory(l.bytes.data(), l.bytes.size(), ModelLoadOptions{});
    return l;
}

} // namespace muse::test
