// muse-cli: the command-line face of libmuse. Uses only the public C++ API.
#include "cli.h"
#include "muse/muse.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace cli {

const char *kUsage = R"(muse-cli — run and inspect GGUF models with muse

usage:
  muse-cli info MODEL [--json] [--mmproj FILE] [--no-mmap] [--tensors N]
  muse-cli run -m MODEL (-p PROMPT | --tokens 1,2,3) [--mmproj FILE --image FILE ...] [-n N]
               [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--stop TEXT] [--ctx N]
               [--threads N] [--json]
  muse-cli chat -m MODEL [--mmproj FILE --image FILE ...] [-p PROMPT] [--system TEXT]
               [--think off|on|auto] [--think-budget N] [--think-min N] [--effort low|medium|high]
               [--show-thinking] [-n N] [--temp T] [--seed S] [--ctx N] [--threads N] [--json]
               [--agents N [--aggregate vote|weighted|early_stop|synthesize|all] [--temp-spread X]]
               [--tools FILE] [--tool-choice auto|none|required|NAME] [--max-tool-rounds N]
               [--no-parallel-tool-calls] [--builtin-tools zoom,annotate,calculator]
  muse-cli --version
  muse-cli --help

commands:
  info     print the architecture, hyperparameters, tokenizer summary, file type
           and tensor table of a GGUF model (loads metadata only; fast on huge files)
  run      generate a completion, streaming text to stdout (the prompt is tokenized
           with BOS as the model says and special tokens parsed; --tokens gives ids)
  chat     one turn (-p) or an interactive conversation (lines from stdin) with the
           model's own chat template; the answer streams to stdout, the reasoning to
           stderr with --show-thinking, token accounting at the end

