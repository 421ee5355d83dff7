#include "families/registry.h"

namespace muse {

const std::vector<DecoderFamily> &decoder_families() {
    static const std::vector<DecoderFamily> families = {
        {"muse-glimmer", make_muse_glimmer},
        {"llama", make_llama},
        {"qwen2", make_qwen2},
        {"qwen3", make_qwen3},
    };
    return families;
}

} // namespace muse
