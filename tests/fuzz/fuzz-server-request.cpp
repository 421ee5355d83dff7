// muse-server's request parser (examples/muse-server/openai-request.*) on hostile bodies:
// the bytes are an HTTP body for /v1/chat/completions, then for /v1/completions, against the
// bundled nano model's vocabulary and chat template (MUSE_FUZZ_NANO). Properties: only
// ApiError escapes (the routes turn it into a 4xx), never a crash, a sanitizer report or
// another exception; an accepted request is within the limits.
#include "../../examples/muse-server/openai-request.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

const muse::model &nano() {
    static const std::unique_ptr<muse::model> m = [] {
        return std::make_unique<muse::model>(MUSE_FUZZ_NANO, muse::model_options{}.vocab_only(true));
    }();
    return *m;
}

void check_accepted(const server::Job &job, const server::Limits &limits) {
    const bool ok = job.n >= 1 && job.n <= limits.max_n && job.gen.max_tokens >= 1 &&
                    static_cast<int64_t>(job.gen.max_tokens) <= limits.max_tokens &&
                    job.reserve <= limits.ctx_per_request && job.gen.stop.size() <= limits.max_stop &&
                    job.images.size() <= limits.max_images;
    if (!ok) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    server::ModelInfo info;
    info.model = &nano();
    info.name = "nano";
    server::Limits limits;
    limits.ctx_per_request = 1024;
    limits.max_tokens = 512;
    const std::string body(reinterpret_cast<const char *>(data), size);
    for (int kind = 0; kind < 2; ++kind) {
        server::Job job;
        try {
            const nlohmann::json j = server::parse_body(body);
            if (kind == 0) server::parse_chat_request(j, info, limits, job);
            else server::parse_completion_request(j, info, limits, job);
            check_accepted(job, limits);
        } catch (const server::ApiError &e) {
            if (e.status < 400 || e.status > 499) std::abort();
        }
    }
    return 0;
}
