// SplitRegex: a small backtracking matcher for the regular expressions that
// byte-level BPE pre-tokenizers are defined by (GPT-2's, Llama 3's, ...).
//
// std::regex knows no Unicode categories, so llama.cpp rewrites each pattern
// (collapsing code points to stand-in bytes, or hand-written splitters). This
// matcher instead evaluates the patterns directly on code points, with the
// category flags from unicode-data.cpp. It supports exactly the subset those
// patterns use: literals, `.`, classes `[...]`/`[^...]` with ranges, `\p{X}`
// (X in L N P S M Z C), `\s \S \d \r \n \t` and escaped punctuation;
// alternation; groups `(?:...)`, lookahead `(?=...)`/`(?!...)`; `$`; and the
// greedy quantifiers `? * + {n} {n,} {n,m}` on single-character atoms.
// Matching is leftmost-first, as in ECMAScript/PCRE/Rust `regex` for these
// patterns. Patterns are fixed strings in the source, so a pattern the parser
// does not know is a bug: it throws muse::Error(MUSE_ERR_INTERNAL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace muse {

// A piece of text to split: its code points and their unicode::flags_of.
struct CodepointText {
    std::vector<uint32_t> cps;
    std::vector<uint16_t> flags;
};

class SplitRegex {
public:
    explicit SplitRegex(std::string_view pattern);
    ~SplitRegex();
    SplitRegex(SplitRegex &&) noexcept;
    SplitRegex &operator=(SplitRegex &&) noexcept;

    // Splits text[begin, end) into consecutive pieces: every match, and every
    // stretch between matches, becomes one piece (llama.cpp's
    // unicode_regex_split semantics). Appends the piece lengths to `lengths`.
    // Anchors and lookaheads see only [begin, end).
    void split(const CodepointText &text, size_t begin, size_t end, std::vector<size_t> &lengths) const;

    // Length of the leftmost-first match starting exactly at `pos`, or -1.
    long match_at(const CodepointText &text, size_t pos, size_t end) const;

    // The parsed pattern (defined in split-regex.cpp).
    struct Node;
    struct Sequence;

private:
    std::unique_ptr<Sequence> root_;
    // Set when the pattern is `X+ rest` / `X* rest` with no top-level
    // alternation: a failed match at a position where X matches then fails
    // at every following position of that run of X too (a match there would
    // extend to one here), so split() skips the run instead of retrying it.
    // This keeps DeepSeek's `\s+$` linear on long whitespace runs.
    const Node *leading_run_ = nullptr;
};

} // namespace muse
