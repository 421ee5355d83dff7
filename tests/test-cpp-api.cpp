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
    CHECK_THROWS_AS(m.device(), muse::error);  // three tensors make no decoder: device() says so
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

#include <atomic>
#include <cmath>
#include <thread>

namespace {

std::string tiny_qwen3_path(const char *tag) {
    const std::string path = "/tmp/muse-cpp-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".gguf";
    muse::test::TinyDecoderSpec spec;
    spec.arch = "qwen3";
    muse::test::tiny_decoder_writer(spec).write_file(path);
    return path;
}

std::vector<int32_t> alone(const muse::model &m, const std::vector<int32_t> &prompt, size_t n,
                           const muse::sampling &sp = {}) {
    muse::session_options o;
    o.n_ctx = 128;
    o.kv_type = MUSE_KV_F32;
    muse::session s(m, o);
    return s.generate_tokens(prompt, n, sp);
}

// The "tokens" array of a generation's result JSON.
std::vector<int32_t> result_tokens(const std::string &json) {
    std::vector<int32_t> out;
    const size_t at = json.find("\"tokens\":[");
    if (at == std::string::npos) return out;
    size_t i = at + 10;
    while (i < json.size() && json[i] != ']') {
        size_t end = 0;
        out.push_back(std::stoi(json.substr(i), &end));
        i += end;
        if (json[i] == ',') ++i;
    }
    return out;
}

} // namespace

TEST_CASE("muse::generation pulls events like the C API", "[cpp-api]") {
    const std::string path = tiny_qwen3_path("pull");
    const muse::model m(path);
    std::remove(path.c_str());
    const std::vector<int32_t> prompt = {1, 5, 9, 12};
    muse::session_options o;
    o.n_ctx = 128;
    o.kv_type = MUSE_KV_F32;
    muse::session s(m, o);
    muse::generate_options go;
    go.max_tokens = 10;
    go.n_logprobs = 2;
    muse::generation g = s.start(prompt, go);
    std::vector<int32_t> seen;
    std::string last_kind_reason;
    int n_events = 0, n_done = 0;
    for (const muse::event &e : g) {
        ++n_events;
        if (e.kind == MUSE_EVENT_DONE) {
            ++n_done;
            last_kind_reason = e.finish_reason;
            continue;
        }
        CHECK(n_done == 0);
        CHECK((e.kind == MUSE_EVENT_TOKEN || e.kind == MUSE_EVENT_ANSWER));
        CHECK(e.seq_id == 0);
        if (e.token >= 0) {
            seen.push_back(e.token);
            CHECK(e.top.size() == 2);
            CHECK(e.logprob <= 0.0f);
        }
    }
    CHECK(n_done == 1);
    CHECK(n_events > 1);
    CHECK((last_kind_reason == "stop" || last_kind_reason == "length"));
    CHECK(g.done());
    muse::event again;
    CHECK_FALSE(g.next(again));  // DONE was returned
    CHECK(result_tokens(g.result_json()) == seen);
    CHECK(g.result_json().find("\"logprobs\"") != std::string::npos);
    CHECK(seen == alone(m, prompt, 10));
    // a second generation on a busy sequence is refused
    muse::generation busy = s.start({}, go);
    CHECK_THROWS_AS(s.start({1}, go), muse::error);
}

TEST_CASE("muse::session::step advances two generations together, equal to alone", "[cpp-api]") {
    const std::string path = tiny_qwen3_path("step");
    const muse::model m(path);
    std::remove(path.c_str());
    const std::vector<int32_t> p0 = {1, 5, 9, 12}, p1 = {2, 3, 4, 7, 8, 11};
    muse::session_options o;
    o.n_ctx = 256;
    o.n_seq_max = 2;
    o.kv_type = MUSE_KV_F32;
    muse::session s(m, o);
    muse::generate_options g0o, g1o;
    g0o.max_tokens = g1o.max_tokens = 8;
    g1o.sampling.temperature = 0.9f;
    g1o.sampling.seed = 4;
    muse::generation a = s.start(p0, g0o, 0), b = s.start(p1, g1o, 1);
    int steps = 0;
    while (s.step() > 0) ++steps;
    CHECK(steps <= 12);
    CHECK(a.done());
    CHECK(b.done());
    CHECK(result_tokens(a.result_json()) == alone(m, p0, 8));
    CHECK(result_tokens(b.result_json()) == alone(m, p1, 8, g1o.sampling));
    int seq1 = 0;
    for (const muse::event &e : b) seq1 += e.seq_id == 1;
    CHECK(seq1 > 0);
}

