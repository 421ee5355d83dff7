// C entry points of the batched engine: host-driven batches (muse_session_decode) and
// generations pulled event by event (muse_generation_*, muse_session_step).
#include "api/api-guard.h"
#include "api/session-params.h"

#include <algorithm>

namespace muse::api {
namespace {

constexpr size_t kMaxBatch = 65536;

muse_batch &batch_of(muse_batch *b) {
    if (!b) fail(MUSE_ERR_INVALID_ARGUMENT, "batch handle is NULL");
    return *b;
}

muse_generation &generation_of(muse_generation *g) {
    if (!g || (!g->impl && !g->group)) fail(MUSE_ERR_INVALID_ARGUMENT, "generation handle is NULL");
    return *g;
}

int32_t event_kind(GenerationEvent::Kind k) {
    switch (k) {
    case GenerationEvent::Kind::token: return MUSE_EVENT_TOKEN;
    case GenerationEvent::Kind::answer: return MUSE_EVENT_ANSWER;
    case GenerationEvent::Kind::reasoning: return MUSE_EVENT_REASONING;
    case GenerationEvent::Kind::tool_call: return MUSE_EVENT_TOOL_CALL;
    case GenerationEvent::Kind::done: return MUSE_EVENT_DONE;
    case GenerationEvent::Kind::error: return MUSE_EVENT_ERROR;
    case GenerationEvent::Kind::tool_result: return MUSE_EVENT_TOOL_RESULT;
    case GenerationEvent::Kind::artefact: return MUSE_EVENT_ARTEFACT;
    }
    return MUSE_EVENT_ERROR;
}

// Fills the caller's event from g.current (the caller's struct may be older and smaller).
void fill_event(muse_generation &g, muse_event *out) {
    const GenerationEvent &e = g.current;
    g.top_tokens.clear();
    g.top_logprobs.clear();
    for (const TokenLogprob &t : e.top) {
        g.top_tokens.push_back(t.token);
        g.top_logprobs.push_back(t.logprob);
    }
    muse_event ev{};
    ev.struct_size = sizeof(ev);
    ev.kind = event_kind(e.kind);
    ev.seq_id = g.group ? g.group->seq() : g.impl->seq();
    ev.agent = g.group ? g.current_agent : g.impl->agent();
    if (g.group && e.kind == GenerationEvent::Kind::done && g.current_agent >= 0) ev.kind = MUSE_EVENT_AGENT_DONE;
    ev.token = e.token;
    ev.forced = e.forced ? 1 : 0;
    ev.text = e.text.c_str();
    ev.text_len = e.text.size();
    ev.logprob = e.logprob;
    ev.n_top = static_cast<int32_t>(g.top_tokens.size());
    ev.top_tokens = g.top_tokens.data();
    ev.top_logprobs = g.top_logprobs.data();
    if (e.call) {
        ev.tool_name = e.call->name.c_str();
        ev.tool_arguments = e.call->arguments.c_str();
    }
    if (e.kind == GenerationEvent::Kind::done) ev.finish_reason = e.finish_reason.c_str();
    if (e.result) ev.tool_failed = e.result->failed ? 1 : 0;
    if (e.artefact) {
        ev.tool_name = e.text.c_str();
        ev.text = "";
        ev.text_len = 0;
        ev.artefact_data = e.artefact->data.data();
        ev.artefact_size = e.artefact->data.size();
        ev.artefact_mime = e.artefact->mime.c_str();
        ev.artefact_kind = e.artefact->kind.c_str();
    }
    const uint32_t size = out->struct_size;
    if (size < offsetof(muse_event, finish_reason) + sizeof(ev.finish_reason) && size != sizeof(muse_event))
        fail(MUSE_ERR_INVALID_ARGUMENT, "muse_event.struct_size is ", size, "; set it to sizeof(muse_event)");
    std::memcpy(static_cast<void *>(out), &ev, std::min<size_t>(size, sizeof(ev)));
    out->struct_size = size;
}

muse_generation *wrap(muse_session *s, StartedRequest r) {
    auto handle = std::make_unique<muse_generation>();
    handle->impl = std::move(r.gen);
    handle->group = std::move(r.group);
    handle->session = s;
    handle->prompt = std::move(r.prompt);
    return handle.release();
}

} // namespace
} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API muse_status muse_batch_create(size_t capacity, muse_batch **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_batch");
        if (capacity == 0 || capacity > kMaxBatch)
            fail(MUSE_ERR_INVALID_ARGUMENT, "batch capacity ", capacity, " out of range (1..", kMaxBatch, ")");
        auto b = std::make_unique<muse_batch>();
        b->capacity = capacity;
        *out = b.release();
    });
}

MUSE_API void muse_batch_free(muse_batch *b) { delete b; }

MUSE_API void muse_batch_clear(muse_batch *b) {
    if (b) b->impl = Batch{};
}

MUSE_API int64_t muse_batch_size(const muse_batch *b) { return b ? b->impl.size() : -1; }

