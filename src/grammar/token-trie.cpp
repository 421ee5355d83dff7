#include "grammar/token-trie.h"

#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <numeric>

namespace muse::grammar {

namespace {

// UTF-8 DFA of a class of code points given by which ASCII bytes it has (all of
// U+0080..U+10FFFF besides, minus the surrogates, as the rules lower them).
std::vector<std::array<uint8_t, 256>> utf8_class_dfa(const std::array<bool, 128> &ascii) {
    enum : uint8_t { q0, need1, need2, need3, e0, ed, f0, f4, n_states };
    std::vector<std::array<uint8_t, 256>> d(n_states);
    for (auto &row : d) row.fill(TokenTrie::kNoState);
    for (unsigned b = 0; b < 128; ++b)
        if (ascii[b]) d[q0][b] = q0;
    for (unsigned b = 0xC2; b <= 0xDF; ++b) d[q0][b] = need1;
    d[q0][0xE0] = e0;
    for (unsigned b = 0xE1; b <= 0xEF; ++b) d[q0][b] = need2;
    d[q0][0xED] = ed;
    d[q0][0xF0] = f0;
    for (unsigned b = 0xF1; b <= 0xF3; ++b) d[q0][b] = need3;
    d[q0][0xF4] = f4;
    for (unsigned b = 0x80; b <= 0xBF; ++b) {
        d[need1][b] = q0;
        d[need2][b] = need1;
        d[need3][b] = need2;
    }
    for (unsigned b = 0xA0; b <= 0xBF; ++b) d[e0][b] = need1;  // no overlong forms
    for (unsigned b = 0x80; b <= 0x9F; ++b) d[ed][b] = need1;  // no surrogates
    for (unsigned b = 0x90; b <= 0xBF; ++b) d[f0][b] = need2;
    for (unsigned b = 0x80; b <= 0x8F; ++b) d[f4][b] = need2;  // up to U+10FFFF
    return d;
}

}  // namespace

TokenTrie::TokenTrie(std::vector<std::string> pieces, std::vector<int32_t> eog)
    : pieces_(std::move(pieces)), eog_(std::move(eog)), eog_flag_(pieces_.size(), false) {
    for (int32_t id : eog_)
        if (id >= 0 && id < n_vocab()) eog_flag_[id] = true;
    std::vector<int32_t> ids(pieces_.size());
    std::iota(ids.begin(), ids.end(), 0);
    // End-of-generation tokens and empty pieces are never grammar bytes.
    std::erase_if(ids, [&](int32_t id) { return pieces_[id].empty() || eog_flag_[id]; });
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return pieces_[a] < pieces_[b]; });
    all_ = layout(ids);
    // A JSON string's characters: [^"\\\x00-\x1F]. Any free-text rule that allows
    // at least these (e.g. [^\n]*) uses it too.
    std::array<bool, 128> json_chars{};
    for (unsigned b = 0x20; b < 128; ++b) json_chars[b] = b != '"' && b != '\\';
    // Unbounded, for states that loop on the class (a free string); bounded, for
    // counted strings (maxLength), where only the next few characters matter. 16
    // bytes hold 98.8% of qwen2's tokens of this class, 32 bytes 99.8%; longer ones
    // are walked (qwen2: the rest trie of the 16-byte slice has 33k nodes, of the
    // 32-byte one 13k). The longer bound first: it needs that many characters left.
    add_slice("json-string", utf8_class_dfa(json_chars), 0, ids);
    add_slice("json-string-32", utf8_class_dfa(json_chars), 32, ids);
    add_slice("json-string-16", utf8_class_dfa(json_chars), 16, ids);
    // An opening quote (after optional whitespace) and a string's characters: the
    // tokens that start an object's key ("na, "name, \n  "x). Used as a cover in
    // whole-trie walks: where a key may be any string but the declared names, the
    // subtree under the quote is allowed en bloc but for its other tokens.
    {
        auto str = utf8_class_dfa(json_chars);
        std::vector<std::array<uint8_t, 256>> d(1 + str.size());
        for (auto &row : d) row.fill(kNoState);
        for (uint8_t c : {' ', '\t', '\n', '\r'}) d[0][c] = 0;
        d[0]['"'] = 1;
        for (size_t q = 0; q < str.size(); ++q)
            for (unsigned b = 0; b < 256; ++b)
                d[q + 1][b] = str[q][b] == kNoState ? kNoState : static_cast<uint8_t>(str[q][b] + 1);
        add_slice("json-key", std::move(d), 0, ids);
    }
}

