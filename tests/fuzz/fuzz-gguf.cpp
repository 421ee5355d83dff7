// libFuzzer target for the GGUF loader: parse arbitrary bytes as a model, read
// every metadata value back as JSON and dequantize every tensor.
#include "api/api-guard.h"
#include "core/dequant.h"
#include "model/model.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    muse::api::guard([&] {
        muse::ModelLoadOptions o;
        auto m = muse::Model::load_from_memory(data, size, o);
        const auto &f = m->file();
        for (const auto &kv : f.metadata()) {
            if (kv.value.type == muse::gguf::ValueType::ARRAY && kv.value.elem_type != muse::gguf::ValueType::STRING &&
                kv.value.elem_type != muse::gguf::ValueType::ARRAY && kv.value.length > 0)
                (void)kv.value.element(kv.value.length - 1);
        }
        for (const auto &t : f.tensors()) {
            if (t.n_elements > (1 << 22)) continue;  // bounded work per input
            std::vector<float> out(static_cast<size_t>(t.n_elements));
            muse::dequantize(t.type, f.tensor_data(t), out.data(), t.n_elements);
        }
    });
    return 0;
}
