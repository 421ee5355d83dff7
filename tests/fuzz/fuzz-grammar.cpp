// The grammar front ends (src/grammar/): GBNF, the regex subset and JSON Schema, on
// hostile text. The first byte picks the front end and the matching input; the rest is
// the grammar. Whatever compiles is then matched against a derived string, byte by byte
// and whole, and the two answers must agree. Errors must be muse::Error, never a crash.
#include "core/error.h"
#include "grammar/grammar.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace muse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int mode = data[0] % 3;
    const std::string text(reinterpret_cast<const char *>(data + 1), size - 1);
    // The input to match: the grammar text's second half (often grammar-shaped itself).
    const std::string probe = text.substr(text.size() / 2);
    try {
        std::shared_ptr<const grammar::Grammar> g;
        if (mode == 0) g = grammar::Grammar::from_gbnf(text);
        else if (mode == 1) g = grammar::Grammar::from_regex(text);
        else g = grammar::Grammar::from_json_schema(nlohmann::ordered_json::parse(text));
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
    } catch (const Error &) {
    } catch (const nlohmann::json::exception &) {
    }
    return 0;
}
