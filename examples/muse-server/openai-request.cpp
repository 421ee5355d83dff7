// OpenAI request bodies -> Jobs. Unknown fields are refused (400) rather than ignored, so a
// client never believes a setting took effect when it did not; the few OpenAI fields that
// only matter to OpenAI's own platform (user, store, metadata, service_tier) are accepted
// and ignored, as docs/SERVER.md lists.
#include "openai-request.h"

#include <chrono>
#include <cmath>
#include <random>
#include <set>

namespace server {

using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string &message, const std::string &param = {}) { throw ApiError(400, message, param); }

void check_known(const json &body, const std::set<std::string> &known, const std::string &where) {
    for (auto it = body.begin(); it != body.end(); ++it)
        if (!known.count(it.key()))
            bad("unknown field '" + it.key() + "'" + (where.empty() ? "" : " in " + where) +
                    " (muse-server refuses fields it does not implement)",
                it.key());
}

bool get_bool(const json &body, const char *key, bool def) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return def;
    if (!it->is_boolean()) bad(std::string("'") + key + "' must be a boolean", key);
    return it->get<bool>();
}

// An integer field in [lo, hi]; floats with an integral value (1.0) are accepted as JSON allows.
int64_t get_int(const json &body, const char *key, int64_t def, int64_t lo, int64_t hi) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return def;
    if (it->is_number_integer()) {
        if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
            bad(std::string("'") + key + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
        const int64_t v = it->get<int64_t>();
        if (v < lo || v > hi)
            bad(std::string("'") + key + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
        return v;
    }
    if (it->is_number_float()) {
        const double d = it->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi))
            return static_cast<int64_t>(d);
    }
    bad(std::string("'") + key + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
}

double get_number(const json &body, const char *key, double def, double lo, double hi) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return def;
    if (!it->is_number()) bad(std::string("'") + key + "' must be a number", key);
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
        bad(std::string("'") + key + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
    return v;
}

std::string get_string(const json &body, const char *key, const std::string &def) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return def;
    if (!it->is_string()) bad(std::string("'") + key + "' must be a string", key);
    return it->get<std::string>();
}

// Fields shared by both endpoints: sampling, stop, seed, n, streaming.
void parse_common(const json &body, const ModelInfo &info, const Limits &limits, Job &job) {
    const std::string model = get_string(body, "model", info.name);
    job.model_name = model.empty() ? info.name : model;
    job.stream = get_bool(body, "stream", false);
    if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) bad("'stream_options' must be an object", "stream_options");
        if (!job.stream) bad("'stream_options' is only allowed with stream: true", "stream_options");
        check_known(*it, {"include_usage"}, "stream_options");
        job.include_usage = get_bool(*it, "include_usage", false);
    }
    job.n = static_cast<int>(get_int(body, "n", 1, 1, limits.max_n));
    muse::sampling &s = job.gen.sampling;
    s.temperature = static_cast<float>(get_number(body, "temperature", 1.0, 0.0, 2.0));
    s.top_p = static_cast<float>(get_number(body, "top_p", 1.0, 0.0, 1.0));
    if (s.top_p <= 0.0f) s.temperature = 0.0f;  // top_p 0 keeps only the best token
    s.top_k = static_cast<int32_t>(get_int(body, "top_k", 0, 0, 1000));
    s.min_p = static_cast<float>(get_number(body, "min_p", 0.0, 0.0, 1.0));
    s.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", 0.0, -2.0, 2.0));
    s.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", 0.0, -2.0, 2.0));
    s.repeat_penalty = static_cast<float>(get_number(body, "repeat_penalty", 1.0, 0.0, 10.0));
    if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
        if (!it->is_number_integer()) bad("'seed' must be an integer", "seed");
        job.has_seed = true;
        job.seed = it->is_number_unsigned() ? it->get<uint64_t>() : static_cast<uint64_t>(it->get<int64_t>());
    }
    if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) bad("'logit_bias' must be an object of token id -> bias", "logit_bias");
        if (it->size() > 1024) bad("'logit_bias' has more than 1024 entries", "logit_bias");
        const int64_t n_vocab = info.model->n_vocab();
        for (auto b = it->begin(); b != it->end(); ++b) {
            int64_t id = -1;
            try {
                size_t used = 0;
                id = std::stoll(b.key(), &used);
                if (used != b.key().size()) id = -1;
            } catch (...) {
                id = -1;
            }
            if (id < 0 || id >= n_vocab) bad("'logit_bias' key '" + b.key() + "' is not a token id of this model", "logit_bias");
            if (!b->is_number() || !std::isfinite(b->get<double>()) || b->get<double>() < -100 || b->get<double>() > 100)
                bad("'logit_bias' values must be numbers in [-100, 100]", "logit_bias");
            s.logit_bias_tokens.push_back(static_cast<int32_t>(id));
            // -100 bans the token, as OpenAI documents.
            s.logit_bias_values.push_back(b->get<double>() <= -100 ? -INFINITY : static_cast<float>(b->get<double>()));
        }
    }
    if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
        std::vector<std::string> stops;
        if (it->is_string()) stops.push_back(it->get<std::string>());
        else if (it->is_array()) {
            for (const json &x : *it) {
                if (!x.is_string()) bad("'stop' entries must be strings", "stop");
                stops.push_back(x.get<std::string>());
            }
        } else bad("'stop' must be a string or an array of strings", "stop");
        if (stops.size() > limits.max_stop) bad("'stop' has more than " + std::to_string(limits.max_stop) + " entries", "stop");
        for (const std::string &x : stops) {
            if (x.empty()) bad("'stop' strings must not be empty", "stop");
            if (x.size() > 256) bad("'stop' strings are limited to 256 bytes", "stop");
        }
        job.gen.stop = std::move(stops);
    }
}

