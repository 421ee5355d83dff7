// muse.hpp — header-only C++17 wrapper over the C ABI in muse.h (and nothing
// else): RAII owners, exceptions (muse::error), std::string_view in, std types out.
//
//     muse::model m("model.gguf", muse::model_options{}.vocab_only(true));
//     std::cout << m.arch() << " " << m.n_layer() << " layers\n";
//     for (const auto &t : m.tensors()) std::cout << t.name << " " << t.type_name << "\n";
//
// Thread rules are those of the C handles: a muse::model may be shared by threads.
//
// Batched engine: several generations (one per sequence) advance together:
//
//     muse::session s(m, opts);                       // opts.n_seq_max = 2
//     muse::generation a = s.start(prompt_a, go, 0), b = s.start(prompt_b, go, 1);
//     while (s.step() > 0) {}                         // one forward pass per step for both
//     for (const muse::event &e : a) if (e.kind == MUSE_EVENT_ANSWER) std::cout << e.text;
#ifndef MUSE_HPP
#define MUSE_HPP

#include "muse/muse.h"

#include <cstdint>
#include <cstddef>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace muse {

class error : public std::runtime_error {
public:
    error(muse_status code, const std::string &message) : std::runtime_error(message), code_(code) {}
    muse_status code() const noexcept { return code_; }

private:
    muse_status code_;
};

// Throws muse::error with the thread's last message when status is not MUSE_OK.
inline void check(muse_status status) {
    if (status != MUSE_OK) {
        const char *msg = muse_last_error();
        throw error(status, std::string(muse_status_name(status)) + ": " + (msg && *msg ? msg : "(no message)"));
    }
}

// One move-only owner for every handle type: unique_ptr over the C free function.
template <class T, void (*Free)(T *)>
struct handle_deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)>
using unique_handle = std::unique_ptr<T, handle_deleter<T, Free>>;

inline std::string version() { return muse_version(); }

class model_options {
public:
    model_options() { muse_model_params_init(&p_); }
    model_options &backend(muse_backend b) { p_.backend = b; return *this; }
    model_options &threads(int32_t n) { p_.n_threads = n; return *this; }
    model_options &use_mmap(bool on) { p_.use_mmap = on; return *this; }
    model_options &vocab_only(bool on) { p_.vocab_only = on; return *this; }
    model_options &mmproj(std::string path) { mmproj_ = std::move(path); return *this; }
    // A sentencepiece .model used instead of the GGUF's tokenizer metadata.
    model_options &tokenizer(std::string path) { tokenizer_ = std::move(path); return *this; }
    // Return false from the callback to cancel the load.
    model_options &progress(std::function<bool(float)> cb) { progress_ = std::move(cb); return *this; }

    // The C struct, valid while this object lives and is not modified.
    const muse_model_params *c_params() {
        p_.mmproj_path = mmproj_.empty() ? nullptr : mmproj_.c_str();
        p_.tokenizer_path = tokenizer_.empty() ? nullptr : tokenizer_.c_str();
        if (progress_) {
            p_.progress = [](float f, void *user) -> bool {
                try {
                    return (*static_cast<std::function<bool(float)> *>(user))(f);
                } catch (...) {
                    return false;  // never let an exception unwind through C
                }
            };
            p_.progress_user_data = &progress_;
        } else {
            p_.progress = nullptr;
            p_.progress_user_data = nullptr;
        }
        return &p_;
    }

private:
    muse_model_params p_{};
    std::string mmproj_, tokenizer_;
    std::function<bool(float)> progress_;
};

struct tensor_info {
    std::string name;
    uint32_t type = 0;
    std::string type_name;
    std::vector<int64_t> dims;  // ggml order, n_dims entries
    int64_t n_elements = 0;
    uint64_t n_bytes = 0;
    uint64_t offset = 0;
};

class model {
public:
    explicit model(const std::string &path, model_options options = {}) {
        muse_model *m = nullptr;
        check(muse_model_load(path.c_str(), options.c_params(), &m));
        handle_.reset(m);
    }

    const muse_model *get() const noexcept { return handle_.get(); }

    std::string arch() const { return muse_model_arch(get()); }
    std::string name() const { return muse_model_name(get()); }
    // The backend and device the decoder runs on (builds the decoder; throws on failure).
    std::string device() const {
        const char *d = nullptr;
        check(muse_model_device(get(), &d));
        return d;
    }
    int64_t n_vocab() const { return muse_model_n_vocab(get()); }
    int64_t n_ctx_train() const { return muse_model_n_ctx_train(get()); }
    int64_t n_embd() const { return muse_model_n_embd(get()); }
    int64_t n_layer() const { return muse_model_n_layer(get()); }
    uint32_t gguf_version() const { return muse_model_gguf_version(get()); }

    // ---- metadata
    std::vector<std::string> meta_keys() const {
        std::vector<std::string> keys;
        const int64_t n = muse_model_meta_count(get());
        for (int64_t i = 0; i < n; ++i) {
            const char *k = nullptr;
            check(muse_model_meta_key(get(), i, &k));
            keys.emplace_back(k);
        }
        return keys;
    }
    bool has_meta(std::string_view key) const {
        muse_meta_type t;
        return muse_model_meta_type(get(), std::string(key).c_str(), &t) == MUSE_OK;
    }
    muse_meta_type meta_type(std::string_view key) const {
        muse_meta_type t;
        check(muse_model_meta_type(get(), std::string(key).c_str(), &t));
        return t;
    }
    int64_t meta_int(std::string_view key) const {
        int64_t v = 0;
        check(muse_model_meta_get_int(get(), std::string(key).c_str(), &v));
        return v;
    }
    double meta_float(std::string_view key) const {
        double v = 0;
        check(muse_model_meta_get_float(get(), std::string(key).c_str(), &v));
        return v;
    }
    std::string meta_string(std::string_view key) const {
        const char *s = nullptr;
        size_t n = 0;
        check(muse_model_meta_get_string(get(), std::string(key).c_str(), &s, &n));
        return std::string(s, n);
    }
    std::optional<std::string> meta_string_or_none(std::string_view key) const {
        if (!has_meta(key) || meta_type(key) != MUSE_META_STRING) return std::nullopt;
        return meta_string(key);
    }
    uint64_t meta_array_length(std::string_view key) const {
        uint64_t n = 0;
        check(muse_model_meta_array_info(get(), std::string(key).c_str(), nullptr, &n));
        return n;
    }
    // Any value as JSON text (nested arrays included).
    std::string meta_json(std::string_view key) const {
        char *s = nullptr;
        check(muse_model_meta_to_json(get(), std::string(key).c_str(), &s));
        std::string out(s);
        muse_string_free(s);
        return out;
    }

