// Helpers shared by the C entry points of sessions and chat (c-api-session.cpp,
// c-api-chat-turn.cpp): reading versioned params structs and handles.
#pragma once

#include "api/handles.h"
#include "engine/chat-turn.h"
#include "tools/tool-loop.h"

namespace muse::api {

Session &session_of(muse_session *s);
SamplingParams sampling_from(const muse_sampling_params *params);
muse_generate_params read_generate_params(const muse_generate_params *params);
// The controller settings of a muse_thinking_params (mode NONE maps to `none_as`).
void thinking_from(const muse_thinking_params &p, reasoning::ThinkingMode none_as, ChatRequest &request);
// The generation settings of a muse_generate_params (sampling, max_tokens, stop strings,
// logprobs and, when thinking is enabled, the thinking block) into a request.
void generate_from(const muse_generate_params &p, ChatRequest &request);
// The request of a chat turn from the C arguments.
ChatRequest chat_request(const char *messages_json, const muse_chat_params *chat, const muse_generate_params *params,
                         int32_t seq);
// The set-up of a raw generation on seq: prompt tokens (may be empty: continue), raw text,
// or with params->thinking enabled the model's reasoning format, whose start is read from
// the text the sequence holds.
GenerationSetup raw_setup(const Model &model, Session &session, int32_t seq, const std::vector<int32_t> &prompt,
                          const muse_generate_params &params);
// The result JSON of muse_session_chat / muse_generation_result.
nlohmann::ordered_json result_json(const ChatResult &r);
// Passes a generation event to a muse_token_cb (events with no channel: token events).
bool emit_token_event(const GenerationEvent &ev, muse_token_cb cb, void *user_data, int agent = 0);
// Contemplating mode's settings (n_agents > 1 only).
ContemplateOptions contemplate_from(const muse_contemplate_params &p, const muse_generate_params &gp);
// The result JSON of a contemplating request.
nlohmann::ordered_json contemplation_json(const ContemplationResult &r);
// Runs a contemplating request to its end, passing its events to on_token (may be NULL).
void run_contemplation(Contemplation &c, muse_token_cb on_token, void *user_data);

// ---- tools (c-api-tools.cpp)
// tool_choice and parallel_tool_calls of the chat params into the request; declarations
// of host tools without a function join request.tools.
void tool_settings_from(const muse_chat_params &chat, ChatRequest &request);
// The tool loop of a chat request when it has tools to call (host functions or built-in
// names), else nullptr.
std::shared_ptr<tools::ToolLoop> tool_loop_from(const Model &model, const muse_chat_params &chat,
                                                const ChatRequest &request);
// A muse_chat_params of any released size, completed with the defaults.
muse_chat_params read_chat_params(const muse_chat_params *chat);

// A request started on a session: one generation, or a contemplating group of agents
// (params->contemplate.n_agents > 1).
struct StartedRequest {
    std::unique_ptr<Generation> gen;
    std::unique_ptr<Contemplation> group;
    std::string prompt;  // chat turns: the rendered prompt
};
StartedRequest start_raw_request(muse_session *s, int32_t seq, const int32_t *prompt, size_t n_prompt,
                                 const muse_generate_params *params, bool token_logprobs);
StartedRequest start_chat_request(muse_session *s, int32_t seq, const char *messages_json,
                                  const muse_chat_params *chat, const muse_generate_params *params);

} // namespace muse::api
