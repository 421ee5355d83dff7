#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "gguf/gguf-file.h"
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>

namespace muse {

namespace {

// End-of-turn markers that end generation whatever the metadata says, as
// llama.cpp auto-detects them by text (llama-vocab.cpp). End-of-message
// markers ("<|eom|>", "<|eom_id|>") are deliberately absent: by muse's spec
// they do not end generation (llama.cpp does count "<|eom_id|>").
constexpr std::array<std::string_view, 9> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "<|end_of_text|>",
};

const gguf::Value *find_array(const gguf::File &file, const char *key, bool required) {
    const gguf::Value *v = file.find(key);
    if (!v) {
        if (required) fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' is missing");
        return nullptr;
    }
    if (v->type != gguf::ValueType::ARRAY)
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' should be an array, found ",
             gguf::value_type_name(v->type));
    return v;
}

void check_length(const gguf::Value &v, const char *key, size_t n_tokens) {
    if (v.length != n_tokens)
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' has ", v.length, " entries for ", n_tokens,
             " tokens");
}

std::vector<std::string> read_strings(const gguf::File &file, const char *key, bool required) {
    const gguf::Value *v = find_array(file, key, required);
    if (!v) return {};
    if (v->elem_type != gguf::ValueType::STRING)
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' should hold strings, found ",
             gguf::value_type_name(v->elem_type));
    return v->strings;
}

std::vector<float> read_scores(const gguf::File &file, size_t n_tokens) {
    const char *key = "tokenizer.ggml.scores";
    const gguf::Value *v = find_array(file, key, false);
    if (!v) return std::vector<float>(n_tokens, 0.0f);
    check_length(*v, key, n_tokens);
    std::vector<float> scores(n_tokens);
    if (v->elem_type == gguf::ValueType::FLOAT32) {
        std::memcpy(scores.data(), v->raw.data(), n_tokens * sizeof(float));
    } else if (gguf::is_float_type(v->elem_type) ||
               (gguf::is_integer_type(v->elem_type) && v->elem_type != gguf::ValueType::BOOL)) {
        for (size_t i = 0; i < n_tokens; ++i) {
            const gguf::Value e = v->element(i);
            scores[i] = gguf::is_float_type(e.type) ? static_cast<float>(e.f) : static_cast<float>(e.i);
        }
    } else {
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' should hold numbers, found ",
             gguf::value_type_name(v->elem_type));
    }
    return scores;
}

std::vector<int32_t> read_types(const gguf::File &file, size_t n_tokens) {
    const char *key = "tokenizer.ggml.token_type";
    const gguf::Value *v = find_array(file, key, false);
    if (!v) return std::vector<int32_t>(n_tokens, TOKEN_TYPE_NORMAL);
    check_length(*v, key, n_tokens);
    std::vector<int32_t> types(n_tokens);
    if (v->elem_type == gguf::ValueType::INT32) {
        std::memcpy(types.data(), v->raw.data(), n_tokens * sizeof(int32_t));
    } else if (gguf::is_integer_type(v->elem_type) && v->elem_type != gguf::ValueType::BOOL) {
        for (size_t i = 0; i < n_tokens; ++i) types[i] = static_cast<int32_t>(v->element(i).i);
    } else {
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' should hold integers, found ",
             gguf::value_type_name(v->elem_type));
    }
    return types;
}

// A special token id; absent gives -1, out of range is an error naming the key.
int32_t read_special_id(const gguf::File &file, const char *key, size_t n_tokens) {
    const std::optional<int64_t> id = file.get_int(key);
    if (!id) return -1;
    if (*id < 0 || static_cast<uint64_t>(*id) >= n_tokens)
        fail(MUSE_ERR_FORMAT, "tokenizer metadata '", key, "' = ", *id, " is outside the vocabulary of ",
             n_tokens, " tokens");
    return static_cast<int32_t>(*id);
}

