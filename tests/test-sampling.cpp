// Sampler chain and stop strings.
#include "sampling/sampler.h"
#include "sampling/stop-strings.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

using namespace muse;

TEST_CASE("greedy picks the argmax, lowest id on ties", "[sampling]") {
    Sampler s(SamplingParams{});
    CHECK(s.sample({0.1f, 3.0f, -1.0f, 3.0f}, {}) == 1);
}

TEST_CASE("logit bias can ban and force tokens", "[sampling]") {
    SamplingParams p;
    p.logit_bias[1] = -INFINITY;
    CHECK(Sampler(p).sample({0.1f, 3.0f, -1.0f, 2.0f}, {}) == 3);
    p.logit_bias[2] = 100.0f;
    CHECK(Sampler(p).sample({0.1f, 3.0f, -1.0f, 2.0f}, {}) == 2);
}

TEST_CASE("penalties push repeated tokens down", "[sampling]") {
    SamplingParams p;
    p.repeat_penalty = 4.0f;
    CHECK(Sampler(p).sample({1.0f, 2.0f, 1.9f}, {1, 1}) == 2);
    SamplingParams f;
    f.frequency_penalty = 0.06f;
    CHECK(Sampler(f).sample({1.0f, 2.0f, 1.9f}, {1, 1}) == 2);
}

TEST_CASE("temperature sampling follows the distribution and top-k/top-p/min-p restrict it", "[sampling]") {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    Sampler s(p);
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    std::map<int, int> counts;
    for (int i = 0; i < 20000; ++i) counts[s.sample(logits, {})]++;
    CHECK(counts[0] / 20000.0 == Approx(0.5).margin(0.02));
    CHECK(counts[2] / 20000.0 == Approx(0.2).margin(0.02));
    p.top_k = 1;
    CHECK(Sampler(p).sample(logits, {}) == 0);
    p.top_k = 0;
    p.top_p = 0.5f;
    for (int i = 0; i < 100; ++i) CHECK(Sampler(p).sample(logits, {}) == 0);
    p.top_p = 1.0f;
    p.min_p = 0.7f;  // keeps tokens with p >= 0.7 * 0.5
    Sampler m(p);
    for (int i = 0; i < 200; ++i) CHECK(m.sample(logits, {}) != 2);
    SamplingParams bad;
    bad.top_p = 0.0f;
    CHECK_THROWS(Sampler(bad));
}

TEST_CASE("top logprobs are a log-softmax, best first", "[sampling]") {
    const auto top = Sampler::top_logprobs({1.0f, 3.0f, 2.0f}, 2);
    REQUIRE(top.size() == 2);
    CHECK(top[0].token == 1);
    CHECK(top[1].token == 2);
    const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
    CHECK(top[0].logprob == Approx(3.0 - z));
    CHECK(Sampler::logprob_of({1.0f, 3.0f, 2.0f}, 0) == Approx(1.0 - z));
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
