#include "tools/tool-loop.h"

#include "core/error.h"
#include "engine/session.h"
#include "model/model.h"
#include "tools/builtin-tools.h"
#include "tools/call-grammar.h"

namespace muse::tools {

namespace {
using json = nlohmann::ordered_json;
}

std::vector<Tool> resolve_builtin_tools(const std::vector<std::string> &names) {
    std::vector<Tool> out;
    for (const std::string &n : names) {
        std::optional<Tool> t = builtin_tool(n);
        if (!t) {
            std::string known;
            for (const std::string &k : builtin_tool_names()) known += (known.empty() ? "" : ", ") + k;
            fail(MUSE_ERR_NOT_FOUND, "unknown built-in tool '", n, "' (built-in tools: ", known, ")");
        }
        out.push_back(std::move(*t));
    }
    return out;
}

ToolLoop::ToolLoop(const Model &model, ChatRequest request, ToolLoopOptions options)
    : model_(model), request_(std::move(request)), options_(std::move(options)) {
    if (options_.max_rounds < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "max_tool_rounds must not be negative");
    if (request_.tools.is_null()) request_.tools = json::array();
    if (!request_.tools.is_array()) fail(MUSE_ERR_INVALID_ARGUMENT, "tools must be a JSON array");
    for (const Tool &t : options_.tools) {
        if (!t.run) fail(MUSE_ERR_INVALID_ARGUMENT, "a tool needs a function to run");
        request_.tools.push_back(t.declaration);
    }
    function_declarations(request_.tools);  // validates names (and duplicates) now, not mid-turn
}

GenerationSetup ToolLoop::prepare(const std::shared_ptr<ToolLoop> &loop, Session &session, std::string *prompt_text) {
    GenerationSetup setup = prepare_chat_turn(loop->model_, session, loop->request_, prompt_text);
    setup.tool_phase = loop;
    return setup;
}

bool ToolLoop::can_show_images() const {
    try {
        model_.require_images();
        return true;
    } catch (const Error &) {
        return false;
    }
}

ToolOutcome ToolLoop::run_one(const reasoning::ToolCall &call) const {
    const Tool *tool = nullptr;
    for (const Tool &t : options_.tools)
        if (t.name() == call.name) tool = &t;
    ToolOutcome out;
    json args = json::parse(call.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
        out.failed = true;
        out.content = "error: the arguments are not a JSON object: " + call.arguments;
        return out;
    }
    ToolContext ctx;
    ctx.images = request_.images;
    try {
        out = tool->run(args, ctx);
    } catch (const std::exception &e) {
        out = ToolOutcome{};
        out.failed = true;
        out.content = std::string("error: ") + e.what();
    } catch (...) {
        out = ToolOutcome{};
        out.failed = true;
        out.content = "error: the tool failed";
    }
    return out;
}

std::optional<ToolPhase::Round> ToolLoop::next_round(Session &session, int seq, const Output &round,
                                                     const std::function<void(GenerationEvent)> &deliver) {
    if (round.calls.empty() || round_ >= options_.max_rounds) return std::nullopt;
    for (const reasoning::ToolCall &c : round.calls) {
        bool callable = false;
        for (const Tool &t : options_.tools) callable = callable || t.name() == c.name;
        if (!callable) return std::nullopt;  // the host answers this one
    }
    // The assistant's turn as the template expects it, then one tool message per call.
    CallSyntax syntax = CallSyntax::hermes;
    reasoning::ReasoningFormat format = model_reasoning_format(model_);
    if (!request_.template_source.empty())
        format = reasoning::detect_format(model_.arch(), request_.template_source, nullptr);
    call_syntax(format, &syntax);
    // Llama 3 templates render one call per assistant message.
    const bool split = syntax == CallSyntax::llama_json;
    json calls = json::array();
    std::vector<json> results;
    for (size_t i = 0; i < round.calls.size(); ++i) {
        const reasoning::ToolCall &c = round.calls[i];
        const std::string id = "call_" + std::to_string(round_) + "_" + std::to_string(i);
        json args = json::parse(c.arguments, nullptr, false);
        if (args.is_discarded() || !args.is_object()) args = json::object();
        calls.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", args}}}});

        ToolOutcome outcome = run_one(c);
        ToolExchange ex{c, outcome.content, outcome.failed, false, round_};
        json content = outcome.content;
        if (outcome.image) {
            if (can_show_images()) {
                images_.push_back(std::move(*outcome.image));
                request_.images.push_back(&images_.back());
                content = json::array({{{"type", "text"}, {"text", outcome.content}}, {{"type", "image"}}});
                ex.image = true;
            } else {
                content = outcome.content + "\n(The tool returned an image, which this model cannot see.)";
                ex.content = content.get<std::string>();  // as the model reads it
            }
        }
        results.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", c.name}, {"content", content}});
        GenerationEvent ev;
        ev.kind = GenerationEvent::Kind::tool_result;
        ev.text = ex.content;
        ev.call = c;
        ev.result = ex;
        deliver(std::move(ev));
        for (HostArtefact &a : outcome.artefacts) {
            GenerationEvent art;
            art.kind = GenerationEvent::Kind::artefact;
            art.text = c.name;
            art.artefact = std::move(a);
            deliver(std::move(art));
        }
    }
    json assistant = {{"role", "assistant"}, {"content", round.answer}};
    if (!round.reasoning.empty()) assistant["reasoning_content"] = round.reasoning;
    if (split) {
        for (size_t i = 0; i < calls.size(); ++i) {
            json a = assistant;
            if (i > 0) a.erase("reasoning_content"), a["content"] = "";
            a["tool_calls"] = json::array({calls[i]});
            request_.messages.push_back(std::move(a));
            request_.messages.push_back(results[i]);
        }
    } else {
        assistant["tool_calls"] = calls;
        request_.messages.push_back(std::move(assistant));
        for (json &r : results) request_.messages.push_back(std::move(r));
    }
    ++round_;
    // tool_choice holds for every round but the last allowed one, which must answer.
    if (round_ >= options_.max_rounds) request_.tool_choice = ToolChoice{ToolChoice::Kind::none, {}};
    request_.seq = seq;
    request_.reuse_prefix = true;
    Round next;
    GenerationSetup setup = prepare_chat_turn(model_, session, request_, &next.prompt_text);
    next.prompt = std::move(setup.prompt);
    next.cached = setup.cached;
    next.start = setup.start;
    next.calls = std::move(setup.calls);
    next.format = *setup.format;
    next.tools = std::move(setup.tools);
    return next;
}

} // namespace muse::tools
