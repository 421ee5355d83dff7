// Tokenizer over a sentencepiece `.model` file, for models that ship one:
// libsentencepiece does the encoding (its own normalizer and dummy prefix);
// special tokens, pieces and detokenization are the common Tokenizer's.
// Built only when CMake found libsentencepiece (MUSE_HAVE_SENTENCEPIECE).
#include "core/error.h"
#include "tokenizer/tokenizer.h"

#if MUSE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace muse {

#if MUSE_HAVE_SENTENCEPIECE

namespace {


class SentencePieceTokenizer final : public Tokenizer {
public:
    SentencePieceTokenizer(VocabData vocab, std::unique_ptr<sentencepiece::SentencePieceProcessor> processor)
        : Tokenizer(std::move(vocab)), processor_(std::move(processor)) {}

protected:
    void encode_text(std::string_view text, bool, std::vector<int32_t> &out) const override {
        std::vector<int> ids;
        const auto status = processor_->Encode(text, &ids);
        if (!status.ok()) fail(MUSE_ERR_INTERNAL, "sentencepiece: ", status.ToString());
        out.insert(out.end(), ids.begin(), ids.end());
    }
    std::string decode_normal(const std::string &text) const override { return spm_unescape_spaces(text); }

private:
    std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

} // namespace

bool Tokenizer::sentencepiece_available() { return true; }

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(const std::string &model_path) {
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = processor->Load(model_path);
    if (!status.ok()) fail(MUSE_ERR_IO, "cannot load sentencepiece model '", model_path, "': ", status.ToString());

    VocabData vocab;
    vocab.model = "sentencepiece";
    const int n = processor->GetPieceSize();
    vocab.texts.reserve(n);
    for (int id = 0; id < n; ++id) {
        vocab.texts.push_back(processor->IdToPiece(id));
        vocab.scores.push_back(processor->GetScore(id));
        int32_t type = TOKEN_TYPE_NORMAL;
        if (processor->IsControl(id))
            type = TOKEN_TYPE_CONTROL;
        else if (processor->IsUnknown(id))
            type = TOKEN_TYPE_UNKNOWN;
        else if (processor->IsByte(id))
            type = TOKEN_TYPE_BYTE;
        else if (processor->IsUnused(id))
            type = TOKEN_TYPE_UNUSED;
        vocab.types.push_back(type);
    }
    const auto valid = [n](int id) { return id >= 0 && id < n ? id : -1; };
    vocab.bos = valid(processor->bos_id());
    vocab.eos = valid(processor->eos_id());
    vocab.unk = valid(processor->unk_id());
    vocab.pad = valid(processor->pad_id());
    vocab.add_bos = vocab.bos >= 0;
    // sentencepiece adds its dummy prefix itself; detokenize removes it.
    vocab.add_space_prefix = true;
    return std::make_unique<SentencePieceTokenizer>(std::move(vocab), std::move(processor));
}

#else

bool Tokenizer::sentencepiece_available() { return false; }

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(const std::string &model_path) {
    fail(MUSE_ERR_UNSUPPORTED, "cannot load '", model_path, "': muse was built without libsentencepiece");
}

#endif

} // namespace muse