// C's isspace in the "C" locale, which llama.cpp's strip uses.
bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

} // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File &file) {
    VocabData vocab;
    const std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
    if (!model) fail(MUSE_ERR_FORMAT, "tokenizer metadata 'tokenizer.ggml.model' is missing");
    vocab.model = *model;
    vocab.pre = file.get_string("tokenizer.ggml.pre").value_or("");
    vocab.general_name = file.get_string("general.name").value_or("");

    enum class Kind { SPM, BPE, NONE } kind;
    if (vocab.model == "llama") {
        kind = Kind::SPM;
    } else if (vocab.model == "gpt2") {
        kind = Kind::BPE;
    } else if (vocab.model == "no_vocab" || vocab.model == "none") {
        kind = Kind::NONE;
    } else if (vocab.model == "bert" || vocab.model == "t5" || vocab.model == "rwkv" || vocab.model == "plamo2") {
        fail(MUSE_ERR_UNSUPPORTED, "tokenizer.ggml.model '", vocab.model,
             "' is not supported (muse implements 'llama' (SPM) and 'gpt2' (BPE))");
    } else {
        fail(MUSE_ERR_UNSUPPORTED, "tokenizer.ggml.model '", vocab.model, "' is unknown");
    }

    vocab.texts = read_strings(file, "tokenizer.ggml.tokens", kind != Kind::NONE);
    const size_t n = vocab.texts.size();
    if (kind != Kind::NONE && n == 0) fail(MUSE_ERR_FORMAT, "tokenizer metadata 'tokenizer.ggml.tokens' is empty");
    if (n > static_cast<size_t>(INT32_MAX))
        fail(MUSE_ERR_FORMAT, "tokenizer metadata 'tokenizer.ggml.tokens' has too many entries");
    vocab.scores = read_scores(file, n);
    vocab.types = read_types(file, n);

    vocab.bos = read_special_id(file, "tokenizer.ggml.bos_token_id", n);
    vocab.eos = read_special_id(file, "tokenizer.ggml.eos_token_id", n);
    vocab.eot = read_special_id(file, "tokenizer.ggml.eot_token_id", n);
    vocab.eom = read_special_id(file, "tokenizer.ggml.eom_token_id", n);
    vocab.unk = read_special_id(file, "tokenizer.ggml.unknown_token_id", n);
    vocab.pad = read_special_id(file, "tokenizer.ggml.padding_token_id", n);
    vocab.sep = read_special_id(file, "tokenizer.ggml.separator_token_id", n);
    vocab.mask = read_special_id(file, "tokenizer.ggml.mask_token_id", n);

    // Defaults as llama.cpp: SPM adds BOS and a space prefix; Llama 3's BPE adds BOS.
    const bool llama3_pre = vocab.pre == "llama3" || vocab.pre == "llama-v3" || vocab.pre == "llama-bpe";
    vocab.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(kind == Kind::SPM || llama3_pre);
    vocab.add_eos = file.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    vocab.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix").value_or(kind == Kind::SPM);

    switch (kind) {
    case Kind::SPM: return make_spm_tokenizer(std::move(vocab));
    case Kind::BPE: return make_bpe_tokenizer(std::move(vocab), read_strings(file, "tokenizer.ggml.merges", true));
    case Kind::NONE: break;
    }
    return make_no_vocab_tokenizer(std::move(vocab));
}

