// qwen2 / qwen2.5: llama block with Q/K/V biases and NEOX (rotate-half) rope.
#include "families/llama-like.h"
#include "families/registry.h"

namespace muse {

std::unique_ptr<Decoder> make_qwen2(const gguf::File &f, Backend &b) {
    return std::make_unique<LlamaLikeDecoder>(f, b, LlamaLikeOptions{"qwen2", RopeMode::Neox, true, false});
}

} // namespace muse
