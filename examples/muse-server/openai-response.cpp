#include "openai-response.h"

namespace server {

using json = nlohmann::json;

std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_body(int status, const std::string &message, const std::string &param, const std::string &type,
                const std::string &code) {
    std::string t = type;
    if (t.empty()) {
        if (status == 401) t = "authentication_error";
        else if (status == 403) t = "permission_error";
        else if (status == 404) t = "not_found_error";
        else if (status == 429) t = "rate_limit_error";
        else if (status >= 500) t = "server_error";
        else t = "invalid_request_error";
    }
    json e = {{"message", message}, {"type", t}, {"param", param.empty() ? json() : json(param)},
              {"code", code.empty() ? json() : json(code)}};
    return {{"error", e}};
}

ResponseBuilder::ResponseBuilder(const Job &job, const muse::model &model)
    : job_(job), model_(model), choices_(static_cast<size_t>(job.n)) {}

bool ResponseBuilder::all_done() const {
    for (const Choice &c : choices_)
        if (!c.done) return false;
    return true;
}

std::string ResponseBuilder::token_text(int32_t token) const {
    try {
        return model_.detokenize({token}, true);
    } catch (const std::exception &) {
        return {};
    }
}

json ResponseBuilder::logprob_entry(const muse::event &ev) const {
    auto bytes = [](const std::string &s) {
        json b = json::array();
        for (unsigned char c : s) b.push_back(c);
        return b;
    };
    const std::string tok = token_text(ev.token);
    json top = json::array();
    for (size_t i = 0; i < ev.top.size() && static_cast<int>(i) < job_.top_logprobs; ++i) {
        const std::string t = token_text(ev.top[i].first);
        top.push_back({{"token", t}, {"logprob", ev.top[i].second}, {"bytes", bytes(t)}});
    }
    return {{"token", tok}, {"logprob", ev.logprob}, {"bytes", bytes(tok)}, {"top_logprobs", top}};
}

json ResponseBuilder::tool_call_json(Choice &c, const muse::event &ev) const {
    json call = {{"index", c.tool_calls.size()},
                 {"id", "call_" + random_hex(24)},
                 {"type", "function"},
                 {"function", {{"name", ev.tool_name}, {"arguments", ev.tool_arguments}}}};
    c.tool_calls.push_back(call);
    return call;
}

std::string ResponseBuilder::finish_reason(const Choice &c, const std::string &engine_reason) const {
    if (!c.tool_calls.empty() && (engine_reason == "stop" || engine_reason.empty())) return "tool_calls";
    return engine_reason.empty() ? "stop" : engine_reason;
}

json ResponseBuilder::usage() const {
    int64_t prompt = 0, cached = 0, completion = 0, reasoning = 0;
    for (size_t i = 0; i < choices_.size(); ++i) {
        const json &r = choices_[i].result;
        if (!r.is_object()) continue;
        const json u = r.value("usage", json::object());
        if (i == 0 && u.is_object()) {  // every choice has the same prompt: counted once, as OpenAI does
            prompt = u.value("prompt_tokens", int64_t{0});
            cached = u.value("cached_tokens", int64_t{0});
        }
        if (r.contains("tokens") && r["tokens"].is_array()) completion += static_cast<int64_t>(r["tokens"].size());
        if (u.is_object()) reasoning += u.value("reasoning_tokens", int64_t{0});
        if (job_.contemplating() && u.is_object()) {
            // Every agent's tokens (and the synthesis pass's) were generated for this answer:
            // completion_tokens is their sum, reasoning_tokens the agents' reasoning. The prompt
            // was evaluated once and forked to the agents, so it counts once.
            completion += u.value("completion_tokens", int64_t{0});
            if (r.contains("agents") && r["agents"].is_array())
                for (const json &a : r["agents"])
                    if (a.is_object() && a.contains("usage") && a["usage"].is_object())
                        reasoning += a["usage"].value("reasoning_tokens", int64_t{0});
        }
    }
    json out = {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
    out["prompt_tokens_details"] = {{"cached_tokens", cached}};
    if (job_.kind == JobKind::chat) out["completion_tokens_details"] = {{"reasoning_tokens", reasoning}};
    return out;
}

json ResponseBuilder::contemplation(const Choice &c) const {
    json out = json::object();
    if (!c.result.is_object()) return out;
    if (c.result.contains("aggregate")) out["aggregate"] = c.result["aggregate"];
    if (c.result.contains("agents")) out["agents"] = c.result["agents"];
    return out;
}

json ResponseBuilder::chunk(int choice, json delta, const json &finish, const json &logprobs) const {
    json c = {{"index", choice}};
    if (job_.kind == JobKind::chat) {
        c["delta"] = std::move(delta);
        c["logprobs"] = logprobs;
    } else {
        c["text"] = delta.is_string() ? delta : json("");
        c["logprobs"] = logprobs;
    }
    c["finish_reason"] = finish;
    return {{"id", job_.id},
            {"object", job_.kind == JobKind::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", job_.created},
            {"model", job_.model_name},
            {"system_fingerprint", "muse-" + std::string(muse_version())},
            {"choices", json::array({std::move(c)})}};
}

static std::string sse(const json &j) { return "data: " + dump(j) + "\n\n"; }

std::string ResponseBuilder::stream_start() {
    if (job_.kind != JobKind::chat) return {};
    std::string out;
    for (int i = 0; i < job_.n; ++i) out += sse(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr));
    return out;
}

std::string ResponseBuilder::stream_item(const Item &item) {
    if (item.kind == Item::Kind::started) return {};
    if (item.kind == Item::Kind::error) {
        if (item.choice >= 0 && static_cast<size_t>(item.choice) < choices_.size()) choices_[static_cast<size_t>(item.choice)].done = true;
        return sse(error_body(item.status, item.message));
    }
    Choice &c = choices_[static_cast<size_t>(item.choice)];
    const muse::event &ev = item.ev;
    if (item.kind == Item::Kind::done) {
        c.done = true;
        c.result = json::parse(item.result_json, nullptr, false);
        json last = chunk(item.choice, json::object(), finish_reason(c, ev.finish_reason));
        if (job_.contemplating()) last["contemplation"] = contemplation(c);  // muse extension
        return sse(last);
    }
    const bool chat = job_.kind == JobKind::chat;
    switch (ev.kind) {
    case MUSE_EVENT_ANSWER: {
        json lp = nullptr;
        if (job_.logprobs && ev.token >= 0) {
            if (chat) lp = {{"content", json::array({logprob_entry(ev)})}};
            else {
                const json e = logprob_entry(ev);
                json top = json::object();
                for (const json &t : e["top_logprobs"]) top[t["token"].get<std::string>()] = t["logprob"];
                lp = {{"tokens", {e["token"]}}, {"token_logprobs", {e["logprob"]}}, {"top_logprobs", {top}},
                      {"text_offset", {c.content.size()}}};
            }
        }
        c.content += ev.text;
        if (ev.text.empty() && lp.is_null()) return {};
        return sse(chunk(item.choice, chat ? json{{"content", ev.text}} : json(ev.text), nullptr, lp));
    }
    case MUSE_EVENT_REASONING:
        c.reasoning += ev.text;
        if (ev.text.empty()) return {};
        return sse(chunk(item.choice, {{"reasoning_content", ev.text}}, nullptr));
    case MUSE_EVENT_TOOL_CALL:
        return sse(chunk(item.choice, {{"tool_calls", json::array({tool_call_json(c, ev)})}}, nullptr));
    case MUSE_EVENT_ERROR: return sse(error_body(500, ev.text));
    default: return {};
    }
}

std::string ResponseBuilder::stream_end() {
    std::string out;
    if (job_.include_usage) {
        json u = chunk(0, json::object(), nullptr);
        u["choices"] = json::array();
        u["usage"] = usage();
        out += sse(u);
    }
    return out + "data: [DONE]\n\n";
}

void ResponseBuilder::collect(const Item &item) {
    if (item.kind == Item::Kind::started) return;
    if (item.kind == Item::Kind::error) {
        if (error_.empty()) error_ = item.message;
        for (Choice &c : choices_) c.done = true;
        return;
    }
    Choice &c = choices_[static_cast<size_t>(item.choice)];
    const muse::event &ev = item.ev;
    if (item.kind == Item::Kind::done) {
        c.done = true;
        c.result = json::parse(item.result_json, nullptr, false);
        c.finish_reason = finish_reason(c, ev.finish_reason);
        // The merged answer's reasoning (the winning agent's, or the synthesis pass's) is not an
        // event of its own: it comes with the result.
        if (job_.contemplating() && c.result.is_object() && c.result.contains("reasoning") && c.result["reasoning"].is_string())
            c.reasoning = c.result["reasoning"].get<std::string>();
        return;
    }
    switch (ev.kind) {
    case MUSE_EVENT_ANSWER:
        if (job_.logprobs && ev.token >= 0) {
            json e = logprob_entry(ev);
            e["text_offset"] = c.content.size();
            c.logprobs.push_back(std::move(e));
        }
        c.content += ev.text;
        break;
    case MUSE_EVENT_REASONING: c.reasoning += ev.text; break;
    case MUSE_EVENT_TOOL_CALL: tool_call_json(c, ev); break;
    case MUSE_EVENT_ERROR:
        if (error_.empty()) error_ = ev.text;
        break;
    default: break;
    }
}

json ResponseBuilder::completion_logprobs(const Choice &c) const {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    for (const json &e : c.logprobs) {
        tokens.push_back(e["token"]);
        lps.push_back(e["logprob"]);
        json top = json::object();
        for (const json &t : e["top_logprobs"]) top[t["token"].get<std::string>()] = t["logprob"];
        tops.push_back(std::move(top));
        offsets.push_back(e["text_offset"]);
    }
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json ResponseBuilder::final_response() const {
    json choices = json::array();
    const bool chat = job_.kind == JobKind::chat;
    for (size_t i = 0; i < choices_.size(); ++i) {
        const Choice &c = choices_[i];
        json ch = {{"index", i}};
        if (chat) {
            json msg = {{"role", "assistant"}, {"content", c.content}};
            if (!c.reasoning.empty()) msg["reasoning_content"] = c.reasoning;
            if (!c.tool_calls.empty()) {
                json calls = c.tool_calls;
                for (json &k : calls) k.erase("index");
                msg["tool_calls"] = std::move(calls);
                if (c.content.empty()) msg["content"] = nullptr;
            }
            ch["message"] = std::move(msg);
            if (job_.logprobs) {
                json content = c.logprobs;
                for (json &e : content) e.erase("text_offset");
                ch["logprobs"] = {{"content", content}};
            } else ch["logprobs"] = nullptr;
        } else {
            ch["text"] = c.content;
            ch["logprobs"] = job_.logprobs ? completion_logprobs(c) : json();
        }
        ch["finish_reason"] = c.finish_reason.empty() ? "stop" : c.finish_reason;
        choices.push_back(std::move(ch));
    }
    json out = {{"id", job_.id},
                {"object", chat ? "chat.completion" : "text_completion"},
                {"created", job_.created},
                {"model", job_.model_name},
                {"system_fingerprint", "muse-" + std::string(muse_version())},
                {"choices", choices},
                {"usage", usage()}};
    if (job_.contemplating() && !choices_.empty()) out["contemplation"] = contemplation(choices_[0]);  // muse extension
    return out;
}

} // namespace server
