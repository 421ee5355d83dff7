// The HTTP surface: OpenAI routes, tokenizer routes, health and metrics, the API key check
// and the error bodies. Handlers validate and queue; the scheduler generates.
#pragma once

#include "metrics.h"
#include "openai-request.h"
#include "scheduler.h"

#include <httplib.h>
#include <muse/muse.hpp>

#include <atomic>
#include <string>

namespace server {

struct ServerContext {
    const muse::model &model;
    ModelInfo info;
    Limits limits;
    Scheduler &scheduler;
    Metrics &metrics;
    std::string api_key;  // empty: no authentication
    std::atomic<bool> draining{false};
};

void install_routes(httplib::Server &http, ServerContext &ctx);

// Constant-time comparison (the time depends on the lengths only, not on where they differ).
bool secure_equal(const std::string &a, const std::string &b);

} // namespace server