// max_tokens / max_completion_tokens against the context left after the prompt.
void set_max_tokens(const json &body, const Limits &limits, Job &job) {
    int64_t v = get_int(body, "max_completion_tokens", -1, 1, limits.max_tokens);
    if (v < 0) v = get_int(body, "max_tokens", -1, 1, limits.max_tokens);
    const int64_t room = limits.ctx_per_request - job.prompt_estimate;
    if (room < 1)
        throw ApiError(400, "the prompt takes " + std::to_string(job.prompt_estimate) + " tokens; this server's context is " +
                                std::to_string(limits.ctx_per_request),
                       "messages", "invalid_request_error", "context_length_exceeded");
    if (v < 0) v = std::min(room, limits.max_tokens);
    else if (v > room)
        throw ApiError(400, "max_tokens " + std::to_string(v) + " + the prompt's " + std::to_string(job.prompt_estimate) +
                                " tokens exceed this server's context of " + std::to_string(limits.ctx_per_request),
                       "max_tokens", "invalid_request_error", "context_length_exceeded");
    job.gen.max_tokens = static_cast<size_t>(v);
    job.reserve = job.prompt_estimate + v;
}

// A base64 payload (standard or URL-safe alphabet, padding optional) -> bytes.
bool base64_decode(std::string_view in, std::string &out) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+' || c == '-') return 62;
        if (c == '/' || c == '_') return 63;
        return -1;
    };
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    out.clear();
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const int v = val(c);
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return bits < 6;  // one leftover base64 digit cannot be a whole byte
}

