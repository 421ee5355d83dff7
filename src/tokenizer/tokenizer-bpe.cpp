// Byte-level BPE (llama.cpp's llm_tokenizer_bpe, GPT-2's scheme): the
// pre-tokenizer cuts text into words; each word's bytes are spelled in GPT-2's
// printable byte alphabet; then adjacent symbols are merged, lowest merge rank
// (earliest line of tokenizer.ggml.merges) first, until no ranked pair is left.
#include "core/error.h"
#include "tokenizer/pre-tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include <queue>

namespace muse {

namespace {

// Separates the two halves of a merge key; never part of valid UTF-8, so no
// pair of token texts can collide with another.
constexpr char kMergeSeparator = '\xff';

class BpeTokenizer final : public Tokenizer {
public:
    BpeTokenizer(VocabData vocab, const std::vector<std::string> &merges,
                 std::shared_ptr<const PreTokenizer> pre_tokenizer)
        : Tokenizer(std::move(vocab)), pre_tokenizer_(std::move(pre_tokenizer)) {
        ranks_.reserve(merges.size());
        for (size_t i = 0; i < merges.size(); ++i) {
            const std::string &merge = merges[i];
            // "left right"; the split is at the first space after the first
            // byte, as llama.cpp (a left half is never empty).
            const size_t space = merge.find(' ', 1);
            if (space == std::string::npos)
                fail(MUSE_ERR_FORMAT, "tokenizer metadata 'tokenizer.ggml.merges' entry ", i, " ('", merge,
                     "') is not two tokens separated by a space");
            std::string key = merge;
            key[space] = kMergeSeparator;
            ranks_.emplace(std::move(key), static_cast<int32_t>(i));  // first occurrence keeps its rank
        }
    }

protected:
    void encode_text(std::string_view text, bool after_special, std::vector<int32_t> &out) const override;
    std::string decode_normal(const std::string &text) const override;

private:
    using Symbol = MergeSymbol;  // begin/length index the byte-encoded word
    struct Bigram {
        int left, right;
        int32_t rank;
        size_t length;
        bool operator<(const Bigram &o) const {
            // Lowest rank first; on ties the leftmost pair (as llama.cpp).
            return rank > o.rank || (rank == o.rank && left > o.left);
        }
    };
    int32_t rank_of(std::string_view left, std::string_view right) const;
    void encode_word(const std::string &word, std::vector<int32_t> &out) const;

    std::shared_ptr<const PreTokenizer> pre_tokenizer_;
    std::unordered_map<std::string, int32_t> ranks_;
};

int32_t BpeTokenizer::rank_of(std::string_view left, std::string_view right) const {
    std::string key;
    key.reserve(left.size() + 1 + right.size());
    key.append(left).push_back(kMergeSeparator);
    key.append(right);
    const auto it = ranks_.find(key);
    return it == ranks_.end() ? -1 : it->second;
}

void BpeTokenizer::encode_text(std::string_view text, bool, std::vector<int32_t> &out) const {
    CodepointText cps;
    cps.cps = unicode::decode(text);
    cps.flags.reserve(cps.cps.size());
    for (uint32_t cp : cps.cps) cps.flags.push_back(unicode::flags_of(cp));

    std::string raw_word, word;
    for (const auto &[begin, end] : pre_tokenizer_->split(cps)) {
        raw_word.clear();
        for (size_t i = begin; i < end; ++i) unicode::append_utf8(raw_word, cps.cps[i]);
        // Invalid input bytes were kept as themselves by decode(), so they are
        // encoded like any other byte (llama.cpp would substitute U+FFFD).
        word.clear();
        for (char c : raw_word) unicode::append_utf8(word, unicode::byte_to_codepoint(static_cast<uint8_t>(c)));
        encode_word(word, out);
    }
}

void BpeTokenizer::encode_word(const std::string &word, std::vector<int32_t> &out) const {
    if (pre_tokenizer_->ignore_merges()) {
        if (const std::optional<int32_t> id = lookup(word)) {
            out.push_back(*id);
            return;
        }
    }
    std::vector<Symbol> symbols = utf8_symbols(word);
    const std::string_view w(word);
    std::priority_queue<Bigram> queue;
    const auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const Symbol &l = symbols[left], &r = symbols[right];
        const int32_t rank = rank_of(w.substr(l.begin, l.length), w.substr(r.begin, r.length));
        if (rank >= 0) queue.push({left, right, rank, l.length + r.length});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol &left = symbols[b.left];
        Symbol &right = symbols[b.right];
        // Symbols only grow, so an unchanged total length means the pair is current.
        if (left.length == 0 || right.length == 0 || left.length + right.length != b.length ||
            left.next != b.right)
            continue;
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }

    for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
        const std::string_view piece = w.substr(symbols[i].begin, symbols[i].length);
        if (const std::optional<int32_t> id = lookup(piece)) {
            out.push_back(*id);
            continue;
        }
        // Not a token (a vocabulary lacking some byte): llama.cpp's fallback of
        // single-character tokens, silently skipping what has none.
        for (char c : piece)
            if (const std::optional<int32_t> id = lookup(std::string_view(&c, 1))) out.push_back(*id);
    }
}

std::string BpeTokenizer::decode_normal(const std::string &text) const {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t start = pos;
        const uint32_t cp = unicode::decode_one(text, pos);
        const int byte = unicode::codepoint_to_byte(cp);
        if (byte >= 0)
            out.push_back(static_cast<char>(byte));
        else
            out.append(text, start, pos - start);  // outside the byte alphabet: keep as written
    }
    return out;
}

} // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(VocabData vocab, const std::vector<std::string> &merges) {
    std::shared_ptr<const PreTokenizer> pre = PreTokenizer::for_name(vocab.pre);
    if (!pre)
        fail(MUSE_ERR_UNSUPPORTED, "tokenizer.ggml.pre '", vocab.pre, "' is not a pre-tokenizer muse knows");
    return std::make_unique<BpeTokenizer>(std::move(vocab), merges, std::move(pre));
}

} // namespace muse
