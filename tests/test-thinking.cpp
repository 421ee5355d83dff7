// The thinking-budget controller and chat turns on tiny random chat models
// (tests/chat-models.h): budgets, min_tokens, thinking off, channels, prefix reuse.
// The random models are steered with logit biases: "never ends its reasoning"
// bans every token that could close it; "always wants to end" boosts the close.
#include "chat-models.h"
#include "engine/chat-turn.h"
#include "core/error.h"
#include "engine/session.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace muse;
using reasoning::Channel;
using reasoning::ThinkingMode;

namespace {

using test::load;

std::unique_ptr<Session> session(const Model &m, int n_seq = 1) {
    SessionOptions o;
    o.n_ctx = 512;
    o.n_seq_max = n_seq;
    o.kv_type = GgmlType::F32;
    auto s = std::make_unique<Session>(m.require_decoder(), o);
    s->set_end_of_generation(m.end_of_generation());
    return s;
}

int32_t id(const Model &m, const char *text) {
    auto t = m.require_tokenizer().find_token(text);
    REQUIRE(t.has_value());
    return *t;
}

// Bans (or boosts) tokens through the sampler's logit bias.
void bias(const Model &m, SamplingParams &sp, std::initializer_list<const char *> texts, float v) {
    for (const char *t : texts) sp.logit_bias[id(m, t)] = v;
}

// Non-ASCII byte pieces: banning them keeps every sampled token a whole character.
void ascii_only(const Model &m, SamplingParams &sp) {
    for (int b = 0x80; b <= 0xFF; ++b) {
        char piece[8];
        std::snprintf(piece, sizeof piece, "<0x%02X>", b);
        sp.logit_bias[id(m, piece)] = -1e9f;
    }
}

ChatRequest question() {
    ChatRequest r;
    r.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "How many shapes?"}}});
    return r;
}

size_t token_count(const Model &m, const std::string &text) {
    return m.require_tokenizer().tokenize(text, false, false).size();
}

// Independent count of the tokens written inside reasoning: scans the rendered text
// for the family's open/close markers (not the channel parser).
int reasoning_token_count(const Model &m, const std::vector<int32_t> &tokens, bool atem) {
    const std::string open = atem ? "to=self<|message|>" : "<think>", close = atem ? "<|eom|>" : "</think>";
    std::string text;
    int n = 0;
    bool inside = false;
    for (int32_t t : tokens) {
        text += m.require_tokenizer().token_to_piece(t, true);
        const size_t o = text.rfind(open), c = text.rfind(close);
        const bool was_inside = inside;
        inside = o != std::string::npos && (c == std::string::npos || c < o);
        // The closing token is framing, and so is the whitespace right after the open tag.
        const bool leading_space =
            inside && text.find_first_not_of(" \n", o + open.size()) == std::string::npos;
        n += was_inside && inside && !leading_space;
    }
    return n;
}

std::string rendered(const Model &m, const std::vector<int32_t> &tokens) {
    return m.require_tokenizer().detokenize(tokens, true);
}

struct Streamed {
    std::string reasoning, answer;
    int events = 0;
};

} // namespace

