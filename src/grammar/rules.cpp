#include "grammar/rules.h"

#include "core/error.h"

#include <algorithm>
#include <functional>

namespace muse::grammar {

std::vector<CodeRange> normalize_ranges(std::vector<CodeRange> ranges, bool negated) {
    std::sort(ranges.begin(), ranges.end(), [](auto &a, auto &b) { return a.lo < b.lo; });
    std::vector<CodeRange> merged;
    for (auto r : ranges) {
        if (r.lo > r.hi) continue;
        if (!merged.empty() && r.lo <= merged.back().hi + 1)
            merged.back().hi = std::max(merged.back().hi, r.hi);
        else
            merged.push_back(r);
    }
    if (negated) {
        std::vector<CodeRange> out;
        uint32_t next = 0;
        for (auto r : merged) {
            if (r.lo > next) out.push_back({next, r.lo - 1});
            next = r.hi + 1;
        }
        if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
        merged = std::move(out);
    }
    // Surrogates and anything past U+10FFFF have no UTF-8 encoding.
    std::vector<CodeRange> out;
    for (auto r : merged) {
        r.hi = std::min<uint32_t>(r.hi, 0x10FFFF);
        if (r.lo > r.hi) continue;
        if (r.hi < 0xD800 || r.lo > 0xDFFF) {
            out.push_back(r);
            continue;
        }
        if (r.lo < 0xD800) out.push_back({r.lo, 0xD7FF});
        if (r.hi > 0xDFFF) out.push_back({0xE000, r.hi});
    }
    return out;
}

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool decode_utf8(const std::string &s, size_t &i, uint32_t &cp) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    int n;
    uint32_t min;
    if (b0 < 0x80) {
        cp = b0, n = 0, min = 0;
    } else if ((b0 & 0xE0) == 0xC0) {
        cp = b0 & 0x1F, n = 1, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        cp = b0 & 0x0F, n = 2, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        cp = b0 & 0x07, n = 3, min = 0x10000;
    } else {
        return false;
    }
    if (i + n >= s.size()) return false;
    for (int k = 1; k <= n; ++k) {
        const auto b = static_cast<uint8_t>(s[i + k]);
        if ((b & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
    return true;
}

namespace {

// Splits a range of code points into runs whose UTF-8 encodings are products of
// byte ranges (each byte position independent), so each run is one sequence of
// byte-set elements.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>> &out) {
    if (lo > hi) return;
    for (uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
        if (lo <= max && hi > max) {
            utf8_sequences(lo, max, out);
            utf8_sequences(max + 1, hi, out);
            return;
        }
    }
    if (hi <= 0x7F) {
        out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
        return;
    }
    for (int i = 1; i < 4; ++i) {
        const uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                utf8_sequences(lo, lo | m, out);
                utf8_sequences((lo | m) + 1, hi, out);
                return;
            }
            if ((hi & m) != m) {
                utf8_sequences(lo, (hi & ~m) - 1, out);
                utf8_sequences(hi & ~m, hi, out);
                return;
            }
        }
    }
    std::string a, b;
    append_utf8(a, lo);
    append_utf8(b, hi);
    std::vector<std::pair<uint8_t, uint8_t>> seq;
    for (size_t k = 0; k < a.size(); ++k) seq.push_back({static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k])});
    out.push_back(std::move(seq));
}

}  // namespace

uint32_t RulesBuilder::named(const std::string &name) {
    auto it = by_name_.find(name);
    if (it != by_name_.end()) return it->second;
    const auto id = static_cast<uint32_t>(names_.size());
    names_.push_back(name);
    alts_.emplace_back();
    defined_.push_back(false);
    by_name_[name] = id;
    return id;
}

uint32_t RulesBuilder::fresh(const std::string &hint) {
    std::string name = hint;
    for (int n = static_cast<int>(names_.size());; ++n) {
        name = hint + "#" + std::to_string(n);  // '#' never appears in a GBNF name
        if (!by_name_.count(name)) break;
    }
    const uint32_t id = named(name);
    defined_[id] = true;
    return id;
}

void RulesBuilder::count(size_t n) {
    n_elems_ += n;
    if (n_elems_ > limits_.max_elements)
        fail(MUSE_ERR_INVALID_ARGUMENT, "grammar too large: more than ", limits_.max_elements,
             " elements after expanding repetitions and character classes");
}

