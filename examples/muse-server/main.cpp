// muse-server: an OpenAI-compatible HTTP server over one muse model, with continuous
// batching (see scheduler.h). docs/SERVER.md describes the routes, fields and limits.
#include "http-routes.h"
#include "metrics.h"
#include "scheduler.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <algorithm>
#include <thread>

#include <pthread.h>

namespace {

struct Args {
    std::string model, mmproj, host = "127.0.0.1", api_key, alias;
    int port = 8080;
    int parallel = 4;
    int64_t ctx = 4096;
    bool ctx_given = false;
    int threads = 0;
    double timeout_s = 600;
    int read_timeout_s = 30, write_timeout_s = 30;
    double shutdown_grace_s = 10;
    size_t queue = 64;
    server::Limits limits;
};

[[noreturn]] void usage(const std::string &error = {}) {
    if (!error.empty()) std::fprintf(stderr, "muse-server: %s\n\n", error.c_str());
    std::fprintf(stderr,
                 "usage: muse-server -m MODEL [--mmproj FILE] [--host 127.0.0.1] [--port 8080] [--api-key KEY]\n"
                 "                   [--parallel N] [--ctx N] [--threads N] [options]\n"
                 "  -m, --model FILE        GGUF model\n"
                 "  --mmproj FILE           vision projector (enables image_url parts)\n"
                 "  --host ADDR             address to bind (default 127.0.0.1, loopback only)\n"
                 "  --port N                port (default 8080; 0 picks a free one, printed at start)\n"
                 "  --api-key KEY           require Authorization: Bearer KEY (also MUSE_API_KEY)\n"
                 "  --alias NAME            model id reported by /v1/models (default: the file name)\n"
                 "  --parallel N            sequences decoded together (default 4, at most 64)\n"
                 "  --ctx N                 context per sequence: prompt + max_tokens (default 4096)\n"
                 "  --threads N             CPU threads (default: one per physical core)\n"
                 "  --queue N               requests waiting for a sequence before 503 (default 64)\n"
                 "  --timeout S             a request running longer is cancelled (default 600)\n"
                 "  --read-timeout S        a client silent this long while sending its request is dropped (default 30)\n"
                 "  --write-timeout S       a client that reads nothing this long is dropped, its request cancelled (default 30)\n"
                 "  --max-body BYTES        request body limit (default 16777216)\n"
                 "  --max-messages N        messages per request (default 512)\n"
                 "  --max-images N          images per request (default 8)\n"
                 "  --max-image-pixels N    width*height of one image (default 4194304)\n"
                 "  --max-tokens N          largest max_tokens a request may ask (default 4096)\n");
    std::exit(error.empty() ? 0 : 2);
}

int64_t number(const std::string &flag, const std::string &v, int64_t lo, int64_t hi) {
    try {
        size_t used = 0;
        const long long x = std::stoll(v, &used);
        if (used == v.size() && x >= lo && x <= hi) return x;
    } catch (...) {
    }
    usage(flag + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

Args parse_args(int argc, char **argv) {
    Args a;
    if (const char *k = std::getenv("MUSE_API_KEY")) a.api_key = k;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(f + " needs a value");
            return argv[++i];
        };
        if (f == "-h" || f == "--help") usage();
        else if (f == "-m" || f == "--model") a.model = value();
        else if (f == "--mmproj") a.mmproj = value();
        else if (f == "--host") a.host = value();
        else if (f == "--port") a.port = static_cast<int>(number(f, value(), 0, 65535));
        else if (f == "--api-key") a.api_key = value();
        else if (f == "--alias") a.alias = value();
        else if (f == "--parallel" || f == "-np") a.parallel = static_cast<int>(number(f, value(), 1, 64));
        else if (f == "--ctx" || f == "-c") a.ctx = number(f, value(), 64, 1 << 20), a.ctx_given = true;
        else if (f == "--threads" || f == "-t") a.threads = static_cast<int>(number(f, value(), 0, 1024));
        else if (f == "--queue") a.queue = static_cast<size_t>(number(f, value(), 0, 1 << 16));
        else if (f == "--read-timeout") a.read_timeout_s = static_cast<int>(number(f, value(), 1, 3600));
        else if (f == "--write-timeout") a.write_timeout_s = static_cast<int>(number(f, value(), 1, 3600));
        else if (f == "--timeout") a.timeout_s = static_cast<double>(number(f, value(), 1, 1 << 24));
        else if (f == "--max-body") a.limits.max_body_bytes = static_cast<size_t>(number(f, value(), 1024, int64_t(1) << 32));
        else if (f == "--max-messages") a.limits.max_messages = static_cast<size_t>(number(f, value(), 1, 1 << 20));
        else if (f == "--max-images") a.limits.max_images = static_cast<size_t>(number(f, value(), 0, 1024));
        else if (f == "--max-image-pixels") a.limits.max_image_pixels = static_cast<uint64_t>(number(f, value(), 1, int64_t(1) << 32));
        else if (f == "--max-tokens") a.limits.max_tokens = number(f, value(), 1, 1 << 20);
        else usage("unknown option " + f);
    }
    if (a.model.empty()) usage("-m MODEL is required");
    a.limits.ctx_per_request = a.ctx;
    a.limits.max_n = a.parallel;
    return a;
}

std::string base_name(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
    if (b.size() > 5 && b.compare(b.size() - 5, 5, ".gguf") == 0) b.resize(b.size() - 5);
    return b;
}

} // namespace