TEST_CASE("budget: a model that never ends its reasoning is cut at B tokens and answers", "[thinking]") {
    for (bool atem : {true, false}) {
        auto l = load(atem ? test::atem_chat_spec() : test::think_chat_spec());
        const Model &m = *l.model;
        for (int budget : {0, 1, 7, 64}) {
            INFO((atem ? "atem" : "think tags") << " budget " << budget);
            ChatRequest r = question();
            r.thinking.mode = ThinkingMode::on;
            r.thinking.budget = budget;
            r.max_tokens = static_cast<size_t>(budget) + 200;  // byte-level vocab: framing is ~40 tokens
            // Never ends reasoning by itself: every closing or ending token is banned.
            if (atem) bias(m, r.sampling, {"<|eom|>", "<|eot|>", "<|start|>", "<|message|>", "</s>"}, -1e9f);
            else bias(m, r.sampling, {"</think>", "<|im_end|>", "<|im_start|>", "<think>", "</s>"}, -1e9f);
            ascii_only(m, r.sampling);
            auto s = session(m);
            Streamed st;
            const ChatResult res = run_chat_turn(m, *s, r, [&](const ChatEvent &e) {
                ++st.events;
                if (e.channel == Channel::reasoning) st.reasoning += e.text;
                if (e.channel == Channel::answer) st.answer += e.text;
                return true;
            });
            INFO(rendered(m, res.tokens));
            const int wrap = static_cast<int>(token_count(m, r.thinking.wrap_up));
            const int spent = reasoning_token_count(m, res.tokens, atem);
            CHECK(spent <= budget + wrap);
            CHECK(spent == (budget == 0 ? 0 : budget + wrap));  // it never stops early on its own
            CHECK(res.usage.reasoning_tokens == spent);
            CHECK_FALSE(res.answer.empty());
            CHECK(res.usage.end == (budget == 0 ? ReasoningEnd::forced_off : ReasoningEnd::budget));
            if (budget > 0) CHECK(res.reasoning.find("Time is up") != std::string::npos);
            else CHECK(res.reasoning.empty());
            // Streaming delivered exactly the final channels.
            CHECK(st.reasoning == res.reasoning);
            CHECK(st.answer == res.answer);
            CHECK_FALSE(res.malformed);
        }
    }
}

TEST_CASE("min_tokens: reasoning that wants to end continues with the cue until reached", "[thinking]") {
    for (bool atem : {true, false}) {
        auto l = load(atem ? test::atem_chat_spec() : test::think_chat_spec());
        const Model &m = *l.model;
        for (int min_tokens : {5, 20}) {
            INFO((atem ? "atem" : "think tags") << " min_tokens " << min_tokens);
            ChatRequest r = question();
            r.thinking.mode = ThinkingMode::on;
            r.thinking.min_tokens = min_tokens;
            r.max_tokens = 200;
            // Always wants to end its reasoning.
            bias(m, r.sampling, {atem ? "<|eom|>" : "</think>"}, 1e9f);
            auto s = session(m);
            const ChatResult res = run_chat_turn(m, *s, r);
            INFO(rendered(m, res.tokens));
            CHECK(reasoning_token_count(m, res.tokens, atem) >= min_tokens);
            CHECK(res.usage.reasoning_tokens >= min_tokens);
            CHECK(res.usage.cues > 0);
            CHECK(res.reasoning.find("Wait") != std::string::npos);
            CHECK(res.usage.end == ReasoningEnd::natural);
        }
    }
}

TEST_CASE("thinking off: muse-glimmer spends no reasoning token at all", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    for (uint64_t seed : {1, 2, 3}) {
        ChatRequest r = question();
        r.thinking.mode = ThinkingMode::off;
        r.max_tokens = 48;
        r.sampling.temperature = 1.0f;
        r.sampling.seed = seed;
        // Pushed towards framing tokens, so it keeps trying to open new messages.
        bias(m, r.sampling, {"<|eom|>", "<|start|>"}, 2.0f);
        auto s = session(m);
        const ChatResult res = run_chat_turn(m, *s, r);
        CHECK(res.usage.reasoning_tokens == 0);
        CHECK(res.reasoning.empty());
        CHECK(res.usage.end == ReasoningEnd::forced_off);
        // The template was told too: "Reasoning strength: none."
        CHECK(res.prompt.find("Reasoning strength: none.") != std::string::npos);
    }
}

