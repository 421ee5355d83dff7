// Reading a multimodal projector GGUF ("mmproj", general.architecture = "clip")
// in llama.cpp's layout (tools/mtmd/clip.cpp, clip-impl.h): typed access to the
// clip.* keys and v.* / mm.* tensors with errors that name the key or tensor,
// and the hyperparameters every vision encoder family shares.
#pragma once

#include "backends/backend.h"
#include "gguf/gguf-file.h"
#include "model/model-weights.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace muse {

struct VisionHParams {
    std::string projector;  // clip.projector_type as written: "muse-glimmer", "mlp", "idefics3"
    int64_t n_embd = 0;     // ViT width
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t n_ff = 0, n_layer = 0;
    int patch_size = 0;
    int image_size = 0;      // clip.vision.image_size (the fixed input side for mlp / idefics3)
    int n_merge = 1;         // side of the patch merge: muse-glimmer spatial_merge_size, idefics3 scale_factor
    int pos_grid = 0;        // muse-glimmer: G, the side of the position table and of the attention windows
    float eps = 1e-6f;       // LayerNorm epsilon
    float image_mean[3] = {0, 0, 0}, image_std[3] = {1, 1, 1};
    int64_t n_embd_out = 0;  // width of the projected embeddings (the text model's n_embd)
    Activation ffn_act = Activation::GeluErf;
    std::vector<int> feature_layers;  // mlp: clip.vision.feature_layer (empty when absent)

    int64_t n_embd_q() const { return n_head * head_dim; }
    int64_t n_embd_kv() const { return n_head_kv * head_dim; }
};

class MmprojReader {
public:
    MmprojReader(const gguf::File &file, Backend &backend) : file_(file), backend_(backend), weights_(file, backend, "mmproj") {}

    const gguf::File &file() const { return file_; }
    Backend &backend() const { return backend_; }

    // Integer keys that must be present and positive.
    int64_t positive(const std::string &key) const;
    // Optional non-negative integer; nullopt when absent.
    std::optional<int64_t> optional_count(const std::string &key) const;
    float number(const std::string &key) const;
    // A float array of at least three entries (image_mean / image_std).
    void rgb(const std::string &key, float out[3]) const;
    // An integer array (nullopt when absent).
    std::optional<std::vector<int64_t>> int_array(const std::string &key) const;

    bool has_tensor(const std::string &name) const { return file_.find_tensor(name) != nullptr; }
    // A weight with its ggml shape checked (-1: any extent); optional ones come back
    // invalid when absent. They go into the encoder's one WeightBuffer (mapped in place on
    // the CPU unless repacked).
    Tensor tensor(const std::string &name, const std::vector<int64_t> &ne, bool required = true) const {
        return weights_.get(name, ne, required);
    }
    // Ends loading (VisionEncoder::load calls it once the family has its tensors).
    void commit_weights() { weights_.commit(); }

private:
    const gguf::File &file_;
    Backend &backend_;
    mutable ModelWeights weights_;  // tensor() adds to it while the family loads (tensor() is const)
};

// The keys every family reads (clip.vision.*): widths, heads, layers, eps, patch and
// image size, mean/std. Throws MUSE_ERR_FORMAT naming the key that is missing or wrong.
VisionHParams read_vision_hparams(const MmprojReader &r, const std::string &projector);

// The projector type of an mmproj (clip.projector_type, else clip.vision.projector_type,
// else "mlp" as llama.cpp assumes); checks general.architecture and has_vision_encoder.
std::string read_projector_type(const gguf::File &file);

} // namespace muse