    // ---- tokenizer
    std::vector<int32_t> tokenize(std::string_view text, bool add_special = false, bool parse_special = false) const {
        size_t n = 0;
        std::vector<int32_t> out(text.size() + 8);
        muse_status st = muse_tokenize(get(), text.data(), text.size(), add_special, parse_special, out.data(),
                                       out.size(), &n);
        if (st == MUSE_ERR_OUT_OF_RANGE && n > out.size()) {
            out.resize(n);
            st = muse_tokenize(get(), text.data(), text.size(), add_special, parse_special, out.data(), out.size(), &n);
        }
        check(st);
        out.resize(n);
        return out;
    }
    std::string detokenize(const std::vector<int32_t> &ids, bool render_special = false) const {
        char *text = nullptr;
        size_t n = 0;
        check(muse_detokenize(get(), ids.data(), ids.size(), render_special, &text, &n));
        std::string out(text, n);
        muse_string_free(text);
        return out;
    }

    // ---- tensors
    int64_t tensor_count() const { return muse_model_tensor_count(get()); }
    tensor_info tensor(int64_t index) const {
        muse_tensor_info c{};
        c.struct_size = sizeof(c);
        check(muse_model_tensor_info(get(), index, &c));
        tensor_info t;
        t.name = c.name;
        t.type = c.type;
        t.type_name = c.type_name;
        t.dims.assign(c.dims, c.dims + c.n_dims);
        t.n_elements = c.n_elements;
        t.n_bytes = c.n_bytes;
        t.offset = c.offset;
        return t;
    }
    std::vector<tensor_info> tensors() const {
        std::vector<tensor_info> out;
        const int64_t n = tensor_count();
        out.reserve(static_cast<size_t>(n > 0 ? n : 0));
        for (int64_t i = 0; i < n; ++i) out.push_back(tensor(i));
        return out;
    }
    std::optional<int64_t> find_tensor(std::string_view name) const {
        int64_t i = -1;
        if (muse_model_tensor_find(get(), std::string(name).c_str(), &i) != MUSE_OK) return std::nullopt;
        return i;
    }
    std::vector<float> tensor_f32(int64_t index) const {
        const tensor_info t = tensor(index);
        std::vector<float> out(static_cast<size_t>(t.n_elements));
        check(muse_model_tensor_read_f32(get(), index, out.data(), out.size()));
        return out;
    }

private:
    unique_handle<muse_model, muse_model_free> handle_;
};

// ---- images

// Decoding options (muse_image_params).
class image_options {
public:
    image_options() { muse_image_params_init(&p_); }
    // Largest width * height accepted, checked from the header before decoding.
    image_options &max_pixels(uint64_t n) { p_.max_pixels = n; return *this; }
    const muse_image_params *c_params() const { return &p_; }

private:
    muse_image_params p_{};
};

// A decoded RGB8 image (alpha composited on white). Immutable; share freely.
class image {
public:
    static image open(const std::string &path, const image_options &o = {}) {
        muse_image *p = nullptr;
        check(muse_image_load_file(path.c_str(), o.c_params(), &p));
        return image(p);
    }
    static image from_memory(const void *data, size_t size, const image_options &o = {}) {
        muse_image *p = nullptr;
        check(muse_image_load_memory(data, size, o.c_params(), &p));
        return image(p);
    }
    // channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; stride_bytes 0 = tightly packed.
    static image from_pixels(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                             int32_t stride_bytes = 0) {
        muse_image *p = nullptr;
        check(muse_image_from_pixels(pixels, width, height, channels, stride_bytes, &p));
        return image(p);
    }

    const muse_image *get() const noexcept { return handle_.get(); }
    int32_t width() const { return muse_image_width(get()); }
    int32_t height() const { return muse_image_height(get()); }
    // width() * height() * 3 bytes, row-major RGB, valid while this image lives.
    const uint8_t *pixels() const { return muse_image_pixels(get()); }
    std::vector<uint8_t> rgb() const {
        const uint8_t *p = pixels();
        return std::vector<uint8_t>(p, p + size_t(width()) * size_t(height()) * 3);
    }

private:
    explicit image(muse_image *p) : handle_(p) {}
    unique_handle<muse_image, muse_image_free> handle_;
};

// ---- grammars (muse_grammar): constrained decoding and checking

// A compiled grammar (GBNF, regex or JSON Schema). Immutable and shared: copies refer to the
// same grammar, and generations started with it keep their own reference.
//
//     auto g = muse::grammar::from_json_schema(R"({"type": "integer", "maximum": 9})");
//     g.matches("7");   // true
//     opts.grammar = g; // constrain a generation's answer (generate_options)
class grammar {
public:
    // root: the start rule.
    static grammar from_gbnf(const std::string &text, const std::string &root = "root") {
        muse_grammar *g = nullptr;
        check(muse_grammar_from_gbnf(text.c_str(), root.c_str(), &g));
        return grammar(g);
    }
    // The whole text must match the pattern.
    static grammar from_regex(const std::string &pattern) {
        muse_grammar *g = nullptr;
        check(muse_grammar_from_regex(pattern.c_str(), &g));
        return grammar(g);
    }
    // flags: muse_json_schema_flags (MUSE_JSON_SCHEMA_COMPACT for generation, ...).
    static grammar from_json_schema(const std::string &schema_json, uint32_t flags = 0) {
        muse_grammar *g = nullptr;
        check(muse_grammar_from_json_schema(schema_json.c_str(), flags, &g));
        return grammar(g);
    }