TEST_CASE("controller: reasoning opened later in off mode is closed at once", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    const Tokenizer &tok = m.require_tokenizer();
    const auto format = model_reasoning_format(m);
    ThinkingOptions o;
    o.mode = ThinkingMode::off;
    ThinkingController c(format, reasoning::State::header, o, tok);
    // The forced start: " to=user<|message|>".
    std::string forced;
    for (int32_t t; (t = c.force_next()) >= 0;) {
        forced += tok.token_to_piece(t, true);
        c.on_token(t, true);
    }
    CHECK(forced == " to=user<|message|>");
    // The model answers, ends the message and opens a reasoning message by itself.
    for (int32_t t : tok.tokenize("4<|eom|><|start|>assistant to=self<|message|>", false, true)) {
        REQUIRE(c.force_next() < 0);
        c.on_token(t, false);
    }
    CHECK(c.in_reasoning());
    std::string closing;
    for (int32_t t; (t = c.force_next()) >= 0;) {
        closing += tok.token_to_piece(t, true);
        c.on_token(t, true);
    }
    CHECK(closing == "<|eom|><|start|>assistant to=user<|message|>");
    CHECK_FALSE(c.in_reasoning());
    CHECK(c.finish().reasoning_tokens == 0);
}

TEST_CASE("controller: the budget waits for the current UTF-8 character", "[thinking]") {
    auto l = load(test::think_chat_spec());
    const Model &m = *l.model;
    const Tokenizer &tok = m.require_tokenizer();
    ThinkingOptions o;
    o.mode = ThinkingMode::on;
    o.budget = 2;
    o.wrap_up = "";
    ThinkingController c(model_reasoning_format(m), reasoning::State::reasoning, o, tok);
    const auto feed = [&](const char *piece) {
        const int32_t t = *tok.find_token(piece);
        REQUIRE(c.force_next() < 0);
        c.on_token(t, false);
    };
    feed("<0x61>");  // 'a'
    feed("<0xC3>");  // first byte of 'é': the budget is spent inside a character
    CHECK(c.force_next() < 0);  // so one more token is sampled
    feed("<0xA9>");
    const int32_t t = c.force_next();  // now the answer is forced open
    REQUIRE(t >= 0);
    CHECK(tok.token_to_piece(t, true) == "</think>");
}

TEST_CASE("chat turns reuse the cached prefix and give the same answer", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    ChatRequest r = question();
    r.thinking.mode = ThinkingMode::off;
    r.max_tokens = 12;
    auto s = session(m);
    const ChatResult first = run_chat_turn(m, *s, r);
    CHECK(first.cached_tokens == 0);
    // The next turn's prompt starts with this one's.
    r.messages.push_back({{"role", "assistant"}, {"content", first.answer}});
    r.messages.push_back({{"role", "user"}, {"content", "And now?"}});
    const ChatResult second = run_chat_turn(m, *s, r);
    CHECK(second.cached_tokens > first.prompt_tokens / 2);
    auto fresh = session(m);
    const ChatResult want = run_chat_turn(m, *fresh, r);
    CHECK(want.cached_tokens == 0);
    CHECK(second.tokens == want.tokens);
    CHECK(second.answer == want.answer);
}

TEST_CASE("effort maps to the template variable and a default budget", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    ChatRequest r = question();
    r.effort = reasoning::Effort::low;
    CHECK(render_chat_prompt(m, r).find("Reasoning strength: low.") != std::string::npos);
    CHECK(effort_budget(reasoning::Effort::low) > 0);
    CHECK(effort_budget(reasoning::Effort::high) < 0);
}

TEST_CASE("bad chat input gives clear errors", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    auto s = session(m);
    ChatRequest r = question();
    r.messages = "not an array";
    CHECK_THROWS_AS(run_chat_turn(m, *s, r), Error);
    r = question();
    r.thinking.min_tokens = 10;
    r.thinking.budget = 5;
    CHECK_THROWS_AS(run_chat_turn(m, *s, r), Error);
    // The session still works.
    r.thinking.min_tokens = 0;
    r.max_tokens = 4;
    CHECK(run_chat_turn(m, *s, r).tokens.size() <= 4);
}

