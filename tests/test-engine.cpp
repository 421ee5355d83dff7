// The batched engine: batch invariance of the four families (images included),
// the paged cache's isolation, generations (pull API, cancel, snapshot/restore),
// and the one pipeline (stop strings + logprobs + thinking budget in one chat turn,
// from C). Tiny random models (decoder-models.h, chat-models.h), F32 KV cache.
#include "chat-models.h"
#include "core/error.h"
#include "engine/chat-turn.h"
#include "engine/session.h"
#include "model/model.h"

#include "api/handles.h"
#include "backends/cpu/cpu-amx-bf16-matmul.h"
#include "muse/muse.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <thread>

using namespace muse;

namespace {

using test::load;

SessionOptions opts(int n_seq, int64_t n_ctx = 512) {
    SessionOptions o;
    o.n_ctx = n_ctx;
    o.n_seq_max = n_seq;
    o.kv_type = GgmlType::F32;
    return o;
}

// Prompt i: its own length and tokens; sequences 1 and 4 hold an "image" (rows of input
// embeddings, as the vision projector hands them over) in the middle.
struct Prompt {
    MultimodalPrompt mm;
    std::vector<float> embd;
};

Prompt make_prompt(int i, int64_t n_vocab, int64_t n_embd) {
    Prompt p;
    std::mt19937 rng(100 + static_cast<uint32_t>(i));
    const int n = 3 + 2 * i;
    for (int k = 0; k < n; ++k) p.mm.ids.push_back(static_cast<int32_t>(3 + rng() % (n_vocab - 3)));
    if (i == 1 || i == 4) {
        const int64_t rows = 5;
        std::normal_distribution<float> d(0.0f, 1.0f);
        p.embd.resize(static_cast<size_t>(rows * n_embd));
        for (float &v : p.embd) v = d(rng);
        MultimodalPrompt::ImageRun run;
        run.begin = 2;
        run.n_rows = rows;
        std::vector<int32_t> ids(p.mm.ids.begin(), p.mm.ids.begin() + 2);
        for (int64_t r = 0; r < rows; ++r) ids.push_back(-1000 - static_cast<int32_t>(r) - 10 * i);
        ids.insert(ids.end(), p.mm.ids.begin() + 2, p.mm.ids.end());
        p.mm.ids = ids;
        p.mm.runs.push_back(run);
    }
    return p;
}

void point_runs(Prompt &p) {
    for (MultimodalPrompt::ImageRun &r : p.mm.runs) r.embd = p.embd.data();
}

GenerationSetup setup_for(const Prompt &p, size_t max_tokens, const SamplingParams &sp = {}) {
    GenerationSetup s;
    s.prompt = p.mm;
    s.context = p.mm.ids;
    s.sampling = sp;
    s.max_tokens = max_tokens;
    s.n_logprobs = 5;
    return s;
}

// Tokens of two runs agree, or first differ where the reference had a near tie (its two
// best logprobs within 1e-3: float rounding may then pick either).
void check_same_tokens(const GenerationResult &alone, const GenerationResult &together) {
    const size_t n = std::min(alone.tokens.size(), together.tokens.size());
    for (size_t k = 0; k < n; ++k) {
        const auto &a = alone.logprobs[k], &b = together.logprobs[k];
        REQUIRE(a.top.size() == b.top.size());
        for (size_t j = 0; j < a.top.size(); ++j) CHECK(std::fabs(a.top[j].logprob - b.top[j].logprob) < 1e-4f);
        if (alone.tokens[k] != together.tokens[k]) {
            REQUIRE(a.top.size() >= 2);
            CHECK(a.top[0].logprob - a.top[1].logprob < 1e-3f);
            return;
        }
    }
    CHECK(alone.tokens.size() == together.tokens.size());
}

float max_rel(const float *a, const float *b, int64_t n) {
    float diff = 0, scale = 0;
    for (int64_t i = 0; i < n; ++i) {
        diff = std::max(diff, std::fabs(a[i] - b[i]));
        scale = std::max(scale, std::fabs(b[i]));
    }
    return diff / std::max(scale, 1e-6f);
}

} // namespace