MUSE_API muse_status muse_batch_add(muse_batch *b, int32_t token, int32_t pos, int32_t seq_id, bool logits) {
    return guard([&] {
        muse_batch &batch = batch_of(b);
        if (batch.impl.tokens.size() >= batch.capacity)
            fail(MUSE_ERR_OUT_OF_RANGE, "the batch is full (capacity ", batch.capacity, ")");
        batch.impl.tokens.push_back(token);
        batch.impl.pos.push_back(pos < 0 ? -1 : pos);
        batch.impl.seq.push_back(seq_id);
        if (logits) batch.impl.outputs.push_back(static_cast<int32_t>(batch.impl.tokens.size() - 1));
    });
}

MUSE_API muse_status muse_session_decode(muse_session *s, const muse_batch *b) {
    return guard([&] {
        Session &session = session_of(s);
        if (!b) fail(MUSE_ERR_INVALID_ARGUMENT, "batch handle is NULL");
        Batch batch = b->impl;
        std::vector<int32_t> next(static_cast<size_t>(session.cache().n_seq_max()), -1);
        for (size_t i = 0; i < batch.pos.size(); ++i) {
            const int seq = batch.seq[i];
            if (seq < 0 || seq >= session.cache().n_seq_max())
                fail(MUSE_ERR_OUT_OF_RANGE, "row ", i, ": sequence id ", seq, " out of range (n_seq_max ",
                     session.cache().n_seq_max(), ")");
            int32_t &at = next[static_cast<size_t>(seq)];
            if (at < 0) at = session.cache().seq_next_pos(seq);
            if (batch.pos[i] < 0) batch.pos[i] = at;
            at = batch.pos[i] + 1;
        }
        session.decode(batch);
    });
}

MUSE_API muse_status muse_session_logits(muse_session *s, int32_t row, const float **out_logits) {
    if (out_logits) *out_logits = nullptr;
    return guard([&] {
        Session &session = session_of(s);
        require(out_logits, "out_logits");
        *out_logits = session.row_logits(row);
    });
}

MUSE_API muse_status muse_generation_start(muse_session *s, int32_t seq_id, const int32_t *prompt, size_t n_prompt,
                                           const muse_generate_params *params, muse_generation **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_generation");
        *out = wrap(s, start_raw_request(s, seq_id, prompt, n_prompt, params, false));
    });
}

MUSE_API muse_status muse_generation_start_chat(muse_session *s, int32_t seq_id, const char *messages_json,
                                                const muse_chat_params *chat, const muse_generate_params *params,
                                                muse_generation **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out_generation");
        *out = wrap(s, start_chat_request(s, seq_id, messages_json, chat, params));
    });
}

MUSE_API muse_status muse_generation_next(muse_generation *g, muse_event *out) {
    return guard([&] {
        muse_generation &gen = generation_of(g);
        require(out, "out_event");
        if (gen.done_delivered) return fill_event(gen, out);  // DONE again
        if (gen.group) {
            while (!gen.group->next_event(gen.current, gen.current_agent)) {
                if (gen.group->done()) fail(MUSE_ERR_INTERNAL, "a contemplating request ended without a done event");
                gen.group->pump();
            }
            if (gen.current.kind == GenerationEvent::Kind::done && gen.current_agent < 0) gen.done_delivered = true;
            return fill_event(gen, out);
        }
        Session &session = session_of(gen.session);
        while (!gen.impl->next_event(gen.current)) {
            if (gen.impl->done()) fail(MUSE_ERR_INTERNAL, "a generation ended without a done event");
            session.step();
        }
        if (gen.current.kind == GenerationEvent::Kind::done) gen.done_delivered = true;
        fill_event(gen, out);
    });
}

MUSE_API muse_status muse_session_step(muse_session *s, int32_t *out_n_live) {
    if (out_n_live) *out_n_live = 0;
    return guard([&] {
        const int live = session_of(s).step();
        if (out_n_live) *out_n_live = live;
    });
}

MUSE_API void muse_generation_cancel(muse_generation *g) {
    if (g && g->impl) g->impl->cancel();
    if (g && g->group) g->group->cancel();
}

MUSE_API bool muse_generation_done(const muse_generation *g) {
    if (g && g->group) return g->group->done();
    return !g || !g->impl || g->impl->done();
}

MUSE_API muse_status muse_generation_result(const muse_generation *g, char **out_json) {
    if (out_json) *out_json = nullptr;
    return guard([&] {
        if (!g || (!g->impl && !g->group)) fail(MUSE_ERR_INVALID_ARGUMENT, "generation handle is NULL");
        require(out_json, "out_json");
        if (g->group) {
            nlohmann::ordered_json j = contemplation_json(g->group->result());
            j["seq_id"] = g->group->seq();
            *out_json = dup_string(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        nlohmann::ordered_json j = result_json(chat_result(*g->impl, g->prompt));
        j["seq_id"] = g->impl->seq();
        j["agent"] = g->impl->agent();
        if (!g->impl->result().error.empty()) j["error"] = g->impl->result().error;
        *out_json = dup_string(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    });
}

MUSE_API void muse_generation_free(muse_generation *g) { delete g; }

} // extern "C"
