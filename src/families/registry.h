// Factories of the decoder families; registry.cpp maps architecture names to them.
// Adding a family: one file defining make_<family>() plus one line in registry.cpp.
#pragma once

#include "families/decoder.h"

namespace muse {

std::unique_ptr<Decoder> make_llama(const gguf::File &f, Backend &b);
std::unique_ptr<Decoder> make_qwen2(const gguf::File &f, Backend &b);
std::unique_ptr<Decoder> make_qwen3(const gguf::File &f, Backend &b);
std::unique_ptr<Decoder> make_muse_glimmer(const gguf::File &f, Backend &b);

} // namespace muse
