#include "engine/session.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>

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

Session::~Session() {
    // Generations still alive (freed after their session) keep a pointer to it: cut them loose.
    for (Generation *g : live_) {
        g->phase_ = Generation::Phase::done;
        g->session_ = nullptr;
    }
}

// ------------------------------------------------------------------ decode

const float *Session::output(int64_t i) const {
    if (i < 0 || i >= n_outputs_) fail(MUSE_ERR_OUT_OF_RANGE, "output ", i, " out of range (", n_outputs_, " outputs)");
    return outputs_.data() + i * decoder_.hparams().n_vocab;
}

const float *Session::row_logits(int64_t row) const {
    for (size_t i = 0; i < output_rows_.size(); ++i)
        if (output_rows_[i] == row) return output(static_cast<int64_t>(i));
    fail(MUSE_ERR_OUT_OF_RANGE, "row ", row, " of the last batch did not ask for logits (or is not in it)");
}

void Session::forward_chunk(const Batch &batch, size_t row0, size_t n, std::vector<float> &out) {
    Batch sub;
    sub.tokens.assign(batch.tokens.begin() + static_cast<long>(row0), batch.tokens.begin() + static_cast<long>(row0 + n));
    if (!batch.embd.empty())
        sub.embd.assign(batch.embd.begin() + static_cast<long>(row0), batch.embd.begin() + static_cast<long>(row0 + n));
    sub.pos.assign(batch.pos.begin() + static_cast<long>(row0), batch.pos.begin() + static_cast<long>(row0 + n));
    sub.seq.assign(batch.seq.begin() + static_cast<long>(row0), batch.seq.begin() + static_cast<long>(row0 + n));
    if (!batch.bulk.empty())
        sub.bulk.assign(batch.bulk.begin() + static_cast<long>(row0), batch.bulk.begin() + static_cast<long>(row0 + n));
    std::vector<size_t> slot;  // where each chunk output goes in outputs_
    for (size_t o = 0; o < batch.outputs.size(); ++o) {
        const size_t r = static_cast<size_t>(batch.outputs[o]);
        if (r >= row0 && r < row0 + n) {
            sub.outputs.push_back(static_cast<int32_t>(r - row0));
            slot.push_back(o);
        }
    }
    // One chunk whose outputs come in order (every decode step): the logits land in place.
    bool in_place = slot.size() == batch.outputs.size();
    for (size_t i = 0; i < slot.size() && in_place; ++i) in_place = slot[i] == i;
    decoder_.forward(state_, *cache_, sub, in_place ? outputs_ : out);
    rows_decoded_ += static_cast<int64_t>(n);
    const size_t n_vocab = static_cast<size_t>(decoder_.hparams().n_vocab);
    if (!in_place)
        for (size_t i = 0; i < slot.size(); ++i)
            std::memcpy(outputs_.data() + slot[i] * n_vocab, out.data() + i * n_vocab, n_vocab * 4);
    // Token records: rows that continue a sequence's plain prefix extend it.
    for (size_t i = 0; i < n; ++i) {
        TokenRecord &rec = records_[static_cast<size_t>(sub.seq[i])];
        if (rec.known && static_cast<int64_t>(rec.tokens.size()) == sub.pos[i]) rec.tokens.push_back(sub.tokens[i]);
        else rec.known = false;
    }
}

