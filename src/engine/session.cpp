#include "engine/session.h"

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
    records_.resize(static_cast<size_t>(cache_->n_seq_max()));
}

const std::vector<float> &Session::eval(const std::vector<int32_t> &tokens, int seq) {
    const DecoderHParams &hp = decoder_.hparams();
    if (tokens.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "eval needs at least one token");
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= hp.n_vocab)
            fail(MUSE_ERR_OUT_OF_RANGE, "token id ", tokens[i], " at index ", i, " is outside the vocabulary (0..",
                 hp.n_vocab - 1, ")");
    return eval_rows(tokens.data(), nullptr, static_cast<int64_t>(tokens.size()), tokens, seq);
}

const std::vector<float> &Session::eval_embeddings(const float *embd, int64_t n_rows,
                                                   const std::vector<int32_t> &record_ids, int seq) {
    if (!embd || n_rows <= 0) fail(MUSE_ERR_INVALID_ARGUMENT, "eval_embeddings needs at least one row");
    if (static_cast<int64_t>(record_ids.size()) != n_rows)
        fail(MUSE_ERR_INTERNAL, "eval_embeddings: one record id per row expected");
    return eval_rows(nullptr, embd, n_rows, record_ids, seq);
}

const std::vector<float> &Session::eval_rows(const int32_t *tokens, const float *embd, int64_t n_rows,
                                             const std::vector<int32_t> &record_ids, int seq) {
    const int64_t n_embd = decoder_.hparams().n_embd;
    if (seq < 0 || seq >= cache_->n_seq_max())
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", cache_->n_seq_max(), ")");
    const int32_t start = cache_->seq_next_pos(seq);
    if (static_cast<int64_t>(start) + n_rows > cache_->n_ctx())
        fail(MUSE_ERR_OUT_OF_RANGE, "prompt too long: ", start, " + ", n_rows, " tokens exceed n_ctx = ",
             cache_->n_ctx());
    if (cache_->n_free() < n_rows)
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", n_rows, " tokens do not fit in the ", cache_->n_free(),
             " free cells of n_ctx = ", cache_->n_ctx(), " (other sequences hold the rest; remove tokens first)");
    std::vector<float> out;
    for (int64_t b = 0; b < n_rows; b += options_.n_batch) {
        const int64_t n = std::min<int64_t>(n_rows - b, options_.n_batch);
        Batch batch;
        if (tokens) batch.tokens.assign(tokens + b, tokens + b + n);
        else {
            batch.embd = embd + b * n_embd;
            batch.n_embd_rows = n;
        }
        for (int64_t i = 0; i < n; ++i) {
            batch.pos.push_back(start + static_cast<int32_t>(b + i));
            batch.seq.push_back(seq);
        }
        const bool last = b + n == n_rows;
        if (last) batch.outputs.push_back(static_cast<int32_t>(n - 1));
        TokenRecord &rec = records_[static_cast<size_t>(seq)];
        if (rec.known && static_cast<int64_t>(rec.tokens.size()) != start + b) rec.known = false;
        try {
            decoder_.forward(state_, *cache_, batch, out);
            if (rec.known) rec.tokens.insert(rec.tokens.end(), record_ids.begin() + b, record_ids.begin() + b + n);
        } catch (const Error &e) {
            // Earlier chunks of this call already sit in the cache: take them out
            // again if the sliding-window layers still hold what `start` needs.
            if (b == 0 || cache_->can_resume_at(seq, start)) {
                seq_remove(seq, start, -1);
                throw;
            }
            logits_.clear();
            fail(e.status(), e.what(), " (after ", b, " of ", n_rows, " tokens: those stay evaluated in sequence ",
                 seq, ", which now ends at position ", start + static_cast<int32_t>(b) - 1, ")");
        } catch (...) {
            if (b == 0 || cache_->can_resume_at(seq, start)) seq_remove(seq, start, -1);
            else logits_.clear();
            throw;
        }
    }
    logits_.swap(out);
    return logits_;
}

void Session::seq_remove(int seq, int32_t p0, int32_t p1) {
    cache_->seq_remove(seq, p0, p1);  // validates and may refuse: records change only after it
    for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? cache_->n_seq_max() : seq + 1); ++s) {
        TokenRecord &rec = records_[static_cast<size_t>(s)];
        const size_t from = static_cast<size_t>(std::max(p0, 0));
        if (cache_->seq_length(s) == 0) rec = TokenRecord{};
        else if (p1 < 0 || static_cast<size_t>(p1) >= rec.tokens.size()) rec.tokens.resize(std::min(from, rec.tokens.size()));
        else rec.known = false;  // a hole in the middle
    }
}

void Session::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    const bool was_empty = cache_->seq_length(dst) == 0;
    cache_->seq_copy(src, dst, p0, p1);
    if (src == dst) return;
    const TokenRecord &from = records_[static_cast<size_t>(src)];
    TokenRecord &to = records_[static_cast<size_t>(dst)];
    if (was_empty && p0 <= 0 && from.known) {
        const size_t n = p1 < 0 ? from.tokens.size() : std::min(from.tokens.size(), static_cast<size_t>(p1));
        to.tokens.assign(from.tokens.begin(), from.tokens.begin() + static_cast<long>(n));
        to.known = true;
    } else {
        to.known = false;
    }
}

const std::vector<int32_t> *Session::seq_tokens(int seq) const {
    if (seq < 0 || seq >= cache_->n_seq_max()) return nullptr;
    const TokenRecord &rec = records_[static_cast<size_t>(seq)];
    if (!rec.known || static_cast<int64_t>(rec.tokens.size()) != cache_->seq_length(seq)) return nullptr;
    return &rec.tokens;
}

std::vector<int32_t> Session::generate(const std::vector<int32_t> &prompt, size_t max_tokens,
                                      const SamplingParams &params, int seq, const TokenCallback &on_token,
                                      GenerationPolicy *policy) {
    cancel_.store(false);
    Sampler sampler(params);
    if (!prompt.empty()) eval(prompt, seq);
    else if (logits_.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "generate needs a prompt (nothing was evaluated yet)");
    std::vector<int32_t> history = prompt, out;
    int vetoes = 0;  // in a row: a policy that vetoes without queueing a replacement would spin
    while (out.size() < max_tokens && !cancel_.load() && !(policy && policy->done())) {
        int32_t tok = policy ? policy->force_next() : -1;
        const bool forced = tok >= 0;
        if (!forced) {
            tok = sampler.sample(logits_, history);
            if (policy && !policy->accept(tok)) {  // replaced by what the policy queued
                if (++vetoes > 16) fail(MUSE_ERR_INTERNAL, "generation policy vetoed 16 tokens in a row");
                continue;
            }
        } else if (tok >= decoder_.hparams().n_vocab) {
            fail(MUSE_ERR_INTERNAL, "generation policy forced token ", tok, " outside the vocabulary");
        }
        vetoes = 0;
        out.push_back(tok);
        history.push_back(tok);
        if (policy) policy->on_token(tok, forced);
        if (on_token && !on_token(tok, forced)) break;
        if (std::find(eog_.begin(), eog_.end(), tok) != eog_.end()) break;
        if (out.size() < max_tokens && !(policy && policy->done())) eval({tok}, seq);
    }
    return out;
}

} // namespace muse
