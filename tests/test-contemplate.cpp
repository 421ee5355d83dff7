// Contemplating mode: the aggregation rules on constructed answers and traces, and the
// engine end to end on tiny random models (prefix evaluated once, agents independent of
// batching, early stop, synthesis), from C++ and C.
#include "chat-models.h"
#include "core/error.h"
#include "engine/aggregate.h"
#include "engine/chat-turn.h"
#include "engine/contemplation.h"
#include "engine/session.h"
#include "model/model.h"

#include "api/handles.h"
#include "muse/muse.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

using namespace muse;

// ---- aggregation rules --------------------------------------------------------------------

TEST_CASE("answers normalize for voting", "[contemplate]") {
    CHECK(normalize_answer("  The Capital   is PARIS. ") == "the capital is paris");
    CHECK(normalize_answer("Yes.") == "yes");
    CHECK(normalize_answer("true") == "yes");
    CHECK(normalize_answer("No") == "no");
    CHECK(normalize_answer("(B)") == "b");
    CHECK(normalize_answer("b)") == "b");
    CHECK(normalize_answer("The answer is C.") == "c");
    CHECK(normalize_answer("option d") == "d");
    CHECK(normalize_answer("42") == "42");
    CHECK(normalize_answer("42.0") == "42");
    CHECK(normalize_answer("3.50 km") == "3.5 km");
    CHECK(normalize_answer("3.5km") == "3.5 km");
    CHECK(normalize_answer("There are 1,000 apples") == "1000 apples");
    CHECK(normalize_answer("-7") == "-7");
    CHECK(normalize_answer("12%") == "12 %");
    CHECK(normalize_answer("so \\boxed{\\frac{1}{2}} it is") == "\\frac{1}{2}");
    CHECK(normalize_answer("\\boxed{17}") == "17");
    CHECK(normalize_answer("") == "");
}

TEST_CASE("votes: majority, weights, ties to the first, abstentions", "[contemplate]") {
    const std::vector<std::string> answers = {"3", "three apples", "3.0", "4", "", "4"};
    VoteResult v = vote(answers);
    CHECK(v.answer == "3");  // "3", "3.0" -> 2 votes; "4" -> 2 votes; the first seen wins the tie
    CHECK(v.winner == 0);
    CHECK(v.agreement == Approx(2.0 / 5.0));  // the empty answer abstains
    REQUIRE(v.tally.size() == 3);
    v = vote(answers, {0.1, 0.3, 0.1, 0.5, 1.0, 0.5});  // "3": 0.2, "three apples": 0.3, "4": 1.0
    CHECK(v.answer == "4");
    CHECK(v.winner == 3);
    CHECK(v.agreement == Approx(1.0 / 1.5));
    v = vote(answers, {-1, -1, -1, -1, -1, 2.0});  // only the last votes
    CHECK(v.answer == "4");
    CHECK(v.winner == 5);
    CHECK(v.agreement == Approx(1.0));
    // A host normalizer.
    v = vote({"Paris", "paris, france", "Lyon"}, {}, [](const std::string &a) {
        return a.substr(0, 5) == "Paris" || a.substr(0, 5) == "paris" ? std::string("paris") : a;
    });
    CHECK(v.answer == "paris");
    CHECK(vote({}).winner == -1);
}

TEST_CASE("DeepConf: token, group, lowest-group and tail confidence", "[contemplate]") {
    TraceConfidence c(2, 3);
    c.add({-0.1f, -2.0f, -3.9f});  // C = 2.0
    CHECK(c.current_group() == Approx(2.0));
    CHECK_FALSE(c.window_full());
    c.add_confidence(4.0);
    CHECK(c.current_group() == Approx(3.0));
    c.add_confidence(1.0);  // window (4, 1): 2.5
    c.add_confidence(6.0);  // window (1, 6): 3.5
    CHECK(c.lowest_group() == Approx(2.5));
    CHECK(c.tail() == Approx((4.0 + 1.0 + 6.0) / 3));
    CHECK(c.mean() == Approx(13.0 / 4));
    CHECK(trace_score(c, TraceScore::lowest_group) == Approx(2.5));
    TraceConfidence short_trace(8);
    short_trace.add_confidence(1.0);
    short_trace.add_confidence(3.0);
    CHECK(short_trace.lowest_group() == Approx(2.0));  // shorter than a window: the whole trace
    // Keep the top 50% of 5 traces: the 3 best (ceil), in index order.
    CHECK(top_traces({1.0, 5.0, 3.0, 4.0, 2.0}, 0.5) == std::vector<size_t>{1, 2, 3});
    CHECK(top_traces({1.0, 5.0}, 0.01) == std::vector<size_t>{1});
    CHECK(calibrate_threshold({4.0, 1.0, 3.0, 2.0}, 0.0) == Approx(1.0));
    CHECK(calibrate_threshold({4.0, 1.0, 3.0, 2.0}, 50.0) == Approx(2.5));
    CHECK(calibrate_threshold({4.0, 1.0, 3.0, 2.0}, 100.0) == Approx(4.0));
}

