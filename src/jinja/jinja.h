// muse::jinja::Template: Jinja2-compatible chat template rendering.
//
// Renders a model's `tokenizer.chat_template` exactly as Hugging Face
// transformers does with Python's jinja2 (trim_blocks, lstrip_blocks,
// loopcontrols, the sandbox's immutable lists and dicts, a non-escaping
// `tojson`, raise_exception and strftime_now), byte for byte.
//
//   auto t = muse::jinja::Template::parse(source);        // throws muse::Error
//   std::string prompt = t.render({{"messages", msgs}, {"add_generation_prompt", true}});
//
// A parsed Template is immutable: render() may run on several threads at once.
// Errors are muse::Error naming the template line: MUSE_ERR_FORMAT for syntax
// errors, MUSE_ERR_UNSUPPORTED for Jinja constructs muse does not implement,
// MUSE_ERR_INVALID_ARGUMENT for render-time errors (raise_exception included).
//
// Known differences from Python, none reached by the templates in
// shared/templates: integers are 64-bit (overflow is an error, not a big int);
// upper/lower/title map ASCII, Latin-1/Extended-A, Greek and Cyrillic only;
// map/select/... results are evaluated eagerly, so an error jinja2 would defer
// until the generator is consumed is raised at once; range() is a list;
// include/extends/import, `*args` calls and a few filters (groupby, slice,
// wordwrap, urlize, xmlattr...) are MUSE_ERR_UNSUPPORTED.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace muse::jinja {

struct Stmt;

class Template {
public:
    static Template parse(std::string_view source);

    std::string render(const nlohmann::ordered_json &context) const;

    // The time strftime_now() formats (as UTC); unset means the current time.
    // Tests pin it to get reproducible prompts.
    std::optional<std::chrono::system_clock::time_point> now;

    // Work budget of one render (jinja-value.h: statements, loop iterations, elements
    // iterated, string bytes / 64). A render past it fails with MUSE_ERR_INVALID_ARGUMENT
    // instead of running on: nested loops over big ranges would otherwise take hours.
    // Real chat templates on long conversations use well under 1% of the default
    // (which a release build exhausts in about a second).
    static constexpr uint64_t kDefaultMaxWork = 20'000'000;
    uint64_t max_work = kDefaultMaxWork;

private:
    struct Tree;
    std::shared_ptr<const Tree> tree_;
};

} // namespace muse::jinja