TEST_CASE("batch invariance: 1 to 8 sequences generated together equal each alone", "[engine]") {
    for (const char *arch : {"llama", "qwen2", "qwen3", "muse-glimmer"}) {
        test::TinyDecoderSpec spec;
        spec.arch = arch;
        auto l = load(spec);
        const Decoder &dec = l.model->require_decoder();
        const int64_t n_vocab = dec.hparams().n_vocab, n_embd = dec.hparams().n_embd;
        std::vector<Prompt> prompts;
        for (int i = 0; i < 8; ++i) prompts.push_back(make_prompt(i, n_vocab, n_embd));
        for (Prompt &p : prompts) point_runs(p);
        std::vector<GenerationResult> alone;
        for (int i = 0; i < 8; ++i) {
            Session s(dec, opts(1));
            auto g = s.start(0, setup_for(prompts[static_cast<size_t>(i)], 12 + static_cast<size_t>(i)));
            s.run(*g);
            alone.push_back(g->result());
        }
        for (int n : {1, 2, 3, 8}) {
            INFO(arch << ": " << n << " sequences");
            Session s(dec, opts(8));
            std::vector<std::unique_ptr<Generation>> gens;
            for (int i = 0; i < n; ++i)
                gens.push_back(s.start(i, setup_for(prompts[static_cast<size_t>(i)], 12 + static_cast<size_t>(i))));
            while (s.step() > 0) {}
            for (int i = 0; i < n; ++i) {
                INFO("sequence " << i);
                check_same_tokens(alone[static_cast<size_t>(i)], gens[static_cast<size_t>(i)]->result());
            }
        }
    }
}

TEST_CASE("batch invariance: one decode of several sequences gives each its own logits", "[engine]") {
    for (const char *arch : {"llama", "muse-glimmer"}) {
        test::TinyDecoderSpec spec;
        spec.arch = arch;
        auto l = load(spec);
        const Decoder &dec = l.model->require_decoder();
        std::vector<Prompt> prompts;
        for (int i = 0; i < 4; ++i) prompts.push_back(make_prompt(i, dec.hparams().n_vocab, dec.hparams().n_embd));
        Session together(dec, opts(4));
        Batch b;
        for (int i = 0; i < 4; ++i) {
            Prompt &p = prompts[static_cast<size_t>(i)];
            point_runs(p);
            for (size_t r = 0; r < p.mm.ids.size(); ++r) {
                const bool image = p.mm.ids[r] < 0;
                if (image && b.embd.empty()) b.embd.assign(b.tokens.size(), nullptr);
                b.tokens.push_back(p.mm.ids[r]);
                if (!b.embd.empty()) b.embd.push_back(image ? p.embd.data() + (r - 2) * dec.hparams().n_embd : nullptr);
                b.pos.push_back(static_cast<int32_t>(r));
                b.seq.push_back(i);
            }
            b.outputs.push_back(static_cast<int32_t>(b.tokens.size() - 1));
        }
        together.decode(b);
        REQUIRE(together.n_outputs() == 4);
        for (int i = 0; i < 4; ++i) {
            Session alone(dec, opts(1));
            auto g = alone.start(0, setup_for(prompts[static_cast<size_t>(i)], 1));
            alone.run(*g);  // evaluates the prompt, then samples one token from its logits
            INFO(arch << " sequence " << i);
            CHECK(max_rel(together.output(i), alone.logits().data(), dec.hparams().n_vocab) < 1e-4f);
        }
    }
}

