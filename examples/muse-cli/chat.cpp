// muse-cli chat: chat turns with the model's own template and the thinking controller.
#include "cli.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <unistd.h>

namespace cli {

namespace {

struct TurnPrinter {
    bool show_thinking, json, dim;
    muse_channel last = MUSE_CHANNEL_ANSWER;
    bool started_reasoning = false;

    bool operator()(const muse::token_event &e) {
        if (json) return true;
        if (e.channel == MUSE_CHANNEL_REASONING) {
            if (!show_thinking) return true;
            if (!started_reasoning) std::fputs(dim ? "\033[2m[thinking] " : "[thinking] ", stderr);
            started_reasoning = true;
            std::fwrite(e.piece.data(), 1, e.piece.size(), stderr);
            std::fflush(stderr);
        } else if (e.channel == MUSE_CHANNEL_TOOL_CALL) {
            std::fprintf(stderr, "\n[tool call] %.*s %.*s\n", static_cast<int>(e.tool_name.size()), e.tool_name.data(),
                         static_cast<int>(e.tool_arguments.size()), e.tool_arguments.data());
        } else {
            if (last == MUSE_CHANNEL_REASONING && show_thinking) std::fputs(dim ? "\033[0m\n" : "\n", stderr);
            std::fwrite(e.piece.data(), 1, e.piece.size(), stdout);
            std::fflush(stdout);
        }
        last = e.channel;
        return true;
    }
};

} // namespace

int cmd_chat(const Args &a) {
    if (a.model.empty()) usage_error("chat needs -m MODEL");
    if (!a.images.empty() && a.mmproj.empty()) usage_error("--image needs --mmproj FILE (the vision projector)");
    const muse::model m = open_model(a);
    muse::session s(m, session_options(a));
    muse::generate_options go;
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
        if (first && !images.empty()) {  // the images go with the first question
            content = nlohmann::json::array();
            for (size_t i = 0; i < images.size(); ++i) content.push_back({{"type", "image"}});
            content.push_back({{"type", "text"}, {"text", user}});
        }
        for (const muse::image &im : images) co.images.push_back(&im);
        messages.push_back({{"role", "user"}, {"content", content}});
        TurnPrinter print{a.show_thinking, a.json, dim};
        const auto t0 = std::chrono::steady_clock::now();
        const muse::chat_response r = s.chat(messages.dump(), go, co, std::ref(print));
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const nlohmann::json result = nlohmann::json::parse(r.json);
        messages.push_back({{"role", "assistant"}, {"content", r.answer}});
        if (a.json) {
            nlohmann::json t = result;
            t["seconds"] = secs;
            turns.push_back(t);
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
