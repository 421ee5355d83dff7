#include "vision/mmproj.h"

#include "core/error.h"


namespace muse {

int64_t MmprojReader::positive(const std::string &key) const {
    const auto v = file_.get_int(key);
    if (!v) fail(MUSE_ERR_FORMAT, "mmproj: missing required metadata '", key, "'");
    if (*v <= 0) fail(MUSE_ERR_FORMAT, "mmproj: metadata '", key, "' must be positive (got ", *v, ")");
    return *v;
}

std::optional<int64_t> MmprojReader::optional_count(const std::string &key) const {
    const auto v = file_.get_int(key);
    if (v && *v < 0) fail(MUSE_ERR_FORMAT, "mmproj: metadata '", key, "' is negative (", *v, ")");
    return v;
}

float MmprojReader::number(const std::string &key) const {
    const auto v = file_.get_float(key);
    if (!v) fail(MUSE_ERR_FORMAT, "mmproj: missing required metadata '", key, "'");
    return static_cast<float>(*v);
}

void MmprojReader::rgb(const std::string &key, float out[3]) const {
    const gguf::Value *v = file_.find(key);
    if (!v) fail(MUSE_ERR_FORMAT, "mmproj: missing required metadata '", key, "'");
    if (v->type != gguf::ValueType::ARRAY || !gguf::is_float_type(v->elem_type) || v->length < 3)
        fail(MUSE_ERR_FORMAT, "mmproj: metadata '", key, "' should be an array of at least 3 floats");
    for (uint64_t i = 0; i < 3; ++i) out[i] = static_cast<float>(v->element(i).f);
}

std::optional<std::vector<int64_t>> MmprojReader::int_array(const std::string &key) const {
    const gguf::Value *v = file_.find(key);
    if (!v) return std::nullopt;
    if (v->type != gguf::ValueType::ARRAY || !gguf::is_integer_type(v->elem_type) ||
        v->elem_type == gguf::ValueType::BOOL)
        fail(MUSE_ERR_FORMAT, "mmproj: metadata '", key, "' should be an array of integers");
    std::vector<int64_t> out;
    for (uint64_t i = 0; i < v->length; ++i) out.push_back(v->element(i).i);
    return out;
}

std::string read_projector_type(const gguf::File &file) {
    const auto arch = file.get_string("general.architecture");
    if (arch != "clip")
        fail(MUSE_ERR_FORMAT, file.description(), ": not a multimodal projector (general.architecture is '",
             arch.value_or(""), "', expected 'clip')");
    if (file.get_bool("clip.has_vision_encoder") != true)
        fail(MUSE_ERR_UNSUPPORTED, "mmproj: clip.has_vision_encoder is not true; muse supports vision projectors only");
    // llama.cpp: the projector key, then the per-modality one, then "mlp" for old LLaVA files.
    if (auto t = file.get_string("clip.projector_type"); t && !t->empty()) return *t;
    if (auto t = file.get_string("clip.vision.projector_type"); t && !t->empty()) return *t;
    return "mlp";
}

VisionHParams read_vision_hparams(const MmprojReader &r, const std::string &projector) {
    VisionHParams hp;
    hp.projector = projector;
    hp.n_embd = r.positive("clip.vision.embedding_length");
    hp.n_head = r.positive("clip.vision.attention.head_count");
    hp.n_ff = r.positive("clip.vision.feed_forward_length");
    hp.n_layer = r.positive("clip.vision.block_count");
    hp.eps = r.number("clip.vision.attention.layer_norm_epsilon");
    if (!(hp.eps > 0.0f) || hp.eps > 1.0f)
        fail(MUSE_ERR_FORMAT, "mmproj: clip.vision.attention.layer_norm_epsilon ", hp.eps, " is not in (0, 1]");
    const int64_t patch = r.positive("clip.vision.patch_size"), image = r.positive("clip.vision.image_size");
    // Far beyond any real encoder; keeps the int arithmetic of image sizes safe.
    if (patch > 1024 || image > 65536 || hp.n_layer > 4096 || hp.n_head > hp.n_embd)
        fail(MUSE_ERR_FORMAT, "mmproj: implausible vision sizes (patch ", patch, ", image ", image, ", ", hp.n_layer,
             " layers, ", hp.n_head, " heads for width ", hp.n_embd, ")");
    hp.patch_size = static_cast<int>(patch);
    hp.image_size = static_cast<int>(image);
    hp.n_head_kv = r.optional_count("clip.vision.attention.head_count_kv").value_or(hp.n_head);
    if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)
        fail(MUSE_ERR_FORMAT, "mmproj: head_count ", hp.n_head, " is not a positive multiple of head_count_kv ",
             hp.n_head_kv);
    if (auto hd = r.optional_count("clip.vision.attention.head_dim")) {
        hp.head_dim = *hd;
    } else {
        if (hp.n_embd % hp.n_head != 0)
            fail(MUSE_ERR_FORMAT, "mmproj: embedding_length ", hp.n_embd, " is not a multiple of head_count ",
                 hp.n_head);
        hp.head_dim = hp.n_embd / hp.n_head;
    }
    if (hp.head_dim <= 0 || hp.head_dim > 4096) fail(MUSE_ERR_FORMAT, "mmproj: head dim ", hp.head_dim, " is invalid");
    r.rgb("clip.vision.image_mean", hp.image_mean);
    r.rgb("clip.vision.image_std", hp.image_std);
    for (float s : hp.image_std)
        if (!(s != 0.0f)) fail(MUSE_ERR_FORMAT, "mmproj: clip.vision.image_std has a zero entry");

    // llama.cpp's FFN activation rule: use_gelu -> ggml_gelu (tanh form), use_silu -> silu,
    // neither -> quick GELU (CLIP's quick_gelu). Families that hard-code theirs override it.
    const bool gelu = r.file().get_bool("clip.use_gelu").value_or(false);
    const bool silu = r.file().get_bool("clip.use_silu").value_or(false);
    if (gelu && silu) fail(MUSE_ERR_FORMAT, "mmproj: clip.use_gelu and clip.use_silu are both true");
    hp.ffn_act = gelu ? Activation::GeluTanh : silu ? Activation::Silu : Activation::GeluQuick;
    return hp;
}

} // namespace muse
