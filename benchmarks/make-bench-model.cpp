// Writes the realistic-shape random models the benchmarks run (issue [decoder]):
//   llama-0.5b : n_embd 896, 24 layers, 14 heads / 2 KV, ffn 4864, vocab 151936
//   glimmer-slice : Muse Glimmer 30B width (n_embd 6656, 32 heads / 2 KV, head dim 128,
//                   ffn 19968, window 2048), one SWA + one full layer, vocab 32768
//   llama-360m : n_embd 960, 32 layers, 15 heads / 5 KV, ffn 2560, vocab 49152
// usage: make-bench-model {llama-0.5b|llama-360m|glimmer-slice} {F16|Q8_0|Q4_0|Q4_K} OUT.gguf
#include "core/error.h"
#include "decoder-models.h"

#include <cstdio>
#include <cstring>

using namespace muse;

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s {llama-0.5b|llama-360m|glimmer-slice} {F16|Q8_0|Q4_0|Q4_K} OUT.gguf\n", argv[0]);
        return 2;
    }
    test::TinyDecoderSpec s;
    if (!std::strcmp(argv[1], "llama-0.5b")) {
        s.arch = "llama";
        s.n_embd = 896, s.n_layer = 24, s.n_head = 14, s.n_head_kv = 2, s.n_ff = 4864, s.n_vocab = 151936;
    } else if (!std::strcmp(argv[1], "llama-360m")) {
        s.arch = "llama";
        s.n_embd = 960, s.n_layer = 32, s.n_head = 15, s.n_head_kv = 5, s.n_ff = 2560, s.n_vocab = 49152;
    } else if (!std::strcmp(argv[1], "glimmer-slice")) {
        s.arch = "muse-glimmer";
        s.n_embd = 6656, s.n_layer = 2, s.n_head = 32, s.n_head_kv = 2, s.n_ff = 19968, s.n_vocab = 32768;
        s.head_dim = 128, s.n_swa = 2048;
    } else {
        std::fprintf(stderr, "unknown model %s\n", argv[1]);
        return 2;
    }
    if (!type_from_name(argv[2], &s.type) ||
        (s.type != GgmlType::F16 && s.type != GgmlType::Q8_0 && s.type != GgmlType::Q4_0 && s.type != GgmlType::Q4_K)) {
        std::fprintf(stderr, "type must be F16, Q8_0, Q4_0 or Q4_K\n");
        return 2;
    }
    s.weight_std = 0.02f;
    try {
        test::tiny_decoder_writer(s).write_file(argv[3]);
    } catch (const Error &e) {
        std::fprintf(stderr, "make-bench-model: %s\n", e.what());
        return 1;
    }
    return 0;
}