// "data:image/png;base64,...." -> a decoded image (pixel limit checked before decoding).
muse::image decode_data_url(const std::string &url, const Limits &limits, const std::string &param) {
    if (url.rfind("data:", 0) != 0)
        bad("image_url must be a data URL (data:image/...;base64,...); remote and file URLs are not fetched", param);
    const size_t comma = url.find(',');
    if (comma == std::string::npos) bad("image_url data URL has no ',' before its payload", param);
    const std::string header = url.substr(5, comma - 5);
    if (header.size() < 7 || header.compare(header.size() - 7, 7, ";base64") != 0)
        bad("image_url data URL must be base64-encoded (data:image/...;base64,...)", param);
    if (header.rfind("image/", 0) != 0) bad("image_url data URL must have an image/* media type", param);
    std::string bytes;
    if (!base64_decode(std::string_view(url).substr(comma + 1), bytes) || bytes.empty())
        bad("image_url data URL has an invalid base64 payload", param);
    try {
        return muse::image::from_memory(bytes.data(), bytes.size(), muse::image_options{}.max_pixels(limits.max_image_pixels));
    } catch (const muse::error &e) {
        if (e.code() == MUSE_ERR_OUT_OF_RANGE)
            bad("image is larger than this server's limit of " + std::to_string(limits.max_image_pixels) + " pixels", param);
        bad(std::string("image cannot be decoded: ") + e.what(), param);
    }
}

// Text content: a string or an array of text parts.
std::string text_content(const json &content, const std::string &param) {
    if (content.is_string()) return content.get<std::string>();
    if (content.is_null()) return {};
    if (!content.is_array()) bad("content must be a string or an array of parts", param);
    std::string out;
    for (const json &p : content) {
        if (!p.is_object() || get_string(p, "type", "") != "text") bad("only text parts are allowed here", param);
        out += get_string(p, "text", "");
    }
    return out;
}

// One OpenAI message -> the message muse's templates render.
json convert_message(const json &m, size_t index, const ModelInfo &info, const Limits &limits, Job &job,
                     std::vector<std::pair<std::string, std::string>> &call_names) {
    const std::string where = "messages[" + std::to_string(index) + "]";
    if (!m.is_object()) bad(where + " must be an object", "messages");
    check_known(m, {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "refusal"}, where);
    std::string role = get_string(m, "role", "");
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        bad(where + ".role must be one of system, developer, user, assistant, tool", "messages");
    json out = {{"role", role}};
    const json content = m.contains("content") ? m["content"] : json();
    if (role == "user" && content.is_array()) {
        json parts = json::array();
        for (size_t k = 0; k < content.size(); ++k) {
            const json &p = content[k];
            const std::string pw = where + ".content[" + std::to_string(k) + "]";
            if (!p.is_object()) bad(pw + " must be an object", "messages");
            const std::string type = get_string(p, "type", "");
            if (type == "text") {
                check_known(p, {"type", "text"}, pw);
                parts.push_back({{"type", "text"}, {"text", get_string(p, "text", "")}});
            } else if (type == "image_url") {
                check_known(p, {"type", "image_url"}, pw);
                if (!info.has_vision) bad("this model has no vision projector (start muse-server with --mmproj)", "messages");
                if (job.images.size() >= limits.max_images)
                    bad("more than " + std::to_string(limits.max_images) + " images in one request", "messages");
                const json iu = p.contains("image_url") ? p["image_url"] : json();
                std::string url;
                if (iu.is_string()) url = iu.get<std::string>();
                else if (iu.is_object()) {
                    check_known(iu, {"url", "detail"}, pw + ".image_url");
                    url = get_string(iu, "url", "");
                } else bad(pw + ".image_url must be an object with a url", "messages");
                job.images.push_back(decode_data_url(url, limits, "messages"));
                parts.push_back({{"type", "image"}});
            } else bad(pw + ".type '" + type + "' is not supported (text, image_url)", "messages");
        }
        out["content"] = std::move(parts);
    } else {
        out["content"] = text_content(content, where + ".content");
    }
    if (m.contains("name") && !m["name"].is_null()) out["name"] = get_string(m, "name", "");
    if (role == "assistant") {
        if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
            const std::string r = get_string(m, "reasoning_content", "");
            if (!r.empty()) out["reasoning_content"] = r;
        }
        if (auto it = m.find("tool_calls"); it != m.end() && !it->is_null()) {
            if (!it->is_array()) bad(where + ".tool_calls must be an array", "messages");
            json calls = json::array();
            for (const json &c : *it) {
                if (!c.is_object()) bad(where + ".tool_calls entries must be objects", "messages");
                check_known(c, {"id", "type", "function"}, where + ".tool_calls[]");
                if (get_string(c, "type", "function") != "function") bad("only function tool calls exist", "messages");
                const json f = c.contains("function") ? c["function"] : json();
                if (!f.is_object()) bad(where + ".tool_calls[].function must be an object", "messages");
                check_known(f, {"name", "arguments"}, where + ".tool_calls[].function");
                const std::string name = get_string(f, "name", "");
                if (name.empty()) bad(where + ".tool_calls[].function.name is missing", "messages");
                // Templates render the arguments as a mapping (some refuse a string), so the
                // JSON text OpenAI clients send is parsed back into an object.
                json args = json::object();
                if (f.contains("arguments") && f["arguments"].is_string()) {
                    args = json::parse(f["arguments"].get<std::string>(), nullptr, false);
                    if (args.is_discarded() || !args.is_object())
                        bad(where + ".tool_calls[].function.arguments must be a JSON object (as text)", "messages");
                } else if (f.contains("arguments") && f["arguments"].is_object()) args = f["arguments"];
                else if (f.contains("arguments") && !f["arguments"].is_null())
                    bad(where + ".tool_calls[].function.arguments must be a string", "messages");
                const std::string id = get_string(c, "id", "call_" + std::to_string(index) + "_" + std::to_string(calls.size()));
                call_names.emplace_back(id, name);
                calls.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", args}}}});
            }
            if (!calls.empty()) out["tool_calls"] = std::move(calls);
        }
    } else if (m.contains("tool_calls") && !m["tool_calls"].is_null()) bad(where + ": only assistant messages have tool_calls", "messages");
    if (role == "tool") {
        const std::string id = get_string(m, "tool_call_id", "");
        if (id.empty()) bad(where + ".tool_call_id is missing", "messages");
        out["tool_call_id"] = id;
        if (!out.contains("name"))  // templates name the tool in its result
            for (const auto &[cid, name] : call_names)
                if (cid == id) out["name"] = name;
    }
    return out;
}

