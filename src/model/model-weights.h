// The weights one GGUF contributes to a backend: each tensor found by name, its shape
// checked, and added to one WeightBuffer (mapped in place where the backend can, else
// copied or repacked). Decoders and vision encoders load through it, so both hand file
// pages back the same way.
#pragma once

#include "backends/backend.h"
#include "gguf/gguf-file.h"

#include <memory>
#include <string>
#include <vector>

namespace muse {

class ModelWeights {
public:
    // `what` prefixes load errors ("model", "mmproj") so they say which file is wrong.
    ModelWeights(const gguf::File &file, Backend &backend, std::string what);
    // The weight buffer calls back into this object (handing file pages back): it stays put.
    ModelWeights(const ModelWeights &) = delete;
    ModelWeights &operator=(const ModelWeights &) = delete;

    // The tensor `name` with its ggml shape checked (-1: any extent; missing trailing
    // extents: 1). A missing optional tensor comes back invalid; a missing required one or
    // a wrong shape throws MUSE_ERR_FORMAT naming the tensor.
    Tensor get(const std::string &name, const std::vector<int64_t> &ne, bool required = true);

    // Ends loading: after this the tensors are usable by ops. Reading a small tensor while
    // loading maps the whole page-cache folio around it (up to 4 MB), which may bring back
    // pages of tensors the backend already copied: they are dropped once more here.
    void commit();

private:
    const gguf::File &file_;
    std::unique_ptr<WeightBuffer> buffer_;
    std::vector<const gguf::TensorInfo *> copied_;  // tensors the backend keeps its own copy of
    std::string what_;
};

} // namespace muse
