// muse's side of the constrained-decoding benchmark (benchmarks/grammar_bench.py
// runs it and llguidance on the same schemas and tokens and prints the table).
//
//   grammar-bench --vocab V.gguf --dump-vocab OUT.json
//       the vocabulary as the trie sees it (hex pieces), its special and EOG ids
//   grammar-bench --vocab V.gguf --schemas DIR [--no-slices] [--limit N] > results.jsonl
//       per schema file: compile time, MaskBench's pass rule (instances serialized
//       as Python's json.dumps), and a walk of the first valid instance the grammar
//       accepts: its tokens and the mask time before each token and after the last.
//       One fresh grammar per walk (cold: every state is new to it).
#include "core/error.h"
#include "gguf/gguf-file.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"
#include "python-json.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace muse;
using namespace muse::grammar;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;
using test::py_dumps;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_file(const fs::path &p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string hex(const std::string &s) {
    static const char *d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

double us_since(Clock::time_point t) { return std::chrono::duration<double, std::micro>(Clock::now() - t).count(); }

int usage() {
    std::fprintf(stderr,
                 "usage: grammar-bench --vocab V.gguf (--dump-vocab OUT.json | --schemas DIR [--no-slices] "
                 "[--limit N])\n"
                 "  MUSE_GRAMMAR_MAX_STATES=N  overrides MatcherLimits::max_states (to study the state bound)\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    std::string vocab, dump, schemas;
    bool slices = true;
    size_t limit = SIZE_MAX;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--vocab") vocab = next();
        else if (a == "--dump-vocab") dump = next();
        else if (a == "--schemas") schemas = next();
        else if (a == "--no-slices") slices = false;
        else if (a == "--limit") limit = std::stoul(next());
        else return usage();
    }
    if (vocab.empty() || (dump.empty() == schemas.empty())) return usage();
    try {
        gguf::OpenOptions o;
        o.load_tensor_data = false;
        auto file = gguf::File::open(vocab, o);
        auto tok = Tokenizer::from_gguf(*file);
        const auto t0 = Clock::now();
        auto trie = TokenTrie::of(*tok);
        const double trie_ms = us_since(t0) / 1000;

        if (!dump.empty()) {
            ojson out;
            out["n_vocab"] = tok->n_vocab();
            out["eos"] = tok->eos();
            std::vector<int32_t> eog(tok->eog_ids().begin(), tok->eog_ids().end());
            std::sort(eog.begin(), eog.end());
            out["eog"] = eog;
            ojson pieces = ojson::array(), special = ojson::array();
            for (int32_t id = 0; id < tok->n_vocab(); ++id) {
                if (trie->piece(id).empty()) {
                    // Never grammar output here: llguidance marks such tokens with a 0xFF prefix.
                    pieces.push_back("ff" + hex(tok->token_to_piece(id, true)));
                    special.push_back(id);
                } else {
                    pieces.push_back(hex(trie->piece(id)));
                }
            }
            out["pieces"] = pieces;
            out["special"] = special;
            std::ofstream(dump) << out.dump();
            return 0;
        }

        std::vector<fs::path> files;
        for (auto &e : fs::directory_iterator(schemas))
            if (e.path().extension() == ".json") files.push_back(e.path());
        std::sort(files.begin(), files.end());
        if (files.size() > limit) files.resize(limit);
        MatcherLimits ml;
        ml.use_slices = slices;
        if (const char *v = std::getenv("MUSE_GRAMMAR_MAX_STATES")) ml.max_states = std::strtoull(v, nullptr, 10);
        {
            ojson head;
            head["engine"] = "muse";
            head["trie_nodes"] = trie->nodes().size();
            head["trie_ms"] = trie_ms;
            head["slices"] = slices;
            std::cout << head.dump() << "\n";
        }
        for (auto &f : files) {
            const ojson doc = ojson::parse(read_file(f));
            ojson r;
            r["file"] = f.filename().string();
            std::shared_ptr<const Grammar> g;
            auto compile = [&] {
                return Grammar::from_gbnf(json_schema_to_gbnf(doc["schema"]), "root", {}, ml);
            };
            const auto tc = Clock::now();
            try {
                g = compile();
            } catch (const Error &e) {
                r["compile_us"] = us_since(tc);
                r["compiled"] = false;
                r["error"] = e.what();
                std::cout << r.dump() << std::endl;
                continue;
            }
            r["compile_us"] = us_since(tc);
            r["compiled"] = true;
            bool pass = true;
            std::string walk_text;
            for (auto &t : doc["tests"]) {
                const std::string text = py_dumps(t["data"]);
                const bool got = g->matches(text);
                const bool valid = t["valid"].get<bool>();
                pass = pass && got == valid;
                if (valid && got && walk_text.empty()) walk_text = text;
            }
            r["passed"] = pass;
            if (!walk_text.empty()) {
                g = compile();  // cold: the pass check above visited states
                const auto ids = tok->tokenize(walk_text, false, false);
                Matcher m = g->matcher();
                std::vector<double> times;
                std::vector<std::array<size_t, 4>> how;  // per mask: sliced?, trie nodes stepped, new states, covered subtrees
                bool ok = true;
                for (size_t i = 0; i <= ids.size(); ++i) {
                    const MaskStats before = m.mask_stats();
                    const auto s = Clock::now();
                    const auto mask = m.mask(*trie);
                    times.push_back(us_since(s));
                    const MaskStats after = m.mask_stats();
                    how.push_back({after.sliced - before.sliced, after.nodes_walked - before.nodes_walked,
                                   after.states - before.states, after.covered - before.covered});
                    if (i == ids.size()) {
                        ok = ok && mask_test(*mask, trie->eog().front());
                        break;
                    }
                    const bool in_mask = mask_test(*mask, ids[i]);
                    const bool accepted = m.accept_token(ids[i], *trie);
                    if (!accepted || !in_mask) {
                        ok = false;
                        // A rejected token's error first (a bound of the matcher, say), then
                        // a mask that left out a token the grammar accepts.
                        r["walk_error"] = !accepted ? m.error()
                                                             : "token " + std::to_string(ids[i]) + " (at " +
                                                                   std::to_string(i) + ") not in the mask";
                        break;
                    }
                }
                const MaskStats st = m.mask_stats();
                r["text"] = walk_text;
                r["tokens"] = ids;
                r["mask_us"] = times;
                r["walk_ok"] = ok;
                r["mask_how"] = how;
                r["masks_computed"] = st.computed;
                r["masks_sliced"] = st.sliced;
                r["nodes_walked"] = st.nodes_walked;
                r["states"] = st.states;
                r["covered"] = st.covered;
                r["expansions"] = st.expansions;
            }
            std::cout << r.dump() << std::endl;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "grammar-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