void parse_tools(const json &body, const Limits &limits, Job &job) {
    auto it = body.find("tools");
    std::set<std::string> names;
    json tools = json::array();
    if (it != body.end() && !it->is_null()) {
        if (!it->is_array()) bad("'tools' must be an array", "tools");
        if (it->size() > limits.max_tools) bad("more than " + std::to_string(limits.max_tools) + " tools", "tools");
        for (const json &t : *it) {
            if (!t.is_object() || get_string(t, "type", "") != "function") bad("'tools' entries must be {\"type\": \"function\", ...}", "tools");
            check_known(t, {"type", "function"}, "tools[]");
            const json f = t.contains("function") ? t["function"] : json();
            if (!f.is_object()) bad("tools[].function must be an object", "tools");
            check_known(f, {"name", "description", "parameters", "strict"}, "tools[].function");
            const std::string name = get_string(f, "name", "");
            if (name.empty()) bad("tools[].function.name is missing", "tools");
            if (f.contains("parameters") && !f["parameters"].is_object() && !f["parameters"].is_null())
                bad("tools[].function.parameters must be a JSON Schema object", "tools");
            names.insert(name);
            // OpenAI makes description and parameters optional; templates print both.
            json fn = {{"name", name}, {"description", get_string(f, "description", "")}};
            fn["parameters"] = f.contains("parameters") && f["parameters"].is_object()
                                   ? f["parameters"]
                                   : json{{"type", "object"}, {"properties", json::object()}};
            tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
        }
        if (!tools.empty()) job.chat.tools_json = tools.dump();
    }
    if (auto tc = body.find("tool_choice"); tc != body.end() && !tc->is_null()) {
        std::string choice;
        if (tc->is_string()) {
            choice = tc->get<std::string>();
            if (choice != "auto" && choice != "none" && choice != "required")
                bad("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
        } else if (tc->is_object()) {
            check_known(*tc, {"type", "function"}, "tool_choice");
            const json f = tc->contains("function") ? (*tc)["function"] : json();
            if (!f.is_object()) bad("'tool_choice'.function must be an object", "tool_choice");
            choice = get_string(f, "name", "");
            if (!names.count(choice)) bad("'tool_choice' names a function that is not in 'tools'", "tool_choice");
        } else bad("'tool_choice' must be a string or an object", "tool_choice");
        if (choice != "none" && choice != "auto" && names.empty()) bad("'tool_choice' needs 'tools'", "tool_choice");
        job.chat.tool_choice = choice;
    }
    job.chat.parallel_tool_calls = get_bool(body, "parallel_tool_calls", true);
    // The client runs the tools: every call ends the response with finish_reason tool_calls.
    job.chat.max_tool_rounds = 0;
}

void parse_thinking(const json &body, Job &job) {
    muse::thinking_options &t = job.gen.thinking;
    t.mode = MUSE_THINKING_AUTO;
    const std::string mode = get_string(body, "thinking", "auto");
    if (mode == "on") t.mode = MUSE_THINKING_ON;
    else if (mode == "off") t.mode = MUSE_THINKING_OFF;
    else if (mode != "auto") bad("'thinking' must be auto, on or off", "thinking");
    const std::string effort = get_string(body, "reasoning_effort", "");
    if (effort == "low") t.effort = MUSE_EFFORT_LOW;
    else if (effort == "medium") t.effort = MUSE_EFFORT_MEDIUM;
    else if (effort == "high") t.effort = MUSE_EFFORT_HIGH;
    else if (effort == "minimal" || effort == "none") t.mode = MUSE_THINKING_OFF;
    else if (!effort.empty()) bad("'reasoning_effort' must be minimal, low, medium or high", "reasoning_effort");
    t.budget = static_cast<int32_t>(get_int(body, "thinking_budget", -1, -1, 1 << 20));
    t.min_tokens = static_cast<int32_t>(get_int(body, "thinking_min_tokens", 0, 0, 1 << 20));
}

// agents / aggregate: contemplating mode. Called after the fields it cannot be combined with.
void parse_contemplation(const json &body, const Limits &limits, Job &job) {
    job.agents = static_cast<int>(get_int(body, "agents", 1, 1, limits.max_n));
    const bool has_aggregate = body.contains("aggregate") && !body["aggregate"].is_null();
    if (!job.contemplating()) {
        // One agent has nothing to merge: a policy that would be silently ignored is refused.
        if (has_aggregate) bad("'aggregate' needs 'agents' >= 2", "aggregate");
        return;
    }
    static const std::pair<const char *, muse_aggregate> kPolicies[] = {
        {"vote", MUSE_AGGREGATE_VOTE},           {"weighted", MUSE_AGGREGATE_WEIGHTED},
        {"early_stop", MUSE_AGGREGATE_EARLY_STOP}, {"synthesize", MUSE_AGGREGATE_SYNTHESIZE},
        {"all", MUSE_AGGREGATE_ALL}};
    const std::string name = get_string(body, "aggregate", "vote");
    bool known = false;
    for (const auto &[n, a] : kPolicies)
        if (name == n) job.gen.contemplate.aggregate = a, known = true;
    if (!known) bad("'aggregate' must be one of vote, weighted, early_stop, synthesize, all", "aggregate");
    if (job.n > 1) bad("'n' > 1 cannot be combined with 'agents': the agents' merged answer is one choice", "n");
    // The aggregate is a text answer: the agents' tool calls and per-token logprobs are not merged.
    if (!job.chat.tools_json.empty()) bad("'tools' cannot be combined with 'agents'", "tools");
    if (job.logprobs) bad("'logprobs' cannot be combined with 'agents'", "logprobs");
    if (job.sequences() > limits.max_n)
        bad("'agents' " + std::to_string(job.agents) + " with aggregate synthesize need " + std::to_string(job.sequences()) +
                " sequences; this server has " + std::to_string(limits.max_n) + " (--parallel)",
            "agents");
    job.gen.contemplate.n_agents = job.agents;
}

void parse_response_format(const json &body, Job &job) {
    auto it = body.find("response_format");
    if (it == body.end() || it->is_null()) return;
    if (!it->is_object()) bad("'response_format' must be an object", "response_format");
    const std::string type = get_string(*it, "type", "");
    if (type == "text") return;
    if (type == "json_object") {
        check_known(*it, {"type"}, "response_format");
    } else if (type == "json_schema") {
        check_known(*it, {"type", "json_schema"}, "response_format");
        const json s = it->contains("json_schema") ? (*it)["json_schema"] : json();
        if (!s.is_object()) bad("response_format.json_schema must be an object", "response_format");
        check_known(s, {"name", "schema", "strict", "description"}, "response_format.json_schema");
        if (!s.contains("schema") || (!s["schema"].is_object() && !s["schema"].is_boolean()))
            bad("response_format.json_schema.schema must be a JSON Schema", "response_format");
        // Compiled now so a schema muse cannot handle is a 400 before anything is queued.
        try {
            muse::grammar::from_json_schema(s["schema"].dump(), MUSE_JSON_SCHEMA_COMPACT);
        } catch (const muse::error &e) {
            bad(std::string("response_format schema: ") + e.what(), "response_format");
        }
    } else bad("response_format.type must be text, json_object or json_schema", "response_format");
    job.chat.response_format_json = it->dump();
}

void parse_logprobs(const json &body, Job &job, bool chat) {
    if (chat) {
        job.logprobs = get_bool(body, "logprobs", false);
        job.top_logprobs = static_cast<int>(get_int(body, "top_logprobs", 0, 0, 20));
        if (job.top_logprobs > 0 && !job.logprobs) bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    } else {
        const int64_t n = get_int(body, "logprobs", -1, 0, 5);
        job.logprobs = n >= 0;
        job.top_logprobs = static_cast<int>(n < 0 ? 0 : n);
    }
    // The chosen token's logprob comes with n_logprobs >= 1 only.
    if (job.logprobs) job.gen.n_logprobs = std::max(1, job.top_logprobs);
}

int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace

std::string random_hex(size_t n) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char *digits = "0123456789abcdef";
    std::string s(n, '0');
    for (char &c : s) c = digits[rng() & 15];
    return s;
}

