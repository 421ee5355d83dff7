// A session: one KV cache (several sequences), the forward state and the last
// logits. Used by one thread at a time; the model it reads is shared.
#pragma once

#include "families/decoder.h"
#include "sampling/generation-policy.h"
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
    // The same for rows of input embeddings [n_rows, n_embd] (image chunks). record_ids
    // stand for the rows in the sequence's token record (negative ids derived from the
    // image's content hash, so prefix reuse recognises the same image).
    const std::vector<float> &eval_embeddings(const float *embd, int64_t n_rows, const std::vector<int32_t> &record_ids,
                                              int seq = 0);
    const std::vector<float> &logits() const { return logits_; }

    // Evaluates the prompt (may be empty to continue), then samples up to
    // max_tokens tokens, stopping after an end-of-generation token (included in
    // the result), when on_token returns false, when the policy is done, or when
    // cancel() is called. A policy (thinking controller, grammar) may force or
    // veto tokens; on_token learns which tokens were forced. logits() during
    // on_token are the ones the token was chosen from.
    using TokenCallback = std::function<bool(int32_t token, bool forced)>;
    std::vector<int32_t> generate(const std::vector<int32_t> &prompt, size_t max_tokens, const SamplingParams &params,
                                  int seq = 0, const TokenCallback &on_token = nullptr,
                                  GenerationPolicy *policy = nullptr);
    // Thread-safe: asks a running generate() to stop after the current token.
    void cancel() { cancel_.store(true); }
    // Tokens that end generation (from the model's metadata).
    void set_end_of_generation(std::vector<int32_t> ids) { eog_ = std::move(ids); }

    // Sequence edits (KvCache rules) that also keep the sequence's token record.
    void seq_remove(int seq, int32_t p0, int32_t p1);
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    // The tokens at positions 0..n-1 of a sequence, for prefix reuse; nullptr when the
    // sequence is not such a plain prefix (a middle range was removed, embeddings, ...).
    const std::vector<int32_t> *seq_tokens(int seq) const;

    KvCache &cache() { return *cache_; }
    const KvCache &cache() const { return *cache_; }

private:
    const std::vector<float> &eval_rows(const int32_t *tokens, const float *embd, int64_t n_rows,
                                        const std::vector<int32_t> &record_ids, int seq);

    const Decoder &decoder_;
    SessionOptions options_;
    std::unique_ptr<KvCache> cache_;
    ForwardState state_;
    std::vector<float> logits_;
    std::vector<int32_t> eog_;
    struct TokenRecord {
        std::vector<int32_t> tokens;
        bool known = true;
    };
    std::vector<TokenRecord> records_;  // per sequence
    std::atomic<bool> cancel_{false};
};

} // namespace muse
