#include "engine/chat-turn.h"

#include "jinja/jinja.h"
#include "core/error.h"
#include "engine/session.h"
#include "model/model.h"
#include "multimodal/mm-prompt.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace muse {

namespace {

using nlohmann::ordered_json;

std::string template_source(const Model &model, const ChatRequest &request) {
    if (!request.template_source.empty()) return request.template_source;
    auto source = model.file().get_string("tokenizer.chat_template");
    if (!source) fail(MUSE_ERR_NOT_FOUND, "the model has no tokenizer.chat_template (pass a template)");
    return *source;
}

reasoning::ReasoningFormat format_of(const Model &model, const std::string &source) {
    const Tokenizer &tok = model.require_tokenizer();
    return reasoning::detect_format(model.arch(), source,
                                    [&](std::string_view s) { return tok.find_token(s).has_value(); });
}

std::string token_text_or_empty(const Tokenizer &tok, int32_t id) {
    return id >= 0 && id < tok.n_vocab() ? tok.token_text(id) : std::string();
}

bool is_image_part(const ordered_json &part) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) return false;
    const std::string type = part["type"].get<std::string>();
    return type == "image" || type == "image_url" || type == "input_image";
}

// Message contents given as lists of parts become strings: text parts joined, image
// parts replaced by the media marker (llama.cpp's chat path does the same), so every
// template sees plain text and the marker marks where the image goes.
ordered_json flatten_messages(const ordered_json &messages, size_t *n_images) {
    ordered_json out = messages;
    *n_images = 0;
    for (ordered_json &m : out) {
        // Tool-call arguments given as JSON text become objects: templates iterate them
        // (muse-glimmer raises on anything else), as llama.cpp does before rendering.
        if (m.is_object() && m.contains("tool_calls") && m["tool_calls"].is_array())
            for (ordered_json &call : m["tool_calls"]) {
                ordered_json *fn = call.is_object() && call.contains("function") ? &call["function"] : &call;
                if (!fn->is_object() || !fn->contains("arguments") || !(*fn)["arguments"].is_string()) continue;
                const std::string text = (*fn)["arguments"].get<std::string>();
                ordered_json parsed = ordered_json::parse(text, nullptr, false);
                if (parsed.is_discarded() || !parsed.is_object())
                    fail(MUSE_ERR_INVALID_ARGUMENT, "tool call arguments must be a JSON object, not ", text);
                (*fn)["arguments"] = std::move(parsed);
            }
        if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
        std::string text;
        for (const ordered_json &part : m["content"]) {
            if (is_image_part(part)) {
                text += kMediaMarker;
                ++*n_images;
            } else if (part.is_object() && part.contains("text") && part["text"].is_string()) {
                text += part["text"].get<std::string>();
            } else {
                fail(MUSE_ERR_INVALID_ARGUMENT, "a message content part must be {\"type\": \"text\", \"text\": ...} or an "
                                                "image part, not ", part.dump());
            }
        }
        m["content"] = text;
    }
    return out;
}

std::string render(const Model &model, const ChatRequest &request, const std::string &source,
                   const reasoning::ReasoningFormat &format, size_t *n_image_parts = nullptr) {
    if (!request.messages.is_array()) fail(MUSE_ERR_INVALID_ARGUMENT, "messages must be a JSON array");
    if (!request.variables.is_object() && !request.variables.is_null())
        fail(MUSE_ERR_INVALID_ARGUMENT, "template variables must be a JSON object");
    const Tokenizer &tok = model.require_tokenizer();
    ordered_json ctx = ordered_json::object();
    ctx["bos_token"] = token_text_or_empty(tok, tok.bos());
    ctx["eos_token"] = token_text_or_empty(tok, tok.eos());
    ctx["add_generation_prompt"] = true;
    // Thinking mode and effort become the template's own variables (enable_thinking,
    // reasoning_effort / reasoning_strength), as the format table says.
    // A budget of 0 is thinking off.
    const reasoning::ThinkingMode mode =
        request.thinking.budget == 0 ? reasoning::ThinkingMode::off : request.thinking.mode;
    const ordered_json vars =
        reasoning::template_variables(format, mode, request.effort.value_or(reasoning::Effort::medium));
    for (auto it = vars.begin(); it != vars.end(); ++it)
        if (request.effort || it.key() == "enable_thinking" || mode == reasoning::ThinkingMode::off)
            ctx[it.key()] = it.value();
    if (request.variables.is_object())
        for (auto it = request.variables.begin(); it != request.variables.end(); ++it) ctx[it.key()] = it.value();
    size_t n_images = 0;
    ctx["messages"] = flatten_messages(request.messages, &n_images);
    if (n_image_parts) *n_image_parts = n_images;
    // Declared tools render whatever tool_choice says (none only rules calls out), so a
    // turn's rounds share the prompt prefix.
    if (!request.tools.is_null()) ctx["tools"] = request.tools;
    return jinja::Template::parse(source).render(ctx);
}

} // namespace

std::string render_chat_prompt(const Model &model, const ChatRequest &request) {
    const std::string source = template_source(model, request);
    return render(model, request, source, format_of(model, source));
}

