// Sampler chain and stop strings.
#include "sampling/sampler.h"
#include "sampling/stop-strings.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

using namespace muse;

namespace {
// One pick of a fresh chain (history: the tokens before, for the penalties).
int32_t pick(const SamplingParams &p, const std::vector<float> &logits, std::vector<int32_t> history = {}) {
    return SamplerChain(p, std::move(history)).sample(logits.data(), static_cast<int64_t>(logits.size())).token;
}
int32_t draw(SamplerChain &c, const std::vector<float> &logits) {
    return c.sample(logits.data(), static_cast<int64_t>(logits.size())).token;
}

// A stage that records what it saw and bans or forces one token.
struct TestStage final : SamplerStage {
    const char *label;
    int32_t ban = -1, force = -1;
    std::vector<int32_t> *order;
    std::vector<std::pair<int32_t, bool>> accepted;
    TestStage(const char *l, std::vector<int32_t> *o, int32_t b, int32_t f) : label(l), ban(b), force(f), order(o) {}
    const char *name() const override { return label; }
    void apply(Candidates &c) override {
        order->push_back(label[0]);
        if (ban >= 0) c.logits[size_t(ban)] = -INFINITY;
        if (force >= 0) c.forced = force;
    }
    void accept(int32_t token, bool forced) override { accepted.emplace_back(token, forced); }
    std::unique_ptr<SamplerStage> clone() const override { return std::make_unique<TestStage>(*this); }
};
} // namespace

TEST_CASE("greedy picks the argmax, lowest id on ties", "[sampling]") {
    CHECK(pick(SamplingParams{}, {0.1f, 3.0f, -1.0f, 3.0f}) == 1);
    // Vocabulary-sized rows: the maximum in any lane of the vectorized scan and in the tail,
    // ties across lanes, NaN never picked, everything banned gives id 0.
    for (size_t n : {size_t(37), size_t(151936)}) {
        for (size_t at : {size_t(0), size_t(5), n / 2 + 3, n - 1}) {
            std::vector<float> l(n);
            for (size_t i = 0; i < n; ++i) l[i] = std::sin(static_cast<float>(i));  // all in [-1, 1]
            l[at] = 7.0f;
            CHECK(pick(SamplingParams{}, l) == static_cast<int32_t>(at));
            if (at + 17 < n) {
                l[at + 17] = 7.0f;  // a tie in another lane: the lower id
                CHECK(pick(SamplingParams{}, l) == static_cast<int32_t>(at));
            }
            l[at == 0 ? 1 : 0] = NAN;
            CHECK(pick(SamplingParams{}, l) == static_cast<int32_t>(at));
        }
        CHECK(pick(SamplingParams{}, std::vector<float>(n, -INFINITY)) == 0);
    }
}

TEST_CASE("logit bias can ban and force tokens", "[sampling]") {
    SamplingParams p;
    p.logit_bias[1] = -INFINITY;
    CHECK(pick(p, {0.1f, 3.0f, -1.0f, 2.0f}) == 3);
    p.logit_bias[2] = 100.0f;
    CHECK(pick(p, {0.1f, 3.0f, -1.0f, 2.0f}) == 2);
}

TEST_CASE("penalties push repeated tokens down", "[sampling]") {
    SamplingParams p;
    p.repeat_penalty = 4.0f;
    CHECK(pick(p, {1.0f, 2.0f, 1.9f}, {1, 1}) == 2);
    SamplingParams f;
    f.frequency_penalty = 0.06f;
    CHECK(pick(f, {1.0f, 2.0f, 1.9f}, {1, 1}) == 2);
}

TEST_CASE("temperature sampling follows the distribution and top-k/top-p/min-p restrict it", "[sampling]") {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    SamplerChain s(p);
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    std::map<int, int> counts;
    for (int i = 0; i < 20000; ++i) counts[draw(s, logits)]++;
    CHECK(counts[0] / 20000.0 == Approx(0.5).margin(0.02));
    CHECK(counts[2] / 20000.0 == Approx(0.2).margin(0.02));
    p.top_k = 1;
    CHECK(pick(p, logits) == 0);
    p.top_k = 0;
    p.top_p = 0.5f;
    for (int i = 0; i < 100; ++i) CHECK(pick(p, logits) == 0);
    p.top_p = 1.0f;
    p.min_p = 0.7f;  // keeps tokens with p >= 0.7 * 0.5
    SamplerChain m(p);
    for (int i = 0; i < 200; ++i) CHECK(draw(m, logits) != 2);
    SamplingParams bad;
    bad.top_p = 0.0f;
    CHECK_THROWS(SamplerChain(bad));
}

