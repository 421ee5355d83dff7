// The tool loop of a chat turn: the tool phase of its generation (engine/generation.h).
// When a response ends with calls whose tools are all callable here, the loop runs
// them, appends the assistant's calls and the tool messages to the conversation,
// renders it with the model's template and hands the generation the rows beyond what
// its sequence already holds (prefix reuse); the generation prefills them on the
// session's scheduler and samples the next response. One pipeline: the loop never
// drives the session itself, so tool rounds work the same through muse_session_chat
// and the pull API.
//
// - A call to a tool with no callable (a JSON declaration only) ends the turn with the
//   calls, for the host, as before; so does reaching max_rounds (the last allowed round
//   is generated with tool_choice none, so it ends with an answer).
// - tool_choice holds for every response but the last allowed one: required / named make
//   each of them a call (max_tool_rounds 1: one forced call, then the answer).
// - A tool that throws, or arguments that are not a JSON object, give a failed outcome
//   whose message the model reads as the tool's result; the turn goes on.
// - An outcome's image becomes an image part of the tool message (encoded by the
//   mmproj); without one the model reads a note that the image could not be shown.
// - Artefacts go to the host only, as artefact events.
#pragma once

#include "engine/chat-turn.h"
#include "engine/generation.h"
#include "tools/tool.h"

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace muse {
class Model;
}

namespace muse::tools {

struct ToolLoopOptions {
    std::vector<Tool> tools;  // callables; their declarations are offered with the request's own
    int max_rounds = 4;       // tool rounds after the first response (0: calls are returned)
};

// Built-in tools by name (builtin-tools.h). This is the one place names are resolved
// into Tools; every front end (C API, CLI) goes through it.
std::vector<Tool> resolve_builtin_tools(const std::vector<std::string> &names);

class ToolLoop final : public ToolPhase {
public:
    // request.tools may hold declarations without callables; the tools' declarations are
    // appended to it (a name declared twice is MUSE_ERR_INVALID_ARGUMENT).
    ToolLoop(const Model &model, ChatRequest request, ToolLoopOptions options);

    // The first response's set-up (prepare_chat_turn on the request with every declaration),
    // with this loop as its tool phase.
    static GenerationSetup prepare(const std::shared_ptr<ToolLoop> &loop, Session &session, std::string *prompt_text);

    std::optional<Round> next_round(Session &session, int seq, const Output &round,
                                    const std::function<void(GenerationEvent)> &deliver) override;

    const ChatRequest &request() const { return request_; }

private:
    ToolOutcome run_one(const reasoning::ToolCall &call) const;
    bool can_show_images() const;

    const Model &model_;
    ChatRequest request_;  // the conversation so far (grows by a round each time)
    ToolLoopOptions options_;
    std::deque<Image> images_;  // images tools returned (request_.images points into it)
    int round_ = 0;
};

} // namespace muse::tools