TEST_CASE("muse::generation::cancel works from another thread", "[cpp-api]") {
    const std::string path = tiny_qwen3_path("cancel");
    const muse::model m(path);
    std::remove(path.c_str());
    muse::session_options o;
    o.n_ctx = 1024;
    muse::session s(m, o);
    muse::generate_options go;
    go.max_tokens = 900;
    muse::generation g = s.start({1, 5, 9}, go);
    muse::event e;
    int n = 0;
    std::thread canceller;
    std::string reason;
    std::atomic<bool> sent{false};
    while (g.next(e)) {
        if (++n == 3) {  // wait for the other thread's call: the tiny model may end on its own within ~70 tokens
            canceller = std::thread([&g, &sent] {
                g.cancel();
                sent = true;
            });
            while (!sent) std::this_thread::yield();
        }
        if (e.kind == MUSE_EVENT_DONE) reason = e.finish_reason;
    }
    canceller.join();
    CHECK(reason == "cancelled");
    CHECK(result_tokens(g.result_json()).size() < 900);
    g = muse::generation();  // frees it: the sequence is free again
    go.max_tokens = 3;
    muse::generation h = s.start({}, go);
    while (h.next(e)) {}
    CHECK((e.finish_reason == "stop" || e.finish_reason == "length"));
}

TEST_CASE("muse::session::decode of a two-sequence batch equals evaluating each alone", "[cpp-api]") {
    const std::string path = tiny_qwen3_path("decode");
    const muse::model m(path);
    std::remove(path.c_str());
    const std::vector<int32_t> a = {1, 5, 9, 12}, b = {2, 3, 4, 7, 8};
    muse::session_options o;
    o.n_ctx = 128;
    o.n_seq_max = 2;
    o.kv_type = MUSE_KV_F32;
    muse::session s(m, o);
    muse::batch batch(16);
    int32_t ia = -1, ib = -1;
    for (size_t i = 0; i < a.size(); ++i) ia = batch.add(a[i], -1, 0, i + 1 == a.size());
    for (size_t i = 0; i < b.size(); ++i) ib = batch.add(b[i], int32_t(i), 1, i + 1 == b.size());
    CHECK(batch.size() == a.size() + b.size());
    CHECK(batch.n_outputs() == 2);
    s.decode(batch);
    const auto la = s.logits(ia), lb = s.logits(ib);
    muse::session_options o1 = o;
    o1.n_seq_max = 1;
    const auto ra = muse::session(m, o1).eval(a), rb = muse::session(m, o1).eval(b);
    auto close = [](const std::vector<float> &x, const std::vector<float> &y) {
        REQUIRE(x.size() == y.size());
        float scale = 1e-6f, diff = 0.0f;
        for (size_t i = 0; i < x.size(); ++i) {
            scale = std::max(scale, std::fabs(y[i]));
            diff = std::max(diff, std::fabs(x[i] - y[i]));
        }
        return diff <= 1e-4f * scale;
    };
    CHECK(close(la, ra));
    CHECK(close(lb, rb));
    CHECK_THROWS_AS(s.logits(7), muse::error);
    // a bad token is an error and leaves the session unchanged and usable
    batch.clear();
    batch.add(1, -1, 0);
    batch.add(100000, -1, 1);
    CHECK_THROWS_AS(s.decode(batch), muse::error);
    CHECK(s.seq_length(0) == int64_t(a.size()));
    batch.clear();
    batch.add(3, -1, 0);
    s.decode(batch);
    CHECK(s.seq_length(0) == int64_t(a.size() + 1));
}