void Session::decode(const Batch &batch) {
    const DecoderHParams &hp = decoder_.hparams();
    const size_t n = batch.tokens.size();
    if (n == 0) fail(MUSE_ERR_INVALID_ARGUMENT, "decode needs at least one row");
    if (batch.pos.size() != n || batch.seq.size() != n || (!batch.embd.empty() && batch.embd.size() != n) ||
        (!batch.bulk.empty() && batch.bulk.size() != n))
        fail(MUSE_ERR_INTERNAL, "batch arrays differ in length");
    std::vector<int32_t> next(static_cast<size_t>(cache_->n_seq_max()), -1), first(next.size(), -1);
    for (size_t i = 0; i < n; ++i) {
        const int s = batch.seq[i];
        if (s < 0 || s >= cache_->n_seq_max())
            fail(MUSE_ERR_OUT_OF_RANGE, "row ", i, ": sequence id ", s, " out of range (n_seq_max ", cache_->n_seq_max(), ")");
        if (!batch.is_embd(i) && (batch.tokens[i] < 0 || batch.tokens[i] >= hp.n_vocab))
            fail(MUSE_ERR_OUT_OF_RANGE, "token id ", batch.tokens[i], " at index ", i, " is outside the vocabulary (0..",
                 hp.n_vocab - 1, ")");
        int32_t &at = next[static_cast<size_t>(s)];
        if (at < 0) at = first[static_cast<size_t>(s)] = cache_->seq_next_pos(s);
        if (batch.pos[i] < at)
            fail(MUSE_ERR_INVALID_ARGUMENT, "row ", i, ": position ", batch.pos[i], " of sequence ", s,
                 " is not after its last position ", at - 1, " (remove positions first)");
        if (batch.pos[i] >= cache_->n_ctx())
            fail(MUSE_ERR_OUT_OF_RANGE, "prompt too long: position ", batch.pos[i], " exceeds n_ctx = ", cache_->n_ctx());
        at = batch.pos[i] + 1;
    }
    for (int32_t o : batch.outputs)
        if (o < 0 || static_cast<size_t>(o) >= n) fail(MUSE_ERR_OUT_OF_RANGE, "output row ", o, " is not in the batch");
    if (cache_->n_free() < static_cast<int64_t>(n))
        fail(MUSE_ERR_OUT_OF_RANGE, "context is full: ", n, " tokens do not fit in the ", cache_->n_free(),
             " free cells of n_ctx = ", cache_->n_ctx(), " (other sequences hold the rest; remove tokens first)");

    // A batch from the caller (not the scheduler, which marks its prompts itself): the rows of
    // a sequence that evaluates kBulkPromptRows or more in this call form a bulk prompt.
    const Batch *run = &batch;
    Batch marked;
    if (batch.bulk.empty()) {
        std::vector<int64_t> rows(next.size(), 0);
        for (int32_t s : batch.seq) ++rows[static_cast<size_t>(s)];
        if (std::any_of(rows.begin(), rows.end(), [](int64_t r) { return r >= kBulkPromptRows; })) {
            marked = batch;
            marked.bulk.resize(n);
            for (size_t i = 0; i < n; ++i) marked.bulk[i] = rows[static_cast<size_t>(batch.seq[i])] >= kBulkPromptRows;
            run = &marked;
        }
    }

    outputs_.resize(batch.outputs.size() * static_cast<size_t>(hp.n_vocab));
    n_outputs_ = 0;
    output_rows_.clear();
    logits_owners_ = 0;
    const size_t chunk = static_cast<size_t>(options_.n_batch);
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        try {
            forward_chunk(*run, r0, std::min(chunk, n - r0), chunk_logits_);
        } catch (const Error &e) {
            // Earlier chunks already sit in the cache: take them out again if the
            // sliding-window layers still hold what each sequence's start needs.
            bool kept = false;
            for (size_t s = 0; s < first.size(); ++s) {
                if (first[s] < 0) continue;
                if (r0 == 0 || cache_->can_resume_at(static_cast<int>(s), first[s])) seq_remove(static_cast<int>(s), first[s], -1);
                else kept = true;
            }
            logits_.clear();
            if (!kept) throw;
            fail(e.status(), e.what(), " (after ", r0, " of ", n, " rows: those stay evaluated, as their sliding-window "
                 "positions are gone)");
        }
    }
    n_outputs_ = static_cast<int64_t>(batch.outputs.size());
    output_rows_ = batch.outputs;
    if (n_outputs_ > 0) {
        const size_t last_row = static_cast<size_t>(batch.outputs.back());
        // Only a sequence's final row of the batch leaves its next-token logits.
        bool final_row = true;
        for (size_t i = last_row + 1; i < n; ++i) final_row = final_row && batch.seq[i] != batch.seq[last_row];
        if (final_row) logits_owners_ = uint64_t(1) << batch.seq[last_row];
        const float *last = output(n_outputs_ - 1);
        logits_.assign(last, last + hp.n_vocab);
    }
}

