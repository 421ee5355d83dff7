// Generation output -> OpenAI JSON: chat.completion / text_completion bodies, their SSE
// chunks ("data: {...}\n\n", ending "data: [DONE]\n\n") and error bodies. One builder per
// request collects every choice's text, tool calls, logprobs and usage.
#pragma once

#include "openai-request.h"
#include "scheduler.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace server {

// {"error": {"message", "type", "param", "code"}} with the type derived from the status.
nlohmann::json error_body(int status, const std::string &message, const std::string &param = {},
                          const std::string &type = {}, const std::string &code = {});
std::string dump(const nlohmann::json &j);

class ResponseBuilder {
public:
    ResponseBuilder(const Job &job, const muse::model &model);

    // Streaming: the first chunks (each choice's role), the chunks of one item (may be ""),
    // and the end (the usage chunk when asked, then [DONE]).
    std::string stream_start();
    std::string stream_item(const Item &item);
    std::string stream_end();

    // Non-streaming: every item goes through collect(), then final_response().
    void collect(const Item &item);
    nlohmann::json final_response() const;

    bool all_done() const;
    // An error event of a generation (the first one), for a non-streamed 500.
    const std::string &error() const { return error_; }

private:
    struct Choice {
        std::string content, reasoning;
        nlohmann::json tool_calls = nlohmann::json::array();
        nlohmann::json logprobs = nlohmann::json::array();  // chat: content entries; completion: collected below
        std::string finish_reason;
        nlohmann::json result;  // the generation's result JSON
        bool done = false;
    };

    nlohmann::json chunk(int choice, nlohmann::json delta, const nlohmann::json &finish_reason,
                         const nlohmann::json &logprobs = nullptr) const;
    nlohmann::json logprob_entry(const muse::event &ev) const;
    nlohmann::json tool_call_json(Choice &c, const muse::event &ev) const;
    std::string finish_reason(const Choice &c, const std::string &engine_reason) const;
    nlohmann::json usage() const;
    // Contemplating mode: {"aggregate": {method, agreement, tally, ...}, "agents": [...]}.
    nlohmann::json contemplation(const Choice &c) const;
    nlohmann::json completion_logprobs(const Choice &c) const;
    std::string token_text(int32_t token) const;

    const Job &job_;
    const muse::model &model_;
    std::vector<Choice> choices_;
    std::string error_;
};

} // namespace server