    bool matches(std::string_view text) const {
        bool ok = false;
        check(muse_grammar_matches(get(), text.data(), text.size(), &ok));
        return ok;
    }
    // The GBNF it was compiled from (a regex's or schema's translation).
    std::string gbnf() const {
        char *s = nullptr;
        check(muse_grammar_to_gbnf(get(), &s));
        std::string out(s);
        muse_string_free(s);
        return out;
    }
    const muse_grammar *get() const noexcept { return handle_.get(); }

private:
    explicit grammar(muse_grammar *g) : handle_(g, muse_grammar_free) {}
    std::shared_ptr<muse_grammar> handle_;
};

// ---- batched decoding (muse_batch): rows of any sequences decoded in one forward pass

class batch {
public:
    explicit batch(size_t capacity = 512) {
        muse_batch *b = nullptr;
        check(muse_batch_create(capacity, &b));
        handle_.reset(b);
    }
    const muse_batch *get() const noexcept { return handle_.get(); }

    // Appends a row (pos < 0: the sequence's next position, counting rows already here).
    // Returns the row's index in the batch, which session::logits() takes after decode() when
    // logits is true (as llama.cpp's llama_get_logits_ith), else -1.
    int32_t add(int32_t token, int32_t pos = -1, int32_t seq_id = 0, bool logits = true) {
        const int32_t row = static_cast<int32_t>(size());
        check(muse_batch_add(handle_.get(), token, pos, seq_id, logits));
        if (!logits) return -1;
        ++n_outputs_;
        return row;
    }
    void clear() noexcept {
        muse_batch_clear(handle_.get());
        n_outputs_ = 0;
    }
    size_t size() const noexcept { return static_cast<size_t>(muse_batch_size(handle_.get())); }
    int32_t n_outputs() const noexcept { return n_outputs_; }

private:
    unique_handle<muse_batch, muse_batch_free> handle_;
    int32_t n_outputs_ = 0;
};

// ---- generations pulled event by event (muse_generation)

// One event of a generation (a copy: it outlives the next call).
struct event {
    muse_event_kind kind = MUSE_EVENT_TOKEN;
    int32_t seq_id = 0;
    int32_t agent = 0;
    int32_t token = -1;                          // -1: none (end-of-stream text)
    bool forced = false;                         // forced by the thinking controller
    std::string text;                            // ANSWER / REASONING text; ERROR: the message
    float logprob = 0.0f;
    std::vector<std::pair<int32_t, float>> top;  // best first, n_logprobs entries
    std::string tool_name, tool_arguments;       // TOOL_CALL, TOOL_RESULT (ARTEFACT: tool_name)
    std::string finish_reason;                   // DONE: stop | length | cancelled | error
    // ---- tools (ABI 5)
    bool tool_failed = false;                    // TOOL_RESULT: text is the tool's error
    std::string artefact, artefact_mime, artefact_kind;  // ARTEFACT: the file's bytes, mime, kind
};

// One response produced on one sequence (session::start / session::start_chat). Move-only;
// destroy it before its session (a live one is cancelled). cancel() may be called from any
// thread while another thread pulls events.
class generation {
public:
    generation() = default;
    // keep: host objects the C generation calls back into (a contemplation's normalizer); they
    // are released after the generation.
    explicit generation(muse_generation *g, std::shared_ptr<const void> keep = {})
        : handle_(g), keep_(std::move(keep)) {}
    generation(generation &&o) noexcept
        : handle_(std::move(o.handle_)), keep_(std::move(o.keep_)), finished_(o.finished_) {}
    generation &operator=(generation &&o) noexcept {
        handle_ = std::move(o.handle_);  // the old C generation goes before its callbacks
        keep_ = std::move(o.keep_);
        finished_ = o.finished_;
        return *this;
    }

    muse_generation *get() const noexcept { return handle_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

    // The next event (stepping the session when none is queued): true for every event up to
    // and including DONE, false once DONE has been returned.
    bool next(event &e) {
        if (finished_) return false;
        muse_event ev{};
        ev.struct_size = sizeof(ev);
        check(muse_generation_next(get(), &ev));
        e.kind = static_cast<muse_event_kind>(ev.kind);
        e.seq_id = ev.seq_id;
        e.agent = ev.agent;
        e.token = ev.token;
        e.forced = ev.forced != 0;
        e.text.assign(ev.text ? ev.text : "", ev.text ? ev.text_len : 0);
        e.logprob = ev.logprob;
        e.top.clear();
        for (int32_t i = 0; i < ev.n_top; ++i) e.top.emplace_back(ev.top_tokens[i], ev.top_logprobs[i]);
        e.tool_name = ev.tool_name ? ev.tool_name : "";
        e.tool_arguments = ev.tool_arguments ? ev.tool_arguments : "";
        e.finish_reason = ev.finish_reason ? ev.finish_reason : "";
        e.tool_failed = ev.tool_failed != 0;
        e.artefact.assign(ev.artefact_data ? static_cast<const char *>(ev.artefact_data) : "",
                          ev.artefact_data ? ev.artefact_size : 0);
        e.artefact_mime = ev.artefact_mime ? ev.artefact_mime : "";
        e.artefact_kind = ev.artefact_kind ? ev.artefact_kind : "";
        if (e.kind == MUSE_EVENT_DONE) finished_ = true;
        return true;
    }

    // Ends the generation ("cancelled") at its next step; any thread.
    void cancel() noexcept { muse_generation_cancel(get()); }
    // Whether it has ended (its events may not all have been read).
    bool done() const noexcept { return muse_generation_done(get()); }
    // The result so far: muse_session_chat's JSON plus "tokens" and (n_logprobs) "logprobs"
    // (contemplating mode: with "agents" and "aggregate").
    std::string result_json() const {
        char *s = nullptr;
        check(muse_generation_result(get(), &s));
        std::string out(s);
        muse_string_free(s);
        return out;
    }

    // Range-for over the events, DONE included:  for (const muse::event &e : g) ...
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = event;
        using difference_type = std::ptrdiff_t;
        using pointer = const event *;
        using reference = const event &;
        iterator() = default;
        explicit iterator(generation *g) : g_(g) { advance(); }
        reference operator*() const { return e_; }
        pointer operator->() const { return &e_; }
        iterator &operator++() { advance(); return *this; }
        bool operator==(const iterator &o) const { return g_ == o.g_; }
        bool operator!=(const iterator &o) const { return g_ != o.g_; }

    private:
        void advance() {
            if (g_ && !g_->next(e_)) g_ = nullptr;
        }
        generation *g_ = nullptr;
        event e_;
    };
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

private:
    unique_handle<muse_generation, muse_generation_free> handle_;
    std::shared_ptr<const void> keep_;  // declared after handle_: destroyed after the C generation
    bool finished_ = false;
};

