// C entry points for chat turns and thinking-controlled generation (engine/chat-turn.h).
#include "api/api-guard.h"
#include "api/grammar-handle.h"
#include "api/image-handle.h"
#include "api/session-params.h"
#include "multimodal/mm-prompt.h"
#include "tokenizer/tokenizer.h"

#include <cmath>
#include <cstddef>
#include <cstring>

namespace muse::api {
namespace {

using nlohmann::ordered_json;

// ABI 4 ended before response_format_json.
constexpr size_t kChatParamsSizes[] = {offsetof(muse_chat_params, response_format_json), sizeof(muse_chat_params)};

ordered_json parse_json_arg(const char *text, const char *what) {
    try {
        return ordered_json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, what, " is not valid JSON: ", e.what());
    }
}

} // namespace

muse_chat_params read_chat_params(const muse_chat_params *chat) {
    return read_params(chat, muse_chat_params_init, kChatParamsSizes, "muse_chat_params");
}

ChatRequest chat_request(const char *messages_json, const muse_chat_params *chat, const muse_generate_params *params,
                         int32_t seq) {
    require(messages_json, "messages_json");
    const muse_chat_params cp = read_chat_params(chat);
    const muse_generate_params gp = read_generate_params(params);
    ChatRequest r;
    r.messages = parse_json_arg(messages_json, "messages_json");
    if (!r.messages.is_array()) fail(MUSE_ERR_INVALID_ARGUMENT, "messages_json must be a JSON array");
    if (cp.tools_json) {
        r.tools = parse_json_arg(cp.tools_json, "tools_json");
        if (!r.tools.is_array() && !r.tools.is_null()) fail(MUSE_ERR_INVALID_ARGUMENT, "tools_json must be a JSON array");
    }
    if (cp.variables_json) {
        r.variables = parse_json_arg(cp.variables_json, "variables_json");
        if (!r.variables.is_object()) fail(MUSE_ERR_INVALID_ARGUMENT, "variables_json must be a JSON object");
    }
    if (cp.template_source) r.template_source = cp.template_source;
    r.reuse_prefix = cp.reuse_prefix != 0;
    if (cp.n_images > 0) require(cp.images, "images");
    for (size_t i = 0; i < cp.n_images; ++i) {
        if (!cp.images[i]) fail(MUSE_ERR_INVALID_ARGUMENT, "image ", i, " is NULL");
        r.images.push_back(&cp.images[i]->impl);
    }
    generate_from(gp, r);
    // Constrained output: response_format, or the grammar of the generate params (not both).
    if (cp.response_format_json) {
        if (r.grammar)
            fail(MUSE_ERR_INVALID_ARGUMENT, "both muse_chat_params.response_format_json and "
                                            "muse_generate_params.grammar are set: give one of them");
        r.grammar = response_format_grammar(cp.response_format_json);
    }
    r.seq = seq;
    thinking_from(gp.thinking, reasoning::ThinkingMode::automatic, r);
    tool_settings_from(cp, r);
    return r;
}

void generate_from(const muse_generate_params &gp, ChatRequest &r) {
    r.sampling = sampling_from(gp.sampling);
    r.max_tokens = gp.max_tokens;
    if (gp.n_logprobs < 0 || gp.n_logprobs > 64) fail(MUSE_ERR_INVALID_ARGUMENT, "n_logprobs must be in 0..64");
    r.n_logprobs = gp.n_logprobs;
    if (gp.n_stop > 0) require(gp.stop, "stop");
    for (size_t i = 0; i < gp.n_stop; ++i) r.stop.emplace_back(require(gp.stop[i], "stop string"));
    if (gp.grammar) r.grammar = gp.grammar->impl;
}