TEST_CASE("top logprobs are a log-softmax, best first", "[sampling]") {
    const std::vector<float> l = {1.0f, 3.0f, 2.0f};
    const auto top = SamplerChain::top_logprobs(l.data(), 3, 2);
    REQUIRE(top.size() == 2);
    CHECK(top[0].token == 1);
    CHECK(top[1].token == 2);
    const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
    CHECK(top[0].logprob == Approx(3.0 - z));
    CHECK(SamplerChain::logprob_of(l.data(), 3, 0) == Approx(1.0 - z));
    CHECK(SamplerChain::top_logprobs(l.data(), 3, 5).size() == 3);
}

TEST_CASE("stop strings: never emitted, matched across pieces", "[sampling]") {
    StopMatcher m({"</end>", "STOP"});
    std::string out;
    for (const char *piece : {"hello <", "/en", "d> world"}) out += m.push(piece);
    CHECK(m.matched());
    CHECK(out == "hello ");
    StopMatcher n({"STOP"});
    out.clear();
    for (const char *piece : {"ST", "ART and ST", "O"}) out += n.push(piece);
    CHECK_FALSE(n.matched());
    out += n.flush();
    CHECK(out == "START and STO");
    CHECK_THROWS(StopMatcher({""}));
}

TEST_CASE("the chain runs bias, penalties, grammar, controller, then the pick", "[sampling]") {
    std::vector<int32_t> order;
    SamplingParams p;
    p.logit_bias[0] = 10.0f;  // bias makes 0 the best ...
    p.repeat_penalty = 100.0f;  // ... the penalty on the history's 0 undoes it
    SamplerChain c(p, {0});
    auto grammar = std::make_unique<TestStage>("g", &order, 1, -1);  // bans 1
    auto controller = std::make_unique<TestStage>("c", &order, -1, -1);
    TestStage *g = grammar.get(), *ctl = controller.get();
    c.set_grammar(std::move(grammar));
    c.set_controller(std::move(controller));
    const std::vector<float> logits = {1.0f, 5.0f, 3.0f, 2.0f};
    const SamplerChain::Pick a = c.sample(logits.data(), 4);
    CHECK(order == std::vector<int32_t>{'g', 'c'});
    CHECK(a.token == 2);  // 0 penalised below 2, 1 banned by the grammar
    CHECK_FALSE(a.forced);
    c.accept(a.token, a.forced);
    CHECK(g->accepted == std::vector<std::pair<int32_t, bool>>{{2, false}});
    CHECK(ctl->accepted == g->accepted);
    // A forced token skips the pick.
    ctl->force = 3;
    const SamplerChain::Pick b = c.sample(logits.data(), 4);
    CHECK(b.token == 3);
    CHECK(b.forced);
    // A grammar that forces skips the controller.
    order.clear();
    g->force = 0;
    CHECK(c.sample(logits.data(), 4).token == 0);
    CHECK(order == std::vector<int32_t>{'g'});
}

TEST_CASE("a copied chain draws the same tokens (snapshot/restore)", "[sampling]") {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 7;
    p.repeat_penalty = 1.3f;
    std::vector<float> logits(50);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i));
    SamplerChain c(p, {1, 2, 3});
    for (int i = 0; i < 5; ++i) c.next(logits.data(), 50);
    SamplerChain saved = c;
    std::vector<int32_t> first, again;
    for (int i = 0; i < 20; ++i) first.push_back(c.next(logits.data(), 50));
    c = saved;
    for (int i = 0; i < 20; ++i) again.push_back(c.next(logits.data(), 50));
    CHECK(first == again);
}
