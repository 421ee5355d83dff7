// The grammar front ends (src/grammar/): GBNF, the regex subset and JSON Schema, on
// hostile text. The first byte picks the front end and the matching input; the rest is
// the grammar. Whatever compiles is then matched against a derived string, byte by byte
// and whole, and the two answers must agree. Token masks are checked too, on a small
// vocabulary made of the probe's pieces and every single byte: the mask (which uses the
// trie's slices where they apply) must be exactly the tokens the matcher accepts.
// Errors must be muse::Error, never a crash.
#include "core/error.h"
#include "grammar/grammar.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace muse;

namespace {

void check_masks(const grammar::Grammar &g, const std::string &probe) {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
    for (const char *p : {"\"", "\", \"", "ab", "abc d", "\xC3\xA9", "\xE2\x82", "\\n", "{\"", "1.5"})
        pieces.emplace_back(p);
    for (size_t i = 0; i + 2 <= probe.size() && pieces.size() < 400; i += 3)
        pieces.push_back(probe.substr(i, 2 + i % 7));
    pieces.emplace_back();  // a control token
    const auto eog = static_cast<int32_t>(pieces.size());
    pieces.emplace_back("<eos>");
    const grammar::TokenTrie trie(pieces, {eog});
    grammar::Matcher m = g.matcher();
    for (size_t i = 0; i <= probe.size() && i < 64; ++i) {
        const auto mask = m.mask(trie);
        for (int32_t id = 0; id < trie.n_vocab(); ++id) {
            grammar::Matcher copy = m;
            if (copy.accept_token(id, trie) != grammar::mask_test(*mask, id)) __builtin_trap();
        }
        if (i == probe.size() || !m.accept_bytes(probe.substr(i, 1))) break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int mode = data[0] % 3;
    const std::string text(reinterpret_cast<const char *>(data + 1), size - 1);
    // The input to match: the grammar text's second half (often grammar-shaped itself).
    const std::string probe = text.substr(text.size() / 2);
    try {
        // The library's bounds, scaled down so that a unit that reaches them ends well
        // within the fuzzer's per-input timeout under the sanitizers.
        grammar::MatcherLimits limits;
        limits.max_states = 20000;
        limits.max_expansions = size_t(1) << 21;
        std::shared_ptr<const grammar::Grammar> g;
        if (mode == 0) g = grammar::Grammar::from_gbnf(text, "root", {}, limits);
        else if (mode == 1) g = grammar::Grammar::from_gbnf(grammar::regex_to_gbnf(text), "root", {}, limits);
        else
            g = grammar::Grammar::from_gbnf(
                grammar::json_schema_to_gbnf(nlohmann::ordered_json::parse(text)), "root", {}, limits);
        const bool whole = g->matches(probe);
        grammar::Matcher m = g->matcher();
        bool ok = true;
        for (char c : probe) {
            if (!m.accept_bytes(std::string_view(&c, 1))) {
                ok = false;
                break;
            }
        }
        if (whole && !(ok && m.is_accepting())) __builtin_trap();  // the two ways must agree
        check_masks(*g, probe);
    } catch (const Error &) {
    } catch (const nlohmann::json::exception &) {
    }
    return 0;
}