TEST_CASE("batch invariance: bulk prompts (BF16 products where the CPU has AMX) equal each alone", "[engine]") {
    // Q8_0 weights: repacked, so a bulk prompt's rows (>= kBulkPromptRows) take the AMX-BF16
    // path where the CPU has it and the decoded rows the integer kernels. Small forward passes
    // (n_batch 24) cut the prompts into chunks that differ between a sequence alone and
    // sequences together; neither the chunking nor the neighbours may change a bit.
    test::TinyDecoderSpec spec;
    spec.arch = "qwen2";
    spec.type = GgmlType::Q8_0;
    auto l = load(spec);
    const Decoder &dec = l.model->require_decoder();
    const int64_t n_vocab = dec.hparams().n_vocab;
    std::vector<Prompt> prompts;
    for (int len : {40, 70, 6, 33}) {
        Prompt p;
        std::mt19937 rng(static_cast<uint32_t>(len));
        for (int k = 0; k < len; ++k) p.mm.ids.push_back(static_cast<int32_t>(3 + rng() % (n_vocab - 3)));
        prompts.push_back(p);
    }
    auto options = [](int n_seq) {
        SessionOptions o = opts(n_seq);
        o.n_batch = 24;
        return o;
    };
    std::vector<GenerationResult> alone;
    for (const Prompt &p : prompts) {
        Session s(dec, options(1));
        auto g = s.start(0, setup_for(p, 10));
        s.run(*g);
        alone.push_back(g->result());
    }
    Session s(dec, options(4));
    std::vector<std::unique_ptr<Generation>> gens;
    for (int i = 0; i < 4; ++i) gens.push_back(s.start(i, setup_for(prompts[static_cast<size_t>(i)], 10)));
    while (s.step() > 0) {}
    for (int i = 0; i < 4; ++i) {
        INFO("sequence " << i);
        const GenerationResult &a = alone[static_cast<size_t>(i)], &b = gens[static_cast<size_t>(i)]->result();
        REQUIRE(a.tokens == b.tokens);
        for (size_t k = 0; k < a.logprobs.size(); ++k)
            for (size_t j = 0; j < a.logprobs[k].top.size(); ++j)
                CHECK(a.logprobs[k].top[j].logprob == b.logprobs[k].top[j].logprob);  // bit for bit
    }
    // The bulk rows did take their own path: with it off, the first token's logprobs move.
    if (cpu::amx_bf16_available()) {
        cpu::amx_bf16_set_enabled(false);
        Session off(dec, options(1));
        auto g = off.start(0, setup_for(prompts[0], 1));
        off.run(*g);
        cpu::amx_bf16_set_enabled(true);
        CHECK(g->result().logprobs[0].top[0].logprob != alone[0].logprobs[0].top[0].logprob);
    }
}

TEST_CASE("paged cache: a sequence reads only its own cells, whatever the others hold", "[engine][kv]") {
    KvCache::Config c;
    c.n_ctx = 8 * 2000 + 64;
    c.n_seq_max = 8;
    c.type = GgmlType::F32;
    c.n_embd_k_gqa = c.n_embd_v_gqa = 4;
    c.is_swa = {false};
    auto backend = make_backend(MUSE_BACKEND_CPU, 1);
    KvCache cache(*backend, c);
    auto fill = [&](int seq, int32_t from, int32_t n) {
        std::vector<int32_t> pos, seqs;
        for (int32_t p = from; p < from + n; ++p) {
            pos.push_back(p);
            seqs.push_back(seq);
        }
        cache.claim(pos, seqs);
    };
    fill(0, 0, 10);
    KvGatherLists alone;
    cache.gather(KvCache::kFull, {10}, {0}, alone);
    for (int s = 1; s < 8; ++s) fill(s, 0, 2000);
    fill(0, 10, 1);
    KvGatherLists crowded;
    cache.gather(KvCache::kFull, {10}, {0}, crowded);
    CHECK(crowded.end[0] - crowded.begin[0] == 11);  // its 11 positions, nothing of the 14,000 others
    CHECK(crowded.cells.size() == 11);
    CHECK(cache.pool(KvCache::kFull).seq_n_blocks(0) == 1);
    // A fork shares the prefix blocks (no copy), and new positions go to blocks of its own.
    const int64_t used = cache.pool(KvCache::kFull).n_blocks_used();
    cache.seq_remove(1, 0, -1);
    cache.seq_copy(0, 1, 0, -1);
    CHECK(cache.pool(KvCache::kFull).n_blocks_used() == used - 2000 / KvBlockPool::kBlockSize);
    fill(1, 11, 1);
    fill(0, 11, 1);
    KvGatherLists a, b;
    cache.gather(KvCache::kFull, {11}, {0}, a);
    cache.gather(KvCache::kFull, {11}, {1}, b);
    CHECK(a.cells.size() == 12);
    CHECK(b.cells.size() == 12);
    CHECK(a.cells.back() != b.cells.back());
    CHECK(std::equal(a.cells.begin(), a.cells.begin() + 11, b.cells.begin()));
    // Removing the parent keeps the shared blocks for the child.
    cache.seq_remove(0, 0, -1);
    KvGatherLists c2;
    cache.gather(KvCache::kFull, {11}, {1}, c2);
    CHECK(c2.cells == b.cells);
}