bool emit_token_event(const GenerationEvent &e, muse_token_cb cb, void *user_data, int agent) {
    using Kind = GenerationEvent::Kind;
    if (e.kind == Kind::done || e.kind == Kind::error) return true;
    muse_token_event ev{};
    ev.agent = agent;
    ev.struct_size = sizeof(ev);
    ev.token = e.token;
    ev.piece = e.text.c_str();
    ev.piece_len = e.text.size();
    ev.logprob = e.logprob;
    std::vector<int32_t> top_tokens;
    std::vector<float> top_lps;
    for (const TokenLogprob &t : e.top) {
        top_tokens.push_back(t.token);
        top_lps.push_back(t.logprob);
    }
    ev.n_top = static_cast<int32_t>(top_tokens.size());
    ev.top_tokens = top_tokens.data();
    ev.top_logprobs = top_lps.data();
    ev.channel = e.kind == Kind::reasoning     ? MUSE_CHANNEL_REASONING
                 : e.kind == Kind::tool_call   ? MUSE_CHANNEL_TOOL_CALL
                 : e.kind == Kind::tool_result ? MUSE_CHANNEL_TOOL_RESULT
                 : e.kind == Kind::artefact    ? MUSE_CHANNEL_ARTEFACT
                                               : MUSE_CHANNEL_ANSWER;
    ev.forced = e.forced ? 1 : 0;
    if (e.call) {
        ev.tool_name = e.call->name.c_str();
        ev.tool_arguments = e.call->arguments.c_str();
    }
    if (e.result) ev.tool_failed = e.result->failed ? 1 : 0;
    if (e.artefact) {
        ev.tool_name = e.text.c_str();
        ev.piece = "";
        ev.piece_len = 0;
        ev.artefact_data = e.artefact->data.data();
        ev.artefact_size = e.artefact->data.size();
        ev.artefact_mime = e.artefact->mime.c_str();
        ev.artefact_kind = e.artefact->kind.c_str();
    }
    return cb(&ev, user_data);
}

GenerationSetup raw_setup(const Model &model, Session &session, int32_t seq, const std::vector<int32_t> &prompt,
                          const muse_generate_params &params) {
    ChatRequest r;
    generate_from(params, r);
    r.seq = seq;
    GenerationSetup setup;
    if (params.thinking.mode != MUSE_THINKING_NONE) {
        thinking_from(params.thinking, reasoning::ThinkingMode::automatic, r);
        // Where the response starts is read from the text the sequence ends with.
        const Tokenizer &tok = model.require_tokenizer();
        std::string text;
        if (!prompt.empty()) {
            text = tok.detokenize(prompt, true);
        } else if (const std::vector<int32_t> *have = session.seq_tokens(seq)) {
            std::vector<int32_t> text_ids;  // image rows carry negative record ids: not text
            for (int32_t t : *have)
                if (t >= 0) text_ids.push_back(t);
            text = tok.detokenize(text_ids, true);
        }
        setup = prepare_response(model, text, r);
    } else {
        setup.sampling = r.sampling;
        setup.max_tokens = r.max_tokens;
        setup.stop = r.stop;
        setup.n_logprobs = r.n_logprobs;
        setup.grammar = r.grammar;
        try {
            setup.tokenizer = &model.require_tokenizer();
        } catch (const Error &) {
            if (!r.stop.empty() || r.grammar) throw;  // token-only generation works without a tokenizer
        }
    }
    setup.prompt.ids = prompt;
    if (const std::vector<int32_t> *have = prompt.empty() ? session.seq_tokens(seq) : nullptr) setup.context = *have;
    else setup.context = prompt;
    return setup;
}

namespace {
ordered_json logprobs_json(const std::vector<TokenLogprobs> &lps) {
    ordered_json out = ordered_json::array();
    for (const TokenLogprobs &t : lps) {
        ordered_json top = ordered_json::array();
        for (const TokenLogprob &x : t.top) top.push_back({x.token, x.logprob});
        out.push_back({{"token", t.token}, {"logprob", t.logprob}, {"top", std::move(top)}});
    }
    return out;
}
} // namespace