struct session_options {
    int32_t n_ctx = 4096;
    int32_t n_seq_max = 1;
    int32_t n_batch = 512;
    uint64_t seed = 0;
    muse_kv_type kv_type = MUSE_KV_F16;
    bool swa_full = false;  // sliding-window layers keep every position (see muse_session_params)
};

// Sampling settings; defaults are greedy.
struct sampling {
    float temperature = 0.0f;
    int32_t top_k = 0;
    float top_p = 1.0f;
    float min_p = 0.0f;
    float repeat_penalty = 1.0f;
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    int32_t penalty_last_n = 64;
    uint64_t seed = 0;
    std::vector<int32_t> logit_bias_tokens;  // pairs with logit_bias_values
    std::vector<float> logit_bias_values;

    // The C struct; valid while this object lives and is not modified.
    muse_sampling_params c_params() const {
        muse_sampling_params p;
        muse_sampling_params_init(&p);
        p.temperature = temperature;
        p.logit_bias_tokens = logit_bias_tokens.data();
        p.logit_bias_values = logit_bias_values.data();
        p.n_logit_bias = logit_bias_tokens.size() < logit_bias_values.size() ? logit_bias_tokens.size()
                                                                              : logit_bias_values.size();
        p.top_k = top_k;
        p.top_p = top_p;
        p.min_p = min_p;
        p.repeat_penalty = repeat_penalty;
        p.presence_penalty = presence_penalty;
        p.frequency_penalty = frequency_penalty;
        p.penalty_last_n = penalty_last_n;
        p.seed = seed;
        return p;
    }
};

// The thinking-budget controller (see muse_thinking_params).
struct thinking_options {
    muse_thinking_mode mode = MUSE_THINKING_NONE;  // chat(): NONE means AUTO
    int32_t budget = -1;                           // reasoning tokens; < 0: unlimited
    int32_t min_tokens = 0;
    muse_effort effort = MUSE_EFFORT_DEFAULT;
    std::string wrap_up;       // empty: the library's default
    std::string continue_cue;  // empty: "Wait"
    bool early_exit = false;   // adaptive early exit (0 below: the library's defaults)
    int32_t early_exit_interval = 0, early_exit_stable = 0, early_exit_probe_tokens = 0;
    float early_exit_min_prob = 0.0f;
};

// Contemplating mode (see muse_contemplate_params): with n_agents > 1, n_agents reasoning agents
// answer the same prompt (evaluated once and forked) in one batched pass per step, and their
// answers are aggregated. The session needs n_seq_max >= n_agents (+ 1 for SYNTHESIZE). Zero
// fields take the library's defaults.
struct contemplate_options {
    int32_t n_agents = 0;  // <= 1: one agent, no contemplation
    muse_aggregate aggregate = MUSE_AGGREGATE_VOTE;
    float temperature_spread = 0.0f;  // agent temperatures spread evenly over T +- spread/2
    int32_t confidence_window = 0;    // DeepConf group size (default 16)
    int32_t confidence_top_k = 0;     // candidates per token confidence (default 10)
    int32_t trace_score = 0;          // 0 lowest group, 1 tail, 2 mean
    int32_t tail_tokens = 0;          // default 32
    float keep_top = 0.0f;            // WEIGHTED / EARLY_STOP: fraction of traces that vote (default 1)
    float stop_threshold = 0.0f;      // EARLY_STOP: > 0 fixed, 0 calibrated
    int32_t warmup_agents = 0;        // EARLY_STOP: agents finished before calibrating (default 2)
    float stop_percentile = 0.0f;     // EARLY_STOP: percentile of their scores (default 10)
    bool synthesize_reasoning = false;  // SYNTHESIZE: show the synthesis each agent's reasoning tail
    // Per-agent overrides: empty, or n_agents entries each.
    std::vector<float> agent_temperatures;
    std::vector<int32_t> agent_budgets;  // thinking budgets (< -1: the request's)
    std::vector<uint64_t> agent_seeds;   // default: the request's seed + agent index
    // The sequences agents 1..n-1 (then the synthesis) run on: empty, or n_agents - 1 (+ 1 for
    // SYNTHESIZE) distinct empty sequences (see muse_generate_params.contemplate_seqs).
    std::vector<int32_t> sequences;
    // The canonical form answers are voted on (empty: muse's own rule). Returning std::nullopt,
    // or throwing, uses muse's rule for that answer. Called on the thread running the request.
    std::function<std::optional<std::string>(const std::string &)> normalize;
};