GenerationSetup prepare_response(const Model &model, const std::string &prompt_text, const ChatRequest &request) {
    const Tokenizer &tok = model.require_tokenizer();
    const auto source = model.file().get_string("tokenizer.chat_template");
    GenerationSetup setup;
    setup.tokenizer = &tok;
    setup.sampling = request.sampling;
    setup.max_tokens = request.max_tokens;
    setup.stop = request.stop;
    setup.n_logprobs = request.n_logprobs;
    setup.grammar = request.grammar;
    setup.tools = request.tools;
    setup.format = format_of(model, source.value_or(""));
    setup.start = reasoning::response_start(*setup.format, prompt_text);
    ThinkingOptions thinking = request.thinking;
    if (thinking.budget < 0 && request.effort && thinking.mode != reasoning::ThinkingMode::off)
        thinking.budget = effort_budget(*request.effort);
    setup.thinking = thinking;
    return setup;
}

void offer_tools(const ChatRequest &request, GenerationSetup &setup) {
    using Kind = tools::ToolChoice::Kind;
    const bool offered = request.tools.is_array() && !request.tools.empty();
    const Kind kind = request.tool_choice.kind;
    if (!offered && kind != Kind::none && kind != Kind::automatic)
        fail(MUSE_ERR_INVALID_ARGUMENT, "tool_choice \"required\" or a named function needs tools");
    if (!offered || !setup.format) return;
    reasoning::ReasoningFormat &f = *setup.format;
    const bool must_call = kind == Kind::required || kind == Kind::named;
    // Reasoning before a call: when thinking is allowed at all, and for a required call only
    // when it was asked for (mode on), so an automatic response goes straight to the call.
    const bool thinking_allowed =
        !(setup.thinking && (setup.thinking->mode == reasoning::ThinkingMode::off || setup.thinking->budget == 0)) &&
        !(must_call && (!setup.thinking || setup.thinking->mode != reasoning::ThinkingMode::on));
    if (kind == Kind::none) {
        // No calls: the parser reads call markup as text; atem headers are still limited
        // to self/user by the plan below.
        setup.tools = nullptr;
        f.tool_call_open.clear();
        f.tool_call_close.clear();
        f.json_tool_calls = false;
        if (f.kind != reasoning::FormatKind::atem) return;
    }
    setup.calls = tools::make_call_plan(f, kind == Kind::none ? nlohmann::ordered_json(nullptr) : request.tools,
                                        request.tool_choice, request.parallel_tool_calls, thinking_allowed);
    // Thinking off would force the atem answer header (` to=user`) and rule out a call;
    // the plan's header grammar keeps the model off `self` instead.
    if (setup.calls && f.kind == reasoning::FormatKind::atem && setup.thinking && !thinking_allowed)
        setup.thinking->force_answer_start = false;
    // A budget cut forces the answer open; for a required call the new message's header is
    // left to the call stage (which only allows a call there), not forced to ` to=user`.
    if (setup.calls && f.kind == reasoning::FormatKind::atem && must_call) f.answer_open = "<|eom|><|start|>assistant";
}

GenerationSetup prepare_chat_turn(const Model &model, Session &session, const ChatRequest &request,
                                  std::string *prompt_text) {
    const Tokenizer &tok = model.require_tokenizer();
    const std::string source = template_source(model, request);
    const reasoning::ReasoningFormat format = format_of(model, source);
    const std::string prompt = render(model, request, source, format);
    if (prompt_text) *prompt_text = prompt;

    // BOS: the template usually writes it; add it only when the vocabulary wants one and
    // the rendered text does not start with it (llama.cpp does the same).
    const std::string bos = token_text_or_empty(tok, tok.bos());
    const bool add_bos = tok.add_bos() && !(bos.size() && prompt.rfind(bos, 0) == 0);
    std::vector<std::shared_ptr<const EmbeddedImage>> embedded;
    if (!request.images.empty()) {
        if (count_media_markers(prompt) != request.images.size())
            fail(MUSE_ERR_INVALID_ARGUMENT, "the rendered prompt has ", count_media_markers(prompt), " image marker(s) ",
                 "for ", request.images.size(), " image(s) (one image part, or one ", kMediaMarker,
                 " in a text content, per image; or the template dropped some)");
        const ImageEmbedder &embedder = model.require_images();
        for (const Image *img : request.images) {
            if (!img) fail(MUSE_ERR_INVALID_ARGUMENT, "image is NULL");
            embedded.push_back(request.image_cache ? request.image_cache->get(embedder, *img)
                                                   : std::make_shared<const EmbeddedImage>(embedder.embed(*img)));
        }
    } else if (count_media_markers(prompt) > 0) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "the prompt contains ", kMediaMarker, " but no image was given");
    }
    GenerationSetup setup = prepare_response(model, prompt, request);
    setup.format = format;  // the template given, not only the model's own
    setup.start = reasoning::response_start(format, prompt);
    offer_tools(request, setup);
    setup.prompt = build_multimodal_prompt(tok, prompt, add_bos, std::move(embedded));
    const std::vector<int32_t> &ids = setup.prompt.ids;
    if (ids.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "the rendered chat prompt is empty");

    // Reuse the longest prefix the sequence already holds (keep one row to evaluate).
    size_t keep = 0;
    if (const std::vector<int32_t> *have = request.reuse_prefix ? session.seq_tokens(request.seq) : nullptr) {
        const size_t limit = std::min(have->size(), ids.size() - 1);
        while (keep < limit && (*have)[keep] == ids[keep]) ++keep;
        if (keep > 0 && !session.cache().can_resume_at(request.seq, static_cast<int32_t>(keep))) keep = 0;
    }
    session.seq_remove(request.seq, static_cast<int32_t>(keep), -1);
    setup.cached = keep;
    setup.context = ids;
    return setup;
}

