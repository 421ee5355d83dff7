// A session: one paged KV cache (several sequences) over a shared, immutable
// decoder, the forward state, the logits of the last decoded batch, and the
// scheduler of its live generations. Used by one host thread at a time; several
// sessions on one model run in parallel from different threads.
//
// Two ways to drive it:
//   decode(batch)   the low-level step: any mix of rows of any sequences, one
//                   forward pass, logits of the rows that ask (as llama_decode);
//   generations     start() a Generation per sequence, then step(): the scheduler
//                   packs every live generation's next token and prompt chunks
//                   into one batch, so the weights are read once per step for all.
// eval()/eval_embeddings() are decode() of one sequence's rows in n_batch chunks.
#pragma once

#include "engine/generation.h"
#include "families/decoder.h"

#include <atomic>
#include <memory>
#include <vector>

namespace muse {

struct SessionOptions {
    int64_t n_ctx = 4096;
    int n_seq_max = 1;
    uint64_t seed = 0;
    int64_t n_batch = 512;  // rows per forward pass (prompt chunks and next tokens together)
    GgmlType kv_type = GgmlType::F16;
    // Keep every position in the sliding-window layers' cache (n_ctx cells
    // instead of about n_seq_max * window), so sequences can be cut back anywhere.
    bool swa_full = false;
};

class Session {
public:
    Session(const Decoder &decoder, const SessionOptions &options);
    ~Session();
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    const SessionOptions &options() const { return options_; }
    const DecoderHParams &hparams() const { return decoder_.hparams(); }

    // ---- the low-level step
    // Validates a batch (ids, sequences, positions after each sequence's end and
    // increasing, free cells), then runs it in forward passes of at most n_batch rows.
    // Logits of the rows in batch.outputs are kept (output(i), outputs order). On error
    // the cache is as before (but see eval for sliding-window caveats).
    void decode(const Batch &batch);
    int64_t n_outputs() const { return n_outputs_; }
    const float *output(int64_t i) const;
    // The logits of batch row `row` of the latest decode (it must have asked for them).
    const float *row_logits(int64_t row) const;
    // Whether logits() are the next-token logits of what seq holds now (its last row was
    // the latest output, or it was forked whole from such a sequence since).
    bool has_logits_for(int seq) const { return seq >= 0 && seq < 64 && (logits_owners_ >> seq & 1); }

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
    // The logits of the last row of the latest eval/decode.
    const std::vector<float> &logits() const { return logits_; }

    // ---- generations
    // Starts a generation on seq (one live generation per sequence). The session keeps a
    // pointer: the generation must be destroyed before the session.
    std::unique_ptr<Generation> start(int seq, GenerationSetup setup);
    // One batched forward pass for every live generation; returns how many are still live.
    // Errors of the pass end the generations that were in it (error + done events).
    int step();
    // Runs one generation to its end (stepping every live one), passing its events on.
    void run(Generation &gen, const std::function<bool(const GenerationEvent &)> &on_event = nullptr);
    int n_live() const;
    // Rows run through the decoder so far (prompt rows, image rows and fed tokens).
    int64_t rows_decoded() const { return rows_decoded_; }
    // Thread-safe: every generation live now ends ("cancelled") at the next step. A
    // generation started afterwards is not affected.
    void cancel() { cancel_epoch_.fetch_add(1); }

    // Tokens that end generation (from the model's metadata).
    void set_end_of_generation(std::vector<int32_t> ids) { eog_ = std::move(ids); }
    const std::vector<int32_t> &end_of_generation() const { return eog_; }

    // Sequence edits (KvCache rules) that also keep the sequence's token record.
    void seq_remove(int seq, int32_t p0, int32_t p1);
    void seq_copy(int src, int dst, int32_t p0, int32_t p1);
    // The tokens at positions 0..n-1 of a sequence, for prefix reuse; nullptr when the
    // sequence is not such a plain prefix (a middle range was removed, embeddings, ...).
    const std::vector<int32_t> *seq_tokens(int seq) const;
    // A sequence with nothing cached and no live generation, or -1.
    int free_seq(int except = -1) const;

    KvCache &cache() { return *cache_; }
    const KvCache &cache() const { return *cache_; }

private:
    friend class Generation;
    void detach(Generation *gen);
    const std::vector<float> &eval_rows(const int32_t *tokens, const float *embd, int64_t n_rows,
                                        const std::vector<int32_t> &record_ids, int seq);
    void forward_chunk(const Batch &batch, size_t row0, size_t n, std::vector<float> &out);
    bool has_live(int seq) const;

    const Decoder &decoder_;
    SessionOptions options_;
    std::unique_ptr<KvCache> cache_;
    ForwardState state_;
    std::vector<float> outputs_;       // [n_outputs, n_vocab]
    std::vector<float> chunk_logits_;  // a chunk's logits before they go to their output slots
    int64_t n_outputs_ = 0;
    std::vector<int32_t> output_rows_;  // batch row of each output
    uint64_t logits_owners_ = 0;  // sequences logits_ continues (bit s)
    std::vector<float> logits_;
    std::vector<int32_t> eog_;
    struct TokenRecord {
        std::vector<int32_t> tokens;
        bool known = true;
    };
    std::vector<TokenRecord> records_;  // per sequence
    std::vector<Generation *> live_;    // in start order
    std::atomic<uint64_t> cancel_epoch_{0};  // cancel() bumps it; older generations end
    int64_t rows_decoded_ = 0;
};

} // namespace muse
