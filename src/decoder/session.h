// A session: one KV cache (several sequences), the forward state and the last
// logits. Used by one thread at a time; the model it reads is shared.
#pragma once

#include "decoder/decoder.h"
#include "sampling/sampler.h"

#include <atomic>
#include <functional>

#include <memory>
#include <vector>

namespace muse {

struct SessionOptions {
    int64_t n_ctx = 4096;
    int n_seq_max = 1;
    uint64_t seed = 0;
    int64_t n_batch = 512;  // tokens per forward pass when evaluating long prompts
    GgmlType kv_type = GgmlType::F16;
    // Keep every position in the sliding-window layers' cache (n_ctx cells
    // instead of about n_seq_max * window), so sequences can be cut back anywhere.
    bool swa_full = false;
};

class Session {
public:
    Session(const Decoder &decoder, const SessionOptions &options);

    const SessionOptions &options() const { return options_; }
    const DecoderHParams &hparams() const { return decoder_.hparams(); }

    // Appends tokens to sequence `seq` (at its next positions) and computes the
    // logits of the last one. Validates ids, lengths and free cells first; on
    // error the session is unchanged — except when a long prompt fails midway
    // (out of memory) after its sliding-window layers dropped positions the
    // rollback would need: then the evaluated prefix stays and the error says so.
    const std::vector<float> &eval(const std::vector<int32_t> &tokens, int seq = 0);
    const std::vector<float> &logits() const { return logits_; }

    // Evaluates the prompt (may be empty to continue), then samples up to
    // max_tokens tokens, stopping after an end-of-generation token (included in
    // the result), when on_token returns false, or when cancel() is called.
    std::vector<int32_t> generate(const std::vector<int32_t> &prompt, size_t max_tokens, const SamplingParams &params,
                                  int seq = 0, const std::function<bool(int32_t)> &on_token = nullptr);
    // Thread-safe: asks a running generate() to stop after the current token.
    void cancel() { cancel_.store(true); }
    // Tokens that end generation (from the model's metadata).
    void set_end_of_generation(std::vector<int32_t> ids) { eog_ = std::move(ids); }

    KvCache &cache() { return *cache_; }
    const KvCache &cache() const { return *cache_; }

private:
    const Decoder &decoder_;
    SessionOptions options_;
    std::unique_ptr<KvCache> cache_;
    ForwardState state_;
    std::vector<float> logits_;
    std::vector<int32_t> eog_;
    std::atomic<bool> cancel_{false};
};

} // namespace muse
