// A prompt of text and images, flattened into one id per position: token ids, and
// for image rows negative ids derived from the image's content hash (so a
// sequence's token record, and prefix reuse across chat turns, see images too).
// Text marks image positions with kMediaMarker ("<__media__>"), one per image, in order.
#pragma once

#include "multimodal/image-embedder.h"

#include <memory>
#include <string_view>
#include <vector>

namespace muse {

class Session;
class Tokenizer;

struct MultimodalPrompt {
    std::vector<int32_t> ids;  // token ids (>= 0) and image-row ids (< 0)
    struct ImageRun {
        size_t begin = 0;  // index into ids
        int64_t n_rows = 0;
        const float *embd = nullptr;  // [n_rows, n_embd]
    };
    std::vector<ImageRun> runs;  // in order
    std::vector<std::shared_ptr<const EmbeddedImage>> images;  // keep the rows alive
};

// Tokenizes `text` (special tokens parsed; BOS first when add_bos) with each marker
// replaced by the next image's pieces. The number of markers must equal images.size()
// (MUSE_ERR_INVALID_ARGUMENT otherwise, naming both counts).
MultimodalPrompt build_multimodal_prompt(const Tokenizer &tok, std::string_view text, bool add_bos,
                                         std::vector<std::shared_ptr<const EmbeddedImage>> images);

// Evaluates ids[from:] on sequence seq (tokens and image rows in order); the session's
// logits are those of the last position.
void eval_multimodal_prompt(Session &session, const MultimodalPrompt &prompt, size_t from, int seq);

size_t count_media_markers(std::string_view text);

} // namespace muse
