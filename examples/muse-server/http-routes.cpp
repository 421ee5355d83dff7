#include "http-routes.h"

#include "openai-response.h"

#include <chrono>

namespace server {

using json = nlohmann::json;

namespace {

void send_error(httplib::Response &res, int status, const std::string &message, const std::string &param = {},
                const std::string &type = {}, const std::string &code = {}) {
    res.status = status;
    res.set_content(dump(error_body(status, message, param, type, code)), "application/json");
}

void send_json(httplib::Response &res, const json &j) { res.set_content(dump(j), "application/json"); }

// Runs a handler body; every ApiError or exception becomes an OpenAI error response, so no
// request can take the server down.
template <class F>
void guarded(httplib::Response &res, F &&body) {
    try {
        body();
    } catch (const ApiError &e) {
        send_error(res, e.status, e.what(), e.param, e.type, e.code);
    } catch (const muse::error &e) {
        send_error(res, e.code() == MUSE_ERR_INTERNAL || e.code() == MUSE_ERR_OUT_OF_MEMORY ? 500 : 400, e.what());
    } catch (const std::bad_alloc &) {
        send_error(res, 500, "out of memory");
    } catch (const std::exception &e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
    }
}

void handle_generation(ServerContext &ctx, const httplib::Request &req, httplib::Response &res, JobKind kind) {
    auto job = std::make_unique<Job>();
    const json body = parse_body(req.body);
    if (kind == JobKind::chat) parse_chat_request(body, ctx.info, ctx.limits, *job);
    else parse_completion_request(body, ctx.info, ctx.limits, *job);

    auto r = std::make_shared<Request>(std::move(job));
    switch (ctx.scheduler.submit(r)) {
    case Scheduler::Submit::ok: break;
    case Scheduler::Submit::queue_full:
        ctx.metrics.requests_rejected.fetch_add(1);
        res.set_header("Retry-After", "1");
        send_error(res, 503, "the server is busy: its wait queue is full; retry later", {}, "server_error", "queue_full");
        return;
    case Scheduler::Submit::shutting_down:
        send_error(res, 503, "the server is shutting down", {}, "server_error", "shutting_down");
        return;
    }

    // Wait until the generations have started (or failed to): only then is the status known.
    Item first;
    while (!r->pop(first, std::chrono::milliseconds(100))) {
    }
    if (first.kind == Item::Kind::error) {
        send_error(res, first.status, first.message);
        return;
    }
    auto builder = std::make_shared<ResponseBuilder>(*r->job, ctx.model);
    if (!r->job->stream) {
        Item it;
        while (!builder->all_done())
            if (r->pop(it, std::chrono::milliseconds(100))) builder->collect(it);
        if (!builder->error().empty()) {
            send_error(res, 500, "generation failed: " + builder->error());
            return;
        }
        send_json(res, builder->final_response());
        return;
    }

    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    struct StreamState {
        bool started = false, finished = false;
        std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
    };
    auto st = std::make_shared<StreamState>();
    res.set_chunked_content_provider(
        "text/event-stream",
        [r, builder, st](size_t, httplib::DataSink &sink) {
            if (st->finished) return false;
            std::string out;
            if (!st->started) {
                out = builder->stream_start();
                st->started = true;
            }
            Item it;
            if (r->pop(it, std::chrono::milliseconds(100))) {
                out += builder->stream_item(it);
                while (r->pop(it, std::chrono::milliseconds(0))) out += builder->stream_item(it);
            }
            const auto now = std::chrono::steady_clock::now();
            // A comment line now and then: writing is how a vanished client is noticed.
            if (out.empty() && now - st->last_write > std::chrono::seconds(5)) out = ": keep-alive\n\n";
            if (!out.empty()) {
                if (!sink.write(out.data(), out.size())) {
                    r->cancel();
                    return false;
                }
                st->last_write = now;
            }
            if (builder->all_done()) {
                const std::string end = builder->stream_end();
                st->finished = true;
                if (!sink.write(end.data(), end.size())) return false;
                sink.done();
            }
            return true;
        },
        [r](bool success) {
            if (!success) r->cancel();  // the connection broke: stop generating for nobody
        });
}

json parse_token_list(const json &body, const char *key, int64_t n_vocab) {
    auto it = body.find(key);
    if (it == body.end() || !it->is_array()) throw ApiError(400, std::string("'") + key + "' must be an array of token ids", key);
    if (it->size() > (1u << 20)) throw ApiError(400, std::string("'") + key + "' is too long", key);
    for (const json &t : *it)
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
            throw ApiError(400, std::string("'") + key + "' holds an id outside [0, n_vocab)", key);
    return *it;
}

} // namespace

bool secure_equal(const std::string &a, const std::string &b) {
    const size_t n = std::max(a.size(), b.size());
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
}

void install_routes(httplib::Server &http, ServerContext &ctx) {
    http.set_pre_routing_handler([&ctx](const httplib::Request &req, httplib::Response &res) {
        if (ctx.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
        const std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
        if (!secure_equal(given, ctx.api_key)) {
            res.set_header("WWW-Authenticate", "Bearer");
            send_error(res, 401, "invalid or missing API key (Authorization: Bearer KEY)", {}, "authentication_error",
                       "invalid_api_key");
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Statuses httplib sets by itself (404, 413 over the body limit, 400 on a bad request
    // line) still get an OpenAI error body.
    http.set_error_handler([](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty()) return;
        std::string msg = "HTTP " + std::to_string(res.status);
        if (res.status == 404) msg = "no route " + req.method + " " + req.path;
        else if (res.status == 413) msg = "the request body is larger than this server accepts";
        else if (res.status == 405) msg = "method not allowed";
        send_error(res, res.status, msg);
    });
    http.set_exception_handler([](const httplib::Request &, httplib::Response &res, std::exception_ptr) {
        send_error(res, 500, "internal error");
    });

    http.Get("/health", [&ctx](const httplib::Request &, httplib::Response &res) {
        if (ctx.draining.load()) {
            res.status = 503;
            send_json(res, {{"status", "shutting down"}});
            return;
        }
        send_json(res, {{"status", "ok"}});
    });
    http.Get("/v1/models", [&ctx](const httplib::Request &, httplib::Response &res) {
        json m = {{"id", ctx.info.name},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "muse"},
                  {"meta",
                   {{"arch", ctx.model.arch()},
                    {"n_vocab", ctx.model.n_vocab()},
                    {"n_ctx_train", ctx.model.n_ctx_train()},
                    {"n_ctx", ctx.limits.ctx_per_request},
                    {"vision", ctx.info.has_vision}}}};
        send_json(res, {{"object", "list"}, {"data", json::array({m})}});
    });
    http.Post("/v1/chat/completions", [&ctx](const httplib::Request &req, httplib::Response &res) {
        guarded(res, [&] { handle_generation(ctx, req, res, JobKind::chat); });
    });
    http.Post("/v1/completions", [&ctx](const httplib::Request &req, httplib::Response &res) {
        guarded(res, [&] { handle_generation(ctx, req, res, JobKind::completion); });
    });
    http.Post("/tokenize", [&ctx](const httplib::Request &req, httplib::Response &res) {
        guarded(res, [&] {
            const json body = parse_body(req.body);
            auto it = body.find("content");
            if (it == body.end() || !it->is_string()) throw ApiError(400, "'content' must be a string", "content");
            bool add_special = false, with_pieces = false;
            if (body.contains("add_special")) {
                if (!body["add_special"].is_boolean()) throw ApiError(400, "'add_special' must be a boolean", "add_special");
                add_special = body["add_special"].get<bool>();
            }
            if (body.contains("with_pieces")) {
                if (!body["with_pieces"].is_boolean()) throw ApiError(400, "'with_pieces' must be a boolean", "with_pieces");
                with_pieces = body["with_pieces"].get<bool>();
            }
            const std::vector<int32_t> ids = ctx.model.tokenize(it->get<std::string>(), add_special, true);
            json tokens = json::array();
            for (int32_t id : ids) {
                if (with_pieces) tokens.push_back({{"id", id}, {"piece", ctx.model.detokenize({id}, true)}});
                else tokens.push_back(id);
            }
            send_json(res, {{"tokens", tokens}});
        });
    });
    http.Post("/detokenize", [&ctx](const httplib::Request &req, httplib::Response &res) {
        guarded(res, [&] {
            const json body = parse_body(req.body);
            const json ids = parse_token_list(body, "tokens", ctx.model.n_vocab());
            send_json(res, {{"content", ctx.model.detokenize(ids.get<std::vector<int32_t>>(), false)}});
        });
    });
    http.Get("/metrics", [&ctx](const httplib::Request &, httplib::Response &res) {
        res.set_content(ctx.metrics.render(ctx.scheduler.n_parallel()), "text/plain; version=0.0.4");
    });
}

} // namespace server
