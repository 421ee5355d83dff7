// Decoder, KV cache and session behaviour on tiny random models of every family.
// Numerical correctness against independent references lives in
// tests/python/test_decoder_parity.py (numpy) and the llama.cpp comparisons.
#include "core/error.h"
#include "decoder-models.h"
#include "engine/session.h"
#include "model/model.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace muse;

namespace {

using test::load;

// A generation on the session's pipeline, run to its end: the generated tokens.
std::vector<int32_t> generate(Session &s, const std::vector<int32_t> &prompt, size_t n, const SamplingParams &p,
                              int seq = 0) {
    GenerationSetup setup;
    setup.prompt.ids = prompt;
    setup.context = prompt;
    setup.sampling = p;
    setup.max_tokens = n;
    auto g = s.start(seq, std::move(setup));
    s.run(*g);
    return g->result().tokens;
}

SessionOptions opts(int64_t n_ctx = 64, int n_seq = 1, GgmlType kv = GgmlType::F32) {
    SessionOptions o;
    o.n_ctx = n_ctx;
    o.n_seq_max = n_seq;
    o.kv_type = kv;
    return o;
}

float max_diff(const std::vector<float> &a, const std::vector<float> &b) {
    REQUIRE(a.size() == b.size());
    float d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

const std::vector<int32_t> kPrompt = {1, 5, 9, 33, 40, 7, 8, 11, 60, 3};

} // namespace

TEST_CASE("every family: incremental evaluation equals one batch", "[decoder]") {
    for (const char *arch : {"llama", "qwen2", "qwen3", "muse-glimmer"}) {
        for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
            test::TinyDecoderSpec spec;
            spec.arch = arch;
            spec.type = t;
            auto l = load(spec);
            INFO(arch << " " << type_traits(t).name);
            Session whole(l.model->require_decoder(), opts());
            const auto a = whole.eval(kPrompt);
            Session parts(l.model->require_decoder(), opts());
            parts.eval({kPrompt.begin(), kPrompt.begin() + 4});
            parts.eval({kPrompt.begin() + 4, kPrompt.begin() + 5});
            const auto b = parts.eval({kPrompt.begin() + 5, kPrompt.end()});
            CHECK(max_diff(a, b) < 1e-5f);
            for (float v : a) REQUIRE(std::isfinite(v));
            SessionOptions small_batch = opts();
            small_batch.n_batch = 3;
            Session chunked(l.model->require_decoder(), small_batch);
            CHECK(max_diff(a, chunked.eval(kPrompt)) < 1e-5f);
        }
    }
}

TEST_CASE("muse-glimmer layer typing and softcap variants load", "[decoder]") {
    for (const char *pattern : {"array", "scalar", "absent"}) {
        for (bool softcap : {true, false}) {
            test::TinyDecoderSpec spec;
            spec.arch = "muse-glimmer";
            spec.swa_pattern = pattern;
            spec.softcap_key = softcap;
            spec.n_layer = 3;
            auto l = load(spec);
            const auto &hp = l.model->require_decoder().hparams();
            CHECK(hp.final_softcap == (softcap ? 20.0f : 30.0f));
            const std::string p = pattern;
            if (p == "array") CHECK(hp.is_swa == std::vector<bool>{true, false, true});
            if (p == "scalar") CHECK(hp.is_swa == std::vector<bool>{true, false, true});  // period 2: last of each pair is full
            if (p == "absent") CHECK(hp.is_swa == std::vector<bool>{false, false, false});
            Session s(l.model->require_decoder(), opts());
            const auto logits = s.eval(kPrompt);
            for (float v : logits) CHECK(std::fabs(v) <= hp.final_softcap);
        }
    }
}