void RulesBuilder::add_alt(uint32_t rule, Seq seq) {
    count(seq.size() + 1);
    alts_[rule].push_back(std::move(seq));
}

uint32_t RulesBuilder::bytes(const ByteSet &set) {
    auto it = set_ids_.find(set);
    if (it != set_ids_.end()) return kElemBytes | it->second;
    const auto id = static_cast<uint32_t>(sets_.size());
    sets_.push_back(set);
    set_ids_[set] = id;
    return kElemBytes | id;
}

uint32_t RulesBuilder::chars(std::vector<CodeRange> ranges, bool negated) {
    ranges = normalize_ranges(std::move(ranges), negated);
    ByteSet ascii;
    bool has_ascii = false, has_multi = false;
    std::string key;
    for (auto r : ranges) {
        key += std::to_string(r.lo) + "-" + std::to_string(r.hi) + ",";
        if (r.lo < 0x80) {
            ascii.set_range(static_cast<uint8_t>(r.lo), static_cast<uint8_t>(std::min<uint32_t>(r.hi, 0x7F)));
            has_ascii = true;
        }
        if (r.hi >= 0x80) has_multi = true;
    }
    if (!has_multi) {
        if (!has_ascii) {
            // An empty class matches nothing: a rule without alternatives.
            auto it = class_rules_.find("");
            if (it != class_rules_.end()) return ref(it->second);
            const uint32_t r = fresh("empty-class");
            class_rules_[""] = r;
            return ref(r);
        }
        return bytes(ascii);
    }
    auto it = class_rules_.find(key);
    if (it != class_rules_.end()) return ref(it->second);
    const uint32_t rule = fresh("char");
    class_rules_[key] = rule;
    if (has_ascii) add_alt(rule, {bytes(ascii)});
    std::vector<std::vector<std::pair<uint8_t, uint8_t>>> seqs;
    for (auto r : ranges)
        if (r.hi >= 0x80) utf8_sequences(std::max<uint32_t>(r.lo, 0x80), r.hi, seqs);
    for (auto &s : seqs) {
        Seq seq;
        for (auto [lo, hi] : s) {
            ByteSet b;
            b.set_range(lo, hi);
            seq.push_back(bytes(b));
        }
        add_alt(rule, std::move(seq));
    }
    return ref(rule);
}

void RulesBuilder::literal(Seq &seq, const std::string &utf8) {
    count(utf8.size());
    for (unsigned char c : utf8) {
        ByteSet b;
        b.set(c);
        seq.push_back(bytes(b));
    }
}

void RulesBuilder::repeat(Seq &seq, uint32_t elem, uint32_t min, int64_t max) {
    if (min > limits_.max_repetition || max > static_cast<int64_t>(limits_.max_repetition))
        fail(MUSE_ERR_INVALID_ARGUMENT, "repetition count ", std::max<int64_t>(min, max), " exceeds the limit of ",
             limits_.max_repetition);
    count(min);
    for (uint32_t i = 0; i < min; ++i) seq.push_back(elem);
    if (max < 0) {
        // S ::= x S | (empty). The recursive reference is the last element, which the
        // matcher treats as a tail call: the stack does not grow per repetition.
        auto key = std::make_pair(elem, int64_t(-1));
        auto it = star_rules_.find(key);
        if (it == star_rules_.end()) {
            const uint32_t s = fresh("star");
            add_alt(s, {elem, ref(s)});
            add_alt(s, {});
            it = star_rules_.emplace(key, s).first;
        }
        seq.push_back(ref(it->second));
        return;
    }
    // Up to k more: O_k ::= x O_{k-1} | (empty), O_1 ::= x | (empty). One rule per count,
    // shared between repetitions of the same element.
    const int64_t k = max - static_cast<int64_t>(min);
    if (k <= 0) return;
    uint32_t prev = 0;
    for (int64_t j = 1; j <= k; ++j) {
        auto key = std::make_pair(elem, j);
        auto it = star_rules_.find(key);
        if (it == star_rules_.end()) {
            const uint32_t o = fresh("opt");
            if (j == 1)
                add_alt(o, {elem});
            else
                add_alt(o, {elem, ref(prev)});
            add_alt(o, {});
            it = star_rules_.emplace(key, o).first;
        }
        prev = it->second;
    }
    seq.push_back(ref(prev));
}