ChatResult chat_result(const Generation &gen, std::string prompt_text) {
    const GenerationResult &g = gen.result();
    ChatResult r;
    r.prompt = std::move(prompt_text);
    r.reasoning = g.reasoning;
    r.answer = g.answer;
    r.tool_calls = g.tool_calls;
    r.tool_results = g.tool_results;
    r.tool_rounds = g.tool_rounds;
    r.usage = g.usage;
    r.prompt_tokens = g.prompt_tokens;
    r.cached_tokens = g.prompt_tokens - g.prompt_evaluated;
    r.tokens = g.tokens;
    r.logprobs = g.logprobs;
    r.malformed = g.malformed;
    r.finish_reason = g.finish_reason;
    return r;
}

bool chat_event(const GenerationEvent &ev, ChatEvent &out) {
    using Kind = GenerationEvent::Kind;
    if (ev.kind != Kind::answer && ev.kind != Kind::reasoning && ev.kind != Kind::tool_call) return false;
    out.channel = ev.kind == Kind::answer      ? reasoning::Channel::answer
                  : ev.kind == Kind::reasoning ? reasoning::Channel::reasoning
                                               : reasoning::Channel::tool_call;
    out.text = ev.text;
    out.call = ev.call ? &*ev.call : nullptr;
    out.token = ev.token;
    out.forced = ev.forced;
    return true;
}

ChatResult run_chat_turn(const Model &model, Session &session, const ChatRequest &request,
                         const std::function<bool(const ChatEvent &)> &on_event) {
    std::string prompt;
    GenerationSetup setup = prepare_chat_turn(model, session, request, &prompt);
    std::unique_ptr<Generation> gen = session.start(request.seq, std::move(setup));
    session.run(*gen, [&](const GenerationEvent &ev) {
        ChatEvent ce;
        if (!on_event || !chat_event(ev, ce)) return true;
        return on_event(ce);
    });
    if (gen->result().finish_reason == "error") fail(gen->result().error_status, gen->result().error);
    return chat_result(*gen, std::move(prompt));
}

namespace {
std::string synthesis_text(const std::vector<AgentResult> &agents, bool with_reasoning) {
    std::string text = "Several independent attempts answered the question above.\n";
    for (const AgentResult &a : agents) {
        if (a.finish_reason == "error" || a.finish_reason == "cancelled") continue;
        text += "\nAttempt " + std::to_string(a.agent + 1) + ": " + a.answer + "\n";
        if (with_reasoning && !a.reasoning.empty()) {
            const size_t keep = 400;  // the end of the reasoning, where the answer was settled
            const size_t from = a.reasoning.size() > keep ? a.reasoning.size() - keep : 0;
            text += "(reasoning, end: ..." + a.reasoning.substr(from) + ")\n";
        }
    }
    text += "\nWeigh them and give the single best final answer.";
    return text;
}
} // namespace

SynthesisBuilder chat_synthesis(const Model &model, Session &session, ChatRequest request, bool with_reasoning) {
    return [&model, &session, request, with_reasoning](const std::vector<AgentResult> &agents, int seq) {
        ChatRequest r = request;
        r.messages.push_back({{"role", "user"}, {"content", synthesis_text(agents, with_reasoning)}});
        r.seq = seq;
        r.reuse_prefix = true;
        GenerationSetup s = prepare_chat_turn(model, session, r);
        s.agent = static_cast<int>(agents.size());
        return s;
    };
}

SynthesisBuilder prompt_synthesis(const Model &model, GenerationSetup base, bool with_reasoning) {
    return [&model, base, with_reasoning](const std::vector<AgentResult> &agents, int) {
        GenerationSetup s = base;
        const Tokenizer &tok = model.require_tokenizer();
        const std::vector<int32_t> extra =
            tok.tokenize("\n\n" + synthesis_text(agents, with_reasoning) + "\nFinal answer:", false, false);
        s.cached = s.prompt.ids.size();  // the synthesis's sequence already holds the prompt
        s.prompt.ids.insert(s.prompt.ids.end(), extra.begin(), extra.end());
        s.context = s.prompt.ids;
        s.agent = static_cast<int>(agents.size());
        s.follow = nullptr;
        return s;
    };
}

reasoning::ReasoningFormat model_reasoning_format(const Model &model) {
    const auto source = model.file().get_string("tokenizer.chat_template");
    return format_of(model, source.value_or(""));
}

} // namespace muse
