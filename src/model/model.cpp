#include "model/model.h"

#include "multimodal/image-embedder.h"

#include "core/error.h"

#include <algorithm>

namespace muse {
namespace {

gguf::OpenOptions open_options(const ModelLoadOptions &o) {
    gguf::OpenOptions g;
    g.use_mmap = o.use_mmap;
    g.load_tensor_data = !o.vocab_only;
    g.progress = o.progress;
    return g;
}

void check_options(const ModelLoadOptions &o) {
    if (o.backend == MUSE_BACKEND_VULKAN) {
#ifndef MUSE_HAVE_VULKAN
        fail(MUSE_ERR_UNSUPPORTED, "this muse was built without the Vulkan backend (-DMUSE_VULKAN=ON)");
#endif
    } else if (o.backend != MUSE_BACKEND_AUTO && o.backend != MUSE_BACKEND_CPU) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "unknown backend id ", o.backend);
    }
    if (o.n_threads > 1024) fail(MUSE_ERR_INVALID_ARGUMENT, "n_threads ", o.n_threads, " is absurd (max 1024)");
}

} // namespace

std::unique_ptr<Model> Model::load(const std::string &path, const ModelLoadOptions &options) {
    check_options(options);
    std::unique_ptr<Model> m(new Model());
    m->file_ = gguf::File::open(path, open_options(options));
    if (!options.mmproj_path.empty()) {
        m->mmproj_ = gguf::File::open(options.mmproj_path, open_options(options));
        const auto arch = m->mmproj_->get_string("general.architecture");
        if (arch != "clip")
            fail(MUSE_ERR_FORMAT, options.mmproj_path, ": not a multimodal projector (general.architecture is '",
                 arch.value_or(""), "', expected 'clip')");
    }
    m->init(options);
    return m;
}

std::unique_ptr<Model> Model::load_from_memory(const void *data, size_t size, const ModelLoadOptions &options) {
    check_options(options);
    std::unique_ptr<Model> m(new Model());
    m->file_ = gguf::File::from_memory(data, size, open_options(options));
    m->init(options);
    return m;
}

void Model::init(const ModelLoadOptions &options) {
    options_ = options;
    // A device backend is opened now, so that a missing device is the load's error (the
    // CPU backend, which cannot be missing, waits for the first decode).
    if (options.backend == MUSE_BACKEND_VULKAN && !options.vocab_only) backend_ = make_backend(options.backend, options.n_threads);
    const auto arch = file_->get_string("general.architecture");
    if (!arch || arch->empty())
        fail(MUSE_ERR_FORMAT, file_->description(), ": general.architecture is missing; not a model file");
    arch_ = *arch;
    name_ = file_->get_string("general.name").value_or("");
    auto non_negative = [&](const char *suffix) -> int64_t {
        const std::string key = arch_key(suffix);
        const int64_t v = file_->get_int(key).value_or(0);
        if (v < 0) fail(MUSE_ERR_FORMAT, "metadata '", key, "' is negative (", v, ")");
        return v;
    };
    n_ctx_train_ = non_negative("context_length");
    n_embd_ = non_negative("embedding_length");
    n_layer_ = non_negative("block_count");
    if (const gguf::Value *tokens = file_->find("tokenizer.ggml.tokens")) {
        if (tokens->type != gguf::ValueType::ARRAY || tokens->elem_type != gguf::ValueType::STRING)
            fail(MUSE_ERR_FORMAT, "metadata 'tokenizer.ggml.tokens' should be an array of strings");
        n_vocab_ = static_cast<int64_t>(tokens->length);
    } else if (const gguf::TensorInfo *emb = file_->find_tensor("token_embd.weight")) {
        n_vocab_ = emb->ne[1];
    }
}

const Decoder &Model::require_decoder() const {
    if (options_.vocab_only) fail(MUSE_ERR_INVALID_ARGUMENT, "this model was loaded vocab-only: it has no decoder");
    std::call_once(decoder_once_, [&] {
        try {
            auto backend = backend_ ? std::move(backend_) : make_backend(options_.backend, options_.n_threads);
            auto decoder = make_decoder(*file_, *backend);
            if (file_->find("tokenizer.ggml.tokens") && n_vocab_ != decoder->hparams().n_vocab)
                fail(MUSE_ERR_FORMAT, "the tokenizer has ", n_vocab_, " tokens but token_embd.weight has ",
                     decoder->hparams().n_vocab, " rows");
            backend_ = std::move(backend);
            decoder_ = std::move(decoder);
        } catch (...) {
            decoder_error_ = std::current_exception();
        }
    });
    if (decoder_error_) std::rethrow_exception(decoder_error_);
    return *decoder_;
}

std::string Model::device_description() const {
    require_decoder();
    return backend_->name() + ": " + backend_->device().name;
}

const Tokenizer &Model::require_tokenizer() const {
    std::call_once(tokenizer_once_, [&] {
        try {
            if (!options_.tokenizer_path.empty()) {
                tokenizer_ = Tokenizer::from_sentencepiece(options_.tokenizer_path);
            } else {
                if (!file_->find("tokenizer.ggml.model"))
                    fail(MUSE_ERR_UNSUPPORTED, "the model file has no tokenizer (tokenizer.ggml.model is absent)");
                tokenizer_ = Tokenizer::from_gguf(*file_);
            }
            if (n_vocab_ > 0 && tokenizer_->n_vocab() > n_vocab_)
                fail(MUSE_ERR_FORMAT, "the tokenizer has ", tokenizer_->n_vocab(), " tokens, more than the model's ", n_vocab_);
        } catch (...) {
            tokenizer_error_ = std::current_exception();
        }
    });
    if (tokenizer_error_) std::rethrow_exception(tokenizer_error_);
    return *tokenizer_;
}

Model::~Model() = default;  // here, where ImageEmbedder is complete

const ImageEmbedder &Model::require_images() const {
    if (!mmproj_)
        fail(MUSE_ERR_INVALID_ARGUMENT, "this model was loaded without a vision projector: load the mmproj GGUF too "
                                        "(mmproj_path / --mmproj) to use images");
    require_decoder();  // the backend
    std::call_once(images_once_, [&] {
        try {
            images_ = std::make_unique<ImageEmbedder>(*mmproj_, *backend_, n_embd_);
        } catch (...) {
            images_error_ = std::current_exception();
        }
    });
    if (images_error_) std::rethrow_exception(images_error_);
    return *images_;
}

std::vector<int32_t> Model::end_of_generation() const {
    std::vector<int32_t> ids;
    try {
        const Tokenizer &t = require_tokenizer();
        ids.assign(t.eog_ids().begin(), t.eog_ids().end());
    } catch (const Error &) {  // no usable tokenizer: fall back to the metadata ids
        for (const char *key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"}) {
            const gguf::Value *v = file_->find(key);
            if (v && gguf::is_integer_type(v->type) && v->i >= 0) ids.push_back(static_cast<int32_t>(v->i));
        }
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

} // namespace muse
