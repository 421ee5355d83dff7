#include "tokenizer/pre-tokenizer.h"

#include <map>
#include <mutex>

namespace muse {

namespace {

// The regex lists, as llama.cpp's llm_tokenizer_bpe defines them per pre type.
// GPT-2's own pattern; many families reuse it.
constexpr std::string_view kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// Llama 3's pattern; its case-insensitive contractions (?i:'s|...) are spelled
// out as classes, as llama.cpp does. Qwen2 differs only in \p{N} (one digit).
constexpr std::string_view kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM spells its letter/punctuation/CJK sets as explicit ranges.
// Characters with a canonical singleton decomposition (U+1F7D, U+1FBE, U+1FD3,
// U+1FDB, U+2126, U+212A) are escaped: an editor normalizing the file to NFC
// would silently turn them into other code points and break the ranges.
constexpr std::string_view kDeepseekLetters =
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-"
    "ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-"
    "ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
constexpr std::string_view kDeepseekPunct = "\\s?[!-/:-~！-／：-～‘-‟　-。]+";
constexpr std::string_view kDeepseekCjk = "[一-龥ࠀ-一가-퟿]+";

struct PreDefinition {
    std::vector<std::string_view> patterns;
    bool ignore_merges = false;
};

// Keyed by every `tokenizer.ggml.pre` spelling llama.cpp maps to the family.
const std::map<std::string_view, PreDefinition> &definitions() {
    static const std::map<std::string_view, PreDefinition> table = [] {
        const PreDefinition def{{"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}, false};
        const PreDefinition llama3{{kLlama3}, true};
        const PreDefinition qwen2{{kQwen2}, false};
        const PreDefinition gpt2{{kGpt2}, false};
        const PreDefinition starcoder{{"\\p{N}", kGpt2}, false};
        const PreDefinition falcon{{"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false};
        const PreDefinition deepseek_llm{
            {"[\r\n]", kDeepseekLetters, kDeepseekPunct, "\\s+$", kDeepseekCjk, "\\p{N}+"}, false};
        const PreDefinition deepseek_coder{
            {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"}, false};
        std::map<std::string_view, PreDefinition> t;
        t.emplace("default", def);
        for (auto name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}) t.emplace(name, llama3);
        for (auto name : {"dbrx", "smaug-bpe", "chatglm-bpe"}) t.emplace(name, PreDefinition{{kLlama3}, false});
        for (auto name : {"qwen2", "qwen2.5", "deepseek-r1-qwen", "stablelm2", "megrez"}) t.emplace(name, qwen2);
        for (auto name : {"gpt-2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de",
                          "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "trillion"})
            t.emplace(name, gpt2);
        for (auto name : {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})
            t.emplace(name, starcoder);
        t.emplace("falcon", falcon);
        t.emplace("deepseek-llm", deepseek_llm);
        t.emplace("deepseek-coder", deepseek_coder);
        return t;
    }();
    return table;
}

} // namespace

PreTokenizer::PreTokenizer(const std::vector<std::string_view> &patterns, bool ignore_merges)
    : ignore_merges_(ignore_merges) {
    for (std::string_view p : patterns) regexes_.emplace_back(p);
}

std::shared_ptr<const PreTokenizer> PreTokenizer::for_name(std::string_view pre) {
    if (pre.empty()) pre = "default";
    const auto &defs = definitions();
    const auto it = defs.find(pre);
    if (it == defs.end()) return nullptr;
    // Compiled once per name and shared by every tokenizer that uses it.
    static std::mutex mutex;
    static std::map<std::string_view, std::shared_ptr<const PreTokenizer>> compiled;
    const std::lock_guard<std::mutex> lock(mutex);
    auto &slot = compiled[it->first];
    if (!slot) slot.reset(new PreTokenizer(it->second.patterns, it->second.ignore_merges));
    return slot;
}

std::vector<std::pair<size_t, size_t>> PreTokenizer::split(const CodepointText &text) const {
    std::vector<size_t> lengths{text.cps.size()};
    std::vector<size_t> refined;
    for (const SplitRegex &regex : regexes_) {
        refined.clear();
        size_t start = 0;
        for (size_t len : lengths) {
            regex.split(text, start, start + len, refined);
            start += len;
        }
        lengths.swap(refined);
    }
    std::vector<std::pair<size_t, size_t>> words;
    words.reserve(lengths.size());
    size_t start = 0;
    for (size_t len : lengths) {
        words.emplace_back(start, start + len);
        start += len;
    }
    return words;
}

} // namespace muse