TEST_CASE("muse::session chat with thinking + stop + logprobs + budget together", "[cpp-api]") {
    const std::string path = "/tmp/muse-cpp-chat2-" + std::to_string(::getpid()) + ".gguf";
    muse::test::tiny_decoder_writer(muse::test::atem_chat_spec()).write_file(path);
    const muse::model m(path);
    ::unlink(path.c_str());
    const std::string messages = R"([{"role": "user", "content": "How many?"}])";
    muse::generate_options go;
    go.max_tokens = 60;
    go.n_logprobs = 2;
    go.thinking.mode = MUSE_THINKING_ON;
    go.thinking.budget = 6;
    go.thinking.wrap_up = " Enough.";
    for (const char *t : {"<|eom|>", "<|eot|>", "<|start|>", "<|message|>", "</s>"}) {
        go.sampling.logit_bias_tokens.push_back(m.tokenize(t, false, true).at(0));
        go.sampling.logit_bias_values.push_back(-1e9f);
    }
    // the budget, then at most 3 tokens finishing a partial UTF-8 character, then the wrap-up
    const size_t wrap = m.tokenize(" Enough.").size() + 3;
    muse::session s(m);
    int with_top = 0, tokens = 0;
    const muse::chat_response full = s.chat(messages, go, {}, [&](const muse::token_event &e) {
        if (e.token >= 0) {
            ++tokens;
            with_top += e.top.size() == 2;
        }
        return true;
    });
    CHECK(tokens > 0);
    CHECK(with_top == tokens);
    CHECK(full.json.find("\"reasoning_end\":\"budget\"") != std::string::npos);
    const size_t rt = full.json.find("\"reasoning_tokens\":");
    REQUIRE(rt != std::string::npos);
    CHECK(size_t(std::stoi(full.json.substr(rt + 19))) <= 6 + wrap);
    REQUIRE(full.answer.size() >= 3);
    // the pull API gives the same turn, with logprobs in its result
    muse::session s2(m);
    muse::generation g = s2.start_chat(messages, go);
    std::string answer, reasoning;
    for (const muse::event &e : g) {
        if (e.kind == MUSE_EVENT_ANSWER) answer += e.text;
        if (e.kind == MUSE_EVENT_REASONING) reasoning += e.text;
    }
    CHECK(answer == full.answer);
    CHECK(reasoning == full.reasoning);
    CHECK(g.result_json().find("\"logprobs\":[{") != std::string::npos);
    // a stop string taken from the middle of the answer ends the turn before it
    std::string stop;
    for (size_t i = full.answer.size() / 2; i < full.answer.size() && stop.empty(); ++i)
        if (static_cast<unsigned char>(full.answer[i]) < 0x80 && full.answer[i] != ' ') stop = full.answer.substr(i, 1);
    if (stop.empty()) return;
    go.stop = {stop};
    muse::session s3(m);
    const muse::chat_response cut = s3.chat(messages, go);
    CHECK(cut.answer.find(stop) == std::string::npos);
    CHECK(full.answer.compare(0, cut.answer.size(), cut.answer) == 0);
    CHECK(cut.json.find("\"finish_reason\":\"stop\"") != std::string::npos);
    muse::session s4(m);
    muse::generation h = s4.start_chat(messages, go);
    muse::event e;
    std::string cut_answer;
    while (h.next(e))
        if (e.kind == MUSE_EVENT_ANSWER) cut_answer += e.text;
    CHECK(e.finish_reason == "stop");
    CHECK(cut_answer == cut.answer);
}

#include <algorithm>
#include <cctype>
#include <map>