// ---- the engine ---------------------------------------------------------------------------

namespace {

using test::load;

SessionOptions opts(int n_seq) {
    SessionOptions o;
    o.n_ctx = 1024;
    o.n_seq_max = n_seq;
    o.kv_type = GgmlType::F32;
    return o;
}

GenerationSetup raw(const std::vector<int32_t> &prompt, size_t max_tokens, float temperature, uint64_t seed,
                    const Tokenizer *tok = nullptr) {
    GenerationSetup s;
    s.tokenizer = tok;  // text (and so answers to vote on) needs it
    s.prompt.ids = prompt;
    s.context = prompt;
    s.max_tokens = max_tokens;
    s.sampling.temperature = temperature;
    s.sampling.seed = seed;
    s.sampling.logit_bias[2] = -INFINITY;  // the end token: every agent runs its full length
    return s;
}

std::vector<GenerationEvent> drain(Contemplation &c, std::vector<int> &agents) {
    std::vector<GenerationEvent> events;
    GenerationEvent ev;
    int agent = 0;
    for (;;) {
        while (c.next_event(ev, agent)) {
            events.push_back(ev);
            agents.push_back(agent);
        }
        if (c.done()) return events;
        c.pump();
    }
}

} // namespace

TEST_CASE("contemplation: the prompt runs once, agents are independent of batching", "[contemplate]") {
    for (const char *arch : {"llama", "muse-glimmer"}) {
        test::TinyDecoderSpec spec;
        spec.arch = arch;
        auto l = load(spec);
        const Decoder &dec = l.model->require_decoder();
        const std::vector<int32_t> prompt = {5, 9, 14, 22, 31, 7, 8, 40, 41, 12, 13};
        const size_t T = 10;
        ContemplateOptions o;
        o.n_agents = 5;
        o.temperature_spread = 0.6f;
        Session s(dec, opts(5));
        Contemplation c(s, 0, raw(prompt, T, 0.8f, 100), o);
        std::vector<int> agents;
        const auto events = drain(c, agents);
        const ContemplationResult &r = c.result();
        INFO(arch);
        REQUIRE(r.agents.size() == 5);
        CHECK(r.finish_reason == "length");
        // Evaluated once: the prompt, then every agent's tokens but its last.
        CHECK(r.prompt_tokens_evaluated == static_cast<int32_t>(prompt.size()));
        CHECK(s.rows_decoded() == static_cast<int64_t>(prompt.size() + 5 * (T - 1)));
        CHECK(r.completion_tokens == static_cast<int32_t>(5 * T));
        // The agents' sequences went back to the session.
        for (int q = 1; q < 5; ++q) CHECK(s.cache().seq_length(q) == 0);
        // Every event names its agent; the last two are the aggregate answer and the done.
        REQUIRE(events.size() >= 2);
        CHECK(agents.back() == -1);
        CHECK(events.back().kind == GenerationEvent::Kind::done);
        // Agent i alone, with its own seed and temperature, writes the same tokens.
        for (int i = 0; i < 5; ++i) {
            const AgentResult &a = r.agents[static_cast<size_t>(i)];
            CHECK(a.seed == 100 + static_cast<uint64_t>(i));
            CHECK(a.temperature == Approx(0.8f + 0.6f * (i / 4.0f - 0.5f)));
            Session alone(dec, opts(1));
            auto g = alone.start(0, raw(prompt, T, a.temperature, a.seed));
            alone.run(*g);
            INFO("agent " << i);
            CHECK(a.tokens == static_cast<int32_t>(T));
            CHECK(a.token_ids == g->result().tokens);
            // Its events carry its index and its tokens, in order.
            std::vector<int32_t> streamed;
            for (size_t k = 0; k < events.size(); ++k)
                if (agents[k] == i && events[k].token >= 0 && (streamed.empty() || k == 0 || agents[k - 1] != i ||
                                                               events[k - 1].token != events[k].token))
                    streamed.push_back(events[k].token);
            CHECK(streamed.size() <= T);
        }
        // The same request with one agent evaluates as many prompt rows.
        Session one(dec, opts(1));
        ContemplateOptions o1;
        o1.n_agents = 1;
        Contemplation c1(one, 0, raw(prompt, T, 0.8f, 100), o1);
        std::vector<int> a1;
        drain(c1, a1);
        CHECK(c1.result().prompt_tokens_evaluated == r.prompt_tokens_evaluated);
    }
}

