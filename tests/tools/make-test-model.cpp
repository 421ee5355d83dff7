// Writes a small, deterministic GGUF model so that the README's main job and the
// CLI tests have a real file to work on without downloading anything.
//   make-test-model OUT.gguf [--arch llama] [--type F16|F32|Q8_0|Q4_0] [--seed N]
#include "core/error.h"
#include "gguf/gguf-writer.h"

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace muse;

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s OUT.gguf [--arch NAME] [--type F32|F16|Q8_0|Q4_0] [--seed N]\n", argv[0]);
        return 2;
    }
    std::string out = argv[1], arch = "llama", type_name = "F16";
    uint32_t seed = 42;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--arch")) arch = argv[i + 1];
        else if (!std::strcmp(argv[i], "--type")) type_name = argv[i + 1];
        else if (!std::strcmp(argv[i], "--seed")) seed = static_cast<uint32_t>(std::stoul(argv[i + 1]));
    }
    GgmlType wtype;
    if (!type_from_name(type_name, &wtype)) {
        std::fprintf(stderr, "unknown type %s\n", type_name.c_str());
        return 2;
    }
    const int64_t n_embd = 64, n_ff = 128, n_layer = 2, n_head = 4, n_head_kv = 2, n_vocab = 260;
    const int64_t head_dim = n_embd / n_head;
    try {
        gguf::Writer w;
        w.set_string("general.architecture", arch);
        w.set_string("general.name", "muse tiny " + arch + " (random weights, for tests)");
        w.set_u32("general.file_type", wtype == GgmlType::F32 ? 0 : wtype == GgmlType::F16 ? 1 : wtype == GgmlType::Q8_0 ? 7 : 2);
        w.set_u32(arch + ".context_length", 256);
        w.set_u32(arch + ".embedding_length", n_embd);
        w.set_u32(arch + ".feed_forward_length", n_ff);
        w.set_u32(arch + ".block_count", n_layer);
        w.set_u32(arch + ".attention.head_count", n_head);
        w.set_u32(arch + ".attention.head_count_kv", n_head_kv);
        w.set_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
        w.set_f32(arch + ".rope.freq_base", 10000.0f);
        // A byte-level SPM-style vocabulary: <unk> <s> </s>, 256 byte tokens, one word.
        std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
        std::vector<float> scores = {0, 0, 0};
        std::vector<int32_t> types = {2, 3, 3};
        for (int b = 0; b < 256; ++b) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", b);
            tokens.push_back(buf);
            scores.push_back(0);
            types.push_back(6);
        }
        tokens.push_back("\xe2\x96\x81muse");
        scores.push_back(-1);
        types.push_back(1);
        w.set_string("tokenizer.ggml.model", "llama");
        w.set_array_strings("tokenizer.ggml.tokens", tokens);
        w.set_array_f32("tokenizer.ggml.scores", scores);
        w.set_array_i32("tokenizer.ggml.token_type", types);
        w.set_u32("tokenizer.ggml.unknown_token_id", 0);
        w.set_u32("tokenizer.ggml.bos_token_id", 1);
        w.set_u32("tokenizer.ggml.eos_token_id", 2);
        w.set_bool("tokenizer.ggml.add_bos_token", true);

        std::mt19937 rng(seed);
        std::normal_distribution<float> nd(0.0f, 0.02f);
        auto add = [&](const std::string &name, GgmlType t, std::vector<int64_t> ne) {
            int64_t n = 1;
            for (auto d : ne) n *= d;
            std::vector<float> x(static_cast<size_t>(n));
            for (auto &v : x) v = nd(rng);
            if (ne.size() == 1) for (auto &v : x) v += 1.0f;  // norm weights near 1
            w.add_tensor_f32(name, ne.size() == 1 ? GgmlType::F32 : t, ne, x.data());
        };
        add("token_embd.weight", wtype, {n_embd, n_vocab});
        for (int64_t l = 0; l < n_layer; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            add(p + "attn_norm.weight", wtype, {n_embd});
            add(p + "attn_q.weight", wtype, {n_embd, head_dim * n_head});
            add(p + "attn_k.weight", wtype, {n_embd, head_dim * n_head_kv});
            add(p + "attn_v.weight", wtype, {n_embd, head_dim * n_head_kv});
            add(p + "attn_output.weight", wtype, {head_dim * n_head, n_embd});
            add(p + "ffn_norm.weight", wtype, {n_embd});
            add(p + "ffn_gate.weight", wtype, {n_embd, n_ff});
            add(p + "ffn_up.weight", wtype, {n_embd, n_ff});
            add(p + "ffn_down.weight", wtype, {n_ff, n_embd});
        }
        add("output_norm.weight", wtype, {n_embd});
        add("output.weight", wtype, {n_embd, n_vocab});
        w.write_file(out);
    } catch (const Error &e) {
        std::fprintf(stderr, "make-test-model: %s\n", e.what());
        return 1;
    }
    return 0;
}