Rules RulesBuilder::finish(uint32_t root) {
    const size_t n = names_.size();
    for (size_t r = 0; r < n; ++r)
        if (!defined_[r]) fail(MUSE_ERR_INVALID_ARGUMENT, "rule '", names_[r], "' is referenced but not defined");

    // Nullable rules (fixpoint), then left recursion: a rule reaching itself through
    // leading references with only nullable elements before them would make the
    // matcher's expansion loop, so it is refused.
    std::vector<bool> nullable(n, false);
    auto elem_nullable = [&](uint32_t e) { return elem_kind(e) == kElemRef && nullable[elem_arg(e)]; };
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
            if (nullable[r]) continue;
            for (auto &alt : alts_[r]) {
                if (std::all_of(alt.begin(), alt.end(), elem_nullable)) {
                    nullable[r] = true;
                    changed = true;
                    break;
                }
            }
        }
    }
    // Leading references: rule r can start with rule t. The edge is a tail call when
    // the reference ends its alternative (the matcher then does not push). A cycle of
    // tail calls only revisits the same stack, which the expansion stops at; a cycle
    // with a pushing edge grows the stack without consuming input: refused.
    struct Edge {
        uint32_t to;
        bool tail;
    };
    std::vector<std::vector<Edge>> leading(n);
    for (size_t r = 0; r < n; ++r)
        for (auto &alt : alts_[r])
            for (size_t i = 0; i < alt.size(); ++i) {
                const uint32_t e = alt[i];
                if (elem_kind(e) == kElemRef) leading[r].push_back({elem_arg(e), i + 1 == alt.size()});
                if (!elem_nullable(e)) break;
            }
    // Strongly connected components (iterative Tarjan).
    std::vector<int64_t> index(n, -1), low(n, 0), comp(n, -1);
    std::vector<uint32_t> stack;
    std::vector<bool> on(n, false);
    int64_t counter = 0, n_comp = 0;
    for (size_t s0 = 0; s0 < n; ++s0) {
        if (index[s0] >= 0) continue;
        std::vector<std::pair<uint32_t, size_t>> call{{static_cast<uint32_t>(s0), 0}};
        index[s0] = low[s0] = counter++;
        stack.push_back(static_cast<uint32_t>(s0));
        on[s0] = true;
        while (!call.empty()) {
            auto &[v, i] = call.back();
            if (i < leading[v].size()) {
                const uint32_t w = leading[v][i++].to;
                if (index[w] < 0) {
                    index[w] = low[w] = counter++;
                    stack.push_back(w);
                    on[w] = true;
                    call.push_back({w, 0});
                } else if (on[w]) {
                    low[v] = std::min(low[v], index[w]);
                }
                continue;
            }
            if (low[v] == index[v]) {
                uint32_t w;
                do {
                    w = stack.back();
                    stack.pop_back();
                    on[w] = false;
                    comp[w] = n_comp;
                } while (w != v);
                ++n_comp;
            }
            const uint32_t done = v;
            call.pop_back();
            if (!call.empty()) low[call.back().first] = std::min(low[call.back().first], low[done]);
        }
    }
    for (size_t r = 0; r < n; ++r)
        for (auto &e : leading[r])
            if (!e.tail && comp[e.to] == comp[r])
                fail(MUSE_ERR_INVALID_ARGUMENT, "left recursion is not supported: rule '", names_[r],
                     "' can begin with itself through '", names_[e.to],
                     "' (rewrite it as repetition, e.g. a ::= b (op b)*)");

    Rules out;
    out.sets = sets_;
    out.names = names_;
    out.root = root;
    out.alt_starts.resize(n);
    out.elems.reserve(n_elems_ + 1);
    for (size_t r = 0; r < n; ++r)
        for (auto &alt : alts_[r]) {
            out.alt_starts[r].push_back(static_cast<uint32_t>(out.elems.size()));
            out.elems.insert(out.elems.end(), alt.begin(), alt.end());
            out.elems.push_back(kElemEnd);
        }
    std::map<uint32_t, std::vector<uint32_t>> chains;  // x -> O_j by j
    for (auto &[key, rule] : star_rules_) {
        const auto [elem, j] = key;
        if (j < 1 || elem_nullable(elem)) continue;
        auto &c = chains[elem];
        if (c.size() <= static_cast<size_t>(j)) c.resize(static_cast<size_t>(j) + 1, 0);
        c[static_cast<size_t>(j)] = rule;
    }
    for (auto &[elem, c] : chains) out.count_chains.push_back(std::move(c));
    return out;
}

}  // namespace muse::grammar
