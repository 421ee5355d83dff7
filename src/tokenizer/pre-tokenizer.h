// PreTokenizer: splits text into the "words" that byte-level BPE merges never
// cross, following the regex lists llama.cpp uses for each
// `tokenizer.ggml.pre` value (llama-vocab.cpp, llm_tokenizer_bpe).
#pragma once

#include "tokenizer/split-regex.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace muse {

class PreTokenizer {
public:
    // The pre-tokenizer for a `tokenizer.ggml.pre` value, or nullptr when the
    // name is unknown. An empty name means llama.cpp's "default" set.
    static std::shared_ptr<const PreTokenizer> for_name(std::string_view pre);

    // Whether BPE should emit a whole word as one token when the vocabulary
    // has it, before trying any merge (llama.cpp's ignore_merges; Llama 3).
    bool ignore_merges() const { return ignore_merges_; }

    // Splits text into words. Each regex of the list refines the pieces the
    // previous ones produced; matches and the stretches between them both
    // become pieces. Returns [begin, end) code point offsets into `text`.
    std::vector<std::pair<size_t, size_t>> split(const CodepointText &text) const;

private:
    PreTokenizer(const std::vector<std::string_view> &patterns, bool ignore_merges);

    std::vector<SplitRegex> regexes_;
    bool ignore_merges_ = false;
};

} // namespace muse