TEST_CASE("sliding window changes results only beyond the window", "[decoder]") {
    test::TinyDecoderSpec spec;
    spec.arch = "muse-glimmer";  // window 4 on layers 0 and 2 ... (array pattern: even layers)
    auto l = load(spec);
    Session s(l.model->require_decoder(), opts());
    // Same last 4 tokens, different earlier ones: full layers still see the difference.
    const auto a = s.eval({1, 2, 3, 4, 5, 6, 7, 8});
    Session s2(l.model->require_decoder(), opts());
    const auto b = s2.eval({9, 9, 9, 9, 5, 6, 7, 8});
    CHECK(max_diff(a, b) > 1e-4f);
}

TEST_CASE("forked sequences share the prefix and decode independently", "[decoder]") {
    test::TinyDecoderSpec spec;
    spec.arch = "qwen3";
    auto l = load(spec);
    Session s(l.model->require_decoder(), opts(64, 2));
    s.eval({kPrompt.begin(), kPrompt.begin() + 6}, 0);
    s.cache().seq_copy(0, 1, 0, -1);
    CHECK(s.cache().seq_length(1) == 6);
    const auto a0 = s.eval({kPrompt.begin() + 6, kPrompt.end()}, 0);
    const auto a1 = s.eval({kPrompt.begin() + 6, kPrompt.end()}, 1);
    CHECK(max_diff(a0, a1) < 1e-5f);
    const auto b1 = s.eval({44}, 1);
    Session ref(l.model->require_decoder(), opts());
    std::vector<int32_t> full = kPrompt;
    full.push_back(44);
    CHECK(max_diff(b1, ref.eval(full)) < 1e-5f);
    // Removing the tail of a sequence and re-evaluating reproduces the logits.
    s.cache().seq_remove(1, 8, -1);
    CHECK(s.cache().seq_length(1) == 8);
    const auto again = s.eval({kPrompt[8], kPrompt[9], 44}, 1);
    CHECK(max_diff(again, b1) < 1e-5f);
}

TEST_CASE("F16 KV cache stays close to F32", "[decoder]") {
    test::TinyDecoderSpec spec;
    spec.arch = "llama";
    auto l = load(spec);
    Session a(l.model->require_decoder(), opts(64, 1, GgmlType::F32));
    Session b(l.model->require_decoder(), opts(64, 1, GgmlType::F16));
    CHECK(max_diff(a.eval(kPrompt), b.eval(kPrompt)) < 2e-2f);
}

TEST_CASE("bad input gives clear errors and leaves the session usable", "[decoder]") {
    test::TinyDecoderSpec spec;
    auto l = load(spec);
    Session s(l.model->require_decoder(), opts(16));
    CHECK_THROWS_WITH(s.eval({}), Catch::Contains("at least one token"));
    CHECK_THROWS_WITH(s.eval({1, 64}), Catch::Contains("outside the vocabulary"));
    CHECK_THROWS_WITH(s.eval({-1}), Catch::Contains("outside the vocabulary"));
    CHECK_THROWS_WITH(s.eval({1}, 3), Catch::Contains("sequence id"));
    std::vector<int32_t> too_long(17, 1);
    CHECK_THROWS_WITH(s.eval(too_long), Catch::Contains("n_ctx"));
    CHECK(s.cache().seq_length(0) == 0);
    s.eval({1, 2, 3});
    std::vector<int32_t> overflow(14, 1);
    CHECK_THROWS_WITH(s.eval(overflow), Catch::Contains("n_ctx"));
    CHECK(s.cache().seq_length(0) == 3);
    Session fresh(l.model->require_decoder(), opts(16));
    fresh.eval({1, 2, 3});
    CHECK(max_diff(s.eval({4}), fresh.eval({4})) < 1e-6f);  // still works after the errors
}