Tokenizer::Tokenizer(VocabData vocab) : vocab_(std::move(vocab)) {
    const int32_t n = n_vocab();
    vocab_.scores.resize(n, 0.0f);
    vocab_.types.resize(n, TOKEN_TYPE_NORMAL);
    text_to_id_.reserve(n);
    for (int32_t id = 0; id < n; ++id) {
        std::string &text = vocab_.texts[id];
        // As llama.cpp: an empty text would match at every position (and
        // render as nothing), so it gets a visible placeholder instead.
        if (text.empty()) text = str_cat("[EMPTY_", id, "]");
        text_to_id_.insert_or_assign(text, id);  // a duplicate text maps to its last id, as llama.cpp
    }

    for (int32_t id = 0; id < n; ++id) {
        const int32_t type = vocab_.types[id];
        if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED || type == TOKEN_TYPE_UNKNOWN)
            special_tokens_.push_back(id);
    }
    // Longest first, so "<|im_end|>" wins over a shorter token that prefixes it.
    std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
        return vocab_.texts[a].size() > vocab_.texts[b].size();
    });

    strip_.assign(n, 0);
    apply_model_quirks();

    for (int32_t id : {vocab_.eos, vocab_.eot})
        if (id >= 0) eog_ids_.insert(id);
    for (std::string_view text : kEogTexts)
        if (auto id = lookup(text)) eog_ids_.insert(*id);

    static const char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
        std::optional<int32_t> id = lookup(name);
        const char single = static_cast<char>(b);
        if (!id) id = lookup(std::string_view(&single, 1));
        byte_tokens_[b] = id.value_or(-1);
    }
}

Tokenizer::~Tokenizer() = default;

// The token attributes llama.cpp sets by model name (llama-vocab.cpp, "set
// attributes by model/tokenizer/architecture name").
void Tokenizer::apply_model_quirks() {
    std::string name = vocab_.general_name;
    for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto set = [&](std::string_view text, uint8_t flag, bool on) {
        if (const auto id = lookup(text)) strip_[*id] = on ? (strip_[*id] | flag) : (strip_[*id] & ~flag);
    };
    const std::string &pre = vocab_.pre;
    if (pre == "jina-v2-de" || pre == "jina-v2-es" || pre == "jina-v2-code") {
        set("<mask>", STRIP_LEFT, true);
    } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        // Phi-3's chat markers swallow the newline that follows them.
        for (int32_t id : special_tokens_) strip_[id] |= STRIP_RIGHT;
        set("</s>", STRIP_RIGHT, true);
        for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) set(text, STRIP_RIGHT, false);
    }
}

std::optional<int32_t> Tokenizer::lookup(std::string_view text) const {
    const auto it = text_to_id_.find(text);
    if (it == text_to_id_.end()) return std::nullopt;
    return it->second;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const { return lookup(text); }

void Tokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= n_vocab())
        fail(MUSE_ERR_OUT_OF_RANGE, "token id ", id, " is outside the vocabulary of ", n_vocab(), " tokens");
}

const std::string &Tokenizer::token_text(int32_t id) const {
    check_id(id);
    return vocab_.texts[id];
}

int32_t Tokenizer::token_type(int32_t id) const {
    check_id(id);
    return vocab_.types[id];
}

float Tokenizer::token_score(int32_t id) const {
    check_id(id);
    return vocab_.scores[id];
}

bool Tokenizer::is_control(int32_t id) const {
    return id >= 0 && id < n_vocab() && vocab_.types[id] == TOKEN_TYPE_CONTROL;
}

// llama.cpp's tokenizer_st_partition: each special token in turn (longest
// first) cuts every remaining raw-text fragment at each of its occurrences.
std::vector<Tokenizer::Fragment> Tokenizer::partition_special(std::string_view text, bool parse_special) const {
    std::vector<Fragment> fragments{{0, text.size(), -1}};
    std::vector<Fragment> next;
    for (int32_t id : special_tokens_) {
        const int32_t type = vocab_.types[id];
        if (!parse_special && type != TOKEN_TYPE_USER_DEFINED) continue;
        const std::string &needle = vocab_.texts[id];
        next.clear();
        bool changed = false;
        for (const Fragment &f : fragments) {
            if (f.token >= 0 || f.length < needle.size()) {
                next.push_back(f);
                continue;
            }
            const size_t end = f.begin + f.length;
            const std::string_view window = text.substr(0, end);
            size_t pos = f.begin;
            size_t match;
            while ((match = window.find(needle, pos)) != std::string_view::npos) {
                size_t left_end = match;
                if (strip_[id] & STRIP_LEFT)
                    while (left_end > pos && is_ascii_space(text[left_end - 1])) --left_end;
                if (left_end > pos) next.push_back({pos, left_end - pos, -1});
                next.push_back({0, 0, id});
                pos = match + needle.size();
                if (strip_[id] & STRIP_RIGHT)
                    while (pos < end && is_ascii_space(text[pos])) ++pos;
                changed = true;
            }
            if (pos < end) next.push_back({pos, end - pos, -1});
        }
        if (changed) fragments.swap(next);
    }
    return fragments;
}

