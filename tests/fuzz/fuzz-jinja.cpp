// The chat template engine (src/jinja/) on hostile templates and contexts. The input
// is a template, then optionally a NUL byte and a JSON object used as the render
// context (messages, tools, flags). Without a NUL, or when the JSON does not parse
// to an object, a fixed chat context (system, user with an image, an assistant tool
// call, a tool result, two tools) is used instead, so mutations of the template alone
// still reach the branches real templates take for tools and tool calls.
// Properties: parse and render either succeed or throw muse::Error (never another
// exception, a crash, a sanitizer report, a hang or a huge allocation: the engine's
// depth, size, range and work limits must hold), and rendering is deterministic.
#include "core/error.h"
#include "jinja/jinja.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace muse;
using json = nlohmann::ordered_json;

namespace {

const json &default_context() {
    static const json ctx = json::parse(R"({
      "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is 2+3?"}]},
        {"role": "assistant", "reasoning_content": "Use the calculator.", "content": "",
         "tool_calls": [{"id": "call_0", "type": "function",
                         "function": {"name": "calculator", "arguments": {"expression": "2+3"}}}]},
        {"role": "tool", "tool_call_id": "call_0", "name": "calculator", "content": "5"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "Thanks"}
      ],
      "tools": [
        {"type": "function", "function": {"name": "calculator", "description": "Evaluate arithmetic.",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"]}}},
        {"type": "function", "function": {"name": "zoom", "description": "Crop a region.",
          "parameters": {"type": "object", "properties": {"x0": {"type": "integer"}, "y0": {"type": "integer"},
                         "x1": {"type": "integer"}, "y1": {"type": "integer"}}, "required": ["x0", "y0", "x1", "y1"]}}}
      ],
      "add_generation_prompt": true,
      "enable_thinking": true,
      "bos_token": "<s>",
      "eos_token": "</s>"
    })");
    return ctx;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view in(reinterpret_cast<const char *>(data), size);
    const size_t nul = in.find('\0');
    const std::string_view source = in.substr(0, nul);
    json parsed;
    if (nul != std::string_view::npos) {
        parsed = json::parse(in.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
        if (!parsed.is_object()) parsed = json();
    }
    const json &context = parsed.is_object() ? parsed : default_context();
    try {
        jinja::Template t = jinja::Template::parse(source);
        // A fixed clock: strftime_now() must not make two renders differ.
        t.now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
        // A twentieth of the default work budget: still far above what the seed templates
        // need, and it keeps every input well inside -timeout under the sanitizers.
        t.max_work = jinja::Template::kDefaultMaxWork / 20;
        const std::string first = t.render(context);
        const std::string second = t.render(context);
        if (first != second) __builtin_trap();  // rendering must be a pure function of its input
    } catch (const Error &) {
        // Syntax errors, unsupported constructs, render-time errors and limits: all fine.
    }
    return 0;
}
