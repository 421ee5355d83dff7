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
    if (!request.tools.is_null()) ctx["tools"] = request.tools;
    return jinja::Template::parse(source).render(ctx);
}

// Adaptive early exit: forks the sequence after `token`, forces the answer open on the
// fork, decodes a few answer tokens greedily and remembers whether the answer holds still.
class EarlyExitProbe {
public:
    EarlyExitProbe(Session &session, int seq, const EarlyExitOptions &o, const Tokenizer &tok)
        : session_(session), seq_(seq), o_(o), tok_(tok) {
        for (int s = 0; s < session.cache().n_seq_max(); ++s)
            if (s != seq && session.cache().seq_length(s) == 0) {
                probe_seq_ = s;
                break;
            }
        if (probe_seq_ < 0)
            fail(MUSE_ERR_INVALID_ARGUMENT, "adaptive early exit needs a free sequence: create the session with "
                                            "n_seq_max >= 2 and leave one sequence empty");
        if (o.interval <= 0 || o.stable <= 0 || o.probe_tokens <= 0)
            fail(MUSE_ERR_INVALID_ARGUMENT, "early exit interval, stable and probe_tokens must be positive");
    }

    // Called after `token` was appended (not yet evaluated). true: stop reasoning now.
    bool probe(int32_t token, ThinkingController &controller) {
        session_.seq_copy(seq_, probe_seq_, 0, -1);
        std::vector<int32_t> feed = {token};
        const std::vector<int32_t> &open = controller.answer_open_tokens();
        feed.insert(feed.end(), open.begin(), open.end());
        std::string answer;
        float min_prob = 1.0f;
        int32_t evaluated = 0;
        try {
            for (int32_t i = 0; i < o_.probe_tokens; ++i) {
                const std::vector<float> &logits = session_.eval(feed, probe_seq_);
                evaluated += static_cast<int32_t>(feed.size());
                const auto best = Sampler::top_logprobs(logits, 1).front();
                min_prob = std::min(min_prob, std::exp(best.logprob));
                if (tok_.is_eog(best.token)) break;
                answer += tok_.token_to_piece(best.token, true);
                feed = {best.token};
            }
        } catch (...) {
            session_.seq_remove(probe_seq_, 0, -1);
            throw;
        }
        session_.seq_remove(probe_seq_, 0, -1);
        controller.count_probe(evaluated);
        const bool confident = min_prob >= o_.min_prob;
        stable_ = confident && answer == last_ ? stable_ + 1 : (confident ? 1 : 0);
        last_ = answer;
        return stable_ >= o_.stable;
    }

private:
    Session &session_;
    int seq_;
    int probe_seq_ = -1;
    EarlyExitOptions o_;
    const Tokenizer &tok_;
    std::string last_;
    int32_t stable_ = 0;
};

} // namespace

std::string render_chat_prompt(const Model &model, const ChatRequest &request) {
    const std::string source = template_source(model, request);
    return render(model, request, source, format_of(model, source));
}

ChatResult run_chat_turn(const Model &model, Session &session, const ChatRequest &request,
                         const std::function<bool(const ChatEvent &)> &on_event) {
    const Tokenizer &tok = model.require_tokenizer();
    const std::string source = template_source(model, request);
    const reasoning::ReasoningFormat format = format_of(model, source);
    ChatResult result;
    // Images: one per image part, or per marker the caller wrote into a text content itself.
    result.prompt = render(model, request, source, format);

    // BOS: the template usually writes it; add it only when the vocabulary wants one and
    // the rendered text does not start with it (llama.cpp does the same).
    const std::string bos = token_text_or_empty(tok, tok.bos());
    const bool add_bos = tok.add_bos() && !(bos.size() && result.prompt.rfind(bos, 0) == 0);
    std::vector<std::shared_ptr<const EmbeddedImage>> embedded;
    if (!request.images.empty()) {
        if (count_media_markers(result.prompt) != request.images.size())
            fail(MUSE_ERR_INVALID_ARGUMENT, "the rendered prompt has ", count_media_markers(result.prompt), " image marker(s) ",
                 "for ", request.images.size(), " image(s) (one image part, or one ", kMediaMarker,
                 " in a text content, per image; or the template dropped some)");
        const ImageEmbedder &embedder = model.require_images();
        for (const Image *img : request.images) {
            if (!img) fail(MUSE_ERR_INVALID_ARGUMENT, "image is NULL");
            embedded.push_back(request.image_cache ? request.image_cache->get(embedder, *img)
                                                   : std::make_shared<const EmbeddedImage>(embedder.embed(*img)));
        }
    } else if (count_media_markers(result.prompt) > 0) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "the prompt contains ", kMediaMarker, " but no image was given");
    }
    const MultimodalPrompt mm = build_multimodal_prompt(tok, result.prompt, add_bos, std::move(embedded));
    const std::vector<int32_t> &prompt = mm.ids;
    if (prompt.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "the rendered chat prompt is empty");
    result.prompt_tokens = static_cast<int32_t>(prompt.size());

    // Reuse the longest prefix the sequence already holds (keep one token to evaluate).
    size_t keep = 0;
    if (const std::vector<int32_t> *have = request.reuse_prefix ? session.seq_tokens(request.seq) : nullptr) {
        const size_t limit = std::min(have->size(), prompt.size() - 1);
        while (keep < limit && (*have)[keep] == prompt[keep]) ++keep;
        if (keep > 0 && !session.cache().can_resume_at(request.seq, static_cast<int32_t>(keep))) keep = 0;
    }
    session.seq_remove(request.seq, static_cast<int32_t>(keep), -1);
    result.cached_tokens = static_cast<int32_t>(keep);
    eval_multimodal_prompt(session, mm, keep, request.seq);
    respond(model, session, format, request, on_event, result);
    return result;
}

