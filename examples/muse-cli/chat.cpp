// muse-cli chat: chat turns with the model's own template and the thinking controller.
#include "cli.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace cli {

namespace {

// One line of text: control characters escaped (answers of the tiny test models are noise).
std::string one_line(const std::string &s, size_t max = 200) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= max) return out + "...";
        if (c == '\n') out += "\\n";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    return out;
}

struct TurnPrinter {
    bool show_thinking, json, dim;
    bool contemplating = false;  // the agents' text is summarized after the turn, not streamed
    muse_channel last = MUSE_CHANNEL_ANSWER;
    bool started_reasoning = false;

    bool operator()(const muse::token_event &e) {
        if (json || contemplating) return true;
        if (e.channel == MUSE_CHANNEL_REASONING) {
            if (!show_thinking) return true;
            if (!started_reasoning) std::fputs(dim ? "\033[2m[thinking] " : "[thinking] ", stderr);
            started_reasoning = true;
            std::fwrite(e.piece.data(), 1, e.piece.size(), stderr);
            std::fflush(stderr);
        } else if (e.channel == MUSE_CHANNEL_TOOL_CALL) {
            std::fprintf(stderr, "\n[tool call] %.*s %.*s\n", static_cast<int>(e.tool_name.size()), e.tool_name.data(),
                         static_cast<int>(e.tool_arguments.size()), e.tool_arguments.data());
        } else if (e.channel == MUSE_CHANNEL_TOOL_RESULT) {
            std::fprintf(stderr, "[tool result%s] %.*s: %s\n", e.tool_failed ? ", failed" : "",
                         static_cast<int>(e.tool_name.size()), e.tool_name.data(), one_line(std::string(e.piece)).c_str());
        } else if (e.channel == MUSE_CHANNEL_ARTEFACT) {
            std::fprintf(stderr, "[artefact from %.*s] %.*s, %.*s, %zu bytes\n", static_cast<int>(e.tool_name.size()),
                         e.tool_name.data(), static_cast<int>(e.artefact_kind.size()), e.artefact_kind.data(),
                         static_cast<int>(e.artefact_mime.size()), e.artefact_mime.data(), e.artefact.size());
        } else {
            if (last == MUSE_CHANNEL_REASONING && show_thinking) std::fputs(dim ? "\033[0m\n" : "\n", stderr);
            std::fwrite(e.piece.data(), 1, e.piece.size(), stdout);
            std::fflush(stdout);
        }
        last = e.channel;
        return true;
    }
};

// Contemplating mode: each agent's answer and confidence (stderr), then the aggregate (stdout).
void print_contemplation(const nlohmann::json &result, double secs) {
    const auto &agg = result["aggregate"];
    for (const auto &ag : result["agents"]) {
        std::fprintf(stderr, "[agent %d] T=%.2f seed %llu, confidence %.3f, %s%s: %s\n", ag["agent"].get<int>(),
                     ag["temperature"].get<double>(), static_cast<unsigned long long>(ag["seed"].get<uint64_t>()),
                     ag["confidence"].get<double>(), ag["finish_reason"].get<std::string>().c_str(),
                     ag["voted"].get<bool>() ? ", voted" : "", one_line(ag["answer"].get<std::string>()).c_str());
    }
    std::fprintf(stderr, "[aggregate %s, agreement %.2f]\n", agg["method"].get<std::string>().c_str(),
                 agg["agreement"].get<double>());
    const std::string answer = result["answer"].get<std::string>();
    std::fwrite(answer.data(), 1, answer.size(), stdout);
    std::printf("\n");
    std::fflush(stdout);
    const auto &u = result["usage"];
    std::fprintf(stderr, "[%zu agents, %d completion tokens, %d prompt tokens (%d cached, %d evaluated); %.2f s]\n",
                 result["agents"].size(), u["completion_tokens"].get<int>(), u["prompt_tokens"].get<int>(),
                 u["cached_tokens"].get<int>(), u["prompt_tokens_evaluated"].get<int>(), secs);
}

// --tools FILE: the declarations; in an interactive chat each becomes a tool whose result
// the user types (one line); otherwise the calls end the turn and are printed.
std::vector<muse::tool> load_tools(const Args &a, bool ask_user) {
    std::vector<muse::tool> out;
    if (a.tools_file.empty()) return out;
    std::ifstream f(a.tools_file);
    if (!f) usage_error("--tools: cannot read " + a.tools_file);
    std::stringstream ss;
    ss << f.rdbuf();
    const nlohmann::json decls = nlohmann::json::parse(ss.str(), nullptr, false);
    if (decls.is_discarded() || !decls.is_array())
        usage_error("--tools: " + a.tools_file + " must hold a JSON array of tool declarations");
    for (const nlohmann::json &d : decls) {
        muse::tool t;
        t.declaration_json = d.dump();
        if (ask_user)
            t.fn = [](const std::string &name, const std::string &args) {
                // The call's event is printed after the tool ran; ask with the call in view.
                std::fprintf(stderr, "\nresult of %s %s> ", name.c_str(), args.c_str());
                std::string line;
                if (!std::getline(std::cin, line)) throw std::runtime_error("no result given (end of input)");
                return muse::tool_result{line};
            };
        out.push_back(std::move(t));
    }
    return out;
}

} // namespace