struct generate_options {
    size_t max_tokens = 256;
    muse::sampling sampling;
    std::vector<std::string> stop;  // generation ends before any of these texts
    int32_t n_logprobs = 0;         // top-n logprobs reported per token
    thinking_options thinking;
    contemplate_options contemplate;
    // Constrains the answer (never the reasoning); see muse_generate_params.grammar.
    std::optional<muse::grammar> grammar;
};

struct token_event {
    int32_t token = -1;     // -1: final flush of held-back text
    std::string_view piece;  // text completed by this token (may be empty)
    float logprob = 0.0f;
    std::vector<std::pair<int32_t, float>> top;  // best first, n_logprobs entries
    muse_channel channel = MUSE_CHANNEL_ANSWER;   // with thinking enabled: where piece belongs
    bool forced = false;                          // forced by the thinking controller
    std::string_view tool_name, tool_arguments;   // MUSE_CHANNEL_TOOL_CALL events
    int32_t agent = 0;  // contemplating mode: the agent (n_agents: the synthesis; -1: the aggregate answer)
    // ---- tools (ABI 5)
    bool tool_failed = false;                   // MUSE_CHANNEL_TOOL_RESULT: piece is the tool's error
    std::string_view artefact;                  // MUSE_CHANNEL_ARTEFACT: the file's bytes
    std::string_view artefact_mime, artefact_kind;
};

// ---- tools (ABI 5): a host tool the library calls between rounds of a chat turn.
struct tool_result {
    std::string content;          // what the model reads
    bool failed = false;          // content is an error report
    const image *img = nullptr;   // optional image for the model (copied by the library)
};

struct tool {
    std::string declaration_json;  // {"type": "function", "function": {"name", "description", "parameters"}}
    // Called with the function name and the arguments (a JSON object). May throw: the
    // exception's message becomes the failed result the model reads. Empty: declared only,
    // the turn ends with its calls for the host.
    std::function<tool_result(const std::string &name, const std::string &arguments_json)> fn;
};

// Settings of a chat turn besides generation (see muse_chat_params).
struct chat_options {
    std::string tools_json;       // OpenAI tools array; empty: none
    std::string variables_json;   // extra template variables (JSON object); empty: none
    std::string template_source;  // empty: the model's own chat template
    bool reuse_prefix = true;
    std::vector<const image *> images;  // one per image content part of the messages, in order
    // OpenAI response_format as JSON text ({"type": "json_schema", "json_schema": {...}});
    // empty: none. Not together with generate_options::grammar.
    std::string response_format_json;
    // ---- tools (ABI 5)
    std::vector<tool> tools;             // host tools (declarations join tools_json)
    std::string tool_choice;             // "auto" (empty), "none", "required" or a function name
    bool parallel_tool_calls = true;
    int32_t max_tool_rounds = 4;
    std::vector<std::string> builtin_tools;  // "zoom", "annotate", "calculator"
};

// One agent's text in a contemplating turn, as streamed (index n_agents: the synthesis pass).
struct agent_output {
    std::string reasoning, answer;
};

// The result of a chat turn: the channels as streamed, and the library's JSON result
// (tool calls, usage: reasoning_tokens, answer_tokens, reasoning_end, ...).
// Contemplating mode: reasoning/answer are the aggregate's, agents[i] is agent i's own text, and
// the JSON adds "agents" (confidence, finish_reason, temperature, seed, voted, usage per agent),
// "aggregate" (method, agreement, tally) and usage "prompt_tokens_evaluated".
struct chat_response {
    std::string reasoning, answer;
    std::string json;
    std::vector<agent_output> agents;
};

namespace detail {

// The string value of a top-level key of a JSON object (the library's result), or nullopt.
inline std::optional<std::string> json_top_string(std::string_view j, std::string_view key) {
    size_t i = 0;
    auto ws = [&] { while (i < j.size() && (j[i] == ' ' || j[i] == '\n' || j[i] == '\r' || j[i] == '\t')) ++i; };
    auto hex4 = [&](uint32_t &cp) {
        if (i + 4 > j.size()) return false;
        cp = 0;
        for (size_t k = 0; k < 4; ++k) {
            const char c = j[i++];
            cp <<= 4;
            if (c >= '0' && c <= '9') cp |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') cp |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') cp |= static_cast<uint32_t>(c - 'A' + 10);
            else return false;
        }
        return true;
    };
    auto read_string = [&](std::string &out) {  // at '"'
        out.clear();
        for (++i; i < j.size();) {
            const char c = j[i++];
            if (c == '"') return true;
            if (c != '\\') { out += c; continue; }
            if (i >= j.size()) return false;
            const char e = j[i++];
            switch (e) {
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp = 0;
                if (!hex4(cp)) return false;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < j.size() && j[i] == '\\' && j[i + 1] == 'u') {
                    i += 2;
                    uint32_t lo = 0;
                    if (!hex4(lo)) return false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp < 0x80) out += static_cast<char>(cp);
                else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
                else if (cp < 0x10000) {
                    out += static_cast<char>(0xE0 | (cp >> 12));
                    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                    out += static_cast<char>(0x80 | (cp & 0x3F));
                } else {
                    out += static_cast<char>(0xF0 | (cp >> 18));
                    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
                    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                    out += static_cast<char>(0x80 | (cp & 0x3F));
                }
                break;
            }
            default: out += e;  // \" \\ \/
            }
        }
        return false;
    };
    auto skip_value = [&] {  // up to the ',' or '}' that ends it
        std::string scratch;
        int depth = 0;
        while (i < j.size()) {
            const char c = j[i];
            if (c == '"') {
                if (!read_string(scratch)) return false;
                continue;
            }
            if (depth == 0 && (c == ',' || c == '}')) return true;
            if (c == '{' || c == '[') ++depth;
            else if (c == '}' || c == ']') --depth;
            ++i;
        }
        return false;
    };
    ws();
    if (i >= j.size() || j[i] != '{') return std::nullopt;
    ++i;
    std::string k, v;
    for (;;) {
        ws();
        if (i >= j.size() || j[i] != '"' || !read_string(k)) return std::nullopt;
        ws();
        if (i >= j.size() || j[i++] != ':') return std::nullopt;
        ws();
        if (k == key) {
            if (i < j.size() && j[i] == '"' && read_string(v)) return v;
            return std::nullopt;
        }
        if (!skip_value() || j[i] == '}') return std::nullopt;
        ++i;  // ','
    }
}

} // namespace detail