ContemplateOptions contemplate_from(const muse_contemplate_params &p, const muse_generate_params &gp) {
    ContemplateOptions o;
    o.n_agents = p.n_agents;
    const int method = enum_value(p.aggregate);
    switch (method) {
    case MUSE_AGGREGATE_VOTE: o.method = Aggregation::vote; break;
    case MUSE_AGGREGATE_WEIGHTED: o.method = Aggregation::weighted; break;
    case MUSE_AGGREGATE_EARLY_STOP: o.method = Aggregation::early_stop; break;
    case MUSE_AGGREGATE_SYNTHESIZE: o.method = Aggregation::synthesize; break;
    case MUSE_AGGREGATE_ALL: o.method = Aggregation::all; break;
    default: fail(MUSE_ERR_INVALID_ARGUMENT, "unknown aggregate ", method);
    }
    if (!std::isfinite(p.temperature_spread) || p.temperature_spread < 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "temperature_spread must be finite and not negative");
    o.temperature_spread = p.temperature_spread;
    if (p.confidence_window < 0 || p.confidence_top_k < 0 || p.tail_tokens < 0 || p.warmup_agents < 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "contemplate window, top_k, tail and warm-up counts must not be negative");
    if (p.confidence_window > 0) o.confidence_window = p.confidence_window;
    if (p.confidence_top_k > 0) o.confidence_top_k = std::min(p.confidence_top_k, 64);
    if (p.tail_tokens > 0) o.tail_tokens = p.tail_tokens;
    if (p.trace_score < 0 || p.trace_score > 2) fail(MUSE_ERR_INVALID_ARGUMENT, "trace_score must be 0, 1 or 2");
    o.score = p.trace_score == 1 ? TraceScore::tail : p.trace_score == 2 ? TraceScore::mean : TraceScore::lowest_group;
    if (p.keep_top != 0.0f) o.keep_top = p.keep_top;
    if (!(p.stop_threshold >= 0.0f)) fail(MUSE_ERR_INVALID_ARGUMENT, "stop_threshold must not be negative");
    o.stop_threshold = p.stop_threshold;
    if (p.warmup_agents > 0) o.warmup_agents = p.warmup_agents;
    if (p.stop_percentile != 0.0f) o.stop_percentile = p.stop_percentile;
    if (!(o.stop_percentile >= 0.0 && o.stop_percentile <= 100.0))
        fail(MUSE_ERR_INVALID_ARGUMENT, "stop_percentile must be in 0..100");
    o.synthesize_reasoning = p.synthesize_reasoning != 0;
    const size_t n = static_cast<size_t>(std::max(p.n_agents, 0));
    if (p.agent_temperatures) o.temperatures.assign(p.agent_temperatures, p.agent_temperatures + n);
    if (p.agent_budgets) o.budgets.assign(p.agent_budgets, p.agent_budgets + n);
    if (p.agent_seeds) o.seeds.assign(p.agent_seeds, p.agent_seeds + n);
    if (gp.n_contemplate_seqs > 0) {
        require(gp.contemplate_seqs, "contemplate_seqs");
        o.seqs.assign(gp.contemplate_seqs, gp.contemplate_seqs + gp.n_contemplate_seqs);
    }
    for (float t : o.temperatures)
        if (!std::isfinite(t) || t < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "agent temperatures must be finite and >= 0");
    if (p.normalize) {
        const muse_normalize_cb cb = p.normalize;
        void *user = p.normalize_user_data;
        o.normalize = [cb, user](const std::string &answer) {
            std::string out(1024, '\0');
            const int32_t n_out = cb(answer.c_str(), out.data(), out.size(), user);
            if (n_out < 0) return normalize_answer(answer);
            out.resize(std::min<size_t>(static_cast<size_t>(n_out), out.size() - 1));
            return out;
        };
    }
    return o;
}

void run_contemplation(Contemplation &c, muse_token_cb on_token, void *user_data) {
    bool listening = on_token != nullptr;
    GenerationEvent ev;
    int agent = 0;
    for (;;) {
        while (c.next_event(ev, agent))
            if (listening && ev.kind != GenerationEvent::Kind::done && !emit_token_event(ev, on_token, user_data, agent)) {
                listening = false;
                c.cancel();
            }
        if (c.done()) return;  // its last events were just delivered
        c.pump();
    }
}

StartedRequest start_raw_request(muse_session *s, int32_t seq, const int32_t *prompt, size_t n_prompt,
                                 const muse_generate_params *params, bool token_logprobs) {
    Session &session = session_of(s);
    if (n_prompt > 0) require(prompt, "prompt");
    const muse_generate_params gp = read_generate_params(params);
    GenerationSetup setup = raw_setup(*s->model, session, seq, std::vector<int32_t>(prompt, prompt + n_prompt), gp);
    setup.token_logprobs = token_logprobs;
    StartedRequest r;
    if (gp.contemplate.n_agents > 1) {
        GenerationSetup base = setup;
        r.group = std::make_unique<Contemplation>(
            session, seq, std::move(setup), contemplate_from(gp.contemplate, gp),
            prompt_synthesis(*s->model, std::move(base), gp.contemplate.synthesize_reasoning != 0));
    } else {
        r.gen = session.start(seq, std::move(setup));
    }
    return r;
}

