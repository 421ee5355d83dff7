// The header-only C++ wrapper: RAII, exceptions, value types.
#include "muse/muse.hpp"
#include "test-helpers.h"

#include <catch2/catch.hpp>

#include <unistd.h>

TEST_CASE("muse::model wraps loading, metadata and tensors", "[cpp-api]") {
    const std::string path = "/tmp/muse-cpp-" + std::to_string(::getpid()) + ".gguf";
    muse::test::tiny_model_writer().write_file(path);
    float last = -1;
    muse::model m(path, muse::model_options{}.progress([&](float p) {
        last = p;
        return true;
    }));
    CHECK(last == 1.0f);
    CHECK(m.arch() == "llama");
    CHECK(m.n_vocab() == 16);
    CHECK(m.meta_int("llama.block_count") == 2);
    CHECK(m.meta_string("general.name") == "tiny test model");
    CHECK(m.meta_json("test.i8") == "-7");
    CHECK_FALSE(m.meta_string_or_none("llama.block_count").has_value());
    const auto tensors = m.tensors();
    REQUIRE(tensors.size() == 3);
    CHECK(tensors[2].type_name == "Q8_0");
    CHECK(tensors[0].dims == std::vector<int64_t>{64, 16});
    CHECK(m.tensor_f32(*m.find_tensor("output_norm.weight")).size() == 64);
    CHECK_FALSE(m.find_tensor("nope").has_value());
    try {
        (void)m.meta_int("general.name");
        FAIL("expected muse::error");
    } catch (const muse::error &e) {
        CHECK(e.code() == MUSE_ERR_TYPE_MISMATCH);
        CHECK(std::string(e.what()).find("general.name") != std::string::npos);
    }
    CHECK_THROWS_AS(muse::model("/nonexistent.gguf"), muse::error);
    // An exception thrown by the progress callback cancels the load instead of unwinding through C.
    CHECK_THROWS_AS(muse::model(path, muse::model_options{}.progress([](float) -> bool { throw 1; })), muse::error);
    std::remove(path.c_str());
}

#include "decoder-models.h"

TEST_CASE("muse::session evaluates and generates like the C API", "[cpp-api]") {
    const std::string path = "/tmp/muse-cpp-session-" + std::to_string(::getpid()) + ".gguf";
    muse::test::TinyDecoderSpec spec;
    spec.arch = "qwen3";
    muse::test::tiny_decoder_writer(spec).write_file(path);
    muse::model m(path);
    muse::session_options o;
    o.n_ctx = 64;
    muse::session s(m, o);
    const std::vector<int32_t> prompt = {1, 5, 9, 12};
    const auto cpp = s.generate_tokens(prompt, 12);

    muse_session *cs = nullptr;
    muse_session_params p;
    muse_session_params_init(&p);
    p.n_ctx = 64;
    REQUIRE(muse_session_create(m.get(), &p, &cs) == MUSE_OK);
    std::vector<int32_t> out(12);
    size_t n = 0;
    REQUIRE(muse_session_generate_tokens(cs, 0, prompt.data(), prompt.size(), nullptr, 12, out.data(), &n) == MUSE_OK);
    out.resize(n);
    muse_session_free(cs);
    CHECK(cpp == out);
    CHECK(s.seq_length() == static_cast<int64_t>(prompt.size() + cpp.size() - 1));

    muse::session t(m, o);
    const auto logits = t.eval(prompt);
    CHECK(static_cast<int64_t>(logits.size()) == m.n_vocab());
    CHECK_THROWS_AS(t.eval({1000}), muse::error);
    CHECK_THROWS_AS(t.eval({}), muse::error);
    CHECK_THROWS_AS(muse::session(muse::model(path, muse::model_options{}.vocab_only(true))), muse::error);
    std::remove(path.c_str());
}

#include "chat-models.h"

TEST_CASE("muse::session::chat streams channels and honours the thinking budget", "[cpp-api]") {
    const std::string path = "/tmp/muse-cpp-chat-" + std::to_string(::getpid()) + ".gguf";
    muse::test::tiny_decoder_writer(muse::test::atem_chat_spec()).write_file(path);
    const muse::model m(path);
    ::unlink(path.c_str());
    muse::session s(m);
    muse::generate_options go;
    go.max_tokens = 200;
    go.thinking.mode = MUSE_THINKING_ON;
    go.thinking.budget = 6;
    go.thinking.wrap_up = " Enough.";
    for (const char *t : {"<|eom|>", "<|eot|>", "<|start|>", "<|message|>", "</s>"}) {
        go.sampling.logit_bias_tokens.push_back(m.tokenize(t, false, true).at(0));
        go.sampling.logit_bias_values.push_back(-1e9f);
    }
    int reasoning_events = 0, answer_events = 0, forced = 0;
    const muse::chat_response r =
        s.chat(R"([{"role": "user", "content": "How many?"}])", go, {}, [&](const muse::token_event &e) {
            reasoning_events += e.channel == MUSE_CHANNEL_REASONING;
            answer_events += e.channel == MUSE_CHANNEL_ANSWER;
            forced += e.forced;
            return true;
        });
    CHECK(reasoning_events > 0);
    CHECK(answer_events > 0);
    CHECK(forced > 0);
    CHECK(r.reasoning.size() >= std::string(" Enough.").size());
    CHECK(r.reasoning.substr(r.reasoning.size() - 8) == " Enough.");
    CHECK_FALSE(r.answer.empty());
    CHECK(r.json.find("\"reasoning_end\":\"budget\"") != std::string::npos);
    // Bad JSON is a clear error, and the session still works.
    CHECK_THROWS_AS(s.chat("[not json", go), muse::error);
    go.thinking.mode = MUSE_THINKING_OFF;
    CHECK(s.chat(R"([{"role": "user", "content": "Again?"}])", go).reasoning.empty());
}