json parse_body(const std::string &body) {
    json j = json::parse(body, nullptr, false);  // invalid UTF-8 in strings is a parse error too
    if (j.is_discarded()) bad("the request body is not valid JSON (UTF-8)");
    if (!j.is_object()) bad("the request body must be a JSON object");
    // Deeply nested values would recurse in dump(), the template engine and the schema
    // compiler: refused here, with an explicit stack so the check itself cannot overflow.
    constexpr size_t kMaxDepth = 64;
    std::vector<std::pair<const json *, size_t>> stack = {{&j, 1}};
    while (!stack.empty()) {
        const auto [v, depth] = stack.back();
        stack.pop_back();
        if (depth > kMaxDepth) bad("the request nests JSON deeper than " + std::to_string(kMaxDepth) + " levels");
        if (v->is_structured())
            for (const json &child : *v) stack.emplace_back(&child, depth + 1);
    }
    return j;
}

void parse_chat_request(const json &body, const ModelInfo &info, const Limits &limits, Job &job) {
    check_known(body,
                {"model", "messages", "stream", "stream_options", "n", "temperature", "top_p", "top_k", "min_p",
                 "presence_penalty", "frequency_penalty", "repeat_penalty", "logit_bias", "seed", "stop", "max_tokens",
                 "max_completion_tokens", "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
                 "response_format", "reasoning_effort", "thinking", "thinking_budget", "thinking_min_tokens", "user",
                 "store", "metadata", "service_tier", "agents", "aggregate"},
                "");
    job.kind = JobKind::chat;
    job.id = "chatcmpl-" + random_hex(24);
    job.created = now_seconds();
    parse_common(body, info, limits, job);
    parse_logprobs(body, job, true);
    parse_thinking(body, job);
    parse_tools(body, limits, job);
    parse_response_format(body, job);
    parse_contemplation(body, limits, job);

    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) bad("'messages' must be a non-empty array", "messages");
    if (it->size() > limits.max_messages)
        bad("'messages' has " + std::to_string(it->size()) + " entries; this server accepts at most " +
                std::to_string(limits.max_messages),
            "messages");
    json messages = json::array();
    std::vector<std::pair<std::string, std::string>> call_names;
    for (size_t i = 0; i < it->size(); ++i) messages.push_back(convert_message((*it)[i], i, info, limits, job, call_names));
    job.messages_json = messages.dump(-1, ' ', false, json::error_handler_t::replace);
    for (const muse::image &im : job.images) job.chat.images.push_back(&im);

    // Render now: template errors are the client's (400), and the rendered text sizes the
    // request and finds the cached sequence that shares most of it.
    muse_chat_params cp;
    muse_chat_params_init(&cp);
    cp.tools_json = job.chat.tools_json.empty() ? nullptr : job.chat.tools_json.c_str();
    std::vector<const muse_image *> imgs;
    for (const muse::image &im : job.images) imgs.push_back(im.get());
    cp.images = imgs.data();
    cp.n_images = imgs.size();
    cp.tool_choice = job.chat.tool_choice.empty() ? nullptr : job.chat.tool_choice.c_str();
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.thinking.mode = job.gen.thinking.mode;
    gp.thinking.effort = job.gen.thinking.effort;
    char *prompt = nullptr;
    if (muse_model_chat_prompt(info.model->get(), job.messages_json.c_str(), &cp, &gp, &prompt) != MUSE_OK)
        bad(std::string("the conversation cannot be rendered with the model's chat template: ") + muse_last_error(), "messages");
    job.rendered_prompt = prompt;
    muse_string_free(prompt);
    int64_t rows = static_cast<int64_t>(info.model->tokenize(job.rendered_prompt, true, true).size());
    for (const muse::image &im : job.images) {
        int64_t n = 0;
        if (muse_model_image_tokens(info.model->get(), im.get(), &n) == MUSE_OK) rows += n;
    }
    job.prompt_estimate = rows;
    set_max_tokens(body, limits, job);
}