const std::vector<float> &Session::eval(const std::vector<int32_t> &tokens, int seq) {
    if (tokens.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "eval needs at least one token");
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
    if (seq < 0 || seq >= cache_->n_seq_max())
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", cache_->n_seq_max(), ")");
    const int32_t start = cache_->seq_next_pos(seq);
    if (static_cast<int64_t>(start) + n_rows > cache_->n_ctx())
        fail(MUSE_ERR_OUT_OF_RANGE, "prompt too long: ", start, " + ", n_rows, " tokens exceed n_ctx = ", cache_->n_ctx());
    const int64_t n_embd = decoder_.hparams().n_embd;
    Batch batch;
    batch.tokens.assign(record_ids.begin(), record_ids.end());
    if (tokens) batch.tokens.assign(tokens, tokens + n_rows);
    for (int64_t i = 0; i < n_rows; ++i) {
        if (embd) batch.embd.push_back(embd + i * n_embd);
        batch.pos.push_back(start + static_cast<int32_t>(i));
        batch.seq.push_back(seq);
    }
    batch.outputs.push_back(static_cast<int32_t>(n_rows - 1));
    decode(batch);
    return logits_;
}

// ------------------------------------------------------------- generations

bool Session::has_live(int seq) const {
    return std::any_of(live_.begin(), live_.end(), [&](const Generation *g) { return g->seq() == seq && !g->done(); });
}

int Session::free_seq(int except) const {
    for (int s = 0; s < cache_->n_seq_max(); ++s)
        if (s != except && cache_->seq_length(s) == 0 && !has_live(s)) return s;
    return -1;
}

std::unique_ptr<Generation> Session::start(int seq, GenerationSetup setup) {
    if (seq < 0 || seq >= cache_->n_seq_max())
        fail(MUSE_ERR_OUT_OF_RANGE, "sequence id ", seq, " out of range (n_seq_max ", cache_->n_seq_max(), ")");
    if (has_live(seq)) fail(MUSE_ERR_INVALID_ARGUMENT, "sequence ", seq, " already has a live generation");
    for (int32_t id : setup.prompt.ids)
        if (id >= decoder_.hparams().n_vocab)
            fail(MUSE_ERR_OUT_OF_RANGE, "token id ", id, " is outside the vocabulary (0..", decoder_.hparams().n_vocab - 1, ")");
    if (setup.follow) {
        if (std::find(live_.begin(), live_.end(), setup.follow) == live_.end() ||
            setup.follow->phase_ != Generation::Phase::prefill)
            fail(MUSE_ERR_INTERNAL, "a follower needs a live leader whose prompt is not evaluated yet");
        if (cache_->seq_length(seq) != 0)
            fail(MUSE_ERR_INVALID_ARGUMENT, "sequence ", seq, " must be empty to follow another generation");
    } else if (setup.prompt.ids.empty() && !has_logits_for(seq)) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "generate needs a prompt (nothing was evaluated on sequence ", seq, " yet)");
    }
    std::unique_ptr<Generation> g(new Generation(*this, seq, std::move(setup)));
    g->start_epoch_ = cancel_epoch_.load();  // a cancel asked before this generation does not stop it
    live_.push_back(g.get());
    return g;
}

int Session::n_live() const {
    return static_cast<int>(std::count_if(live_.begin(), live_.end(), [](const Generation *g) { return !g->done(); }));
}

void Session::detach(Generation *gen) { live_.erase(std::remove(live_.begin(), live_.end(), gen), live_.end()); }

