// jinja-render: renders a chat template with muse's Jinja engine.
//
//   jinja-render [--now EPOCH_SECONDS] TEMPLATE_FILE CONTEXT_JSON_FILE
//       prints the rendering; exit 1 with the error on stderr on failure.
//   jinja-render [--now EPOCH_SECONDS] --multi TEMPLATE_FILE CONTEXTS_JSON_FILE
//       the file holds a JSON array of contexts; prints a JSON array with, per
//       context, {"output": "..."} or {"error": "..."} (exit 0 unless the
//       template itself fails to parse). The conformance test uses this to
//       render many conversations per process.
//   jinja-render [--now EPOCH_SECONDS] --cases CASES_JSON_FILE
//       the file holds a JSON array of {"template": ..., "context": {...}};
//       prints a JSON array of {"output": ...} or {"error": ...}.
#include "jinja/jinja.h"
#include "core/error.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

static std::string read_file(const char *path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(std::string("cannot open ") + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int main(int argc, char **argv) {
    bool multi = false, cases = false;
    long long now = -1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; ++i) {
        if (std::strcmp(argv[i], "--multi") == 0) {
            multi = true;
        } else if (std::strcmp(argv[i], "--cases") == 0) {
            cases = true;
        } else if (std::strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            now = std::stoll(argv[++i]);
        } else {
            std::fprintf(stderr, "jinja-render: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (cases) {
        if (argc - i != 1) {
            std::fprintf(stderr, "usage: jinja-render [--now EPOCH_SECONDS] --cases CASES_JSON_FILE\n");
            return 2;
        }
        try {
            auto all = nlohmann::ordered_json::parse(read_file(argv[i]));
            nlohmann::ordered_json results = nlohmann::ordered_json::array();
            for (const auto &c : all) {
                try {
                    auto tmpl = muse::jinja::Template::parse(c.at("template").get<std::string>());
                    if (now >= 0) tmpl.now = std::chrono::system_clock::time_point(std::chrono::seconds(now));
                    results.push_back({{"output", tmpl.render(c.at("context"))}});
                } catch (const muse::Error &e) {
                    results.push_back({{"error", e.what()}});
                }
            }
            std::string out = results.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return 0;
        } catch (const std::exception &e) {
            std::fprintf(stderr, "jinja-render: %s\n", e.what());
            return 1;
        }
    }
    if (argc - i != 2) {
        std::fprintf(stderr, "usage: jinja-render [--now EPOCH_SECONDS] [--multi] TEMPLATE_FILE CONTEXT_JSON_FILE\n");
        return 2;
    }
    try {
        auto tmpl = muse::jinja::Template::parse(read_file(argv[i]));
        if (now >= 0) tmpl.now = std::chrono::system_clock::time_point(std::chrono::seconds(now));
        auto context = nlohmann::ordered_json::parse(read_file(argv[i + 1]));
        if (!multi) {
            std::string out = tmpl.render(context);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return 0;
        }
        nlohmann::ordered_json results = nlohmann::ordered_json::array();
        for (const auto &ctx : context) {
            try {
                results.push_back({{"output", tmpl.render(ctx)}});
            } catch (const muse::Error &e) {
                results.push_back({{"error", e.what()}});
            }
        }
        std::string out = results.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "jinja-render: %s\n", e.what());
        return 1;
    }
}