// A KV cache over a model. One thread at a time, except cancel().
class session {
public:
    explicit session(const model &m, const session_options &o = {}) : n_vocab_(m.n_vocab()) {
        muse_session_params p;
        muse_session_params_init(&p);
        p.n_ctx = o.n_ctx;
        p.n_seq_max = o.n_seq_max;
        p.n_batch = o.n_batch;
        p.seed = o.seed;
        p.kv_type = o.kv_type;
        p.swa_full = o.swa_full ? 1 : 0;
        muse_session *s = nullptr;
        check(muse_session_create(m.get(), &p, &s));
        handle_.reset(s);
    }

    muse_session *get() const noexcept { return handle_.get(); }

    // Appends tokens to a sequence; returns the logits of the last one.
    std::vector<float> eval(const std::vector<int32_t> &tokens, int32_t seq_id = 0) {
        const float *logits = nullptr;
        check(muse_session_eval(get(), seq_id, tokens.data(), tokens.size(), &logits));
        return std::vector<float>(logits, logits + n_vocab_);
    }

    std::vector<int32_t> generate_tokens(const std::vector<int32_t> &prompt, size_t max_tokens,
                                         const sampling &s = {}, int32_t seq_id = 0) {
        const muse_sampling_params p = s.c_params();
        std::vector<int32_t> out(max_tokens);
        size_t n = 0;
        check(muse_session_generate_tokens(get(), seq_id, prompt.data(), prompt.size(), &p, max_tokens, out.data(), &n));
        out.resize(n);
        return out;
    }

    // Streams each generated token to on_token (return false to stop); returns the token count.
    // With options.contemplate.n_agents > 1 the agents run together: token_event::agent says whose
    // token it is (-1: the aggregate answer) and the count is every agent's tokens.
    size_t generate(const std::vector<int32_t> &prompt, const generate_options &options,
                    const std::function<bool(const token_event &)> &on_token, int32_t seq_id = 0) {
        callback_ctx ctx{&on_token};
        const c_generate c(options);
        size_t n = 0;
        const muse_status st =
            muse_session_generate(get(), seq_id, prompt.data(), prompt.size(), &c.gp, &forward_event, &ctx, &n);
        if (ctx.threw) throw error(MUSE_ERR_CANCELLED, "the on_token callback threw; generation stopped");
        check(st);
        return n;
    }

    // One assistant turn for messages_json (OpenAI chat format) with the chat template;
    // on_token (may be empty) sees the text by channel. The sequence keeps the conversation.
    // With options.contemplate.n_agents > 1 the turn runs in contemplating mode (see chat_response).
    chat_response chat(const std::string &messages_json, const generate_options &options = {},
                       const chat_options &chat = {}, const std::function<bool(const token_event &)> &on_token = {},
                       int32_t seq_id = 0) {
        chat_response r;
        const bool contemplating = options.contemplate.n_agents > 1;
        const std::function<bool(const token_event &)> collect = [&](const token_event &e) {
            agent_output *out = nullptr;  // null: the turn's own channels (contemplating: the aggregate's)
            if (contemplating && e.agent >= 0) {
                if (static_cast<size_t>(e.agent) >= r.agents.size()) r.agents.resize(static_cast<size_t>(e.agent) + 1);
                out = &r.agents[static_cast<size_t>(e.agent)];
            }
            if (e.channel == MUSE_CHANNEL_REASONING) (out ? out->reasoning : r.reasoning).append(e.piece);
            else if (e.channel == MUSE_CHANNEL_ANSWER) (out ? out->answer : r.answer).append(e.piece);
            return on_token ? on_token(e) : true;
        };
        callback_ctx ctx{&collect};
        const c_generate c(options);
        const c_chat cc(chat);
        char *json = nullptr;
        const muse_status st =
            muse_session_chat(get(), seq_id, messages_json.c_str(), &cc.cp, &c.gp, &forward_event, &ctx, &json);
        if (json) {
            r.json = json;
            muse_string_free(json);
        }
        if (ctx.threw) throw error(MUSE_ERR_CANCELLED, "the on_token callback threw; generation stopped");
        check(st);
        if (contemplating) {  // the aggregate's reasoning (the winner's, or the synthesis') is not streamed
            if (auto v = detail::json_top_string(r.json, "reasoning")) r.reasoning = *v;
            if (auto v = detail::json_top_string(r.json, "answer")) r.answer = *v;
            if (r.agents.size() < static_cast<size_t>(options.contemplate.n_agents))
                r.agents.resize(static_cast<size_t>(options.contemplate.n_agents));
        }
        return r;
    }

    // Evaluates text whose "<__media__>" markers stand for images (needs the model's mmproj);
    // continue with generate({}, ...). add_bos: -1 as the model says, 0 no, 1 yes.
    void eval_prompt(const std::string &text, const std::vector<const image *> &images = {}, int32_t seq_id = 0,
                     int32_t add_bos = -1) {
        std::vector<const muse_image *> imgs;
        for (const image *im : images) imgs.push_back(im ? im->get() : nullptr);
        check(muse_session_eval_prompt(get(), seq_id, text.c_str(), imgs.data(), imgs.size(), add_bos, nullptr,
                                       nullptr));
    }

