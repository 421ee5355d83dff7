// One assistant turn of a chat: render the model's own chat template for the
// conversation, tokenize, reuse what the session's sequence already holds of that
// prompt, and set up a generation (engine/generation.h) under the thinking
// controller whose parser splits the output into reasoning / answer / tool-call
// channels as it streams. The turn runs on the session's one batched pipeline.
//
//   ChatRequest req;  req.messages = ...;  req.thinking.mode = ThinkingMode::on;  req.thinking.budget = 64;
//   ChatResult r = run_chat_turn(model, session, req, [](const ChatEvent &e) { show(e); return true; });
//
// The reasoning format (delimiters, template variables for thinking off and effort)
// comes from reasoning::detect_format on the model's architecture, template and
// vocabulary; nothing is keyed on token ids.
#pragma once

#include "engine/contemplation.h"
#include "engine/generation.h"
#include "reasoning/channel-parser.h"
#include "sampling/sampler.h"
#include "thinking/thinking-controller.h"
#include "tools/call-grammar.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace muse {

class Model;
class Session;
struct Image;
class ImageCache;

struct ChatRequest {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // OpenAI chat format
    nlohmann::ordered_json tools;                                      // OpenAI tools array or null
    nlohmann::ordered_json variables = nlohmann::ordered_json::object();  // extra template variables
    std::string template_source;  // empty: the model's tokenizer.chat_template
    ThinkingOptions thinking;
    std::optional<reasoning::Effort> effort;  // template effort variable + default budget
    SamplingParams sampling;
    size_t max_tokens = 1024;
    std::vector<std::string> stop;  // end the answer before any of these
    int n_logprobs = 0;             // top-n logprobs per token (events and result)
    int seq = 0;
    bool reuse_prefix = true;  // keep the cached prefix the sequence shares with the new prompt
    // Images of the conversation, in order: one per image content part
    // ({"type": "image"} / "image_url" / "input_image") across the messages. Parts become
    // the media marker before the template renders (as llama.cpp does), then the model's
    // image chunks. Needs a model loaded with its mmproj.
    std::vector<const Image *> images;
    ImageCache *image_cache = nullptr;  // optional: reuse encodings across turns
    // Constrained answer (GenerationSetup::grammar): the reasoning stays free.
    std::shared_ptr<const grammar::Grammar> grammar;
    // How calls to `tools` are constrained (tools/call-stage.h): auto (lazy grammar at the
    // call trigger), none (declared, but calls are not read), required / named (the
    // answer is a call); parallel_tool_calls false: at most one call per response.
    tools::ToolChoice tool_choice;
    bool parallel_tool_calls = true;
};

struct ChatEvent {
    reasoning::Channel channel = reasoning::Channel::answer;
    std::string text;
    const reasoning::ToolCall *call = nullptr;  // tool_call events
    int32_t token = -1;                          // the token that released the text (-1: end of stream)
    bool forced = false;                         // that token was forced by the thinking controller
};

struct ChatResult {
    std::string prompt;  // the rendered prompt
    std::string reasoning, answer;
    std::vector<reasoning::ToolCall> tool_calls;  // calls the turn ends with (not run)
    std::vector<ToolExchange> tool_results;       // calls the tool loop ran, with their outcomes
    int32_t tool_rounds = 0;
    ThinkingUsage usage;
    int32_t prompt_tokens = 0;  // tokens of the rendered prompt
    int32_t cached_tokens = 0;  // of those, reused from the sequence's cache
    std::vector<int32_t> tokens;  // the generated tokens (forced ones included)
    std::vector<TokenLogprobs> logprobs;  // with n_logprobs
    bool malformed = false;
    std::string finish_reason;  // "stop" (end of turn or stop string), "length", "cancelled", "callback", "error"
};

// Renders the prompt of a turn (for inspection, and used by run_chat_turn).
std::string render_chat_prompt(const Model &model, const ChatRequest &request);

ChatResult run_chat_turn(const Model &model, Session &session, const ChatRequest &request,
                         const std::function<bool(const ChatEvent &)> &on_event = nullptr);

// The set-up of a turn as a generation: renders and tokenizes the prompt, cuts the
// sequence back to the prefix it shares with it (prefix reuse) and fills the rest.
// prompt_text (may be NULL) receives the rendered prompt.
GenerationSetup prepare_chat_turn(const Model &model, Session &session, const ChatRequest &request,
                                  std::string *prompt_text = nullptr);

// The set-up of a response to a prompt the caller built itself: prompt_text (special
// tokens rendered) tells where the response starts in the model's reasoning format.
// Uses request.thinking/effort/sampling/max_tokens/stop/n_logprobs.
GenerationSetup prepare_response(const Model &model, const std::string &prompt_text, const ChatRequest &request);

// Applies the request's tools to a chat set-up: the call plan (tool_choice,
// parallel_tool_calls) and, for tool_choice none, a parser that reads no calls.
void offer_tools(const ChatRequest &request, GenerationSetup &setup);

// The result of a finished chat generation, in the turn's terms.
ChatResult chat_result(const Generation &gen, std::string prompt_text);
// A generation event as a chat event (channel + text); false for events with no channel.
bool chat_event(const GenerationEvent &ev, ChatEvent &out);

// Contemplating mode's synthesis pass for a chat turn: the conversation plus a user message
// listing the agents' answers (and reasoning tails), rendered with the turn's template.
SynthesisBuilder chat_synthesis(const Model &model, Session &session, ChatRequest request, bool with_reasoning);
// The same for a raw prompt: the prompt, then the answers as text, then "Final answer:".
SynthesisBuilder prompt_synthesis(const Model &model, GenerationSetup base, bool with_reasoning);

// The model's reasoning format (from its own template, architecture and vocabulary).
reasoning::ReasoningFormat model_reasoning_format(const Model &model);

} // namespace muse
