// Shared pieces of muse-cli's commands: parsed arguments and usage errors.
#pragma once

#include "muse/muse.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace cli {

[[noreturn]] inline void usage_error(const std::string &msg) {
    std::fprintf(stderr, "muse-cli: %s\n(see muse-cli --help)\n", msg.c_str());
    std::exit(2);
}

struct Args {
    std::string command, model, mmproj, prompt, tokens, system;
    bool json = false, no_mmap = false, have_prompt = false, show_thinking = false;
    int64_t max_tensors = 40, n_predict = -1, ctx = 4096, threads = 0;
    muse::sampling sampling;
    std::vector<std::string> stop, images;
    muse::thinking_options thinking;
    int64_t agents = 1;  // chat: contemplating mode when > 1
    muse_aggregate aggregate = MUSE_AGGREGATE_VOTE;
    double temp_spread = 0.0;
    bool have_aggregate = false;
    // chat: tools
    std::string tools_file;                  // --tools: a JSON array of OpenAI declarations
    std::string tool_choice;                 // --tool-choice
    int64_t max_tool_rounds = 4;             // --max-tool-rounds
    bool parallel_tool_calls = true;         // --no-parallel-tool-calls: one call per response
    std::vector<std::string> builtin_tools;  // --builtin-tools a,b,c
};

// The built-in tool names muse-cli accepts for --builtin-tools.
inline const std::vector<std::string> &builtin_tool_names() {
    static const std::vector<std::string> names = {"zoom", "annotate", "calculator"};
    return names;
}

// "a,b,c" into names, each one of the built-in tools (usage error otherwise).
inline std::vector<std::string> parse_builtin_tools(const std::string &list) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at <= list.size()) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        const std::string name = list.substr(at, comma - at);
        bool known = false;
        for (const std::string &n : builtin_tool_names()) known = known || n == name;
        if (!known) usage_error("--builtin-tools: unknown tool '" + name + "' (known: zoom, annotate, calculator)");
        out.push_back(name);
        at = comma + 1;
    }
    return out;
}

inline double number_arg(const std::string &name, const std::string &v) {
    try {
        size_t used = 0;
        const double d = std::stod(v, &used);
        if (used != v.size()) throw 1;
        return d;
    } catch (...) {
        usage_error(name + " needs a number, not '" + v + "'");
    }
}

// The model (with its mmproj when given) and a session, as the options say.
inline muse::model open_model(const Args &a) {
    muse::model_options opt;
    opt.use_mmap(!a.no_mmap).threads(static_cast<int32_t>(a.threads));
    if (!a.mmproj.empty()) opt.mmproj(a.mmproj);
    return muse::model(a.model, opt);
}
inline muse::session_options session_options(const Args &a) {
    muse::session_options so;
    so.n_ctx = static_cast<int32_t>(a.ctx);
    return so;
}

int cmd_chat(const Args &a);

} // namespace cli
