// Shared helpers for the C++ tests: tiny GGUF builders with known content.
#pragma once

#include "gguf/gguf-writer.h"

#include <random>
#include <string>
#include <vector>

namespace muse::test {

// A small llama-like GGUF: a few metadata keys of every type, a 16-token
// vocabulary and three tensors (F32, F16, Q8_0), deterministic from seed.
inline gguf::Writer tiny_model_writer(uint32_t seed = 1) {
    gguf::Writer w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "tiny test model");
    w.set_u32("llama.context_length", 128);
    w.set_u32("llama.embedding_length", 64);
    w.set_u32("llama.block_count", 2);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_string("tokenizer.ggml.model", "llama");
    std::vector<std::string> tokens;
    for (int i = 0; i < 16; ++i) tokens.push_back("tok" + std::to_string(i));
    w.set_array_strings("tokenizer.ggml.tokens", tokens);
    w.set_array_f32("tokenizer.ggml.scores", std::vector<float>(16, -1.5f));
    w.set_array_i32("tokenizer.ggml.token_type", std::vector<int32_t>(16, 1));
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_i64("test.i64", -1234567890123LL);
    w.set_u64("test.u64_big", 0xF000000000000000ull);
    w.set_f64("test.f64", 3.25);
    w.set_i8("test.i8", -7);
    w.set_u16("test.u16", 65535);
    w.set_i16("test.i16", -32768);
    w.set_u8("test.u8", 200);
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.5f);
    std::vector<float> a(64 * 16), b(64), c(64 * 4);
    for (auto &x : a) x = nd(rng);
    for (auto &x : b) x = nd(rng);
    for (auto &x : c) x = nd(rng);
    w.add_tensor_f32("token_embd.weight", GgmlType::F16, {64, 16}, a.data());
    w.add_tensor_f32("output_norm.weight", GgmlType::F32, {64}, b.data());
    w.add_tensor_f32("blk.0.attn_q.weight", GgmlType::Q8_0, {64, 4}, c.data());
    return w;
}

inline std::vector<uint8_t> tiny_model_bytes(uint32_t seed = 1) { return tiny_model_writer(seed).to_bytes(); }

} // namespace muse::test
