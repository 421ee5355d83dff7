// llama (and the many families converted as "llama"): NORM rope, no biases,
// tied embeddings when output.weight is absent.
#include "families/llama-like.h"
#include "families/registry.h"

namespace muse {

std::unique_ptr<Decoder> make_llama(const gguf::File &f, Backend &b) {
    return std::make_unique<LlamaLikeDecoder>(f, b, LlamaLikeOptions{"llama", RopeMode::Norm, false, false});
}

} // namespace muse