    int64_t seq_length(int32_t seq_id = 0) const { return muse_session_seq_length(get(), seq_id); }
    void seq_remove(int32_t seq_id, int32_t p0 = 0, int32_t p1 = -1) { check(muse_session_seq_remove(get(), seq_id, p0, p1)); }
    void seq_copy(int32_t src, int32_t dst, int32_t p0 = 0, int32_t p1 = -1) {
        check(muse_session_seq_copy(get(), src, dst, p0, p1));
    }
    // Stops every generation running on this session at its next step; any thread.
    void cancel() noexcept { muse_session_cancel(get()); }

    // ---- batched decoding and pulled generations

    // One forward pass over the batch (any mix of sequences); on error the session is unchanged.
    void decode(const muse::batch &b) { check(muse_session_decode(get(), b.get())); }
    // The logits of output i of the last decoded batch (see batch::add), n_vocab floats.
    std::vector<float> logits(int32_t i) const {
        const float *l = nullptr;
        check(muse_session_logits(get(), i, &l));
        return std::vector<float>(l, l + n_vocab_);
    }
    // Starts a generation on seq_id (prompt may be empty to continue the sequence); nothing runs
    // until its first next() or step(). Throws when the sequence already has a live generation.
    generation start(const std::vector<int32_t> &prompt, const generate_options &options = {}, int32_t seq_id = 0) {
        const c_generate c(options);
        muse_generation *g = nullptr;
        check(muse_generation_start(get(), seq_id, prompt.data(), prompt.size(), &c.gp, &g));
        return generation(g, c.normalizer);
    }
    // Starts a chat turn (as chat()) as a generation.
    generation start_chat(const std::string &messages_json, const generate_options &options = {},
                          const chat_options &chat = {}, int32_t seq_id = 0) {
        const c_generate c(options);
        // Tools the library calls back while the generation runs: the generation keeps a copy.
        auto held = std::make_shared<const chat_options>(chat);
        const c_chat cc(*held);
        muse_generation *g = nullptr;
        check(muse_generation_start_chat(get(), seq_id, messages_json.c_str(), &cc.cp, &c.gp, &g));
        struct callbacks {
            std::shared_ptr<const void> normalizer;
            std::shared_ptr<const chat_options> chat;
        };
        return generation(g, std::make_shared<const callbacks>(callbacks{c.normalizer, std::move(held)}));
    }
    // Advances every live generation of this session by one batched forward pass; returns
    // how many are still live.
    int32_t step() {
        int32_t n = 0;
        check(muse_session_step(get(), &n));
        return n;
    }

private:
    using normalizer_fn = std::function<std::optional<std::string>(const std::string &)>;
    // muse_normalize_cb adapter; the user data is a normalizer_fn.
    static int32_t normalize_answer(const char *answer, char *out, size_t capacity, void *user) {
        try {
            const std::optional<std::string> n = (*static_cast<const normalizer_fn *>(user))(answer ? answer : "");
            if (!n || capacity == 0) return -1;
            const size_t len = n->size() < capacity - 1 ? n->size() : capacity - 1;
            std::memcpy(out, n->data(), len);
            out[len] = '\0';
            return static_cast<int32_t>(len);
        } catch (...) {
            return -1;  // never unwind through C: muse's own rule for this answer
        }
    }

    // muse_generate_params with the buffers it points to (stop strings, sampling, the
    // contemplation's per-agent arrays and normalizer; a generation keeps the normalizer).
    struct c_generate {
        muse_sampling_params sp;
        std::vector<const char *> stops;
        std::shared_ptr<const normalizer_fn> normalizer;
        muse_generate_params gp;
        explicit c_generate(const generate_options &o) : sp(o.sampling.c_params()) {
            for (const auto &st : o.stop) stops.push_back(st.c_str());
            gp = c_generate_params(o, sp);
            gp.stop = stops.empty() ? nullptr : stops.data();
            gp.n_stop = stops.size();
            const contemplate_options &k = o.contemplate;
            if (k.n_agents <= 1) return;
            const size_t n = static_cast<size_t>(k.n_agents);
            auto sized = [n](size_t have, const char *what) {
                if (have != 0 && have != n)  // muse reads exactly n_agents entries
                    throw error(MUSE_ERR_INVALID_ARGUMENT, std::string("MUSE_ERR_INVALID_ARGUMENT: ") + what + " has " +
                                                               std::to_string(have) + " entries for " +
                                                               std::to_string(n) + " agents");
            };
            sized(k.agent_temperatures.size(), "agent_temperatures");
            sized(k.agent_budgets.size(), "agent_budgets");
            sized(k.agent_seeds.size(), "agent_seeds");
            muse_contemplate_params &cp = gp.contemplate;
            cp.n_agents = k.n_agents;
            cp.aggregate = k.aggregate;
            cp.temperature_spread = k.temperature_spread;
            cp.confidence_window = k.confidence_window;
            cp.confidence_top_k = k.confidence_top_k;
            cp.trace_score = k.trace_score;
            cp.tail_tokens = k.tail_tokens;
            cp.keep_top = k.keep_top;
            cp.stop_threshold = k.stop_threshold;
            cp.warmup_agents = k.warmup_agents;
            cp.stop_percentile = k.stop_percentile;
            cp.synthesize_reasoning = k.synthesize_reasoning ? 1 : 0;
            cp.agent_temperatures = k.agent_temperatures.empty() ? nullptr : k.agent_temperatures.data();
            cp.agent_budgets = k.agent_budgets.empty() ? nullptr : k.agent_budgets.data();
            cp.agent_seeds = k.agent_seeds.empty() ? nullptr : k.agent_seeds.data();
            gp.contemplate_seqs = k.sequences.empty() ? nullptr : k.sequences.data();
            gp.n_contemplate_seqs = k.sequences.size();
            if (k.normalize) {
                normalizer = std::make_shared<const normalizer_fn>(k.normalize);
                cp.normalize = &normalize_answer;
                cp.normalize_user_data = const_cast<normalizer_fn *>(normalizer.get());
            }
        }
        c_generate(const c_generate &) = delete;
        c_generate &operator=(const c_generate &) = delete;
    };
    // muse_tool_fn adapter; the user data is the muse::tool.
    static muse_status call_tool(const char *name, const char *arguments, void *user, muse_tool_result *result) {
        const auto *t = static_cast<const tool *>(user);
        try {
            tool_result r = t->fn(name, arguments);
            muse_status st = r.failed ? muse_tool_result_set_error(result, r.content.c_str())
                                      : muse_tool_result_set_content(result, r.content.data(), r.content.size());
            if (st == MUSE_OK && r.img) st = muse_tool_result_set_image(result, r.img->get());
            return st;
        } catch (const std::exception &e) {
            muse_tool_result_set_error(result, e.what());
        } catch (...) {
            muse_tool_result_set_error(result, "the tool threw");
        }
        return MUSE_OK;  // failed through the result, with the message
    }

