// The C ABI contract: NULL handles, struct sizes, thread-local errors, getters,
// type conversions, tensor reads. Uses only muse.h, like a host would.
#include "muse/muse.h"
#include "test-helpers.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <unistd.h>

namespace {

std::string write_tiny(const char *tag) {
    const std::string path = "/tmp/muse-capi-" + std::to_string(::getpid()) + "-" + tag + ".gguf";
    muse::test::tiny_model_writer().write_file(path);
    return path;
}

struct ModelGuard {
    muse_model *m = nullptr;
    ~ModelGuard() { muse_model_free(m); }
};

} // namespace

TEST_CASE("versions and status names", "[c-api]") {
    CHECK(muse_abi_version() == MUSE_ABI_VERSION);
    CHECK(std::strlen(muse_version()) > 0);
    CHECK(std::string(muse_status_name(MUSE_ERR_FORMAT)) == "MUSE_ERR_FORMAT");
    CHECK(std::string(muse_status_name(static_cast<muse_status>(999))) == "MUSE_ERR_UNKNOWN_STATUS");
}

TEST_CASE("NULL handles and arguments are errors, never crashes", "[c-api]") {
    muse_model *m = reinterpret_cast<muse_model *>(0x1);
    CHECK(muse_model_load(nullptr, nullptr, &m) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(m == nullptr);
    CHECK(std::string(muse_last_error()).find("path") != std::string::npos);
    CHECK(muse_model_load("x.gguf", nullptr, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    muse_model_free(nullptr);
    CHECK(muse_model_arch(nullptr) == nullptr);
    CHECK(muse_model_n_vocab(nullptr) == -1);
    CHECK(muse_model_n_layer(nullptr) == -1);
    CHECK(muse_model_meta_count(nullptr) == -1);
    CHECK(muse_model_tensor_count(nullptr) == -1);
    int64_t v;
    CHECK(muse_model_meta_get_int(nullptr, "k", &v) == MUSE_ERR_INVALID_ARGUMENT);
    const char *s;
    CHECK(muse_model_meta_key(nullptr, 0, &s) == MUSE_ERR_INVALID_ARGUMENT);
    muse_tensor_info info{};
    info.struct_size = sizeof(info);
    CHECK(muse_model_tensor_info(nullptr, 0, &info) == MUSE_ERR_INVALID_ARGUMENT);
    float f[4];
    CHECK(muse_model_tensor_read_f32(nullptr, 0, f, 4) == MUSE_ERR_INVALID_ARGUMENT);
    muse_string_free(nullptr);
    muse_model_params_init(nullptr);

    const std::string path = write_tiny("null");
    ModelGuard g;
    REQUIRE(muse_model_load(path.c_str(), nullptr, &g.m) == MUSE_OK);
    CHECK(muse_model_meta_get_int(g.m, nullptr, &v) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_model_meta_get_int(g.m, "llama.block_count", nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_model_tensor_info(g.m, 0, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_model_tensor_read_f32(g.m, 0, nullptr, 0) == MUSE_ERR_INVALID_ARGUMENT);
    std::remove(path.c_str());
}

TEST_CASE("params struct sizes are versioned", "[c-api]") {
    const std::string path = write_tiny("sizes");
    // Large enough to hold a struct from "the future" with extra trailing fields.
    struct Bigger {
        muse_model_params p;
        uint64_t future_field;
    } big;
    std::memset(&big, 0, sizeof(big));
    muse_model_params_init(&big.p);

    SECTION("current size") {
        ModelGuard g;
        CHECK(muse_model_load(path.c_str(), &big.p, &g.m) == MUSE_OK);
    }
    SECTION("larger size with zero tail is accepted") {
        big.p.struct_size = sizeof(big);
        ModelGuard g;
        CHECK(muse_model_load(path.c_str(), &big.p, &g.m) == MUSE_OK);
    }
    SECTION("larger size with unknown fields set is refused") {
        big.p.struct_size = sizeof(big);
        big.future_field = 42;
        ModelGuard g;
        CHECK(muse_model_load(path.c_str(), &big.p, &g.m) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(std::string(muse_last_error()).find("newer muse") != std::string::npos);
    }
    SECTION("unknown smaller sizes are refused") {
        for (uint32_t size : {0u, 1u, 4u, static_cast<uint32_t>(sizeof(muse_model_params) - 1)}) {
            big.p.struct_size = size;
            ModelGuard g;
            CHECK(muse_model_load(path.c_str(), &big.p, &g.m) == MUSE_ERR_INVALID_ARGUMENT);
            CHECK(g.m == nullptr);
            CHECK(std::string(muse_last_error()).find("struct_size") != std::string::npos);
        }
    }
    SECTION("tensor info struct size is checked") {
        ModelGuard g;
        REQUIRE(muse_model_load(path.c_str(), nullptr, &g.m) == MUSE_OK);
        muse_tensor_info info{};
        info.struct_size = 8;
        CHECK(muse_model_tensor_info(g.m, 0, &info) == MUSE_ERR_INVALID_ARGUMENT);
    }
    std::remove(path.c_str());
}

TEST_CASE("bad params values are refused", "[c-api]") {
    const std::string path = write_tiny("badparams");
    muse_model_params p;
    muse_model_params_init(&p);
    ModelGuard g;
    p.backend = static_cast<muse_backend>(77);
    CHECK(muse_model_load(path.c_str(), &p, &g.m) == MUSE_ERR_INVALID_ARGUMENT);
    p.backend = MUSE_BACKEND_VULKAN;
    if (std::string(muse_system_info()).find("\"vulkan\"") == std::string::npos) {
        CHECK(muse_model_load(path.c_str(), &p, &g.m) == MUSE_ERR_UNSUPPORTED);  // built without it
        CHECK(std::string(muse_last_error()).find("without the Vulkan backend") != std::string::npos);
    } else {  // built with it: loads where a device is, else says why
        const muse_status st = muse_model_load(path.c_str(), &p, &g.m);
        CHECK((st == MUSE_OK || st == MUSE_ERR_UNSUPPORTED));
        if (st == MUSE_OK) {
            muse_model_free(g.m);
            g.m = nullptr;
        }
    }
    p.backend = MUSE_BACKEND_CPU;
    p.mmproj_path = path.c_str();  // a text model is not a projector
    CHECK(muse_model_load(path.c_str(), &p, &g.m) == MUSE_ERR_FORMAT);
    CHECK(std::string(muse_last_error()).find("projector") != std::string::npos);
    std::remove(path.c_str());
}

TEST_CASE("errors are thread-local and cleared by success", "[c-api]") {
    muse_model *m = nullptr;
    CHECK(muse_model_load("/nonexistent/a.gguf", nullptr, &m) == MUSE_ERR_IO);
    const std::string mine = muse_last_error();
    CHECK(mine.find("/nonexistent/a.gguf") != std::string::npos);
    std::string other;
    std::thread t([&] {
        other = muse_last_error();  // fresh thread: no error yet
        muse_model *m2 = nullptr;
        muse_model_load("/nonexistent/b.gguf", nullptr, &m2);
    });
    t.join();
    CHECK(other.empty());
    CHECK(std::string(muse_last_error()) == mine);
    const std::string path = write_tiny("tls");
    ModelGuard g;
    REQUIRE(muse_model_load(path.c_str(), nullptr, &g.m) == MUSE_OK);
    CHECK(std::string(muse_last_error()).empty());
    std::remove(path.c_str());
}

TEST_CASE("getters, metadata conversions and tensors", "[c-api]") {
    const std::string path = write_tiny("getters");
    ModelGuard g;
    REQUIRE(muse_model_load(path.c_str(), nullptr, &g.m) == MUSE_OK);
    muse_model *m = g.m;
    CHECK(std::string(muse_model_arch(m)) == "llama");
    CHECK(std::string(muse_model_name(m)) == "tiny test model");
    CHECK(muse_model_n_vocab(m) == 16);
    CHECK(muse_model_n_ctx_train(m) == 128);
    CHECK(muse_model_n_embd(m) == 64);
    CHECK(muse_model_n_layer(m) == 2);
    CHECK(muse_model_gguf_version(m) == 3);

    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    CHECK(muse_model_meta_get_int(m, "test.i16", &i) == MUSE_OK);
    CHECK(i == -32768);
    CHECK(muse_model_meta_get_int(m, "test.u64_big", &i) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(muse_model_meta_get_uint(m, "test.u64_big", &u) == MUSE_OK);
    CHECK(u == 0xF000000000000000ull);
    CHECK(muse_model_meta_get_uint(m, "test.i8", &u) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(muse_model_meta_get_float(m, "test.f64", &d) == MUSE_OK);
    CHECK(d == 3.25);
    CHECK(muse_model_meta_get_float(m, "llama.block_count", &d) == MUSE_OK);
    CHECK(d == 2.0);
    CHECK(muse_model_meta_get_int(m, "tokenizer.ggml.add_bos_token", &i) == MUSE_OK);
    CHECK(i == 1);
    CHECK(muse_model_meta_get_int(m, "general.name", &i) == MUSE_ERR_TYPE_MISMATCH);
    CHECK(muse_model_meta_get_int(m, "no.such.key", &i) == MUSE_ERR_NOT_FOUND);
    const char *s = nullptr;
    size_t len = 0;
    CHECK(muse_model_meta_get_string(m, "llama.block_count", &s, &len) == MUSE_ERR_TYPE_MISMATCH);

    muse_meta_type t, et;
    CHECK(muse_model_meta_type(m, "tokenizer.ggml.tokens", &t) == MUSE_OK);
    CHECK(t == MUSE_META_ARRAY);
    CHECK(muse_model_meta_array_info(m, "tokenizer.ggml.tokens", &et, &u) == MUSE_OK);
    CHECK(et == MUSE_META_STRING);
    CHECK(u == 16);
    CHECK(muse_model_meta_array_get_string(m, "tokenizer.ggml.tokens", 3, &s, &len) == MUSE_OK);
    CHECK(std::string(s, len) == "tok3");
    CHECK(muse_model_meta_array_get_string(m, "tokenizer.ggml.tokens", 16, &s, &len) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(muse_model_meta_array_get_float(m, "tokenizer.ggml.scores", 0, &d) == MUSE_OK);
    CHECK(d == -1.5);
    CHECK(muse_model_meta_array_get_int(m, "tokenizer.ggml.token_type", 2, &i) == MUSE_OK);
    CHECK(i == 1);
    CHECK(muse_model_meta_array_get_int(m, "tokenizer.ggml.tokens", 0, &i) == MUSE_ERR_TYPE_MISMATCH);
    CHECK(muse_model_meta_array_info(m, "general.name", &et, &u) == MUSE_ERR_TYPE_MISMATCH);

    char *json = nullptr;
    REQUIRE(muse_model_meta_to_json(m, "tokenizer.ggml.scores", &json) == MUSE_OK);
    CHECK(std::string(json).rfind("[-1.5,", 0) == 0);
    muse_string_free(json);

    const int64_t n_meta = muse_model_meta_count(m);
    CHECK(n_meta > 10);
    const char *key = nullptr;
    CHECK(muse_model_meta_key(m, 0, &key) == MUSE_OK);
    CHECK(std::string(key) == "general.architecture");
    CHECK(muse_model_meta_key(m, n_meta, &key) == MUSE_ERR_OUT_OF_RANGE);

    REQUIRE(muse_model_tensor_count(m) == 3);
    int64_t idx = -1;
    REQUIRE(muse_model_tensor_find(m, "output_norm.weight", &idx) == MUSE_OK);
    muse_tensor_info info{};
    info.struct_size = sizeof(info);
    REQUIRE(muse_model_tensor_info(m, idx, &info) == MUSE_OK);
    CHECK(std::string(info.name) == "output_norm.weight");
    CHECK(std::string(info.type_name) == "F32");
    CHECK(info.n_dims == 1);
    CHECK(info.dims[0] == 64);
    CHECK(info.n_bytes == 256);
    CHECK(info.offset % 32 == 0);
    CHECK(muse_model_tensor_find(m, "nope", &idx) == MUSE_ERR_NOT_FOUND);
    CHECK(muse_model_tensor_info(m, 3, &info) == MUSE_ERR_OUT_OF_RANGE);
    std::vector<float> buf(64 * 16);
    CHECK(muse_model_tensor_read_f32(m, 0, buf.data(), 10) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_model_tensor_read_f32(m, 0, buf.data(), buf.size()) == MUSE_OK);
    std::remove(path.c_str());
}

TEST_CASE("vocab-only models refuse tensor reads with a message", "[c-api]") {
    const std::string path = write_tiny("vocab");
    muse_model_params p;
    muse_model_params_init(&p);
    p.vocab_only = true;
    ModelGuard g;
    REQUIRE(muse_model_load(path.c_str(), &p, &g.m) == MUSE_OK);
    float buf[64];
    CHECK(muse_model_tensor_read_f32(g.m, 1, buf, 64) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(std::string(muse_last_error()).find("vocab-only") != std::string::npos);
    std::remove(path.c_str());
}

TEST_CASE("progress callback reaches the host and can cancel", "[c-api]") {
    const std::string path = write_tiny("progress");
    muse_model_params p;
    muse_model_params_init(&p);
    int calls = 0;
    p.progress = [](float, void *user) {
        ++*static_cast<int *>(user);
        return true;
    };
    p.progress_user_data = &calls;
    {
        ModelGuard g;
        REQUIRE(muse_model_load(path.c_str(), &p, &g.m) == MUSE_OK);
    }
    CHECK(calls >= 1);
    p.progress = [](float, void *) { return false; };
    ModelGuard g;
    CHECK(muse_model_load(path.c_str(), &p, &g.m) == MUSE_ERR_CANCELLED);
    CHECK(g.m == nullptr);
    std::remove(path.c_str());
}

#include "decoder-models.h"

TEST_CASE("sessions: bad input is refused and the session keeps working", "[c-api]") {
    const std::string path = "/tmp/muse-capi-session-" + std::to_string(::getpid()) + ".gguf";
    muse::test::TinyDecoderSpec spec;
    spec.arch = "muse-glimmer";
    muse::test::tiny_decoder_writer(spec).write_file(path);
    ModelGuard g;
    REQUIRE(muse_model_load(path.c_str(), nullptr, &g.m) == MUSE_OK);
    muse_session *s = nullptr;
    CHECK(muse_session_create(nullptr, nullptr, &s) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_session_create(g.m, nullptr, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    muse_session_params p;
    muse_session_params_init(&p);
    p.n_ctx = 32;
    p.kv_type = static_cast<muse_kv_type>(9);
    CHECK(muse_session_create(g.m, &p, &s) == MUSE_ERR_INVALID_ARGUMENT);
    p.kv_type = MUSE_KV_F32;
    p.n_seq_max = 0;
    CHECK(muse_session_create(g.m, &p, &s) == MUSE_ERR_INVALID_ARGUMENT);
    p.n_seq_max = 2;
    REQUIRE(muse_session_create(g.m, &p, &s) == MUSE_OK);

    const int32_t good[] = {1, 2, 3}, bad[] = {1, 64, 3};
    const float *logits = nullptr;
    CHECK(muse_session_eval(s, 0, nullptr, 3, &logits) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_session_eval(s, 0, good, 0, &logits) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_session_eval(s, 0, bad, 3, &logits) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(std::string(muse_last_error()).find("outside the vocabulary") != std::string::npos);
    CHECK(muse_session_eval(s, 5, good, 3, &logits) == MUSE_ERR_OUT_OF_RANGE);
    std::vector<int32_t> huge(40, 1);
    CHECK(muse_session_eval(s, 0, huge.data(), huge.size(), &logits) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(std::string(muse_last_error()).find("n_ctx") != std::string::npos);
    CHECK(muse_session_seq_length(s, 0) == 0);
    CHECK(muse_session_eval(s, 0, good, 3, &logits) == MUSE_OK);
    REQUIRE(logits != nullptr);
    CHECK(muse_session_seq_length(s, 0) == 3);
    CHECK(muse_session_seq_copy(s, 0, 1, 0, -1) == MUSE_OK);
    CHECK(muse_session_seq_copy(s, 0, 7, 0, -1) == MUSE_ERR_OUT_OF_RANGE);
    CHECK(muse_session_seq_length(s, 1) == 3);

    int32_t out[8];
    size_t n = 99;
    CHECK(muse_session_generate_tokens(s, 0, good, 3, nullptr, 8, nullptr, &n) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_session_generate_tokens(s, 0, good, 3, nullptr, 8, out, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    muse_sampling_params sp;
    muse_sampling_params_init(&sp);
    sp.top_p = 0.0f;
    CHECK(muse_session_generate_tokens(s, 1, nullptr, 0, &sp, 8, out, &n) == MUSE_ERR_INVALID_ARGUMENT);
    sp.top_p = 0.9f;
    sp.temperature = 0.7f;
    sp.top_k = 20;
    CHECK(muse_session_generate_tokens(s, 1, nullptr, 0, &sp, 8, out, &n) == MUSE_OK);  // continues seq 1
    CHECK(n >= 1);
    CHECK(muse_session_generate_tokens(nullptr, 0, good, 3, nullptr, 8, out, &n) == MUSE_ERR_INVALID_ARGUMENT);
    muse_session_cancel(nullptr);
    CHECK(muse_session_seq_length(nullptr, 0) == -1);

    // Streaming generation: NULL callback refused; events carry logprobs.
    CHECK(muse_session_generate(s, 0, good, 3, nullptr, nullptr, nullptr, &n) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(std::string(muse_last_error()).find("on_token") != std::string::npos);
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 5;
    gp.n_logprobs = 3;
    struct Seen {
        int events = 0;
        bool ok = true;
    } seen;
    REQUIRE(muse_session_generate(s, 0, good, 3, &gp,
                                  [](const muse_token_event *ev, void *user) {
                                      auto *st = static_cast<Seen *>(user);
                                      ++st->events;
                                      if (ev->token >= 0) {
                                          st->ok = st->ok && ev->n_top == 3 && ev->logprob <= 0.0f &&
                                                   ev->top_logprobs[0] >= ev->top_logprobs[1] &&
                                                   ev->logprob <= ev->top_logprobs[0] + 1e-6f;
                                      }
                                      return true;
                                  },
                                  &seen, &n) == MUSE_OK);
    CHECK(n >= 1);
    CHECK(seen.events >= static_cast<int>(n));
    CHECK(seen.ok);
    gp.n_logprobs = 100;
    CHECK(muse_session_generate(s, 0, good, 3, &gp, [](const muse_token_event *, void *) { return true; }, nullptr,
                                &n) == MUSE_ERR_INVALID_ARGUMENT);
    muse_session_free(s);
    muse_session_free(nullptr);

    muse_model_params vp;
    muse_model_params_init(&vp);
    vp.vocab_only = true;
    ModelGuard vocab;
    REQUIRE(muse_model_load(path.c_str(), &vp, &vocab.m) == MUSE_OK);
    CHECK(muse_session_create(vocab.m, nullptr, &s) == MUSE_ERR_INVALID_ARGUMENT);
    std::remove(path.c_str());
}
