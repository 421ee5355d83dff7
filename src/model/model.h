// muse::Model: a loaded GGUF (and optional mmproj) plus the hyperparameters
// every family shares. Immutable after construction; shared by all sessions.
#pragma once

#include "backends/backend.h"
#include "families/decoder.h"
#include "gguf/gguf-file.h"
#include "tokenizer/tokenizer.h"

#include "muse/muse.h"

#include <exception>
#include <memory>
#include <mutex>
#include <string>

namespace muse {

class ImageEmbedder;

struct ModelLoadOptions {
    int backend = MUSE_BACKEND_AUTO;  // a muse_backend value, validated on load
    int32_t n_threads = 0;
    bool use_mmap = true;
    bool vocab_only = false;
    std::string mmproj_path;  // empty: none
    std::string tokenizer_path;  // sentencepiece .model replacing the GGUF's tokenizer; empty: none
    std::function<bool(float)> progress;
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::string &path, const ModelLoadOptions &options);
    // For fuzzing and tests: parse a GGUF held in memory (must outlive the Model).
    static std::unique_ptr<Model> load_from_memory(const void *data, size_t size, const ModelLoadOptions &options);

    const gguf::File &file() const { return *file_; }
    const ModelLoadOptions &options() const { return options_; }

    const std::string &arch() const { return arch_; }
    const std::string &name() const { return name_; }
    int64_t n_vocab() const { return n_vocab_; }
    int64_t n_ctx_train() const { return n_ctx_train_; }
    int64_t n_embd() const { return n_embd_; }
    int64_t n_layer() const { return n_layer_; }

    // The token decoder, built on first use (so any GGUF can be loaded for
    // inspection); throws the family's error when the file cannot be decoded.
    const Decoder &require_decoder() const;
    // "<backend>: <device>" of the backend the decoder runs on (builds the decoder).
    std::string device_description() const;
    // The tokenizer from the file's metadata, built on first use (throws if the
    // file has none or an unsupported one).
    const Tokenizer &require_tokenizer() const;
    // The image encoder of the mmproj (loaded with --mmproj / mmproj_path), built on
    // first use on the decoder's backend; MUSE_ERR_INVALID_ARGUMENT when none was loaded.
    const ImageEmbedder &require_images() const;
    // End-of-generation token ids (tokenizer's set, else eos/eot from metadata).
    std::vector<int32_t> end_of_generation() const;

    // "{arch}.{suffix}", the per-architecture metadata key.
    std::string arch_key(const char *suffix) const { return arch_ + "." + suffix; }

private:
    Model() = default;
public:
    ~Model();

private:
    void init(const ModelLoadOptions &options);

    std::unique_ptr<gguf::File> file_;
    std::unique_ptr<gguf::File> mmproj_;
    ModelLoadOptions options_;
    mutable std::once_flag decoder_once_;
    mutable std::unique_ptr<Backend> backend_;
    mutable std::unique_ptr<Decoder> decoder_;  // destroyed before backend_ and file_
    mutable std::exception_ptr decoder_error_;
    mutable std::once_flag tokenizer_once_;
    mutable std::unique_ptr<Tokenizer> tokenizer_;
    mutable std::exception_ptr tokenizer_error_;
    mutable std::once_flag images_once_;
    mutable std::unique_ptr<ImageEmbedder> images_;  // declared after backend_: destroyed before it
    mutable std::exception_ptr images_error_;
    std::string arch_, name_;
    int64_t n_vocab_ = 0, n_ctx_train_ = 0, n_embd_ = 0, n_layer_ = 0;
};

} // namespace muse