int Session::step() {
    auto alive = [&](Generation *g) { return std::find(live_.begin(), live_.end(), g) != live_.end() && !g->done(); };
    std::vector<Generation *> work = live_;
    const uint64_t epoch = cancel_epoch_.load();
    for (Generation *g : work)
        if (g->start_epoch_ < epoch) g->cancel();
    // Cancellations first (a cancelled generation drops its probe), then generations that
    // continue from logits the session already has.
    for (Generation *g : work)
        if (alive(g) && g->cancel_.load()) g->finish("cancelled");
    for (Generation *g : work) {
        if (!alive(g) || g->phase_ != Generation::Phase::sample) continue;
        if (!g->held_logits_.empty()) {  // a released follower: the prompt's logits it kept
            const std::vector<float> held = std::move(g->held_logits_);
            g->held_logits_.clear();
            g->on_logits(held.data());
        } else if (has_logits_for(g->seq()) && !logits_.empty()) g->on_logits(logits_.data());
        else g->fail(MUSE_ERR_INVALID_ARGUMENT, "nothing was evaluated on sequence " + std::to_string(g->seq()) + " to continue from");
    }

    // One batch: the next token of every decoding generation, then prompt chunks in start
    // order while rows are left.
    const int64_t n_embd = decoder_.hparams().n_embd;
    Batch batch;
    struct Part {
        Generation *gen;
        size_t rows;
        int32_t output;  // index into batch.outputs, or -1
    };
    std::vector<Part> parts;
    std::vector<int32_t> next_pos(static_cast<size_t>(cache_->n_seq_max()), -1);
    auto add_row = [&](Generation *g, int32_t token, const float *embd, bool output, bool bulk) {
        int32_t &p = next_pos[static_cast<size_t>(g->seq())];
        if (p < 0) p = cache_->seq_next_pos(g->seq());
        // batch.embd and batch.bulk are empty until the first image / bulk row; from then on
        // they have one entry per row (such a row may also be the batch's first).
        if (embd && batch.embd.empty()) batch.embd.assign(batch.tokens.size(), nullptr);
        if (bulk && batch.bulk.empty()) batch.bulk.assign(batch.tokens.size(), 0);
        batch.tokens.push_back(token);
        if (embd || !batch.embd.empty()) batch.embd.push_back(embd);
        if (bulk || !batch.bulk.empty()) batch.bulk.push_back(bulk ? 1 : 0);
        batch.pos.push_back(p++);
        batch.seq.push_back(g->seq());
        if (output) batch.outputs.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
    };
    work = live_;
    int64_t budget = options_.n_batch;
    for (Generation *g : work) {
        if (!alive(g) || g->phase_ != Generation::Phase::feed || budget == 0) continue;
        add_row(g, g->pending_, nullptr, true, false);
        parts.push_back({g, 1, static_cast<int32_t>(batch.outputs.size() - 1)});
        --budget;
    }
    for (Generation *g : work) {
        if (!alive(g) || g->phase_ != Generation::Phase::prefill || budget == 0) continue;
        const MultimodalPrompt &p = g->setup_.prompt;
        const size_t k = static_cast<size_t>(std::min<int64_t>(g->prompt_left(), budget));
        const bool bulk = g->prompt_rows() >= kBulkPromptRows;  // the whole prompt's rows, not this chunk's
        for (size_t i = g->prompt_at_; i < g->prompt_at_ + k; ++i) {
            const float *embd = nullptr;
            if (p.ids[i] < 0)
                for (const MultimodalPrompt::ImageRun &run : p.runs)
                    if (i >= run.begin && i < run.begin + static_cast<size_t>(run.n_rows))
                        embd = run.embd + static_cast<int64_t>(i - run.begin) * n_embd;
            if (p.ids[i] < 0 && !embd) {
                g->fail(MUSE_ERR_INTERNAL, "prompt row " + std::to_string(i) + " is an image row without embeddings");
                break;
            }
            add_row(g, p.ids[i], embd, i + 1 == p.ids.size(), bulk);
        }
        if (g->done()) continue;
        const bool last = g->prompt_at_ + k == p.ids.size();
        parts.push_back({g, k, last ? static_cast<int32_t>(batch.outputs.size() - 1) : -1});
        budget -= static_cast<int64_t>(k);
    }
    if (!batch.tokens.empty()) {
        try {
            decode(batch);
        } catch (const Error &e) {
            for (const Part &part : parts)
                if (alive(part.gen)) part.gen->fail(e.status(), e.what());
            return n_live();
        }
        for (const Part &part : parts) {
            Generation *g = part.gen;
            if (!alive(g)) continue;
            const bool prefill = g->phase_ == Generation::Phase::prefill;
            if (prefill) g->prompt_at_ += part.rows;
            if (part.output < 0) continue;
            const float *logits = output(part.output);
            g->on_logits(logits);
            if (!prefill) continue;
            // The prompt is in: generations that share it fork from here and sample too.
            for (Generation *f : std::vector<Generation *>(live_))
                if (alive(f) && f->phase_ == Generation::Phase::fork && f->setup_.follow == g) {
                    seq_copy(g->seq(), f->seq(), 0, -1);
                    if (f->setup_.hold) {
                        f->held_logits_.assign(logits, logits + decoder_.hparams().n_vocab);
                        f->phase_ = Generation::Phase::waiting;
                    } else {
                        f->on_logits(logits);
                    }
                }
        }
    }
    // Followers whose leader ended before its prompt was in cannot start.
    for (Generation *f : std::vector<Generation *>(live_))
        if (alive(f) && f->phase_ == Generation::Phase::fork &&
            (!alive(f->setup_.follow) || f->setup_.follow->phase_ != Generation::Phase::prefill))
            f->fail(MUSE_ERR_INVALID_ARGUMENT, "the generation whose prompt this one shares ended before evaluating it");
    // Probes that ended hand their verdict to the generation waiting for it.
    for (Generation *g : std::vector<Generation *>(live_))
        if (alive(g) && g->phase_ == Generation::Phase::waiting && g->probe_ && g->probe_->done()) g->on_probe_done();
    return n_live();
}