TEST_CASE("contemplation: weighted votes, early stop and the all mode", "[contemplate]") {
    test::TinyDecoderSpec spec;
    auto l = load(spec);
    const Decoder &dec = l.model->require_decoder();
    const std::vector<int32_t> prompt = {5, 9, 14, 22};
    SECTION("weighted keeps the most confident traces only") {
        ContemplateOptions o;
        o.n_agents = 4;
        o.method = Aggregation::weighted;
        o.keep_top = 0.5;
        Session s(dec, opts(4));
        Contemplation c(s, 0, raw(prompt, 12, 1.0f, 3, &l.model->require_tokenizer()), o);
        std::vector<int> agents;
        drain(c, agents);
        const auto &r = c.result();
        int voted = 0;
        for (const AgentResult &a : r.agents) voted += a.voted;
        CHECK(voted == 2);
        double lowest_voted = 1e9, highest_unvoted = -1e9;
        for (const AgentResult &a : r.agents) {
            CHECK(a.confidence > 0.0);
            if (a.voted) lowest_voted = std::min(lowest_voted, a.confidence);
            else highest_unvoted = std::max(highest_unvoted, a.confidence);
        }
        CHECK(lowest_voted >= highest_unvoted);
    }
    SECTION("a fixed threshold above every confidence stops every agent after one window") {
        ContemplateOptions o;
        o.n_agents = 3;
        o.method = Aggregation::early_stop;
        o.confidence_window = 4;
        o.stop_threshold = 1e9;
        Session s(dec, opts(3));
        Contemplation c(s, 0, raw(prompt, 30, 1.0f, 3), o);
        std::vector<int> agents;
        drain(c, agents);
        for (const AgentResult &a : c.result().agents) {
            CHECK(a.finish_reason == "low_confidence");
            CHECK(a.tokens == 4);
        }
        CHECK(c.result().finish_reason == "low_confidence");
        CHECK(c.result().answer.empty());
    }
    SECTION("a calibrated threshold: warm-up agents first, then the rest against their scores") {
        ContemplateOptions o;
        o.n_agents = 6;
        o.method = Aggregation::early_stop;
        o.confidence_window = 4;
        o.warmup_agents = 2;
        o.stop_percentile = 100;  // later agents must stay above the best warm-up trace's lowest group
        Session s(dec, opts(6));
        Contemplation c(s, 0, raw(prompt, 24, 1.0f, 9, &l.model->require_tokenizer()), o);
        std::vector<int> agents;
        drain(c, agents);
        const auto &r = c.result();
        double best_warmup = -1e9;
        for (int i = 0; i < 2; ++i) {
            CHECK(r.agents[size_t(i)].finish_reason == "length");
            best_warmup = std::max(best_warmup, r.agents[size_t(i)].confidence);
        }
        int stopped = 0;
        for (int i = 2; i < 6; ++i) {
            const AgentResult &a = r.agents[size_t(i)];
            if (a.finish_reason == "low_confidence") {
                ++stopped;
                CHECK(a.tokens <= 24);  // stopped at its last token at the latest
            } else {
                CHECK(a.confidence >= best_warmup);  // it never fell below the threshold
            }
        }
        INFO("stopped " << stopped << " of 4");
        CHECK(stopped >= 1);  // random traces: most fall below the best warm-up one
        // The held agents were forked at the prompt: it ran once.
        CHECK(r.prompt_tokens_evaluated == static_cast<int32_t>(prompt.size()));
        CHECK(s.rows_decoded() < static_cast<int64_t>(prompt.size() + 6 * 24));
    }
    SECTION("all: every answer is reported, the vote too") {
        ContemplateOptions o;
        o.n_agents = 3;
        o.method = Aggregation::all;
        Session s(dec, opts(3));
        Contemplation c(s, 0, raw(prompt, 6, 1.0f, 1, &l.model->require_tokenizer()), o);
        std::vector<int> agents;
        drain(c, agents);
        CHECK(c.result().agents.size() == 3);
        CHECK(c.result().agreement > 0.0);
    }
    SECTION("named sequences: the agents run on exactly those, then they are emptied") {
        ContemplateOptions o;
        o.n_agents = 2;
        o.seqs = {3};  // sequences 1 and 2 are free and empty too: the library must not take them
        Session s(dec, opts(4));
        Contemplation c(s, 0, raw(prompt, 6, 1.0f, 1, &l.model->require_tokenizer()), o);
        bool ran_on_3 = false;
        GenerationEvent ev;
        int agent = 0;
        while (!c.done()) {
            while (c.next_event(ev, agent)) {
            }
            c.pump();
            ran_on_3 = ran_on_3 || s.cache().seq_length(3) > 0;
            CHECK(s.cache().seq_length(1) == 0);
            CHECK(s.cache().seq_length(2) == 0);
        }
        CHECK(ran_on_3);
        CHECK(s.cache().seq_length(3) == 0);
        CHECK(c.result().agents.size() == 2);
        o.seqs = {0};  // the request's own
        CHECK_THROWS_WITH(Contemplation(s, 0, raw(prompt, 4, 0.0f, 0), o), Catch::Contains("the request's own"));
        o.seqs = {1, 2};  // one too many
        CHECK_THROWS_WITH(Contemplation(s, 0, raw(prompt, 4, 0.0f, 0), o), Catch::Contains("need 1"));
        CHECK(s.n_live() == 0);
    }
    SECTION("bad settings are refused") {
        Session s(dec, opts(2));
        ContemplateOptions o;
        o.n_agents = 3;
        CHECK_THROWS_WITH(Contemplation(s, 0, raw(prompt, 4, 0.0f, 0), o), Catch::Contains("n_seq_max >= 3"));
        o.n_agents = 2;
        o.temperatures = {0.5f};
        CHECK_THROWS_WITH(Contemplation(s, 0, raw(prompt, 4, 0.0f, 0), o), Catch::Contains("1 entries for 2 agents"));
        o.temperatures.clear();
        o.method = Aggregation::synthesize;
        CHECK_THROWS_WITH(Contemplation(s, 0, raw(prompt, 4, 0.0f, 0), o), Catch::Contains("n_seq_max >= 3"));
        CHECK(s.n_live() == 0);
    }
}

