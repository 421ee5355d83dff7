#include "decoder/session.h"

#include "core/error.h"

#include <algorithm>

namespace muse {

Session::Session(const Decoder &decoder, const SessionOptions &options)
    : decoder_(decoder), options_(options), state_(decoder.backend()) {
    const DecoderHParams &hp = decoder.hparams();
    if (options.n_ctx <= 0 || options.n_ctx > (int64_t(1) << 24))
        fail(MUSE_ERR_INVALID_ARGUMENT, "n_ctx ", options.n_ctx, " out of range (1..16M)");
    if (options.n_batch <= 0) options_.n_batch = 512;
    KvCache::Config kv;
    kv.n_ctx = options.n_ctx;
    kv.n_seq_max = options.n_seq_max;
    kv.n_batch = options_.n_batch;
    kv.type = options.kv_type;
    kv.n_embd_k_gqa = kv.n_embd_v_gqa = hp.n_embd_kv();
    kv.is_swa = hp.is_swa;
    kv.window = hp.n_swa;
    kv.swa_full = options.swa_full;
    cache_ = std::make_unique<KvCache>(decoder.backend(), kv);
}

const std::vector<float> &Session::eval(const std::vector<int32_t> &tokens, int seq) {
    const DecoderHParams &hp = decoder_.hparams();
    if (tokens.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "eval needs at least one token");
    if (seq < 0 || seq >= cache_->n_seq_max())
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", cache_->n_seq_max(), ")");
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= hp.n_vocab)
            fail(MUSE_ERR_OUT_OF_RANGE, "token id ", tokens[i], " at index ", i, " is outside the vocabulary (0..",
                 hp.n_vocab - 1, ")");
    const int32_t start = cache_->seq_next_pos(seq);
    if (static_cast<int64_t>(start) + static_cast<int64_t>(tokens.size()) > cache_->n_ctx())
        fail(MUSE_ERR_OUT_OF_RANGE, "prompt too long: ", start, " + ", tokens.size(), " tokens exceed n_ctx = ",
             cache_->n_ctx());
    if (cache_->n_free() < static_cast<int64_t>(tokens.size()))
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", tokens.size(), " tokens do not fit in the ", cache_->n_free(),
             " free cells of n_ctx = ", cache_->n_ctx(), " (other sequences hold the rest; remove tokens first)");
    std::vector<float> out;
    for (size_t b = 0; b < tokens.size(); b += static_cast<size_t>(options_.n_batch)) {
        const size_t n = std::min(tokens.size() - b, static_cast<size_t>(options_.n_batch));
        Batch batch;
        batch.tokens.assign(tokens.begin() + static_cast<long>(b), tokens.begin() + static_cast<long>(b + n));
        for (size_t i = 0; i < n; ++i) {
            batch.pos.push_back(start + static_cast<int32_t>(b + i));
            batch.seq.push_back(seq);
        }
        const bool last = b + n == tokens.size();
        if (last) batch.outputs.push_back(static_cast<int32_t>(n - 1));
        try {
            decoder_.forward(state_, *cache_, batch, out);
        } catch (const Error &e) {
            // Earlier chunks of this call already sit in the cache: take them out
            // again if the sliding-window layers still hold what `start` needs.
            if (b == 0 || cache_->can_resume_at(seq, start)) {
                cache_->seq_remove(seq, start, -1);
                throw;
            }
            logits_.clear();
            fail(e.status(), e.what(), " (after ", b, " of ", tokens.size(), " tokens: those stay evaluated in sequence ",
                 seq, ", which now ends at position ", start + static_cast<int32_t>(b) - 1, ")");
        } catch (...) {
            if (b == 0 || cache_->can_resume_at(seq, start)) cache_->seq_remove(seq, start, -1);
            else logits_.clear();
            throw;
        }
    }
    logits_.swap(out);
    return logits_;
}

std::vector<int32_t> Session::generate(const std::vector<int32_t> &prompt, size_t max_tokens,
                                      const SamplingParams &params, int seq,
                                      const std::function<bool(int32_t)> &on_token) {
    cancel_.store(false);
    Sampler sampler(params);
    if (!prompt.empty()) eval(prompt, seq);
    else if (logits_.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "generate needs a prompt (nothing was evaluated yet)");
    std::vector<int32_t> history = prompt, out;
    while (out.size() < max_tokens && !cancel_.load()) {
        const int32_t tok = sampler.sample(logits_, history);
        out.push_back(tok);
        history.push_back(tok);
        if (on_token && !on_token(tok)) break;
        if (std::find(eog_.begin(), eog_.end(), tok) != eog_.end()) break;
        if (out.size() < max_tokens) eval({tok}, seq);
    }
    return out;
}

} // namespace muse