StartedRequest start_chat_request(muse_session *s, int32_t seq, const char *messages_json,
                                  const muse_chat_params *chat, const muse_generate_params *params) {
    Session &session = session_of(s);
    ChatRequest request = chat_request(messages_json, chat, params, seq);
    request.image_cache = &s->images;
    StartedRequest r;
    const muse_generate_params gp = read_generate_params(params);
    std::shared_ptr<tools::ToolLoop> loop = tool_loop_from(*s->model, read_chat_params(chat), request);
    if (loop && gp.contemplate.n_agents > 1)
        fail(MUSE_ERR_UNSUPPORTED, "tools the library calls cannot be combined with contemplating mode (n_agents > 1): "
                                   "declare them without a function to get the calls back");
    GenerationSetup setup = loop ? tools::ToolLoop::prepare(loop, session, &r.prompt)
                                 : prepare_chat_turn(*s->model, session, request, &r.prompt);
    if (gp.contemplate.n_agents > 1)
        r.group = std::make_unique<Contemplation>(
            session, seq, std::move(setup), contemplate_from(gp.contemplate, gp),
            chat_synthesis(*s->model, session, request, gp.contemplate.synthesize_reasoning != 0));
    else
        r.gen = session.start(seq, std::move(setup));
    return r;
}

ordered_json contemplation_json(const ContemplationResult &r) {
    ordered_json agents = ordered_json::array();
    for (const AgentResult &a : r.agents)
        agents.push_back({{"agent", a.agent},
                          {"answer", a.answer},
                          {"reasoning", a.reasoning},
                          {"confidence", a.confidence},
                          {"finish_reason", a.finish_reason},
                          {"temperature", a.temperature},
                          {"seed", a.seed},
                          {"voted", a.voted},
                          {"usage",
                           {{"completion_tokens", a.tokens},
                            {"reasoning_tokens", a.usage.reasoning_tokens},
                            {"answer_tokens", a.usage.answer_tokens},
                            {"reasoning_end", to_string(a.usage.end)}}}});
    ordered_json tally = ordered_json::array();
    for (const auto &[answer, weight] : r.vote.tally) tally.push_back({answer, weight});
    ordered_json j = {{"answer", r.answer},
                      {"reasoning", r.reasoning},
                      {"tool_calls", ordered_json::array()},
                      {"finish_reason", r.finish_reason},
                      {"malformed", false},
                      {"agents", std::move(agents)},
                      {"aggregate",
                       {{"method", to_string(r.method)},
                        {"agreement", r.agreement},
                        {"tally", std::move(tally)},
                        {"synthesis_prompt_tokens", r.synthesis_prompt_tokens},
                        {"synthesis_cached_tokens", r.synthesis_cached_tokens}}},
                      {"usage",
                       {{"prompt_tokens", r.prompt_tokens},
                        {"cached_tokens", r.cached_tokens},
                        {"prompt_tokens_evaluated", r.prompt_tokens_evaluated},
                        {"completion_tokens", r.completion_tokens}}}};
    if (!r.error.empty()) j["error"] = r.error;
    return j;
}

ordered_json result_json(const ChatResult &r) {
    ordered_json calls = ordered_json::array();
    for (const reasoning::ToolCall &c : r.tool_calls) {
        ordered_json call = {{"name", c.name}, {"recipient", c.recipient}};
        try {
            call["arguments"] = ordered_json::parse(c.arguments);
        } catch (const nlohmann::json::exception &) {
            call["arguments"] = c.arguments;  // kept as text when it is not JSON
        }
        calls.push_back(std::move(call));
    }
    ordered_json results = ordered_json::array();
    for (const ToolExchange &x : r.tool_results) {
        ordered_json a = ordered_json::parse(x.call.arguments, nullptr, false);
        results.push_back({{"name", x.call.name},
                           {"arguments", a.is_discarded() ? ordered_json(x.call.arguments) : a},
                           {"content", x.content},
                           {"failed", x.failed},
                           {"image", x.image},
                           {"round", x.round}});
    }
    return {{"reasoning", r.reasoning},
            {"answer", r.answer},
            {"tool_calls", std::move(calls)},
            {"tool_results", std::move(results)},
            {"tool_rounds", r.tool_rounds},
            {"finish_reason", r.finish_reason},
            {"malformed", r.malformed},
            {"usage",
             {{"prompt_tokens", r.prompt_tokens},
              {"cached_tokens", r.cached_tokens},
              {"prompt_tokens_evaluated", r.prompt_tokens - r.cached_tokens},
              {"reasoning_tokens", r.usage.reasoning_tokens},
              {"answer_tokens", r.usage.answer_tokens},
              {"forced_tokens", r.usage.forced_tokens},
              {"cues", r.usage.cues},
              {"probes", r.usage.probes},
              {"probe_tokens", r.usage.probe_tokens},
              {"reasoning_end", to_string(r.usage.end)}}},
            {"tokens", r.tokens},
            {"logprobs", logprobs_json(r.logprobs)}};
}

