// A byte trie over a vocabulary: built once per vocabulary and shared by every
// matcher that computes token masks for it. Nodes are laid out in depth-first
// preorder with each node's subtree end, so a mask walk is one loop that skips a
// whole subtree the moment the grammar rejects its prefix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse {
class Tokenizer;
}

namespace muse::grammar {

class TokenTrie {
public:
    // pieces[id]: the bytes token id stands for ("" for tokens that are never
    // grammar output: control tokens). eog: end-of-generation ids, allowed only
    // where the grammar is complete.
    TokenTrie(std::vector<std::string> pieces, std::vector<int32_t> eog);

    // The trie of a tokenizer's vocabulary (pieces as token_to_piece(id, false)),
    // shared while anyone holds it.
    static std::shared_ptr<const TokenTrie> of(const Tokenizer &tok);

    struct Node {
        uint32_t end;        // one past the last node of this subtree
        uint32_t tok_begin;  // tokens ending here: tokens()[tok_begin, tok_end)
        uint32_t tok_end;
        uint16_t depth;      // bytes from the root (root: 0)
        uint8_t byte;
    };

    int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
    const std::vector<Node> &nodes() const { return nodes_; }
    const std::vector<int32_t> &tokens() const { return tokens_; }
    const std::vector<int32_t> &eog() const { return eog_; }
    bool is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && eog_flag_[id]; }
    const std::string &piece(int32_t id) const { return pieces_[id]; }
    size_t max_depth() const { return max_depth_; }

private:
    std::vector<std::string> pieces_;
    std::vector<int32_t> eog_;
    std::vector<bool> eog_flag_;
    std::vector<Node> nodes_;
    std::vector<int32_t> tokens_;
    size_t max_depth_ = 0;
};

}  // namespace muse::grammar