TEST_CASE("greedy generation is deterministic and stops at end of generation", "[decoder]") {
    test::TinyDecoderSpec spec;
    auto l = load(spec);
    Session s(l.model->require_decoder(), opts());
    s.set_end_of_generation({2});
    const auto a = generate(s, kPrompt, 20, SamplingParams{});
    Session s2(l.model->require_decoder(), opts());
    s2.set_end_of_generation({2});
    const auto b = generate(s2, kPrompt, 20, SamplingParams{});
    CHECK(a == b);
    CHECK(!a.empty());
    if (a.size() < 20) CHECK(a.back() == 2);
    // Each greedy token is the argmax of the logits of the sequence before it.
    Session check(l.model->require_decoder(), opts());
    std::vector<int32_t> seq = kPrompt;
    auto logits = check.eval(seq);
    for (int32_t tok : a) {
        CHECK(tok == std::max_element(logits.begin(), logits.end()) - logits.begin());
        logits = check.eval({tok});
    }
}

TEST_CASE("missing tensors and keys name what is missing", "[decoder]") {
    test::TinyDecoderSpec spec;
    spec.arch = "muse-glimmer";
    spec.tied_output = true;  // muse-glimmer requires output.weight
    auto bytes = test::tiny_decoder_writer(spec).to_bytes();
    // Loading succeeds (the file is valid GGUF); building the decoder names the problem, every time.
    auto model = Model::load_from_memory(bytes.data(), bytes.size(), ModelLoadOptions{});
    CHECK_THROWS_WITH(model->require_decoder(), Catch::Contains("output.weight"));
    CHECK_THROWS_WITH(model->require_decoder(), Catch::Contains("output.weight"));
    test::TinyDecoderSpec unknown;
    unknown.arch = "gpt-neox";
    bytes = test::tiny_decoder_writer(unknown).to_bytes();
    model = Model::load_from_memory(bytes.data(), bytes.size(), ModelLoadOptions{});
    CHECK_THROWS_WITH(model->require_decoder(), Catch::Contains("gpt-neox"));
    test::TinyDecoderSpec tied;
    tied.tied_output = true;  // llama falls back to token_embd
    CHECK_NOTHROW(load(tied).model->require_decoder());
}

// With biases present, equality also checks that the fused bias is sliced like the matrix.
TEST_CASE("muse-glimmer: a fused attn_qkv gives the same model as separate q/k/v", "[decoder]") {
    for (GgmlType t : {GgmlType::F32, GgmlType::Q8_0}) {
      for (bool bias : {false, true}) {
        test::TinyDecoderSpec spec;
        spec.arch = "muse-glimmer";
        spec.type = t;
        spec.qkv_bias = bias;
        auto separate = load(spec);
        spec.fused_qkv = true;
        auto fused = load(spec);
        REQUIRE(fused.model->file().find_tensor("blk.0.attn_qkv.weight"));
        Session a(separate.model->require_decoder(), opts());
        Session b(fused.model->require_decoder(), opts());
        CHECK(max_diff(a.eval(kPrompt), b.eval(kPrompt)) == 0.0f);
      }
    }
}

namespace {
// A 48-token prompt over the tiny vocabulary, long enough to cycle a small SWA pool several times.
std::vector<int32_t> long_prompt(size_t n) {
    std::vector<int32_t> t;
    for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 37 + 11) % 64));
    return t;
}
} // namespace

TEST_CASE("sliding-window layers keep only their window, with the same results", "[decoder][swa]") {
    test::TinyDecoderSpec spec;
    spec.arch = "muse-glimmer";  // window 4 on the even layers
    spec.n_layer = 3;
    auto l = load(spec);
    const auto prompt = long_prompt(48);
    for (int64_t n_batch : {1, 3, 8}) {
        INFO("n_batch " << n_batch);
        SessionOptions small = opts(64);
        small.n_batch = n_batch;
        SessionOptions full = small;
        full.swa_full = true;
        Session a(l.model->require_decoder(), small), b(l.model->require_decoder(), full);
        // 4 * 1 + n_batch cells instead of n_ctx.
        CHECK(a.cache().pool(KvCache::kSwa).capacity() == 4 + n_batch);
        CHECK(b.cache().pool(KvCache::kSwa).capacity() == 64);
        CHECK(a.cache().layer_pool(0) == KvCache::kSwa);
        CHECK(a.cache().layer_pool(1) == KvCache::kFull);
        // Whole prompt in chunks of n_batch, then token by token.
        CHECK(max_diff(a.eval({prompt.begin(), prompt.begin() + 40}), b.eval({prompt.begin(), prompt.begin() + 40})) <
              1e-5f);
        for (size_t i = 40; i < prompt.size(); ++i) CHECK(max_diff(a.eval({prompt[i]}), b.eval({prompt[i]})) < 1e-5f);
        CHECK(a.cache().seq_length(0) == 48);
        CHECK(a.cache().seq_next_pos(0) == 48);
    }
}

