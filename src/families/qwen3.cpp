// qwen3: llama block with per-head RMS norms on Q and K (before rope) and NEOX rope.
#include "families/llama-like.h"
#include "families/registry.h"

namespace muse {

std::unique_ptr<Decoder> make_qwen3(const gguf::File &f, Backend &b) {
    return std::make_unique<LlamaLikeDecoder>(f, b, LlamaLikeOptions{"qwen3", RopeMode::Neox, false, true});
}

} // namespace muse