TEST_CASE("generations: events, snapshot/restore, cancel and errors", "[engine]") {
    test::TinyDecoderSpec spec;
    auto l = load(spec);
    const Decoder &dec = l.model->require_decoder();
    Prompt p = make_prompt(2, dec.hparams().n_vocab, dec.hparams().n_embd);
    SamplingParams sp;
    sp.temperature = 0.9f;
    sp.seed = 11;

    SECTION("snapshot and restore replay the same tokens") {
        Session s(dec, opts(1));
        auto g = s.start(0, setup_for(p, 40, sp));
        while (g->result().tokens.size() < 5 && !g->done()) s.step();
        REQUIRE_FALSE(g->done());
        const auto snap = g->snapshot();
        const int64_t len = s.cache().seq_length(0);
        for (int i = 0; i < 10 && !g->done(); ++i) s.step();
        const std::vector<int32_t> first = g->result().tokens;
        g->restore(*snap);
        CHECK(s.cache().seq_length(0) == len);
        for (int i = 0; i < 10 && !g->done(); ++i) s.step();
        CHECK(g->result().tokens == first);
    }
    SECTION("events: one or more per token, done last; cancel ends it and the session goes on") {
        Session s(dec, opts(2));
        auto g = s.start(0, setup_for(p, 30, sp));
        GenerationEvent ev;
        size_t token_events = 0;
        while (!g->done()) {
            s.step();
            while (g->next_event(ev))
                if (ev.token >= 0) ++token_events;
            if (g->result().tokens.size() == 4) {
                std::thread([&] { g->cancel(); }).join();
            }
        }
        CHECK(g->result().finish_reason == "cancelled");
        CHECK(g->result().tokens.size() == 4);
        CHECK(token_events >= 4);
        auto again = s.start(1, setup_for(p, 3));
        s.run(*again);
        CHECK(again->result().tokens.size() == 3);
    }
    SECTION("a failing step ends its generations with an error; the session keeps working") {
        Session s(dec, opts(2, 64));
        Prompt big = p;
        big.mm.ids.assign(70, 5);  // more than n_ctx
        big.mm.runs.clear();
        auto bad = s.start(0, setup_for(big, 3));
        s.run(*bad);
        CHECK(bad->result().finish_reason == "error");
        CHECK(bad->result().error.find("n_ctx") != std::string::npos);
        auto busy = s.start(1, setup_for(p, 3));
        CHECK_THROWS_AS(s.start(1, setup_for(p, 3)), Error);  // one live generation per sequence
        busy.reset();
        auto ok = s.start(0, setup_for(p, 3));
        s.run(*ok);
        CHECK(ok->result().finish_reason == "length");
    }
}