TEST_CASE("contemplation from C: a chat turn with agents, events per agent, synthesis", "[contemplate][c-api]") {
    auto l = load(test::think_chat_spec());
    muse_model handle;
    handle.impl = std::move(l.model);
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_ctx = 2048;
    sp.n_seq_max = 5;
    sp.kv_type = MUSE_KV_F32;
    muse_session *s = nullptr;
    REQUIRE(muse_session_create(&handle, &sp, &s) == MUSE_OK);
    const char *messages = R"([{"role": "user", "content": "How many shapes?"}])";
    muse_sampling_params samp;
    muse_sampling_params_init(&samp);
    samp.temperature = 0.8f;
    samp.seed = 5;
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.sampling = &samp;
    gp.max_tokens = 24;
    gp.thinking.mode = MUSE_THINKING_ON;
    gp.thinking.budget = 8;
    gp.contemplate.n_agents = 4;
    gp.contemplate.aggregate = MUSE_AGGREGATE_VOTE;

    struct Seen {
        int per_agent[5] = {0, 0, 0, 0, 0};
        int aggregate = 0;
    } seen;
    auto cb = [](const muse_token_event *e, void *user) {
        auto *v = static_cast<Seen *>(user);
        if (e->agent >= 0 && e->agent < 5) ++v->per_agent[e->agent];
        else ++v->aggregate;
        return true;
    };
    char *json = nullptr;
    REQUIRE(muse_session_chat(s, 0, messages, nullptr, &gp, cb, &seen, &json) == MUSE_OK);
    auto r = nlohmann::json::parse(json);
    muse_string_free(json);
    REQUIRE(r["agents"].size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(seen.per_agent[i] > 0);
    CHECK(seen.aggregate == 1);
    CHECK(r["aggregate"]["method"] == "vote");
    CHECK(r["usage"]["prompt_tokens_evaluated"] == r["usage"]["prompt_tokens"]);
    for (const auto &a : r["agents"]) CHECK(a["usage"]["reasoning_tokens"].get<int>() <= 8 + 32 + 3);

    // The pull API: agent events, one AGENT_DONE per agent, then the aggregate and DONE.
    gp.contemplate.aggregate = MUSE_AGGREGATE_SYNTHESIZE;
    muse_generation *g = nullptr;
    REQUIRE(muse_generation_start_chat(s, 0, messages, nullptr, &gp, &g) == MUSE_OK);
    muse_event ev;
    ev.struct_size = sizeof ev;
    int agent_done = 0, synthesis_events = 0;
    std::string aggregate;
    while (muse_generation_next(g, &ev) == MUSE_OK && ev.kind != MUSE_EVENT_DONE) {
        if (ev.kind == MUSE_EVENT_AGENT_DONE) ++agent_done;
        if (ev.agent == 4) ++synthesis_events;
        if (ev.agent == -1 && ev.kind == MUSE_EVENT_ANSWER) aggregate.assign(ev.text, ev.text_len);
    }
    CHECK(ev.agent == -1);
    CHECK(agent_done == 5);  // four agents and the synthesis
    CHECK(synthesis_events > 0);
    REQUIRE(muse_generation_result(g, &json) == MUSE_OK);
    r = nlohmann::json::parse(json);
    muse_string_free(json);
    muse_generation_free(g);
    CHECK(r["aggregate"]["method"] == "synthesize");
    CHECK(r["answer"].get<std::string>().size() == aggregate.size());
    // The synthesis reused the shared prompt up to where the conversations part (the new user
    // message instead of the assistant's turn): a few rows of the generation prompt differ.
    const int prompt_tokens = r["usage"]["prompt_tokens"].get<int>();
    size_t header = 0;  // "<|im_start|>assistant\n": where the two prompts part
    const std::string h = "<|im_start|>assistant\n";
    REQUIRE(muse_tokenize(&handle, h.c_str(), h.size(), false, true, nullptr, 0, &header) == MUSE_ERR_OUT_OF_RANGE);
    // (the new user message starts with <|im_start|> too: one token of the header is shared)
    CHECK(r["aggregate"]["synthesis_cached_tokens"].get<int>() == prompt_tokens - static_cast<int>(header) + 1);
    // The request's own prompt came from the cache of the turn before (prefix reuse), and
    // the agents evaluated nothing of it again.
    CHECK(r["usage"]["prompt_tokens_evaluated"].get<int>() ==
          prompt_tokens - r["usage"]["cached_tokens"].get<int>() + r["aggregate"]["synthesis_prompt_tokens"].get<int>() -
              r["aggregate"]["synthesis_cached_tokens"].get<int>());
    for (int q = 1; q < 5; ++q) CHECK(muse_session_seq_length(s, q) == 0);

    // Errors: too few sequences; the session keeps working.
    gp.contemplate.n_agents = 9;
    CHECK(muse_session_chat(s, 0, messages, nullptr, &gp, nullptr, nullptr, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    gp.contemplate.n_agents = 2;
    gp.contemplate.aggregate = 42;
    CHECK(muse_session_chat(s, 0, messages, nullptr, &gp, nullptr, nullptr, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    gp.contemplate.aggregate = MUSE_AGGREGATE_WEIGHTED;
    CHECK(muse_session_chat(s, 0, messages, nullptr, &gp, nullptr, nullptr, nullptr) == MUSE_OK);
    muse_session_free(s);
}
