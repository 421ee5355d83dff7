#include "grammar/token-trie.h"

#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <numeric>

namespace muse::grammar {

TokenTrie::TokenTrie(std::vector<std::string> pieces, std::vector<int32_t> eog)
    : pieces_(std::move(pieces)), eog_(std::move(eog)), eog_flag_(pieces_.size(), false) {
    for (int32_t id : eog_)
        if (id >= 0 && id < n_vocab()) eog_flag_[id] = true;
    std::vector<int32_t> ids(pieces_.size());
    std::iota(ids.begin(), ids.end(), 0);
    // End-of-generation tokens and empty pieces are never grammar bytes.
    std::erase_if(ids, [&](int32_t id) { return pieces_[id].empty() || eog_flag_[id]; });
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return pieces_[a] < pieces_[b]; });

    nodes_.push_back({0, 0, 0, 0, 0});
    std::vector<uint32_t> path{0};  // node index per depth
    const std::string *prev = nullptr;
    auto close_to = [&](size_t depth) {
        while (path.size() > depth + 1) {
            nodes_[path.back()].end = static_cast<uint32_t>(nodes_.size());
            path.pop_back();
        }
    };
    // Tokens attach to nodes in sorted order, so a node's tokens are contiguous if
    // they are appended when the node is the current leaf; identical pieces share it.
    for (int32_t id : ids) {
        const std::string &p = pieces_[id];
        size_t common = 0;
        if (prev) {
            const size_t lim = std::min(prev->size(), p.size());
            while (common < lim && (*prev)[common] == p[common]) ++common;
        }
        close_to(common);
        for (size_t d = common; d < p.size(); ++d) {
            const auto idx = static_cast<uint32_t>(nodes_.size());
            nodes_.push_back({0, 0, 0, static_cast<uint16_t>(d + 1), static_cast<uint8_t>(p[d])});
            path.push_back(idx);
        }
        max_depth_ = std::max(max_depth_, p.size());
        Node &n = nodes_[path.back()];
        if (n.tok_begin == n.tok_end) n.tok_begin = static_cast<uint32_t>(tokens_.size());
        tokens_.push_back(id);
        n.tok_end = static_cast<uint32_t>(tokens_.size());
        prev = &p;
    }
    close_to(0);
    nodes_[0].end = static_cast<uint32_t>(nodes_.size());
}

std::shared_ptr<const TokenTrie> TokenTrie::of(const Tokenizer &tok) {
    // Shared per tokenizer while alive; a cached trie is checked against the
    // tokenizer (size and a sample of pieces) in case an address was reused.
    static std::mutex mu;
    static std::map<const Tokenizer *, std::weak_ptr<const TokenTrie>> cache;
    std::lock_guard lock(mu);
    auto it = cache.find(&tok);
    if (it != cache.end()) {
        if (auto t = it->second.lock()) {
            bool same = t->n_vocab() == tok.n_vocab();
            for (int32_t id = 0; same && id < t->n_vocab(); id += 997)
                same = t->piece(id) == (tok.is_eog(id) ? std::string() : tok.token_to_piece(id, false));
            if (same) return t;
        }
    }
    std::vector<std::string> pieces(tok.n_vocab());
    for (int32_t id = 0; id < tok.n_vocab(); ++id)
        if (!tok.is_eog(id)) pieces[id] = tok.token_to_piece(id, false);
    std::vector<int32_t> eog(tok.eog_ids().begin(), tok.eog_ids().end());
    std::sort(eog.begin(), eog.end());
    auto t = std::make_shared<const TokenTrie>(std::move(pieces), std::move(eog));
    std::erase_if(cache, [](auto &kv) { return kv.second.expired(); });
    cache[&tok] = t;
    return t;
}

}  // namespace muse::grammar