reasoning::ReasoningFormat model_reasoning_format(const Model &model) {
    const auto source = model.file().get_string("tokenizer.chat_template");
    return format_of(model, source.value_or(""));
}

void respond(const Model &model, Session &session, const reasoning::ReasoningFormat &format,
             const ChatRequest &request, const std::function<bool(const ChatEvent &)> &on_event, ChatResult &result) {
    const Tokenizer &tok = model.require_tokenizer();
    ThinkingOptions thinking = request.thinking;
    if (thinking.budget < 0 && request.effort && thinking.mode != reasoning::ThinkingMode::off)
        thinking.budget = effort_budget(*request.effort);
    const reasoning::State start = reasoning::response_start(format, result.prompt);
    ThinkingController controller(format, start, thinking, tok);
    auto parser = reasoning::make_channel_parser(format, start, request.tools);

    bool stopped_by_callback = false;
    auto deliver = [&](std::vector<reasoning::ChannelEvent> events, int32_t token, bool forced) {
        for (reasoning::ChannelEvent &ev : events) {
            ChatEvent out;
            out.channel = ev.channel;
            out.text = ev.text;
            out.token = token;
            out.forced = forced;
            if (ev.channel == reasoning::Channel::reasoning) result.reasoning += ev.text;
            else if (ev.channel == reasoning::Channel::answer) result.answer += ev.text;
            else if (ev.call) result.tool_calls.push_back(*ev.call);
            if (ev.call) out.call = &result.tool_calls.back();
            if (on_event && !stopped_by_callback && !on_event(out)) stopped_by_callback = true;
        }
    };
    std::unique_ptr<EarlyExitProbe> probe;
    if (thinking.early_exit.enabled && thinking.mode != reasoning::ThinkingMode::off && thinking.budget != 0)
        probe = std::make_unique<EarlyExitProbe>(session, request.seq, thinking.early_exit, tok);
    int32_t probed_at = 0;
    bool eog = false;
    // Whole characters only (invalid bytes become U+FFFD), special tokens as their text.
    StreamingDetokenizer detok(tok, true);
    result.tokens = session.generate(
        {}, request.max_tokens, request.sampling, request.seq,
        [&](int32_t t, bool forced) {
            if (tok.is_eog(t)) {  // the end of the turn: not text
                eog = true;
                return true;
            }
            deliver(parser->feed(detok.push(t)), t, forced);
            const int32_t spent = controller.usage().reasoning_tokens;
            if (probe && !forced && controller.in_reasoning() && !controller.reasoning_cut() && spent > 0 &&
                spent % thinking.early_exit.interval == 0 && spent != probed_at) {
                probed_at = spent;
                if (probe->probe(t, controller)) controller.end_reasoning(ReasoningEnd::early_exit);
            }
            return !stopped_by_callback;
        },
        &controller);
    deliver(parser->feed(detok.flush()), -1, false);
    deliver(parser->finish(), -1, false);
    result.usage = controller.finish();
    result.malformed = parser->malformed();
    if (eog || parser->state() == reasoning::State::ended) result.finish_reason = "stop";
    else if (stopped_by_callback) result.finish_reason = "callback";
    else if (result.tokens.size() >= request.max_tokens) result.finish_reason = "length";
    else result.finish_reason = "cancelled";
}

} // namespace muse
