// OpenAI request bodies -> what the scheduler runs (a Job): every field is checked for its
// type and range here, so nothing a client sends reaches the library unvalidated, and every
// refusal is an ApiError that the routes turn into an OpenAI error body.
#pragma once

#include <muse/muse.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace server {

// An error the client sees: HTTP status and OpenAI's error object fields.
struct ApiError : std::runtime_error {
    ApiError(int status_, std::string message, std::string param_ = {}, std::string type_ = {}, std::string code_ = {})
        : std::runtime_error(std::move(message)), status(status_), param(std::move(param_)), type(std::move(type_)),
          code(std::move(code_)) {}
    int status;
    std::string param, type, code;  // type empty: derived from the status
};

// What one request may ask for (command-line settable).
struct Limits {
    size_t max_body_bytes = 16u << 20;
    size_t max_messages = 512;
    size_t max_images = 8;
    uint64_t max_image_pixels = 4u << 20;  // width * height of one decoded image
    int64_t max_tokens = 4096;             // the largest max_tokens a request may ask for
    int64_t ctx_per_request = 4096;        // prompt + max_tokens of one choice
    int max_n = 4;                         // choices per request (at most the sequences)
    size_t max_stop = 4;
    size_t max_tools = 128;
};

enum class JobKind { chat, completion };

// One request, ready to run: n choices, each a generation on its own sequence.
struct Job {
    JobKind kind = JobKind::chat;
    std::string id;          // "chatcmpl-..." / "cmpl-..."
    int64_t created = 0;     // unix seconds
    std::string model_name;  // echoed back
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    int n = 1;
    // Contemplating mode: agents > 1 reasoning agents answer as one choice (their merged
    // answer); they take agents sequences, plus one for the synthesize pass.
    int agents = 1;
    bool contemplating() const { return agents > 1; }
    int sequences() const {
        return contemplating() ? agents + (gen.contemplate.aggregate == MUSE_AGGREGATE_SYNTHESIZE ? 1 : 0) : n;
    }
    int top_logprobs = 0;  // with logprobs: entries per token (0..20)
    bool logprobs = false;
    bool has_seed = false;
    uint64_t seed = 0;      // choice i samples with seed + i
    muse::generate_options gen;
    // chat
    std::string messages_json;  // image parts replaced by {"type": "image"}
    std::vector<muse::image> images;
    muse::chat_options chat;    // its images point into `images`: a Job is never copied once built
    std::string rendered_prompt;  // what the template renders: which cached sequence shares most of it
    // completion
    std::vector<int32_t> prompt_tokens;
    // Cells of the KV cache one choice may take: prompt rows + max_tokens.
    int64_t reserve = 0;
    int64_t prompt_estimate = 0;

    Job() = default;
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;
};

// What the parsers need to know about the loaded model.
struct ModelInfo {
    const muse::model *model = nullptr;
    std::string name;
    bool has_vision = false;
};

// Throw ApiError (400, 413, ...) for anything invalid. The Job is filled in place (it holds
// images that its chat options point to).
void parse_chat_request(const nlohmann::json &body, const ModelInfo &info, const Limits &limits, Job &job);
void parse_completion_request(const nlohmann::json &body, const ModelInfo &info, const Limits &limits, Job &job);

// Parses a request body: an object, valid UTF-8 JSON, or ApiError 400.
nlohmann::json parse_body(const std::string &body);

// Random hex (ids of completions and tool calls).
std::string random_hex(size_t n);

} // namespace server
