// A session: one KV cache (several sequences), the forward state and the last
// logits. Used by one thread at a time; the model it reads is shared.
#pragma once

#include "decoder/decoder.h"

#include <memory>
#include <vector>

namespace muse {

struct SessionOptions {
    int64_t n_ctx = 4096;
    int n_seq_max = 1;
    uint64_t seed = 0;
    int64_t n_batch = 512;  // tokens per forward pass when evaluating long prompts
    GgmlType kv_type = GgmlType::F16;
};

class Session {
public:
    Session(const Decoder &decoder, const SessionOptions &options);

    const SessionOptions &options() const { return options_; }
    const DecoderHParams &hparams() const { return decoder_.hparams(); }

    // Appends tokens to sequence `seq` (at its next positions) and computes the
    // logits of the last one. Validates ids and lengths first; on error the
    // session is unchanged.
    const std::vector<float> &eval(const std::vector<int32_t> &tokens, int seq = 0);
    const std::vector<float> &logits() const { return logits_; }

    KvCache &cache() { return *cache_; }
    const KvCache &cache() const { return *cache_; }

private:
    const Decoder &decoder_;
    SessionOptions options_;
    std::unique_ptr<KvCache> cache_;
    ForwardState state_;
    std::vector<float> logits_;
};

} // namespace muse