TEST_CASE("adaptive early exit: probes leave the response untouched and stop once stable", "[thinking]") {
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    ChatRequest r = question();
    r.thinking.mode = ThinkingMode::on;
    r.thinking.budget = 40;
    r.max_tokens = 200;
    bias(m, r.sampling, {"<|eom|>", "<|eot|>", "<|start|>", "<|message|>", "</s>"}, -1e9f);
    ascii_only(m, r.sampling);
    auto plain = session(m, 2);
    const ChatResult want = run_chat_turn(m, *plain, r);
    REQUIRE(want.usage.end == ReasoningEnd::budget);

    // Probes that can never agree: the response is exactly the one without probes.
    r.thinking.early_exit.enabled = true;
    r.thinking.early_exit.interval = 8;
    r.thinking.early_exit.stable = 1000;
    auto probed = session(m, 2);
    const ChatResult same = run_chat_turn(m, *probed, r);
    CHECK(same.tokens == want.tokens);
    CHECK(same.answer == want.answer);
    CHECK(same.usage.probes == 40 / 8);
    CHECK(same.usage.probe_tokens > 0);
    CHECK(probed->cache().seq_length(1) == 0);  // the probe sequence is left empty

    // Probes that accept any answer at once: reasoning ends at the first probe.
    r.thinking.early_exit.stable = 1;
    r.thinking.early_exit.min_prob = 0.0f;
    auto quick = session(m, 2);
    const ChatResult early = run_chat_turn(m, *quick, r);
    CHECK(early.usage.end == ReasoningEnd::early_exit);
    CHECK(early.usage.reasoning_tokens == 8);
    CHECK(early.usage.probes == 1);
    CHECK_FALSE(early.answer.empty());

    // Without a free sequence: a clear error.
    auto single = session(m, 1);
    CHECK_THROWS_AS(run_chat_turn(m, *single, r), Error);
}

namespace {
// The real muse-glimmer template from ../shared/templates (or $MUSE_SHARED_DIR), "" when absent.
std::string real_glimmer_template() {
    std::vector<std::string> dirs;
    if (const char *env = std::getenv("MUSE_SHARED_DIR"); env && *env) dirs.push_back(env);
#ifdef MUSE_TEST_SHARED_DIR
    dirs.push_back(MUSE_TEST_SHARED_DIR);
#endif
    for (const std::string &d : dirs) {
        std::ifstream in(d + "/templates/muse-glimmer.jinja", std::ios::binary);
        if (in) return std::string(std::istreambuf_iterator<char>(in), {});
    }
    return {};
}
} // namespace

TEST_CASE("the real muse-glimmer template: off spends no reasoning, budgets hold", "[thinking]") {
    const std::string source = real_glimmer_template();
    if (source.empty()) {
        WARN("SKIPPED: ../shared/templates/muse-glimmer.jinja not found (set MUSE_SHARED_DIR)");
        return;
    }
    auto l = load(test::atem_chat_spec());
    const Model &m = *l.model;
    ChatRequest r = question();
    r.template_source = source;
    r.thinking.mode = ThinkingMode::off;
    r.max_tokens = 60;
    r.sampling.temperature = 1.0f;
    bias(m, r.sampling, {"<|eom|>", "<|start|>"}, 2.0f);
    auto s = session(m);
    const ChatResult off = run_chat_turn(m, *s, r);
    CHECK(off.prompt.find("Reasoning strength: none.") != std::string::npos);
    CHECK(off.usage.reasoning_tokens == 0);
    CHECK(off.reasoning.empty());

    r.thinking.mode = ThinkingMode::on;
    r.thinking.budget = 7;
    r.max_tokens = 240;
    r.sampling = SamplingParams{};
    bias(m, r.sampling, {"<|eom|>", "<|eot|>", "<|start|>", "<|message|>", "</s>"}, -1e9f);
    ascii_only(m, r.sampling);
    auto s2 = session(m);
    const ChatResult cut = run_chat_turn(m, *s2, r);
    CHECK(cut.prompt.find("Reasoning strength: high.") != std::string::npos);  // the template's default
    CHECK(cut.usage.end == ReasoningEnd::budget);
    CHECK(cut.usage.reasoning_tokens == 7 + static_cast<int>(token_count(m, r.thinking.wrap_up)));
    CHECK_FALSE(cut.answer.empty());
    // effort reaches the template as reasoning strength.
    r.effort = reasoning::Effort::low;
    CHECK(render_chat_prompt(m, r).find("Reasoning strength: low.") != std::string::npos);
}