void parse_completion_request(const json &body, const ModelInfo &info, const Limits &limits, Job &job) {
    check_known(body,
                {"model", "prompt", "stream", "stream_options", "n", "temperature", "top_p", "top_k", "min_p",
                 "presence_penalty", "frequency_penalty", "repeat_penalty", "logit_bias", "seed", "stop", "max_tokens",
                 "logprobs", "echo", "suffix", "best_of", "user"},
                "");
    if (get_bool(body, "echo", false)) bad("'echo' is not supported", "echo");
    if (!get_string(body, "suffix", "").empty()) bad("'suffix' is not supported", "suffix");
    if (get_int(body, "best_of", 1, 1, 1) != 1) bad("'best_of' is not supported", "best_of");
    job.kind = JobKind::completion;
    job.id = "cmpl-" + random_hex(24);
    job.created = now_seconds();
    parse_common(body, info, limits, job);
    parse_logprobs(body, job, false);
    auto it = body.find("prompt");
    if (it == body.end()) bad("'prompt' is required", "prompt");
    const int64_t n_vocab = info.model->n_vocab();
    if (it->is_string()) job.prompt_tokens = info.model->tokenize(it->get<std::string>(), true, false);
    else if (it->is_array() && it->size() == 1 && (*it)[0].is_string())
        job.prompt_tokens = info.model->tokenize((*it)[0].get<std::string>(), true, false);
    else if (it->is_array() && !it->empty() && (*it)[0].is_number()) {
        for (const json &t : *it) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
                bad("'prompt' token ids must be integers in [0, n_vocab)", "prompt");
            job.prompt_tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
    } else bad("'prompt' must be a string, an array of one string or an array of token ids", "prompt");
    if (job.prompt_tokens.empty()) bad("'prompt' is empty", "prompt");
    job.prompt_estimate = static_cast<int64_t>(job.prompt_tokens.size());
    set_max_tokens(body, limits, job);
}

} // namespace server
