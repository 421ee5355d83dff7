// Tokenizer: text <-> token ids for llama.cpp-layout GGUF vocabularies.
//
//   auto tok = Tokenizer::from_gguf(file);             // SPM ("llama") or byte-level BPE ("gpt2")
//   std::vector<int32_t> ids = tok->tokenize("Hello", /*add_special=*/true, /*parse_special=*/false);
//   std::string text = tok->detokenize(ids, /*render_special=*/false);
//
// The encoders reproduce llama.cpp's (llama-vocab.cpp) token for token; see
// tokenizer-spm.cpp and tokenizer-bpe.cpp. A Tokenizer is immutable after
// construction: share one across threads freely.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace muse {

namespace gguf {
class File;
}

// `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type).
enum TokenType : int32_t {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,       // matched in text only with parse_special
    TOKEN_TYPE_USER_DEFINED = 4,  // always matched in text as a whole
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,          // SPM byte fallback, text "<0xXX>"
};

// Everything a tokenizer knows about its vocabulary, whatever the algorithm.
struct VocabData {
    std::string model;  // tokenizer.ggml.model ("llama", "gpt2", "no_vocab", or "sentencepiece")
    std::string pre;    // tokenizer.ggml.pre, "" when absent
    std::string general_name;  // general.name: llama.cpp keys a few per-model quirks on it
    std::vector<std::string> texts;
    std::vector<float> scores;
    std::vector<int32_t> types;
    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1, sep = -1, mask = -1;
    bool add_bos = false;
    bool add_eos = false;
    bool add_space_prefix = false;  // SPM: prepend ' ' to text; detokenize strips it again
};

class Tokenizer {
public:
    // Builds the tokenizer a GGUF file's `tokenizer.ggml.*` metadata describes.
    // Throws muse::Error naming the key at fault: MUSE_ERR_FORMAT for missing or
    // malformed keys, MUSE_ERR_UNSUPPORTED for tokenizer models or
    // pre-tokenizers muse does not implement ("bert", "t5", "rwkv", ...).
    // "no_vocab" gives a tokenizer that maps ids to text but cannot tokenize.
    static std::unique_ptr<Tokenizer> from_gguf(const gguf::File &file);

    // Loads a sentencepiece `.model` file through libsentencepiece, for models
    // that ship one. MUSE_ERR_UNSUPPORTED when muse was built without it.
    static std::unique_ptr<Tokenizer> from_sentencepiece(const std::string &model_path);
    static bool sentencepiece_available();

    virtual ~Tokenizer();
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer &operator=(const Tokenizer &) = delete;

    // add_special: prepend BOS / append EOS as the metadata asks
    // (add_bos_token / add_eos_token). parse_special: control tokens written
    // in the text ("<|im_end|>") become their ids; user-defined tokens always
    // do. Empty text gives no tokens (only BOS/EOS when asked for).
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token stands for. Control and unknown tokens give "" unless
    // render_special. Out-of-range ids throw MUSE_ERR_OUT_OF_RANGE.
    std::string token_to_piece(int32_t id, bool render_special) const;

    // Concatenated pieces; for SPM vocabularies with add_space_prefix, the
    // space tokenize() put in front of the text is removed again. The result
    // is raw bytes: a sequence cut inside a UTF-8 character stays cut.
    std::string detokenize(const std::vector<int32_t> &ids, bool render_special) const;

    int32_t n_vocab() const { return static_cast<int32_t>(vocab_.texts.size()); }
    int32_t bos() const { return vocab_.bos; }  // -1 when the vocabulary has none
    int32_t eos() const { return vocab_.eos; }
    int32_t eot() const { return vocab_.eot; }
    int32_t eom() const { return vocab_.eom; }
    int32_t unk() const { return vocab_.unk; }
    int32_t pad() const { return vocab_.pad; }
    int32_t sep() const { return vocab_.sep; }
    int32_t mask() const { return vocab_.mask; }
    bool add_bos() const { return vocab_.add_bos; }
    bool add_eos() const { return vocab_.add_eos; }
    bool add_space_prefix() const { return vocab_.add_space_prefix; }

