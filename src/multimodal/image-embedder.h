// From a decoded image to what the decoder consumes: the family's preprocessing
// (src/image/preprocess.h), the vision encoder + projector (src/vision/), and the
// family's placement in the prompt — wrapper text around the embedding rows, as
// llama.cpp's mtmd writes them:
//   muse-glimmer  <|image_start|> [nw*nh rows] <|image_end|>        (spec §2.5)
//   mlp (LLaVA)   [rows]                                             (no wrapper)
//   idefics3      per tile <fake_token_around_image><row_r_col_c>[rows], "\n" after each
//                 tile row, then "\n<fake_token_around_image><global-img>[rows]
//                 <fake_token_around_image>" (HF Idefics3Processor's prompt string)
// Prompts mark where images go with `<__media__>` (mtmd's default marker).
#pragma once

#include "image/image.h"
#include "image/preprocess.h"
#include "vision/vision-encoder.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace muse {

inline constexpr const char *kMediaMarker = "<__media__>";

// An image as prompt pieces: text (tokenized with special tokens parsed) or rows of
// embeddings [n_rows, n_embd] row-major, in prompt order.
struct EmbeddedImage {
    struct Piece {
        std::string text;
        std::vector<float> embd;
        int64_t n_rows = 0;
    };
    std::vector<Piece> pieces;
    uint64_t hash = 0;  // of the pixels and size: equal images share the cache entry
    int64_t n_embd = 0;
    int64_t n_rows() const;
};

// 64-bit FNV-1a of the size and the pixels.
uint64_t image_hash(const Image &img);

class ImageEmbedder {
public:
    // The encoder of an mmproj; n_embd_text must equal its projection width.
    ImageEmbedder(const gguf::File &mmproj, Backend &backend, int64_t n_embd_text);

    const VisionHParams &hparams() const { return encoder_->hparams(); }
    // Embedding rows an image becomes (cheap: preprocessing geometry only).
    int64_t n_rows(const Image &img) const;
    // Preprocess, encode, project and wrap.
    EmbeddedImage embed(const Image &img) const;

private:
    std::unique_ptr<VisionEncoder> encoder_;
    PreprocessParams params_;
};

// Encoded images by content hash, so a conversation does not re-encode its images
// every turn. Bounded: least recently used entries go first.
class ImageCache {
public:
    explicit ImageCache(size_t max_entries = 16) : max_(max_entries) {}
    std::shared_ptr<const EmbeddedImage> get(const ImageEmbedder &embedder, const Image &img);
    size_t size() const;
    int64_t hits() const { return hits_; }

private:
    mutable std::mutex mu_;
    size_t max_;
    uint64_t tick_ = 0;
    int64_t hits_ = 0;
    struct Entry {
        std::shared_ptr<const EmbeddedImage> image;
        uint64_t used = 0;
    };
    std::unordered_map<uint64_t, Entry> entries_;
};

} // namespace muse