void TokenTrie::add_slice(std::string name, std::vector<std::array<uint8_t, 256>> dfa, size_t max_len,
                          const std::vector<int32_t> &ids) {
    Slice s;
    s.name = std::move(name);
    s.max_len = max_len;
    s.bits.assign((pieces_.size() + 63) / 64, 0);
    std::vector<int32_t> rest;
    for (int32_t id : ids) {
        uint8_t q = 0;
        for (unsigned char c : pieces_[id]) {
            q = dfa[q][c];
            if (q == kNoState) break;
        }
        if (q == kNoState || (max_len && pieces_[id].size() > max_len)) {
            rest.push_back(id);
        } else {
            s.bits[id >> 6] |= uint64_t(1) << (id & 63);
            ++s.n_tokens;
        }
    }
    s.dfa = std::move(dfa);
    s.rest = layout(std::move(rest));
    // The per-node view of the whole trie.
    const auto &nodes = all_.nodes;
    const size_t n = nodes.size();
    s.node_q.assign(n, kNoState);
    s.has_rest.assign(n, 0);
    s.pre_begin.assign(n + 1, 0);
    std::vector<uint32_t> parent(n, 0), path{0};
    s.node_q[0] = 0;
    for (size_t i = 1; i < n; ++i) {
        const Node &node = nodes[i];
        path.resize(node.depth);  // the ancestors: depth 0 .. depth - 1
        parent[i] = path.back();
        path.push_back(static_cast<uint32_t>(i));
        const uint8_t pq = s.node_q[parent[i]];
        s.node_q[i] = pq == kNoState ? kNoState : s.dfa[pq][node.byte];
    }
    for (size_t i = 0; i < n; ++i) {
        s.pre_begin[i] = static_cast<uint32_t>(s.pre_tokens.size());
        for (uint32_t k = nodes[i].tok_begin; k < nodes[i].tok_end; ++k) {
            const int32_t id = all_.tokens[k];
            if ((s.bits[id >> 6] >> (id & 63)) & 1) s.pre_tokens.push_back(id);
            else s.has_rest[i] = 1;
        }
    }
    s.pre_begin[n] = static_cast<uint32_t>(s.pre_tokens.size());
    for (size_t i = n - 1; i > 0; --i)
        if (s.has_rest[i]) s.has_rest[parent[i]] = 1;
    for (size_t i = 1; i < n; ++i) {
        if (s.node_q[i] == kNoState || s.pre_begin[nodes[i].end] - s.pre_begin[i] < kDenseTokens) continue;
        std::vector<uint64_t> b(s.bits.size(), 0);
        for (uint32_t k = s.pre_begin[i]; k < s.pre_begin[nodes[i].end]; ++k)
            b[s.pre_tokens[k] >> 6] |= uint64_t(1) << (s.pre_tokens[k] & 63);
        s.dense_at.emplace(static_cast<uint32_t>(i), static_cast<uint32_t>(s.dense_bits.size()));
        s.dense_bits.push_back(std::move(b));
    }
    slices_.push_back(std::move(s));
}

// ids sorted by piece.
TokenTrie::Layout TokenTrie::layout(std::vector<int32_t> ids) const {
    Layout l;
    auto &nodes = l.nodes;
    nodes.push_back({0, 0, 0, 0, 0});
    std::vector<uint32_t> path{0};  // node index per depth
    const std::string *prev = nullptr;
    auto close_to = [&](size_t depth) {
        while (path.size() > depth + 1) {
            nodes[path.back()].end = static_cast<uint32_t>(nodes.size());
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
            const auto idx = static_cast<uint32_t>(nodes.size());
            nodes.push_back({0, 0, 0, static_cast<uint16_t>(d + 1), static_cast<uint8_t>(p[d])});
            path.push_back(idx);
        }
        l.max_depth = std::max(l.max_depth, p.size());
        Node &n = nodes[path.back()];
        if (n.tok_begin == n.tok_end) n.tok_begin = static_cast<uint32_t>(l.tokens.size());
        l.tokens.push_back(id);
        n.tok_end = static_cast<uint32_t>(l.tokens.size());
        prev = &p;
    }
    close_to(0);
    nodes[0].end = static_cast<uint32_t>(nodes.size());
    return l;
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