int main(int argc, char **argv) {
    Args args = parse_args(argc, argv);

    // SIGINT/SIGTERM are taken by sigwait() below, never by an arbitrary thread: block them
    // before any thread exists (threads inherit the mask). A vanished client must not kill
    // the process with SIGPIPE.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        muse::model_options mo;
        mo.threads(args.threads);
        if (!args.mmproj.empty()) mo.mmproj(args.mmproj);
        const muse::model model(args.model, mo);
        if (!args.ctx_given && model.n_ctx_train() > 0 && model.n_ctx_train() < args.ctx) {
            // Positions past the trained context are garbage: the default follows the model.
            args.ctx = model.n_ctx_train();
            args.limits.ctx_per_request = args.ctx;
        }

        server::Metrics metrics;
        server::SchedulerOptions so;
        so.n_parallel = args.parallel;
        so.ctx_per_seq = args.ctx;
        so.max_waiting = args.queue;
        so.timeout_s = args.timeout_s;
        server::Scheduler scheduler(model, so, metrics);

        server::ServerContext ctx{model, {}, args.limits, scheduler, metrics, args.api_key};
        ctx.info.model = &model;
        ctx.info.name = args.alias.empty() ? base_name(args.model) : args.alias;
        ctx.info.has_vision = !args.mmproj.empty();

        httplib::Server http;
        http.set_payload_max_length(args.limits.max_body_bytes);
        // A client that stalls mid-request is dropped (its handler thread freed); one that stops
        // reading a stream makes a write wait this long, fail, and cancel its generations: what
        // piles up meanwhile is its outbox, at most its own max_tokens events.
        http.set_read_timeout(args.read_timeout_s, 0);
        http.set_write_timeout(args.write_timeout_s, 0);
        // Between requests of a connection, and after a request that could not be read,
        // httplib waits this long for the next one: never longer than the read timeout.
        http.set_keep_alive_timeout(std::min(5, args.read_timeout_s));
        // Handler threads block while their request runs or waits: one per sequence and per
        // queue place, plus a few for health, metrics and refusals.
        const size_t n_threads = static_cast<size_t>(args.parallel) + args.queue + 4;
        http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
        server::install_routes(http, ctx);

        const int port = args.port == 0 ? http.bind_to_any_port(args.host) : (http.bind_to_port(args.host, args.port) ? args.port : -1);
        if (port < 0) {
            std::fprintf(stderr, "muse-server: cannot listen on %s:%d\n", args.host.c_str(), args.port);
            return 1;
        }
        std::fprintf(stderr, "muse-server: %s (%s), %d sequences x %lld context; listening on http://%s:%d\n",
                     ctx.info.name.c_str(), model.arch().c_str(), args.parallel, static_cast<long long>(args.ctx),
                     args.host.c_str(), port);
        std::fflush(stderr);
        std::thread listener([&http] { http.listen_after_bind(); });

        int sig = 0;
        sigwait(&stop_signals, &sig);
        std::fprintf(stderr, "muse-server: %s: finishing running requests (up to %.0f s)\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", args.shutdown_grace_s);
        // Graceful: refuse new work, let what runs finish for a while, then cancel the rest
        // (their streams end with finish_reason "cancelled") and close the listener.
        ctx.draining.store(true);
        scheduler.drain();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(args.shutdown_grace_s);
        while (!scheduler.idle() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        scheduler.shutdown();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // handlers write their last chunks
        http.stop();
        listener.join();
        std::fprintf(stderr, "muse-server: stopped\n");
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "muse-server: %s\n", e.what());
        return 1;
    }
}