TEST_CASE("one pipeline: a chat turn with thinking, stop strings, logprobs and a budget, from C", "[engine][c-api]") {
    auto l = load(test::think_chat_spec());
    muse_model handle;
    handle.impl = std::move(l.model);
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_ctx = 512;
    sp.kv_type = MUSE_KV_F32;
    muse_session *s = nullptr;
    REQUIRE(muse_session_create(&handle, &sp, &s) == MUSE_OK);
    const char *messages = R"([{"role": "user", "content": "How many shapes?"}])";

    // First without a stop string: the answer this model gives.
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 80;
    gp.thinking.mode = MUSE_THINKING_ON;
    gp.thinking.budget = 6;
    gp.thinking.wrap_up = ".";  // one token: the bound below is budget + wrap-up + 3 character-finishing tokens
    gp.n_logprobs = 3;
    muse_generation *g = nullptr;
    REQUIRE(muse_generation_start_chat(s, 0, messages, nullptr, &gp, &g) == MUSE_OK);
    muse_event ev;
    ev.struct_size = sizeof ev;
    std::string answer, reasoning;
    int with_top = 0, tokens = 0;
    while (muse_generation_next(g, &ev) == MUSE_OK && ev.kind != MUSE_EVENT_DONE) {
        if (ev.kind == MUSE_EVENT_ANSWER) answer.append(ev.text, ev.text_len);
        if (ev.kind == MUSE_EVENT_REASONING) reasoning.append(ev.text, ev.text_len);
        if (ev.token >= 0 && ev.n_top > 0) {
            ++with_top;
            CHECK(ev.n_top == 3);
            CHECK(ev.top_logprobs[0] >= ev.top_logprobs[1]);
        }
        tokens += ev.token >= 0 && ev.n_top > 0;
    }
    CHECK(ev.kind == MUSE_EVENT_DONE);
    char *json = nullptr;
    REQUIRE(muse_generation_result(g, &json) == MUSE_OK);
    const auto r = nlohmann::json::parse(json);
    muse_string_free(json);
    muse_generation_free(g);
    CHECK(r["usage"]["reasoning_tokens"].get<int>() <= 6 + 1 + 3);
    CHECK(r["usage"]["reasoning_end"] != "unfinished");
    CHECK(r["logprobs"].size() == r["tokens"].size());
    CHECK(with_top == static_cast<int>(r["tokens"].size()));
    CHECK(r["answer"].get<std::string>() == answer);
    REQUIRE(answer.size() >= 2);

    // Again, with a stop string taken from inside that answer (an ASCII letter of its second
    // half: the random model's text is not always valid UTF-8): the turn ends before it.
    const std::string json_answer = r["answer"].get<std::string>();
    size_t at = answer.size() / 2;
    while (at < answer.size() && !std::isalnum(static_cast<unsigned char>(answer[at]))) ++at;
    REQUIRE(at < answer.size());
    const std::string stop = answer.substr(at, 1);
    const char *stops[] = {stop.c_str()};
    gp.stop = stops;
    gp.n_stop = 1;
    std::string streamed;
    auto cb = [](const muse_token_event *e, void *user) {
        if (e->channel == MUSE_CHANNEL_ANSWER) static_cast<std::string *>(user)->append(e->piece, e->piece_len);
        return true;
    };
    char *result = nullptr;
    REQUIRE(muse_session_chat(s, 0, messages, nullptr, &gp, cb, &streamed, &result) == MUSE_OK);
    const auto r2 = nlohmann::json::parse(result);
    muse_string_free(result);
    CHECK(r2["finish_reason"] == "stop");
    CHECK(streamed == answer.substr(0, answer.find(stop)));
    CHECK(r2["answer"].get<std::string>() == json_answer.substr(0, json_answer.find(stop)));
    CHECK(r2["logprobs"].size() == r2["tokens"].size());
    CHECK(r2["usage"]["reasoning_tokens"].get<int>() <= 6 + 1 + 3);
    muse_session_free(s);
}