TEST_CASE("sliding-window cache: forks and rollback within the window, clear errors beyond it", "[decoder][swa]") {
    test::TinyDecoderSpec spec;
    spec.arch = "muse-glimmer";
    auto l = load(spec);
    const auto prompt = long_prompt(30);
    SessionOptions o = opts(64, 2);
    o.n_batch = 4;
    Session s(l.model->require_decoder(), o);
    CHECK(s.cache().pool(KvCache::kSwa).capacity() == 2 * 4 + 4);
    s.eval(prompt, 0);

    // Forking the whole sequence and continuing both gives the reference logits.
    s.cache().seq_copy(0, 1, 0, -1);
    SessionOptions ref_o = opts(64);
    ref_o.swa_full = true;
    Session ref(l.model->require_decoder(), ref_o);
    std::vector<int32_t> longer = prompt;
    longer.push_back(17);
    const auto want = ref.eval(longer);
    CHECK(max_diff(s.eval({17}, 1), want) < 1e-5f);
    CHECK(max_diff(s.eval({17}, 0), want) < 1e-5f);

    // Cutting back one token (still inside the window) works and reproduces the logits.
    s.cache().seq_remove(0, 30, -1);
    CHECK(max_diff(s.eval({17}, 0), want) < 1e-5f);

    // Cutting back far: the SWA layers dropped those positions. Error, nothing changes.
    try {
        s.cache().seq_remove(0, 10, -1);
        FAIL("seq_remove beyond the kept window should fail");
    } catch (const Error &e) {
        CHECK(e.status() == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("swa_full") != std::string::npos);
    }
    CHECK(s.cache().seq_length(0) == 31);
    // A partial fork that would need dropped positions fails too.
    s.cache().seq_remove(1, 0, -1);
    CHECK_THROWS_AS(s.cache().seq_copy(0, 1, 0, 12), Error);
    CHECK(s.cache().seq_length(1) == 0);
    s.cache().seq_copy(0, 1, 0, -1);  // the whole sequence is fine
    CHECK(s.cache().seq_length(1) == 31);

    // Removing a whole sequence always works, and it starts over cleanly.
    s.cache().seq_remove(0, 0, -1);
    CHECK(s.cache().seq_length(0) == 0);
    Session fresh(l.model->require_decoder(), opts(64));
    CHECK(max_diff(s.eval({prompt.begin(), prompt.begin() + 12}, 0), fresh.eval({prompt.begin(), prompt.begin() + 12})) <
          1e-5f);

    // With swa_full every cut works.
    Session keep(l.model->require_decoder(), ref_o);
    keep.eval(prompt);
    keep.cache().seq_remove(0, 10, -1);
    CHECK(max_diff(keep.eval({prompt.begin() + 10, prompt.begin() + 12}), fresh.logits()) < 1e-5f);
}

TEST_CASE("a full context is refused before anything is evaluated", "[decoder]") {
    test::TinyDecoderSpec spec;
    spec.arch = "llama";
    auto l = load(spec);
    Session s(l.model->require_decoder(), opts(16, 2));
    s.eval(long_prompt(10), 0);
    const auto before = s.logits();
    CHECK_THROWS_AS(s.eval(long_prompt(8), 1), Error);  // 6 cells left
    CHECK(s.cache().seq_length(1) == 0);
    CHECK(s.logits() == before);
    s.eval(long_prompt(6), 1);
    CHECK(s.cache().seq_length(1) == 6);
}