void thinking_from(const muse_thinking_params &p, reasoning::ThinkingMode none_as, ChatRequest &r) {
    const int mode = enum_value(p.mode);
    switch (mode) {
    case MUSE_THINKING_NONE: r.thinking.mode = none_as; break;
    case MUSE_THINKING_AUTO: r.thinking.mode = reasoning::ThinkingMode::automatic; break;
    case MUSE_THINKING_ON: r.thinking.mode = reasoning::ThinkingMode::on; break;
    case MUSE_THINKING_OFF: r.thinking.mode = reasoning::ThinkingMode::off; break;
    default: fail(MUSE_ERR_INVALID_ARGUMENT, "unknown thinking mode ", mode);
    }
    const int effort = enum_value(p.effort);
    switch (effort) {
    case MUSE_EFFORT_DEFAULT: break;
    case MUSE_EFFORT_LOW: r.effort = reasoning::Effort::low; break;
    case MUSE_EFFORT_MEDIUM: r.effort = reasoning::Effort::medium; break;
    case MUSE_EFFORT_HIGH: r.effort = reasoning::Effort::high; break;
    default: fail(MUSE_ERR_INVALID_ARGUMENT, "unknown effort ", effort);
    }
    if (p.min_tokens < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "thinking min_tokens must not be negative");
    r.thinking.budget = p.budget < 0 ? -1 : p.budget;
    r.thinking.min_tokens = p.min_tokens;
    if (p.wrap_up) r.thinking.wrap_up = p.wrap_up;
    if (p.continue_cue) r.thinking.continue_cue = p.continue_cue;
    EarlyExitOptions &e = r.thinking.early_exit;
    e.enabled = p.early_exit != 0;
    if (p.early_exit_interval < 0 || p.early_exit_stable < 0 || p.early_exit_probe_tokens < 0 ||
        !(p.early_exit_min_prob >= 0.0f && p.early_exit_min_prob <= 1.0f))
        fail(MUSE_ERR_INVALID_ARGUMENT, "early-exit settings must be non-negative (min_prob in 0..1)");
    if (p.early_exit_interval > 0) e.interval = p.early_exit_interval;
    if (p.early_exit_stable > 0) e.stable = p.early_exit_stable;
    if (p.early_exit_probe_tokens > 0) e.probe_tokens = p.early_exit_probe_tokens;
    if (p.early_exit_min_prob > 0.0f) e.min_prob = p.early_exit_min_prob;
}

} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API void muse_chat_params_init(muse_chat_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->reuse_prefix = 1;
    p->parallel_tool_calls = 1;
    p->max_tool_rounds = 4;
}