TEST_CASE("C batches: muse_session_decode and per-row logits", "[engine][c-api]") {
    test::TinyDecoderSpec spec;
    auto l = load(spec);
    muse_model handle;
    handle.impl = std::move(l.model);
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_ctx = 128;
    sp.n_seq_max = 2;
    sp.kv_type = MUSE_KV_F32;
    muse_session *s = nullptr, *ref = nullptr;
    REQUIRE(muse_session_create(&handle, &sp, &s) == MUSE_OK);
    REQUIRE(muse_session_create(&handle, &sp, &ref) == MUSE_OK);
    muse_batch *b = nullptr;
    REQUIRE(muse_batch_create(8, &b) == MUSE_OK);
    const int32_t a[] = {5, 9, 14}, c[] = {7, 3};
    for (int i = 0; i < 3; ++i) REQUIRE(muse_batch_add(b, a[i], -1, 0, i == 2) == MUSE_OK);
    for (int i = 0; i < 2; ++i) REQUIRE(muse_batch_add(b, c[i], -1, 1, i == 1) == MUSE_OK);
    CHECK(muse_batch_size(b) == 5);
    REQUIRE(muse_session_decode(s, b) == MUSE_OK);
    const float *row0 = nullptr, *row1 = nullptr, *want = nullptr;
    REQUIRE(muse_session_logits(s, 2, &row0) == MUSE_OK);  // batch rows, as llama_get_logits_ith
    REQUIRE(muse_session_logits(s, 4, &row1) == MUSE_OK);
    CHECK(muse_session_logits(s, 1, &want) == MUSE_ERR_OUT_OF_RANGE);  // asked for no logits
    CHECK(muse_session_logits(s, 5, &want) == MUSE_ERR_OUT_OF_RANGE);
    const int64_t n_vocab = 64;
    std::vector<float> r0(row0, row0 + n_vocab), r1(row1, row1 + n_vocab);
    REQUIRE(muse_session_eval(ref, 0, a, 3, &want) == MUSE_OK);
    CHECK(max_rel(r0.data(), want, n_vocab) < 1e-4f);
    REQUIRE(muse_session_eval(ref, 1, c, 2, &want) == MUSE_OK);
    CHECK(max_rel(r1.data(), want, n_vocab) < 1e-4f);
    // Bad rows are refused whole; the session is unchanged and still works.
    muse_batch_clear(b);
    REQUIRE(muse_batch_add(b, 5, -1, 0, true) == MUSE_OK);
    REQUIRE(muse_batch_add(b, 9999, -1, 1, true) == MUSE_OK);
    CHECK(muse_session_decode(s, b) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(muse_session_seq_length(s, 0) == 3);
    muse_batch_clear(b);
    REQUIRE(muse_batch_add(b, 5, 1, 0, true) == MUSE_OK);  // position 1 is taken
    CHECK(muse_session_decode(s, b) == MUSE_ERR_INVALID_ARGUMENT);
    muse_batch_clear(b);
    REQUIRE(muse_batch_add(b, 5, -1, 0, true) == MUSE_OK);
    CHECK(muse_session_decode(s, b) == MUSE_OK);
    CHECK(muse_session_seq_length(s, 0) == 4);
    muse_batch *empty = nullptr;
    CHECK(muse_batch_create(0, &empty) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(empty == nullptr);
    CHECK(muse_session_decode(s, nullptr) == MUSE_ERR_INVALID_ARGUMENT);

    // Two generations stepped together by muse_session_step, each pulled afterwards.
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 6;
    muse_generation *g0 = nullptr, *g1 = nullptr;
    REQUIRE(muse_session_seq_remove(s, -1, 0, -1) == MUSE_OK);
    REQUIRE(muse_generation_start(s, 0, a, 3, &gp, &g0) == MUSE_OK);
    REQUIRE(muse_generation_start(s, 1, c, 2, &gp, &g1) == MUSE_OK);
    muse_generation *busy = nullptr;
    CHECK(muse_generation_start(s, 1, c, 2, &gp, &busy) == MUSE_ERR_INVALID_ARGUMENT);
    int32_t live = -1;
    int steps = 0;
    do {
        REQUIRE(muse_session_step(s, &live) == MUSE_OK);
        ++steps;
    } while (live > 0);
    // Both prompts and the first tokens in the first step, then one token of each per step
    // (the sixth ends them: no step evaluates it).
    CHECK(steps == 6);
    CHECK(muse_generation_done(g0));
    for (muse_generation *g : {g0, g1}) {
        char *json = nullptr;
        REQUIRE(muse_generation_result(g, &json) == MUSE_OK);
        CHECK(nlohmann::json::parse(json)["tokens"].size() == 6);
        muse_string_free(json);
        muse_generation_free(g);
    }
    muse_batch_free(b);
    muse_session_free(s);
    muse_session_free(ref);
}