void Session::run(Generation &gen, const std::function<bool(const GenerationEvent &)> &on_event) {
    bool listening = static_cast<bool>(on_event);
    GenerationEvent ev;
    for (;;) {
        while (gen.next_event(ev))
            if (listening && !on_event(ev)) {
                listening = false;
                gen.stop("callback");
            }
        if (gen.done()) {
            while (gen.next_event(ev)) {}
            return;
        }
        step();
    }
}

// -------------------------------------------------------------- sequences

void Session::seq_remove(int seq, int32_t p0, int32_t p1) {
    std::vector<int32_t> ends;  // where each sequence ended before
    for (int s = 0; s < cache_->n_seq_max(); ++s) ends.push_back(cache_->seq_next_pos(s));
    cache_->seq_remove(seq, p0, p1);  // validates and may refuse: records change only after it
    for (int s = seq < 0 ? 0 : seq; s < (seq < 0 ? cache_->n_seq_max() : seq + 1); ++s) {
        TokenRecord &rec = records_[static_cast<size_t>(s)];
        const size_t from = static_cast<size_t>(std::max(p0, 0));
        if (cache_->seq_length(s) == 0) rec = TokenRecord{};
        else if (p1 < 0 || static_cast<size_t>(p1) >= rec.tokens.size()) rec.tokens.resize(std::min(from, rec.tokens.size()));
        else rec.known = false;  // a hole in the middle
        if (cache_->seq_next_pos(s) != ends[static_cast<size_t>(s)])  // no longer what the logits follow
            logits_owners_ &= ~(uint64_t(1) << s);
    }
}

void Session::seq_copy(int src, int dst, int32_t p0, int32_t p1) {
    const bool was_empty = cache_->seq_length(dst) == 0;
    const int32_t src_end = cache_->seq_next_pos(src);
    cache_->seq_copy(src, dst, p0, p1);
    if (src == dst) return;
    if (was_empty && p0 <= 0 && (p1 < 0 || p1 >= src_end) && has_logits_for(src)) logits_owners_ |= uint64_t(1) << dst;
    else logits_owners_ &= ~(uint64_t(1) << dst);
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

} // namespace muse
