// What a tool is to the chat engine: a declaration the template renders, and a
// function the tool loop calls with the model's arguments. Host tools (C callbacks,
// C++ std::functions, Python callables) and muse's built-in tools (visual-tools.h,
// calculator) are both Tools; the loop does not tell them apart.
//
// A call's outcome is text for the model, optionally an image that enters the
// conversation as a new image part (zoom does this), and optionally artefacts for
// the host only (annotate's PNG), delivered through an event and never shown to the model.
#pragma once

#include "image/image.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace muse::tools {

// A PNG (or other encoded file) handed to the host, not to the model.
struct HostArtefact {
    std::string kind;          // e.g. "annotation"
    std::string mime;          // e.g. "image/png"
    std::vector<uint8_t> data;  // the encoded bytes
};

struct ToolOutcome {
    std::string content;                // the tool message the model reads (JSON or plain text)
    bool failed = false;                // content is an error report (the tool raised / refused)
    std::optional<Image> image;         // appended to the conversation as an image part
    std::vector<HostArtefact> artefacts;
};

// What a tool may read of the conversation it is called from: its images, in order
// of appearance (index 0 is the first image part of the messages).
struct ToolContext {
    std::vector<const Image *> images;
};

struct Tool {
    // OpenAI-style declaration: {"type": "function", "function": {"name", "description",
    // "parameters": <JSON Schema>}}. The parameters schema also constrains the call's
    // arguments when the grammar is on.
    nlohmann::ordered_json declaration;
    // Runs one call. `arguments` is the parsed arguments object. Throwing is allowed:
    // the loop reports the exception's message to the model as a failed outcome.
    std::function<ToolOutcome(const nlohmann::ordered_json &arguments, const ToolContext &context)> run;

    std::string name() const { return declaration.at("function").at("name").get<std::string>(); }
};

} // namespace muse::tools