    // End of generation: eos, eot, and tokens whose text is one of the
    // end-of-turn markers llama.cpp recognises ("<|eot_id|>", "<|im_end|>", ...).
    bool is_eog(int32_t id) const { return eog_ids_.count(id) != 0; }
    const std::unordered_set<int32_t> &eog_ids() const { return eog_ids_; }
    bool is_control(int32_t id) const;

    std::optional<int32_t> find_token(std::string_view text) const;
    // token_text/token_type/token_score throw MUSE_ERR_OUT_OF_RANGE for bad ids.
    const std::string &token_text(int32_t id) const;
    int32_t token_type(int32_t id) const;
    float token_score(int32_t id) const;

    std::string model_name() const { return vocab_.model; }
    std::string pre_name() const { return vocab_.pre; }

protected:
    explicit Tokenizer(VocabData vocab);

    // Encodes one stretch of ordinary text (special tokens already cut out).
    // `after_special`: the stretch starts the input or follows a special token.
    virtual void encode_text(std::string_view text, bool after_special, std::vector<int32_t> &out) const = 0;
    // How a NORMAL token's text becomes bytes (SPM: '▁' -> ' '; BPE: GPT-2 bytes).
    virtual std::string decode_normal(const std::string &text) const = 0;

    // The id of the single-byte token for `byte`, or -1: "<0xXX>" first, then
    // the one-character token (llama.cpp's byte_to_token order).
    int32_t byte_token(uint8_t byte) const { return byte_tokens_[byte]; }
    std::optional<int32_t> lookup(std::string_view text) const;

    const VocabData &vocab() const { return vocab_; }

private:
    struct Fragment {
        size_t begin = 0, length = 0;  // raw text, when token < 0
        int32_t token = -1;
    };
    std::vector<Fragment> partition_special(std::string_view text, bool parse_special) const;
    void check_id(int32_t id) const;

    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    VocabData vocab_;
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> text_to_id_;
    std::vector<int32_t> special_tokens_;  // control/user-defined/unknown ids, longest text first
    // Per token: whitespace before (STRIP_LEFT) / after (STRIP_RIGHT) the token
    // in the text is absorbed when the token is matched (llama.cpp's
    // LSTRIP/RSTRIP attributes, set for a few model families).
    enum : uint8_t { STRIP_LEFT = 1, STRIP_RIGHT = 2 };
    std::vector<uint8_t> strip_;
    void apply_model_quirks();
    std::unordered_set<int32_t> eog_ids_;
    int32_t byte_tokens_[256];
};

// Turns ids into text one at a time for streaming output: push() returns only
// complete UTF-8 characters, holding back the start of a multi-byte character
// until its last byte arrives. Bytes that can never form a character come out
// as U+FFFD; flush() ends the stream (a held-back partial character becomes
// U+FFFD). Pieces are token_to_piece's, so no leading space is stripped: a
// generated continuation keeps its first space.
class StreamingDetokenizer {
public:
    explicit StreamingDetokenizer(const Tokenizer &tokenizer, bool render_special);
    std::string push(int32_t id);
    std::string flush();

private:
    const Tokenizer &tokenizer_;
    bool render_special_;
    std::string pending_;  // bytes of an unfinished character
};

// SentencePiece's space marker U+2581 ('▁') and the inverse mapping used when decoding
// SPM pieces (shared by the GGUF SPM tokenizer and the .model one).
inline constexpr std::string_view kSpmSpaceMarker = "\xe2\x96\x81";
std::string spm_unescape_spaces(const std::string &text);

// The starting segmentation of the merge algorithms (SPM bigrams, BPE merges): one
// symbol per UTF-8 character of text, a byte that starts no valid character alone,
// linked to its neighbours (-1 at the ends).
struct MergeSymbol {
    int prev, next;
    size_t begin, length;
};
std::vector<MergeSymbol> utf8_symbols(std::string_view text);

// Internal constructors, one per algorithm (tokenizer-spm.cpp, ...).
std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(VocabData vocab, const std::vector<std::string> &merges);
std::unique_ptr<Tokenizer> make_no_vocab_tokenizer(VocabData vocab);

} // namespace muse