MUSE_API muse_status muse_session_chat(muse_session *s, int32_t seq_id, const char *messages_json,
                                       const muse_chat_params *chat, const muse_generate_params *params,
                                       muse_token_cb on_token, void *user_data, char **out_result_json) {
    if (out_result_json) *out_result_json = nullptr;
    return guard([&] {
        StartedRequest req = start_chat_request(s, seq_id, messages_json, chat, params);
        if (req.group) {
            run_contemplation(*req.group, on_token, user_data);
            const ContemplationResult &c = req.group->result();
            if (c.finish_reason == "error") fail(c.error_status, c.error);
            if (out_result_json)
                *out_result_json =
                    dup_string(contemplation_json(c).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        Generation &gen = *req.gen;
        session_of(s).run(gen, [&](const GenerationEvent &ev) { return !on_token || emit_token_event(ev, on_token, user_data); });
        if (gen.result().finish_reason == "error") fail(gen.result().error_status, gen.result().error);
        const ChatResult result = chat_result(gen, std::move(req.prompt));
        if (out_result_json)
            *out_result_json = dup_string(result_json(result).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    });
}

MUSE_API muse_status muse_session_eval_prompt(muse_session *s, int32_t seq_id, const char *text,
                                              const muse_image *const *images, size_t n_images, int32_t add_bos,
                                              const float **out_logits, size_t *out_n_positions) {
    if (out_logits) *out_logits = nullptr;
    if (out_n_positions) *out_n_positions = 0;
    return guard([&] {
        Session &session = session_of(s);
        require(text, "text");
        if (n_images > 0) require(images, "images");
        if (add_bos < -1 || add_bos > 1) fail(MUSE_ERR_INVALID_ARGUMENT, "add_bos must be -1, 0 or 1");
        const Model &model = *s->model;
        const Tokenizer &tok = model.require_tokenizer();
        std::vector<std::shared_ptr<const EmbeddedImage>> embedded;
        if (n_images > 0) {
            if (count_media_markers(text) != n_images)
                fail(MUSE_ERR_INVALID_ARGUMENT, "the prompt has ", count_media_markers(text), " ", kMediaMarker,
                     " marker(s) but ", n_images, " image(s) were given");
            const ImageEmbedder &embedder = model.require_images();
            for (size_t i = 0; i < n_images; ++i) {
                if (!images[i]) fail(MUSE_ERR_INVALID_ARGUMENT, "image ", i, " is NULL");
                embedded.push_back(s->images.get(embedder, images[i]->impl));
            }
        }
        const bool bos = add_bos == 1 || (add_bos == -1 && tok.add_bos());
        const MultimodalPrompt p = build_multimodal_prompt(tok, text, bos, std::move(embedded));
        if (p.ids.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "the prompt is empty");
        eval_multimodal_prompt(session, p, 0, seq_id);
        if (out_logits) *out_logits = session.logits().data();
        if (out_n_positions) *out_n_positions = p.ids.size();
    });
}

MUSE_API muse_status muse_model_image_tokens(const muse_model *m, const muse_image *image, int64_t *out_n_rows) {
    if (out_n_rows) *out_n_rows = 0;
    return guard([&] {
        if (!m || !m->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
        if (!image) fail(MUSE_ERR_INVALID_ARGUMENT, "image is NULL");
        require(out_n_rows, "out_n_rows");
        *out_n_rows = m->impl->require_images().n_rows(image->impl);
    });
}

MUSE_API muse_status muse_model_encode_image(const muse_model *m, const muse_image *image, float *out,
                                             size_t capacity, int64_t *out_n_rows, int64_t *out_n_embd) {
    if (out_n_rows) *out_n_rows = 0;
    if (out_n_embd) *out_n_embd = 0;
    return guard([&] {
        if (!m || !m->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
        if (!image) fail(MUSE_ERR_INVALID_ARGUMENT, "image is NULL");
        const ImageEmbedder &embedder = m->impl->require_images();
        const int64_t n_embd = embedder.hparams().n_embd_out;
        const int64_t rows = embedder.n_rows(image->impl);
        if (out_n_rows) *out_n_rows = rows;
        if (out_n_embd) *out_n_embd = n_embd;
        if (static_cast<uint64_t>(rows * n_embd) > capacity)
            fail(MUSE_ERR_OUT_OF_RANGE, "the output holds ", capacity, " floats; the image needs ", rows * n_embd,
                 " (", rows, " rows x ", n_embd, ")");
        require(out, "out");
        const EmbeddedImage e = embedder.embed(image->impl);
        if (e.n_rows() != rows) fail(MUSE_ERR_INTERNAL, "image rows differ from the predicted count");
        float *at = out;
        for (const EmbeddedImage::Piece &p : e.pieces) {
            std::copy(p.embd.begin(), p.embd.end(), at);
            at += p.embd.size();
        }
    });
}

MUSE_API muse_status muse_model_chat_prompt(const muse_model *m, const char *messages_json,
                                            const muse_chat_params *chat, const muse_generate_params *params,
                                            char **out_prompt) {
    if (out_prompt) *out_prompt = nullptr;
    return guard([&] {
        if (!m || !m->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
        require(out_prompt, "out_prompt");
        const ChatRequest request = chat_request(messages_json, chat, params, 0);
        // Host tools with functions and built-in tools are offered too: the prompt of the first round.
        const std::shared_ptr<tools::ToolLoop> loop = tool_loop_from(*m->impl, read_chat_params(chat), request);
        *out_prompt = dup_string(render_chat_prompt(*m->impl, loop ? loop->request() : request));
    });
}

} // extern "C"
