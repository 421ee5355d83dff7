// Helpers shared by the C entry points of sessions and chat (c-api-session.cpp,
// c-api-chat-turn.cpp): reading versioned params structs and handles.
#pragma once

#include "api/handles.h"
#include "engine/chat-turn.h"

namespace muse::api {

Session &session_of(muse_session *s);
SamplingParams sampling_from(const muse_sampling_params *params);
muse_generate_params read_generate_params(const muse_generate_params *params);
// The controller settings of a muse_thinking_params (mode NONE maps to `none_as`).
void thinking_from(const muse_thinking_params &p, reasoning::ThinkingMode none_as, ChatRequest &request);
// muse_session_generate with params->thinking enabled: the prompt's text tells where the
// response starts; events carry channels. Returns the number of tokens generated.
size_t generate_with_thinking(const Model &model, Session &session, int32_t seq, const std::vector<int32_t> &prompt,
                              const muse_generate_params &params, muse_token_cb on_token, void *user_data);

} // namespace muse::api