    struct c_chat {
        std::vector<const muse_image *> imgs;
        std::vector<muse_tool> tools;
        std::vector<const char *> builtins;
        muse_chat_params cp;
        explicit c_chat(const chat_options &chat) {
            muse_chat_params_init(&cp);
            cp.tools_json = chat.tools_json.empty() ? nullptr : chat.tools_json.c_str();
            cp.variables_json = chat.variables_json.empty() ? nullptr : chat.variables_json.c_str();
            cp.template_source = chat.template_source.empty() ? nullptr : chat.template_source.c_str();
            cp.reuse_prefix = chat.reuse_prefix ? 1 : 0;
            for (const image *im : chat.images) imgs.push_back(im ? im->get() : nullptr);
            cp.images = imgs.data();
            cp.n_images = imgs.size();
            cp.response_format_json = chat.response_format_json.empty() ? nullptr : chat.response_format_json.c_str();
            for (const tool &t : chat.tools)
                tools.push_back({t.declaration_json.c_str(), t.fn ? &call_tool : nullptr, const_cast<tool *>(&t)});
            for (const std::string &b : chat.builtin_tools) builtins.push_back(b.c_str());
            cp.host_tools = tools.empty() ? nullptr : tools.data();
            cp.n_host_tools = tools.size();
            cp.tool_choice = chat.tool_choice.empty() ? nullptr : chat.tool_choice.c_str();
            cp.parallel_tool_calls = chat.parallel_tool_calls ? 1 : 0;
            cp.max_tool_rounds = chat.max_tool_rounds;
            cp.builtin_tools = builtins.empty() ? nullptr : builtins.data();
            cp.n_builtin_tools = builtins.size();
        }
        c_chat(const c_chat &) = delete;
        c_chat &operator=(const c_chat &) = delete;
    };

    static muse_generate_params c_generate_params(const generate_options &o, const muse_sampling_params &sp) {
        muse_generate_params gp;
        muse_generate_params_init(&gp);
        gp.max_tokens = o.max_tokens;
        gp.sampling = &sp;
        gp.n_logprobs = o.n_logprobs;
        gp.thinking.mode = o.thinking.mode;
        gp.thinking.budget = o.thinking.budget;
        gp.thinking.min_tokens = o.thinking.min_tokens;
        gp.thinking.effort = o.thinking.effort;
        gp.thinking.wrap_up = o.thinking.wrap_up.empty() ? nullptr : o.thinking.wrap_up.c_str();
        gp.thinking.continue_cue = o.thinking.continue_cue.empty() ? nullptr : o.thinking.continue_cue.c_str();
        gp.thinking.early_exit = o.thinking.early_exit ? 1 : 0;
        gp.thinking.early_exit_interval = o.thinking.early_exit_interval;
        gp.thinking.early_exit_stable = o.thinking.early_exit_stable;
        gp.thinking.early_exit_probe_tokens = o.thinking.early_exit_probe_tokens;
        gp.thinking.early_exit_min_prob = o.thinking.early_exit_min_prob;
        gp.grammar = o.grammar ? o.grammar->get() : nullptr;
        return gp;
    }

    struct callback_ctx {
        const std::function<bool(const token_event &)> *fn;
        bool threw = false;
    };
    // muse_token_cb adapter; the user data is a callback_ctx.
    static bool forward_event(const muse_token_event *ev, void *user) {
        auto *c = static_cast<callback_ctx *>(user);
        try {
            token_event e;
            e.token = ev->token;
            e.piece = std::string_view(ev->piece, ev->piece_len);
            e.logprob = ev->logprob;
            for (int32_t i = 0; i < ev->n_top; ++i) e.top.emplace_back(ev->top_tokens[i], ev->top_logprobs[i]);
            if (ev->struct_size >= sizeof(muse_token_event)) {
                e.channel = static_cast<muse_channel>(ev->channel);
                e.forced = ev->forced != 0;
                if (ev->tool_name) e.tool_name = ev->tool_name;
                if (ev->tool_arguments) e.tool_arguments = ev->tool_arguments;
                e.agent = ev->agent;
                e.tool_failed = ev->tool_failed != 0;
                if (ev->artefact_data)
                    e.artefact = std::string_view(static_cast<const char *>(ev->artefact_data), ev->artefact_size);
                if (ev->artefact_mime) e.artefact_mime = ev->artefact_mime;
                if (ev->artefact_kind) e.artefact_kind = ev->artefact_kind;
            }
            return (*c->fn)(e);
        } catch (...) {
            c->threw = true;  // never unwind through C
            return false;
        }
    }

    int64_t n_vocab_;
    unique_handle<muse_session, muse_session_free> handle_;
};

} // namespace muse

#endif // MUSE_HPP
