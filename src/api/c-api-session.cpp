// C entry points for sessions: creation, evaluation, sequence management.
#include "api/api-guard.h"
#include "api/handles.h"
#include "api/session-params.h"
#include "engine/chat-turn.h"

#include <algorithm>
#include <cstddef>

namespace muse::api {
namespace {
constexpr size_t kSessionParamsSizes[] = {sizeof(muse_session_params)};
constexpr size_t kSamplingParamsSizes[] = {sizeof(muse_sampling_params)};
// ABI 2 ended before the thinking block, ABI 3 before the contemplate block, ABI 4 before
// the grammar.
constexpr size_t kGenerateParamsSizes[] = {offsetof(muse_generate_params, thinking),
                                           offsetof(muse_generate_params, contemplate),
                                           offsetof(muse_generate_params, grammar),
                                           offsetof(muse_generate_params, contemplate_seqs), sizeof(muse_generate_params)};
} // namespace

muse_generate_params read_generate_params(const muse_generate_params *params) {
    return read_params(params, muse_generate_params_init, kGenerateParamsSizes, "muse_generate_params");
}

SamplingParams sampling_from(const muse_sampling_params *params) {
    const muse_sampling_params p =
        read_params(params, muse_sampling_params_init, kSamplingParamsSizes, "muse_sampling_params");
    SamplingParams sp;
    sp.temperature = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.presence_penalty = p.presence_penalty;
    sp.frequency_penalty = p.frequency_penalty;
    sp.penalty_last_n = p.penalty_last_n;
    sp.seed = p.seed;
    if (p.n_logit_bias > 0) {
        require(p.logit_bias_tokens, "logit_bias_tokens");
        require(p.logit_bias_values, "logit_bias_values");
        for (size_t i = 0; i < p.n_logit_bias; ++i) sp.logit_bias[p.logit_bias_tokens[i]] += p.logit_bias_values[i];
    }
    return sp;
}

Session &session_of(muse_session *s) {
    if (!s || !s->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "session handle is NULL");
    return *s->impl;
}

} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API void muse_session_params_init(muse_session_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->n_ctx = 4096;
    p->n_seq_max = 1;
    p->n_batch = 512;
    p->seed = 0;
    p->kv_type = MUSE_KV_F16;
}

MUSE_API muse_status muse_session_create(const muse_model *model, const muse_session_params *params,
                                         muse_session **out) {
    if (out) *out = nullptr;
    return guard([&] {
        if (!model || !model->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
        require(out, "out_session");
        const muse_session_params p =
            read_params(params, muse_session_params_init, kSessionParamsSizes, "muse_session_params");
        SessionOptions o;
        o.n_ctx = p.n_ctx;
        o.n_seq_max = p.n_seq_max;
        o.n_batch = p.n_batch;
        o.seed = p.seed;
        o.swa_full = p.swa_full != 0;
        const int kv = enum_value(p.kv_type);
        if (kv != MUSE_KV_F16 && kv != MUSE_KV_F32) fail(MUSE_ERR_INVALID_ARGUMENT, "unknown kv_type ", kv);
        o.kv_type = kv == MUSE_KV_F32 ? GgmlType::F32 : GgmlType::F16;
        auto handle = std::make_unique<muse_session>();
        handle->impl = std::make_unique<Session>(model->impl->require_decoder(), o);
        handle->impl->set_end_of_generation(model->impl->end_of_generation());
        handle->model = model->impl.get();
        *out = handle.release();
    });
}

MUSE_API void muse_session_free(muse_session *s) { delete s; }

MUSE_API muse_status muse_session_eval(muse_session *s, int32_t seq_id, const int32_t *tokens, size_t n_tokens,
                                       const float **out_logits) {
    if (out_logits) *out_logits = nullptr;
    return guard([&] {
        Session &session = session_of(s);
        if (n_tokens > 0) require(tokens, "tokens");
        const std::vector<float> &logits =
            session.eval(std::vector<int32_t>(tokens, tokens + n_tokens), static_cast<int>(seq_id));
        if (out_logits) *out_logits = logits.data();
    });
}

MUSE_API int64_t muse_session_seq_length(const muse_session *s, int32_t seq_id) {
    return guard_value<int64_t>(-1, [&] { return session_of(const_cast<muse_session *>(s)).cache().seq_length(seq_id); });
}

MUSE_API muse_status muse_session_seq_remove(muse_session *s, int32_t seq_id, int32_t p0, int32_t p1) {
    return guard([&] { session_of(s).seq_remove(seq_id, p0, p1); });
}

MUSE_API muse_status muse_session_seq_copy(muse_session *s, int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    return guard([&] { session_of(s).seq_copy(src, dst, p0, p1); });
}

MUSE_API void muse_sampling_params_init(muse_sampling_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

MUSE_API muse_status muse_session_generate_tokens(muse_session *s, int32_t seq_id, const int32_t *prompt,
                                                  size_t n_prompt, const muse_sampling_params *params,
                                                  size_t max_tokens, int32_t *out_tokens, size_t *out_n) {
    if (out_n) *out_n = 0;
    return guard([&] {
        Session &session = session_of(s);
        if (n_prompt > 0) require(prompt, "prompt");
        if (max_tokens > 0) require(out_tokens, "out_tokens");
        require(out_n, "out_n_tokens");
        GenerationSetup setup;
        setup.prompt.ids.assign(prompt, prompt + n_prompt);
        setup.context = setup.prompt.ids;
        setup.sampling = sampling_from(params);
        setup.max_tokens = max_tokens;
        if (max_tokens == 0) return;
        std::unique_ptr<Generation> gen = session.start(seq_id, std::move(setup));
        session.run(*gen);
        const GenerationResult &r = gen->result();
        if (r.finish_reason == "error") fail(r.error_status, r.error);
        std::copy(r.tokens.begin(), r.tokens.end(), out_tokens);
        *out_n = r.tokens.size();
    });
}

MUSE_API void muse_generate_params_init(muse_generate_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->max_tokens = 256;
}

MUSE_API muse_status muse_session_generate(muse_session *s, int32_t seq_id, const int32_t *prompt, size_t n_prompt,
                                           const muse_generate_params *params, muse_token_cb on_token,
                                           void *user_data, size_t *out_n_tokens) {
    if (out_n_tokens) *out_n_tokens = 0;
    return guard([&] {
        if (!on_token) fail(MUSE_ERR_INVALID_ARGUMENT, "on_token callback is NULL");
        // muse_token_event.logprob is always filled here
        StartedRequest req = start_raw_request(s, seq_id, prompt, n_prompt, params, true);
        if (req.group) {
            run_contemplation(*req.group, on_token, user_data);
            const ContemplationResult &c = req.group->result();
            if (out_n_tokens) *out_n_tokens = static_cast<size_t>(c.completion_tokens);
            if (c.finish_reason == "error") fail(c.error_status, c.error);
            return;
        }
        session_of(s).run(*req.gen, [&](const GenerationEvent &ev) { return emit_token_event(ev, on_token, user_data); });
        const GenerationResult &r = req.gen->result();
        if (out_n_tokens) *out_n_tokens = r.tokens.size();
        if (r.finish_reason == "error") fail(r.error_status, r.error);
    });
}

MUSE_API void muse_session_cancel(muse_session *s) {
    if (s && s->impl) s->impl->cancel();
}

} // extern "C"