std::vector<int32_t> Tokenizer::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
    if (!text.empty()) {
        bool after_special = true;  // the start of the input counts as a boundary
        for (const Fragment &f : partition_special(text, parse_special)) {
            if (f.token >= 0) {
                out.push_back(f.token);
                after_special = true;
            } else {
                encode_text(text.substr(f.begin, f.length), after_special, out);
                after_special = false;
            }
        }
    }
    if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
    return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    check_id(id);
    const std::string &text = vocab_.texts[id];
    switch (vocab_.types[id]) {
    case TOKEN_TYPE_NORMAL: return decode_normal(text);
    case TOKEN_TYPE_USER_DEFINED: return text;
    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN: return render_special ? text : std::string();
    case TOKEN_TYPE_BYTE: {
        // "<0xXX>" is the byte XX; anything else is taken literally.
        unsigned value = 0;
        if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>' &&
            std::sscanf(text.c_str() + 3, "%2x", &value) == 1)
            return std::string(1, static_cast<char>(value));
        return text;
    }
    default: return {};  // UNUSED / UNDEFINED tokens stand for nothing
    }
}

std::string Tokenizer::detokenize(const std::vector<int32_t> &ids, bool render_special) const {
    std::string out;
    // tokenize() put a space in front of SPM text; a leading BOS does not
    // consume that, the first real piece does (as HF's decode).
    bool strip_space = vocab_.add_space_prefix;
    for (int32_t id : ids) {
        std::string piece = token_to_piece(id, render_special);
        if (strip_space && id != vocab_.bos) {
            if (!piece.empty() && piece[0] == ' ') piece.erase(0, 1);
            strip_space = false;
        }
        out += piece;
    }
    return out;
}

namespace {

// "no_vocab" models: ids map to their texts (if any), text cannot be encoded.
class NoVocabTokenizer final : public Tokenizer {
public:
    explicit NoVocabTokenizer(VocabData vocab) : Tokenizer(std::move(vocab)) {}

protected:
    void encode_text(std::string_view, bool, std::vector<int32_t> &) const override {
        fail(MUSE_ERR_UNSUPPORTED, "this model has no vocabulary (tokenizer.ggml.model 'no_vocab'): "
                                   "it cannot tokenize text");
    }
    std::string decode_normal(const std::string &text) const override { return text; }
};

} // namespace

std::unique_ptr<Tokenizer> make_no_vocab_tokenizer(VocabData vocab) {
    return std::make_unique<NoVocabTokenizer>(std::move(vocab));
}

std::string spm_unescape_spaces(const std::string &text) {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        if (text.compare(pos, kSpmSpaceMarker.size(), kSpmSpaceMarker) == 0) {
            out.push_back(' ');
            pos += kSpmSpaceMarker.size();
        } else {
            out.push_back(text[pos++]);
        }
    }
    return out;
}

std::vector<MergeSymbol> utf8_symbols(std::string_view text) {
    std::vector<MergeSymbol> symbols;
    symbols.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        const size_t len = std::max<size_t>(1, unicode::valid_sequence_length(text, pos));
        const int index = static_cast<int>(symbols.size());
        symbols.push_back({index - 1, pos + len < text.size() ? index + 1 : -1, pos, len});
        pos += len;
    }
    return symbols;
}

} // namespace muse