TEST_CASE("muse::session contemplates: a 3-agent vote end to end", "[cpp-api][contemplate]") {
    const std::string path = "/tmp/muse-cpp-contemplate-" + std::to_string(::getpid()) + ".gguf";
    muse::test::tiny_decoder_writer(muse::test::think_chat_spec()).write_file(path);
    const muse::model m(path);
    ::unlink(path.c_str());
    muse::session_options so;
    so.n_ctx = 1024;
    so.n_seq_max = 3;
    so.kv_type = MUSE_KV_F32;
    muse::session s(m, so);
    const std::string messages = R"([{"role": "user", "content": "Which option?"}])";
    muse::generate_options go;
    go.max_tokens = 1;
    go.thinking.mode = MUSE_THINKING_OFF;
    go.sampling.temperature = 3.0f;
    go.sampling.seed = 2;
    // Only A, a, B and b may be sampled: one-token answers that differ in case.
    std::vector<int32_t> letters;
    for (const char *t : {"A", "a", "B", "b"}) letters.push_back(m.tokenize(t, false, true).at(0));
    for (int32_t t = 0; t < static_cast<int32_t>(m.n_vocab()); ++t)
        if (std::find(letters.begin(), letters.end(), t) == letters.end()) {
            go.sampling.logit_bias_tokens.push_back(t);
            go.sampling.logit_bias_values.push_back(-1e9f);
        }
    go.contemplate.n_agents = 3;
    go.contemplate.aggregate = MUSE_AGGREGATE_VOTE;

    std::map<int32_t, int> events;
    const muse::chat_response r = s.chat(messages, go, {}, [&](const muse::token_event &e) {
        ++events[e.agent];
        return true;
    });
    CHECK(events.count(0) == 1);
    CHECK(events.count(1) == 1);
    CHECK(events.count(2) == 1);
    CHECK(events.count(-1) == 1);  // the aggregate answer
    REQUIRE(r.agents.size() == 3);
    auto lower = [](std::string a) {
        for (char &c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return a;
    };
    std::map<std::string, int> votes;
    std::vector<std::string> order;
    for (const muse::agent_output &a : r.agents) {
        REQUIRE(a.answer.size() == 1);
        CHECK(std::string("AaBb").find(a.answer) != std::string::npos);
        CHECK(a.reasoning.empty());
        if (votes[lower(a.answer)]++ == 0) order.push_back(lower(a.answer));
    }
    std::string best = order.front();
    for (const std::string &k : order)
        if (votes[k] > votes[best]) best = k;
    CHECK(lower(r.answer) == best);
    for (const muse::agent_output &a : r.agents)  // the first agent of the majority
        if (lower(a.answer) == best) {
            CHECK(r.answer == a.answer);
            break;
        }
    CHECK(r.reasoning.empty());
    CHECK(r.json.find("\"method\":\"vote\"") != std::string::npos);
    CHECK(r.json.find("\"prompt_tokens_evaluated\"") != std::string::npos);
    CHECK(muse::detail::json_top_string(r.json, "answer") == r.answer);

    // A host normalizer: every answer is "x", so all three agree.
    go.contemplate.normalize = [](const std::string &) { return std::optional<std::string>("x"); };
    const muse::chat_response x = muse::session(m, so).chat(messages, go);
    CHECK(x.json.find("\"tally\":[[\"x\",3.0]]") != std::string::npos);
    CHECK(x.json.find("\"agreement\":1.0") != std::string::npos);
    CHECK(x.answer == x.agents[0].answer);

    // Pulled: each agent's end is an AGENT_DONE, the last DONE is the aggregate's (agent -1); the
    // generation keeps the normalizer alive after start_chat returns.
    muse::generation g = s.start_chat(messages, go, {}, 0);
    int agent_done = 0;
    muse::event last;
    for (const muse::event &e : g) {
        agent_done += e.kind == MUSE_EVENT_AGENT_DONE;
        last = e;
    }
    CHECK(agent_done == 3);
    CHECK(last.kind == MUSE_EVENT_DONE);
    CHECK(last.agent == -1);
    CHECK(g.result_json().find("\"tally\":[[\"x\",3.0]]") != std::string::npos);
    g = muse::generation();

    // Errors: per-agent arrays of the wrong size, too few sequences; the session keeps working.
    go.contemplate.normalize = nullptr;
    go.contemplate.agent_seeds = {1, 2};
    CHECK_THROWS_WITH(s.chat(messages, go), Catch::Contains("agent_seeds has 2 entries for 3 agents"));
    go.contemplate.agent_seeds = {7, 8, 9};
    go.contemplate.n_agents = 3;
    go.contemplate.aggregate = MUSE_AGGREGATE_SYNTHESIZE;  // needs a fourth sequence
    CHECK_THROWS_WITH(s.chat(messages, go), Catch::Contains("n_seq_max >= 4"));
    go.contemplate.aggregate = MUSE_AGGREGATE_ALL;
    const muse::chat_response all = s.chat(messages, go);
    CHECK(all.json.find("\"seed\":8") != std::string::npos);
    CHECK(all.agents.size() == 3);
}

TEST_CASE("muse::detail::json_top_string reads the library's top-level strings", "[cpp-api]") {
    const std::string j = R"({"agents":[{"answer":"no","x":{"answer":"}"}}],"n":1.5,"answer":"a\"b\\c\n\u00e9\ud83d\ude00","t":true})";
    CHECK(muse::detail::json_top_string(j, "answer") == std::string("a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK_FALSE(muse::detail::json_top_string(j, "n"));
    CHECK_FALSE(muse::detail::json_top_string(j, "missing"));
    CHECK_FALSE(muse::detail::json_top_string("[1]", "answer"));
    CHECK_FALSE(muse::detail::json_top_string(R"({"answer": "unterminated)", "answer"));
}