options:
  --json        machine-readable output (one JSON object on stdout)
  --mmproj FILE also load and check a multimodal projector GGUF
  --no-mmap     read the file instead of mapping it
  --tensors N   show at most N tensors in the text table (default 40, 0 = all)
  -p PROMPT     run: prompt text          --tokens L   run: prompt token ids (comma list)
  -n N          run: max tokens (128)     --temp T     run: temperature (0 = greedy)
  --top-k K  --top-p P  --min-p P         --seed S     run: sampling (seed 0)
  --ctx N       run: context size (4096)  --threads N  run: CPU threads (default: cores)
  --stop TEXT   run: stop before TEXT (repeatable)
  --json        run: print prompt/generated token ids, text and timings as JSON
  --think MODE  chat: off (answer at once), on, auto (default: the model decides)
  --think-budget N  chat: reasoning tokens before a wrap-up and the answer are forced
  --think-min N     chat: reasoning may not end before N tokens ("Wait" is injected)
  --effort E    chat: low | medium | high (the template's effort + a default budget)
  --show-thinking   chat: stream the reasoning (to stderr, dimmed on a terminal)
  --system TEXT chat: a system message
  --image FILE  run/chat: attach an image (repeatable; needs --mmproj). run: each "<__media__>"
                in the prompt takes the next image (missing markers are put first)
  -n N          chat: max tokens per turn (default 1024)
  --agents N    chat: contemplating mode: N agents answer together (the prompt is evaluated once)
                and their answers are aggregated; each agent's answer and confidence go to stderr,
                the aggregate answer to stdout (--json: the result with "agents" and "aggregate")
  --aggregate M chat: vote (default: majority of the normalized answers), weighted (DeepConf
                confidence-weighted), early_stop (low-confidence agents are stopped), synthesize
                (a last pass writes one answer from the agents'), all
  --temp-spread X   chat: agent temperatures spread evenly over --temp +- X/2 (default 0)
  --tools FILE  chat: offer the tools declared in FILE (a JSON array of OpenAI function
                declarations). Interactive chat asks you for each call's result (one line);
                with -p the calls are printed (the turn ends with them)
  --tool-choice C   chat: auto (default), none, required, or a function name
  --max-tool-rounds N  chat: tool rounds per turn before the model must answer (default 4)
  --no-parallel-tool-calls  chat: at most one call per response (the turn ends after it)
  --builtin-tools L chat: offer muse's built-in tools (comma list: zoom, annotate, calculator)

exit status: 0 on success, 1 on a muse error (message on stderr), 2 on bad usage.
)";

// llama.cpp's llama_ftype values, as written to general.file_type.
std::string file_type_name(int64_t ft) {
    static const std::map<int64_t, const char *> names = {
        {0, "F32"},      {1, "F16"},      {2, "Q4_0"},     {3, "Q4_1"},     {7, "Q8_0"},
        {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},    {11, "Q3_K_S"},  {12, "Q3_K_M"},
        {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"},  {16, "Q5_K_S"},  {17, "Q5_K_M"},
        {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"},  {21, "Q2_K_S"},  {22, "IQ3_XS"},
        {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"},  {26, "IQ3_S"},   {27, "IQ3_M"},
        {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"},  {31, "IQ1_M"},   {32, "BF16"},
        {36, "TQ1_0"},   {37, "TQ2_0"},   {38, "MXFP4_MOE"}};
    auto it = names.find(ft & ~int64_t(1024));  // 1024: "guessed" flag
    return it == names.end() ? "unknown (" + std::to_string(ft) + ")" : it->second;
}

Args parse_args(int argc, char **argv) {
    Args a;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&](const char *name) -> std::string {
            if (i + 1 >= argc) usage_error(std::string(name) + " needs a value");
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else if (arg == "--version") {
            std::printf("muse %s (ABI %u)\n", muse_version(), muse_abi_version());
            std::exit(0);
        } else if (arg == "--json") {
            a.json = true;
        } else if (arg == "--no-mmap") {
            a.no_mmap = true;
        } else if (arg == "--mmproj") {
            a.mmproj = value("--mmproj");
        } else if (arg == "--tensors") {
            try {
                a.max_tensors = std::stoll(value("--tensors"));
            } catch (...) {
                usage_error("--tensors needs a number");
            }
        } else if (arg == "-m" || arg == "--model") {
            a.model = value("--model");
        } else if (arg == "-p" || arg == "--prompt") {
            a.prompt = value("--prompt");
            a.have_prompt = true;
        } else if (arg == "--tools") {
            a.tools_file = value("--tools");
        } else if (arg == "--tool-choice") {
            a.tool_choice = value("--tool-choice");
        } else if (arg == "--max-tool-rounds") {
            a.max_tool_rounds = static_cast<int64_t>(number_arg(arg, value("--max-tool-rounds")));
            if (a.max_tool_rounds < 0) usage_error("--max-tool-rounds must not be negative");
        } else if (arg == "--no-parallel-tool-calls") {
            a.parallel_tool_calls = false;
        } else if (arg == "--builtin-tools") {
            a.builtin_tools = parse_builtin_tools(value("--builtin-tools"));
        } else if (arg == "--stop") {
            a.stop.push_back(value("--stop"));
        } else if (arg == "--tokens") {
            a.tokens = value("--tokens");
        } else if (arg == "-n" || arg == "--n-predict") {
            a.n_predict = static_cast<int64_t>(number_arg(arg, value("-n")));
        } else if (arg == "--temp") {
            a.sampling.temperature = static_cast<float>(number_arg(arg, value("--temp")));
        } else if (arg == "--top-k") {
            a.sampling.top_k = static_cast<int32_t>(number_arg(arg, value("--top-k")));
        } else if (arg == "--top-p") {
            a.sampling.top_p = static_cast<float>(number_arg(arg, value("--top-p")));
        } else if (arg == "--min-p") {
            a.sampling.min_p = static_cast<float>(number_arg(arg, value("--min-p")));
        } else if (arg == "--seed") {
            a.sampling.seed = static_cast<uint64_t>(number_arg(arg, value("--seed")));
        } else if (arg == "--ctx") {
            a.ctx = static_cast<int64_t>(number_arg(arg, value("--ctx")));
        } else if (arg == "--threads") {
            a.threads = static_cast<int64_t>(number_arg(arg, value("--threads")));
        } else if (arg == "--think") {
            const std::string v = value("--think");
            if (v == "off") a.thinking.mode = MUSE_THINKING_OFF;
            else if (v == "on") a.thinking.mode = MUSE_THINKING_ON;
            else if (v == "auto") a.thinking.mode = MUSE_THINKING_AUTO;
            else usage_error("--think needs off, on or auto, not '" + v + "'");
        } else if (arg == "--think-budget") {
            a.thinking.budget = static_cast<int32_t>(number_arg(arg, value("--think-budget")));
        } else if (arg == "--think-min") {
            a.thinking.min_tokens = static_cast<int32_t>(number_arg(arg, value("--think-min")));
        } else if (arg == "--effort") {
            const std::string v = value("--effort");
            if (v == "low") a.thinking.effort = MUSE_EFFORT_LOW;
            else if (v == "medium") a.thinking.effort = MUSE_EFFORT_MEDIUM;
            else if (v == "high") a.thinking.effort = MUSE_EFFORT_HIGH;
            else usage_error("--effort needs low, medium or high, not '" + v + "'");
        } else if (arg == "--agents") {
            a.agents = static_cast<int64_t>(number_arg(arg, value("--agents")));
            if (a.agents < 1 || a.agents > 63) usage_error("--agents needs a number in 1..63");
        } else if (arg == "--aggregate") {
            const std::string v = value("--aggregate");
            a.have_aggregate = true;
            if (v == "vote") a.aggregate = MUSE_AGGREGATE_VOTE;
            else if (v == "weighted") a.aggregate = MUSE_AGGREGATE_WEIGHTED;
            else if (v == "early_stop" || v == "early-stop") a.aggregate = MUSE_AGGREGATE_EARLY_STOP;
            else if (v == "synthesize") a.aggregate = MUSE_AGGREGATE_SYNTHESIZE;
            else if (v == "all") a.aggregate = MUSE_AGGREGATE_ALL;
            else usage_error("--aggregate needs vote, weighted, early_stop, synthesize or all, not '" + v + "'");
        } else if (arg == "--temp-spread") {
            a.temp_spread = number_arg(arg, value("--temp-spread"));
            if (a.temp_spread < 0) usage_error("--temp-spread must not be negative");
        } else if (arg == "--show-thinking") {
            a.show_thinking = true;
        } else if (arg == "--system") {
            a.system = value("--system");
        } else if (arg == "--image") {
            a.images.push_back(value("--image"));
        } else if (!arg.empty() && arg[0] == '-') {
            usage_error("unknown option " + arg);
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.empty()) usage_error("no command given");
    a.command = positional[0];
    if (positional.size() > 1 && a.model.empty()) a.model = positional[1];
    if (positional.size() > 2) usage_error("too many arguments");
    return a;
}

nlohmann::json tokenizer_summary(const muse::model &m) {
    nlohmann::json t = nlohmann::json::object();
    for (const char *k : {"tokenizer.ggml.model", "tokenizer.ggml.pre"})
        if (auto s = m.meta_string_or_none(k)) t[std::strchr(k + 10, '.') + 1] = *s;
    if (m.has_meta("tokenizer.ggml.tokens")) t["n_tokens"] = m.meta_array_length("tokenizer.ggml.tokens");
    if (m.has_meta("tokenizer.ggml.merges")) t["n_merges"] = m.meta_array_length("tokenizer.ggml.merges");
    nlohmann::json special = nlohmann::json::object();
    for (const char *name : {"bos", "eos", "eot", "eom", "unknown", "padding", "separator", "mask"}) {
        const std::string key = std::string("tokenizer.ggml.") + name + "_token_id";
        if (!m.has_meta(key)) continue;
        const int64_t id = m.meta_int(key);
        nlohmann::json e = {{"id", id}};
        uint64_t n_tok = m.has_meta("tokenizer.ggml.tokens") ? m.meta_array_length("tokenizer.ggml.tokens") : 0;
        if (id >= 0 && static_cast<uint64_t>(id) < n_tok) {
            const char *s = nullptr;
            size_t len = 0;
            if (muse_model_meta_array_get_string(m.get(), "tokenizer.ggml.tokens", static_cast<uint64_t>(id), &s, &len) == MUSE_OK)
                e["text"] = std::string(s, len);
        }
        special[name] = e;
    }
    t["special"] = special;
    for (const char *k : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"})
        if (m.has_meta(k) && m.meta_type(k) == MUSE_META_BOOL) t[std::strrchr(k, '.') + 1] = m.meta_int(k) != 0;
    t["has_chat_template"] = m.has_meta("tokenizer.chat_template");
    return t;
}

nlohmann::json hyperparameters(const muse::model &m) {
    nlohmann::json h = {{"n_vocab", m.n_vocab()}, {"n_ctx_train", m.n_ctx_train()},
                        {"n_embd", m.n_embd()},   {"n_layer", m.n_layer()}};
    const std::string prefix = m.arch() + ".";
    for (const std::string &key : m.meta_keys()) {
        if (key.rfind(prefix, 0) != 0) continue;
        h[key.substr(prefix.size())] = nlohmann::json::parse(m.meta_json(key));
    }
    return h;
}

int cmd_info(const Args &a) {
    if (a.model.empty()) usage_error("info needs a MODEL path");
    muse::model_options opt;
    opt.vocab_only(true).use_mmap(!a.no_mmap);
    if (!a.mmproj.empty()) opt.mmproj(a.mmproj);
    const muse::model m(a.model, opt);

    nlohmann::json out;
    out["file"] = a.model;
    out["gguf_version"] = m.gguf_version();
    out["file_size"] = muse_model_file_size(m.get());
    out["architecture"] = m.arch();
    out["name"] = m.name();
    out["file_type"] = m.has_meta("general.file_type") ? file_type_name(m.meta_int("general.file_type")) : "unknown";
    out["hyperparameters"] = hyperparameters(m);
    out["tokenizer"] = tokenizer_summary(m);
    out["n_metadata"] = m.meta_keys().size();
    nlohmann::json tensors = nlohmann::json::array();
    int64_t n_params = 0;
    uint64_t n_bytes = 0;
    std::map<std::string, int64_t> type_counts;
    const auto infos = m.tensors();
    for (const auto &t : infos) {
        tensors.push_back({{"name", t.name}, {"type", t.type_name}, {"dims", t.dims}, {"bytes", t.n_bytes}});
        n_params += t.n_elements;
        n_bytes += t.n_bytes;
        type_counts[t.type_name]++;
    }
    out["n_params"] = n_params;
    out["tensor_bytes"] = n_bytes;
    out["tensor_types"] = type_counts;
    out["tensors"] = tensors;

    if (a.json) {
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return 0;
    }
    auto s = [](const nlohmann::json &j) { return j.is_string() ? j.get<std::string>() : j.dump(); };
    std::printf("file          %s (GGUF v%u, %.2f MiB)\n", a.model.c_str(), m.gguf_version(),
                static_cast<double>(muse_model_file_size(m.get())) / (1024.0 * 1024.0));
    std::printf("architecture  %s\n", m.arch().c_str());
    if (!m.name().empty()) std::printf("name          %s\n", m.name().c_str());
    std::printf("file type     %s\n", out["file_type"].get<std::string>().c_str());
    std::printf("parameters    %.3f M in %zu tensors (%.2f MiB)\n", static_cast<double>(n_params) / 1e6,
                infos.size(), static_cast<double>(n_bytes) / (1024.0 * 1024.0));
    std::printf("\nhyperparameters\n");
    for (const auto &[k, v] : out["hyperparameters"].items()) {
        std::string text = s(v);
        if (text.size() > 80) text = text.substr(0, 77) + "...";
        std::printf("  %-40s %s\n", k.c_str(), text.c_str());
    }
    std::printf("\ntokenizer\n");
    for (const auto &[k, v] : out["tokenizer"].items()) {
        if (k == "special") continue;
        std::printf("  %-40s %s\n", k.c_str(), s(v).c_str());
    }
    for (const auto &[k, v] : out["tokenizer"]["special"].items())
        std::printf("  %-40s %s\n", (k + " token").c_str(), v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::printf("\ntensors\n");
    int64_t shown = 0;
    for (const auto &t : infos) {
        if (a.max_tensors > 0 && shown >= a.max_tensors) {
            std::printf("  ... %zu more (use --tensors 0 to list all)\n", infos.size() - static_cast<size_t>(shown));
            break;
        }
        std::string dims;
        for (size_t d = 0; d < t.dims.size(); ++d) dims += (d ? " x " : "") + std::to_string(t.dims[d]);
        std::printf("  %-40s %-6s [%s]\n", t.name.c_str(), t.type_name.c_str(), dims.c_str());
        ++shown;
    }
    return 0;
}

std::vector<int32_t> parse_token_list(const std::string &list) {
    std::vector<int32_t> ids;
    size_t at = 0;
    while (at < list.size()) {
        const size_t comma = list.find(',', at);
        const std::string item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        ids.push_back(static_cast<int32_t>(number_arg("--tokens", item)));
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return ids;
}

int cmd_run(const Args &a) {
    if (a.model.empty()) usage_error("run needs -m MODEL");
    if (a.have_prompt == !a.tokens.empty()) usage_error("run needs exactly one of -p PROMPT or --tokens LIST");
    if (a.n_predict < -1) usage_error("-n must not be negative");
    if (!a.images.empty() && (a.mmproj.empty() || !a.have_prompt))
        usage_error("--image needs --mmproj FILE and a text prompt (-p)");
    const muse::model m = open_model(a);
    muse::session s(m, session_options(a));
    std::vector<int32_t> prompt;
    if (!a.images.empty()) {
        // Each "<__media__>" in the prompt takes the next image; missing markers go first (as mtmd-cli).
        std::string text = a.prompt;
        size_t markers = 0;
        for (size_t at = text.find("<__media__>"); at != std::string::npos; at = text.find("<__media__>", at + 1)) ++markers;
        for (; markers < a.images.size(); ++markers) text = "<__media__>\n" + text;
        std::vector<muse::image> images;
        std::vector<const muse::image *> ptrs;
        for (const std::string &path : a.images) images.push_back(muse::image::open(path));
        for (const muse::image &im : images) ptrs.push_back(&im);
        s.eval_prompt(text, ptrs);
    } else {
        prompt = a.have_prompt ? m.tokenize(a.prompt, true, true) : parse_token_list(a.tokens);
    }
    std::vector<int32_t> generated;
    std::string text;
    const auto t0 = std::chrono::steady_clock::now();
    auto t_first = t0;
    muse::generate_options go;
    go.max_tokens = static_cast<size_t>(a.n_predict < 0 ? 128 : a.n_predict);
    go.sampling = a.sampling;
    go.stop = a.stop;
    s.generate(prompt, go, [&](const muse::token_event &ev) {
        if (ev.token >= 0) {
            if (generated.empty()) t_first = std::chrono::steady_clock::now();
            generated.push_back(ev.token);
        }
        text.append(ev.piece);
        if (!a.json) {
            std::fwrite(ev.piece.data(), 1, ev.piece.size(), stdout);
            std::fflush(stdout);
        }
        return true;
    });
    const auto t1 = std::chrono::steady_clock::now();
    const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
    const double decode_s = std::chrono::duration<double>(t1 - t_first).count();
    if (a.json) {
        nlohmann::json out = {{"prompt_tokens", prompt}, {"tokens", generated}, {"text", text},
                              {"timings", {{"prefill_s", prefill_s}, {"decode_s", decode_s},
                                           {"prefill_tps", prefill_s > 0 ? prompt.size() / prefill_s : 0.0},
                                           {"decode_tps", decode_s > 0 && generated.size() > 1
                                                              ? (generated.size() - 1) / decode_s : 0.0}}}};
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        std::printf("\n");
        std::fprintf(stderr, "[%zu prompt tokens, %zu generated; prefill %.1f t/s, decode %.1f t/s]\n", prompt.size(),
                     generated.size(), prefill_s > 0 ? prompt.size() / prefill_s : 0.0,
                     decode_s > 0 && generated.size() > 1 ? (generated.size() - 1) / decode_s : 0.0);
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    using namespace cli;
    const Args a = parse_args(argc, argv);
    try {
        if (a.command == "info") return cmd_info(a);
        if (a.command == "run") return cmd_run(a);
        if (a.command == "chat") return cmd_chat(a);
        usage_error("unknown command '" + a.command + "'");
    } catch (const muse::error &e) {
        std::fprintf(stderr, "muse-cli: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "muse-cli: %s\n", e.what());
        return 1;
    }
}
