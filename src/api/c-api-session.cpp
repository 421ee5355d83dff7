// C entry points for sessions: creation, evaluation, sequence management.
#include "api/api-guard.h"
#include "api/handles.h"

namespace muse::api {
namespace {

constexpr size_t kSessionParamsSizes[] = {sizeof(muse_session_params)};

Session &session_of(muse_session *s) {
    if (!s || !s->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "session handle is NULL");
    return *s->impl;
}

} // namespace
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
        const int kv = enum_value(p.kv_type);
        if (kv != MUSE_KV_F16 && kv != MUSE_KV_F32) fail(MUSE_ERR_INVALID_ARGUMENT, "unknown kv_type ", kv);
        o.kv_type = kv == MUSE_KV_F32 ? GgmlType::F32 : GgmlType::F16;
        auto handle = std::make_unique<muse_session>();
        handle->impl = std::make_unique<Session>(model->impl->require_decoder(), o);
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
    return guard([&] { session_of(s).cache().seq_remove(seq_id, p0, p1); });
}

MUSE_API muse_status muse_session_seq_copy(muse_session *s, int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    return guard([&] { session_of(s).cache().seq_copy(src, dst, p0, p1); });
}

} // extern "C"
