// SentencePiece-style BPE over scores (llama.cpp's llm_tokenizer_spm): start
// from single characters, repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring vocabulary token, and spell whatever is
// left that is not a token as byte-fallback tokens <0xXX>.
#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include <queue>

namespace muse {

namespace {

constexpr std::string_view kSpaceMarker = kSpmSpaceMarker;

class SpmTokenizer final : public Tokenizer {
public:
    explicit SpmTokenizer(VocabData vocab) : Tokenizer(std::move(vocab)) {}

protected:
    void encode_text(std::string_view raw, bool after_special, std::vector<int32_t> &out) const override;
    std::string decode_normal(const std::string &text) const override;

private:
    using Symbol = MergeSymbol;  // neighbours in the current segmentation, -1 at the ends
    struct Bigram {
        int left, right;
        float score;
        size_t length;  // of left+right when queued; a changed length means a stale entry
        bool operator<(const Bigram &o) const {
            // Highest score first; on ties the leftmost pair (as llama.cpp).
            return score < o.score || (score == o.score && left > o.left);
        }
    };
    void push_token_or_bytes(std::string_view piece, std::vector<int32_t> &out) const;
};

void SpmTokenizer::encode_text(std::string_view raw, bool after_special, std::vector<int32_t> &out) const {
    // Escape spaces as '▁' and, at the start or after a special token, prefix one.
    std::string text;
    text.reserve(raw.size() + 8);
    if (vocab().add_space_prefix && after_special) text += kSpaceMarker;
    for (char c : raw) {
        if (c == ' ')
            text += kSpaceMarker;
        else
            text.push_back(c);
    }

    // A byte that starts no valid character can only end up as a byte-fallback token.
    std::vector<Symbol> symbols = utf8_symbols(text);

    std::priority_queue<Bigram> queue;
    const auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const size_t length = symbols[left].length + symbols[right].length;
        const std::optional<int32_t> id = lookup(std::string_view(text).substr(symbols[left].begin, length));
        if (!id) return;
        queue.push({left, right, vocab().scores[*id], length});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol &left = symbols[b.left];
        Symbol &right = symbols[b.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }

    // Every merged symbol is a token by construction; single characters may not be.
    for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next)
        push_token_or_bytes(std::string_view(text).substr(symbols[i].begin, symbols[i].length), out);
}

void SpmTokenizer::push_token_or_bytes(std::string_view piece, std::vector<int32_t> &out) const {
    if (const std::optional<int32_t> id = lookup(piece)) {
        out.push_back(*id);
        return;
    }
    for (char c : piece) {
        int32_t id = byte_token(static_cast<uint8_t>(c));
        if (id < 0) id = unk();
        if (id >= 0) out.push_back(id);  // a vocabulary without bytes or <unk> drops the byte
    }
}

std::string SpmTokenizer::decode_normal(const std::string &text) const { return spm_unescape_spaces(text); }

} // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData vocab) {
    return std::make_unique<SpmTokenizer>(std::move(vocab));
}

} // namespace muse