int cmd_chat(const Args &a) {
    if (a.model.empty()) usage_error("chat needs -m MODEL");
    if (!a.images.empty() && a.mmproj.empty()) usage_error("--image needs --mmproj FILE (the vision projector)");
    const bool contemplating = a.agents > 1;
    if (!contemplating && (a.have_aggregate || a.temp_spread != 0.0))
        usage_error("--aggregate and --temp-spread need --agents N with N > 1");
    muse::session_options so = session_options(a);
    if (contemplating)  // one sequence per agent, one more for the synthesis pass
        so.n_seq_max = static_cast<int32_t>(a.agents) + (a.aggregate == MUSE_AGGREGATE_SYNTHESIZE ? 1 : 0);
    if (so.n_seq_max > 64) usage_error("--agents " + std::to_string(a.agents) + " with synthesize needs 65 sequences (at most 64)");
    const muse::model m = open_model(a);
    muse::session s(m, so);
    muse::generate_options go;
    if (contemplating) {
        go.contemplate.n_agents = static_cast<int32_t>(a.agents);
        go.contemplate.aggregate = a.aggregate;
        go.contemplate.temperature_spread = static_cast<float>(a.temp_spread);
    }
    go.max_tokens = static_cast<size_t>(a.n_predict < 0 ? 1024 : a.n_predict);
    go.sampling = a.sampling;
    go.thinking = a.thinking;
    if (!a.stop.empty()) usage_error("--stop is not available in chat (the template's end of turn stops it)");

    std::vector<muse::image> images;
    for (const std::string &path : a.images) images.push_back(muse::image::open(path));
    nlohmann::json messages = nlohmann::json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
    const bool interactive = !a.have_prompt;
    const bool dim = isatty(fileno(stderr)) != 0;
    const std::vector<muse::tool> tools = load_tools(a, interactive);
    if (contemplating && (!tools.empty() || !a.builtin_tools.empty()))
        usage_error("--tools / --builtin-tools cannot be combined with --agents");
    nlohmann::json turns = nlohmann::json::array();
    for (bool first = true;; first = false) {
        std::string user;
        if (interactive) {
            if (isatty(fileno(stdin))) std::fputs("> ", stderr);
            if (!std::getline(std::cin, user)) break;
            if (user.empty()) continue;
        } else {
            if (!first) break;
            user = a.prompt;
        }
        nlohmann::json content = user;
        muse::chat_options co;
        co.tools = tools;
        co.tool_choice = a.tool_choice;
        co.max_tool_rounds = static_cast<int32_t>(a.max_tool_rounds);
        co.parallel_tool_calls = a.parallel_tool_calls;
        co.builtin_tools = a.builtin_tools;
        if (first && !images.empty()) {  // the images go with the first question
            content = nlohmann::json::array();
            for (size_t i = 0; i < images.size(); ++i) content.push_back({{"type", "image"}});
            content.push_back({{"type", "text"}, {"text", user}});
        }
        for (const muse::image &im : images) co.images.push_back(&im);
        messages.push_back({{"role", "user"}, {"content", content}});
        TurnPrinter print{a.show_thinking, a.json, dim, contemplating};
        const auto t0 = std::chrono::steady_clock::now();
        const muse::chat_response r = s.chat(messages.dump(), go, co, std::ref(print));
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const nlohmann::json result = nlohmann::json::parse(r.json);
        // The turn as the conversation goes on: calls answered by a tool and their results,
        // then the answer (or the calls left for the host).
        for (const auto &x : result.value("tool_results", nlohmann::json::array())) {
            messages.push_back({{"role", "assistant"},
                                {"content", ""},
                                {"tool_calls", {{{"type", "function"},
                                                 {"function", {{"name", x["name"]}, {"arguments", x["arguments"]}}}}}}});
            messages.push_back({{"role", "tool"}, {"name", x["name"]}, {"content", x["content"]}});
        }
        nlohmann::json assistant = {{"role", "assistant"}, {"content", r.answer}};
        if (!result["tool_calls"].empty()) {
            nlohmann::json calls = nlohmann::json::array();
            for (const auto &c : result["tool_calls"])
                calls.push_back({{"type", "function"}, {"function", {{"name", c["name"]}, {"arguments", c["arguments"]}}}});
            assistant["tool_calls"] = calls;
        }
        messages.push_back(assistant);
        if (a.json) {
            nlohmann::json t = result;
            t["seconds"] = secs;
            turns.push_back(t);
            continue;
        }
        if (contemplating) {
            print_contemplation(result, secs);
            continue;
        }
        const auto &u = result["usage"];
        std::printf("\n");
        std::fprintf(stderr, "[reasoning %d tokens (%s), answer %d tokens, %d prompt tokens (%d cached); %.2f s]\n",
                     u["reasoning_tokens"].get<int>(), u["reasoning_end"].get<std::string>().c_str(),
                     u["answer_tokens"].get<int>(), u["prompt_tokens"].get<int>(), u["cached_tokens"].get<int>(), secs);
    }
    if (a.json) std::cout << (turns.size() == 1 ? turns[0] : turns).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
}

} // namespace cli
