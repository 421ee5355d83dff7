// A byte trie over a vocabulary: built once per vocabulary and shared by every
// matcher that computes token masks for it. Nodes are laid out in depth-first
// preorder with each node's subtree end, so a mask walk is one loop that skips a
// whole subtree the moment the grammar rejects its prefix.
//
// Slices make the common expensive case cheap. Inside a JSON string (or any
// free-text rule) nearly every token is allowed, and walking the whole trie for
// each such new parser state costs milliseconds. A slice is a small byte DFA for
// a text class (a JSON string's characters, as UTF-8); the tokens whose bytes it
// accepts are precomputed as a bitset, and the remaining tokens get their own,
// much smaller trie. When the automaton provably survives every byte string of
// the slice from a state (checked on the product of the two, see
// Automaton::mask), the mask is the slice's bitset plus a walk of the rest trie.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
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
    // A trie over some of the tokens (all of them, or those outside a slice).
    struct Layout {
        std::vector<Node> nodes;
        std::vector<int32_t> tokens;
        size_t max_depth = 0;
    };
    static constexpr uint8_t kNoState = 0xFF;
    struct Slice {
        std::string name;
        // dfa[q][byte]: the next DFA state, kNoState when the byte leaves the
        // class. State 0 is the start; every state is accepting (the language is
        // prefix-closed, since a token may end inside a UTF-8 character).
        std::vector<std::array<uint8_t, 256>> dfa;
        size_t max_len = 0;          // only tokens of at most this many bytes (0: any length)
        std::vector<uint64_t> bits;  // the tokens whose every byte the DFA takes
        size_t n_tokens = 0;
        Layout rest;                 // the trie of the other tokens
        // Per node of all() (a walk of the whole trie uses them where a subtree
        // starts in a state that survives the slice): the DFA state after the
        // node's bytes (kNoState: outside the class), whether the subtree holds a
        // token outside the slice, and where its slice tokens start in
        // pre_tokens (the slice tokens in preorder: a subtree's are contiguous;
        // one more entry at the end).
        std::vector<uint8_t> node_q, has_rest;
        std::vector<uint32_t> pre_begin;
        std::vector<int32_t> pre_tokens;
        // The same tokens as a bitset for the subtrees that hold many (a key's
        // quote covers most of the vocabulary: OR-ing words beats setting bits one
        // by one): node -> index into dense_bits.
        std::unordered_map<uint32_t, uint32_t> dense_at;
        std::vector<std::vector<uint64_t>> dense_bits;
    };
    static constexpr uint32_t kDenseTokens = 4096;  // the least tokens of a subtree given a bitset

    int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
    const Layout &all() const { return all_; }
    const std::vector<Node> &nodes() const { return all_.nodes; }
    const std::vector<int32_t> &tokens() const { return all_.tokens; }
    size_t max_depth() const { return all_.max_depth; }
    const std::vector<Slice> &slices() const { return slices_; }
    const std::vector<int32_t> &eog() const { return eog_; }
    bool is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && eog_flag_[id]; }
    const std::string &piece(int32_t id) const { return pieces_[id]; }

private:
    Layout layout(std::vector<int32_t> ids) const;
    void add_slice(std::string name, std::vector<std::array<uint8_t, 256>> dfa, size_t max_len,
                   const std::vector<int32_t> &ids);

    std::vector<std::string> pieces_;
    std::vector<int32_t> eog_;
    std::vector<bool> eog_flag_;
    Layout all_;
    std::vector<Slice> slices_;
};

}  // namespace muse::grammar
