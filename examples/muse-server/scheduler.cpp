#include "scheduler.h"

#include <algorithm>
#include <random>

namespace server {

void Request::push(Item item) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        items_.push_back(std::move(item));
    }
    cv_.notify_one();
}

bool Request::pop(Item &out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return false;
    out = std::move(items_.front());
    items_.pop_front();
    return true;
}

namespace {

muse::session_options session_options(const SchedulerOptions &o) {
    muse::session_options so;
    so.n_seq_max = o.n_parallel;
    so.n_ctx = static_cast<int32_t>(o.ctx_per_seq * o.n_parallel);
    so.n_batch = o.n_batch;
    return so;
}

// A library error at the start of a generation: the request's fault unless it is an internal one.
int status_of(const muse::error &e) {
    switch (e.code()) {
    case MUSE_ERR_INVALID_ARGUMENT:
    case MUSE_ERR_FORMAT:
    case MUSE_ERR_UNSUPPORTED:
    case MUSE_ERR_OUT_OF_RANGE:
    case MUSE_ERR_TYPE_MISMATCH:
    case MUSE_ERR_NOT_FOUND: return 400;
    default: return 500;
    }
}

size_t common_prefix(const std::string &a, const std::string &b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

} // namespace

Scheduler::Scheduler(const muse::model &m, const SchedulerOptions &o, Metrics &metrics)
    : model_(m), opts_(o), metrics_(metrics), session_(m, session_options(o)),
      slots_(static_cast<size_t>(o.n_parallel)) {
    thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() { shutdown(); }

Scheduler::Submit Scheduler::submit(const std::shared_ptr<Request> &r) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (draining_ || stop_) return Submit::shutting_down;
        if (waiting_.size() >= opts_.max_waiting) return Submit::queue_full;
        waiting_.push_back(r);
        metrics_.requests_waiting.store(static_cast<int64_t>(waiting_.size()));
    }
    cv_.notify_one();
    return Submit::ok;
}

void Scheduler::drain() {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
}

bool Scheduler::idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_.empty() && running_requests_ == 0;
}

void Scheduler::shutdown() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_ && !thread_.joinable()) return;
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void Scheduler::run() {
    for (;;) {
        std::vector<std::shared_ptr<Request>> admitted;
        {
            std::unique_lock<std::mutex> lock(mu_);
            const bool any_live = std::any_of(slots_.begin(), slots_.end(), [](const Slot &s) { return s.req != nullptr; });
            if (!any_live) cv_.wait(lock, [&] { return stop_ || !waiting_.empty(); });
            if (stop_) break;
            // First come, first served: a request waits for as many free sequences as it has
            // choices, and nothing behind it overtakes it (no starvation of n > 1).
            int free = static_cast<int>(std::count_if(slots_.begin(), slots_.end(), [](const Slot &s) { return !s.req; }));
            while (!waiting_.empty()) {
                std::shared_ptr<Request> r = waiting_.front();
                if (r->cancelled()) {  // its client left while it waited
                    waiting_.pop_front();
                    metrics_.requests_cancelled.fetch_add(1);
                    continue;
                }
                if (r->job->sequences() > free) break;
                waiting_.pop_front();
                free -= r->job->sequences();
                ++running_requests_;
                admitted.push_back(std::move(r));
            }
            metrics_.requests_waiting.store(static_cast<int64_t>(waiting_.size()));
            metrics_.requests_running.store(running_requests_);
        }
        for (const std::shared_ptr<Request> &r : admitted) admit(r);

        const auto now = std::chrono::steady_clock::now();
        for (Slot &s : slots_) {
            if (!s.req || s.helper) continue;
            const double age = std::chrono::duration<double>(now - s.req->arrived).count();
            if (s.req->cancelled() || age > opts_.timeout_s) s.gen.cancel();
        }
        // One event from each live generation. A generation with none queued steps the session,
        // which advances all of them in one forward pass; the others then find their event
        // queued, so each pass of this loop is (about) one batched step.
        for (size_t seq = 0; seq < slots_.size(); ++seq)
            if (slots_[seq].req && !slots_[seq].helper) pump(static_cast<int>(seq));
        update_gauges();
    }

    // Shutdown: whatever still runs ends as "cancelled", whatever waits is refused.
    for (Slot &s : slots_)
        if (s.req && !s.helper) s.gen.cancel();
    for (size_t seq = 0; seq < slots_.size(); ++seq)
        while (slots_[seq].req && !slots_[seq].helper) pump(static_cast<int>(seq));
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::shared_ptr<Request> &r : waiting_) {
        Item it;
        it.kind = Item::Kind::error;
        it.status = 503;
        it.message = "the server is shutting down";
        r->push(std::move(it));
    }
    waiting_.clear();
    metrics_.requests_waiting.store(0);
}

std::vector<int> Scheduler::pick_sequences(const Job &job) {
    // Free sequences, the one holding the longest prefix of this prompt first: the library
    // keeps that prefix's cache and evaluates only the rest.
    std::vector<std::pair<size_t, int>> free;
    for (size_t i = 0; i < slots_.size(); ++i)
        if (!slots_[i].req)
            free.emplace_back(job.kind == JobKind::chat ? common_prefix(slots_[i].held_prompt, job.rendered_prompt) : 0,
                              static_cast<int>(i));
    std::stable_sort(free.begin(), free.end(), [](const auto &a, const auto &b) { return a.first > b.first; });
    std::vector<int> out;
    if (job.contemplating()) {
        // The request's own sequence keeps the longest prefix; its agents' sequences are
        // emptied (the prompt is forked into them), so they are the ones with least to lose.
        if (free.empty()) return out;
        out.push_back(free.front().second);
        for (int i = 1; i < job.sequences() && i < static_cast<int>(free.size()); ++i)
            out.push_back(free[free.size() - static_cast<size_t>(i)].second);
        return out;
    }
    for (int i = 0; i < job.n && i < static_cast<int>(free.size()); ++i) out.push_back(free[static_cast<size_t>(i)].second);
    return out;
}

void Scheduler::make_room(int64_t need, const std::vector<int> &keep) {
    // Every running generation reserves prompt + max_tokens cells, so one that is running
    // never finds the cache full; idle sequences keep their prefix until the cells are needed.
    const int64_t n_ctx = opts_.ctx_per_seq * opts_.n_parallel;
    auto kept = [&](size_t i) { return std::find(keep.begin(), keep.end(), static_cast<int>(i)) != keep.end(); };
    for (;;) {
        int64_t used = 0;
        int victim = -1;
        int64_t victim_len = 0;
        for (size_t i = 0; i < slots_.size(); ++i) {
            if (slots_[i].req) used += slots_[i].reserve;
            else if (!kept(i)) {
                const int64_t len = std::max<int64_t>(0, session_.seq_length(static_cast<int32_t>(i)));
                used += len;
                if (len > victim_len) victim = static_cast<int>(i), victim_len = len;
            }
        }
        if (used + need <= n_ctx || victim < 0) return;
        session_.seq_remove(victim, 0, -1);
        slots_[static_cast<size_t>(victim)].held_prompt.clear();
    }
}

void Scheduler::start_choice(Slot &slot, int seq, const std::shared_ptr<Request> &r, int choice,
                             const std::vector<int32_t> &helpers) {
    const Job &job = *r->job;
    muse::generate_options go = job.gen;
    go.sampling.seed = job.seed + static_cast<uint64_t>(choice);
    // Contemplation: the library runs the agents on exactly the sequences reserved here, never
    // on whichever is empty (an idle sequence the scheduler may hand out next).
    go.contemplate.sequences = helpers;
    if (job.kind == JobKind::chat) {
        try {
            slot.gen = session_.start_chat(job.messages_json, go, job.chat, seq);
        } catch (const muse::error &) {
            // A sequence that cannot be cut back to the shared prefix (sliding-window caches
            // forget old positions) is emptied, and the prompt evaluated from the start.
            if (session_.seq_length(seq) <= 0) throw;
            session_.seq_remove(seq, 0, -1);
            slot.gen = session_.start_chat(job.messages_json, go, job.chat, seq);
        }
        slot.held_prompt = job.rendered_prompt;
    } else {
        // A raw prompt starts from an empty sequence (its tokens are not a chat prefix).
        session_.seq_remove(seq, 0, -1);
        slot.held_prompt.clear();
        slot.gen = session_.start(job.prompt_tokens, go, seq);
    }
    slot.req = r;
    slot.choice = choice;
    slot.reserve = job.reserve;
    ++r->live_choices;
}

void Scheduler::admit(const std::shared_ptr<Request> &r) {
    Job &job = *r->job;
    if (!job.has_seed) job.seed = std::random_device{}() | (uint64_t(std::random_device{}()) << 32);
    const std::vector<int> seqs = pick_sequences(job);
    try {
        if (job.contemplating()) {
            std::vector<int32_t> helpers(seqs.begin() + 1, seqs.end());
            for (int32_t h : helpers) {  // the agents' sequences must be empty to be forked into
                Slot &s = slots_[static_cast<size_t>(h)];
                session_.seq_remove(h, 0, -1);
                s.held_prompt.clear();
                s.req = r;
                s.helper = true;
                s.reserve = job.reserve;  // each agent grows to prompt + max_tokens
            }
            make_room(job.reserve * static_cast<int64_t>(seqs.size()), seqs);
            start_choice(slots_[static_cast<size_t>(seqs[0])], seqs[0], r, 0, helpers);
        } else {
            make_room(job.reserve * static_cast<int64_t>(seqs.size()), seqs);
            for (int i = 0; i < job.n; ++i)
                start_choice(slots_[static_cast<size_t>(seqs[static_cast<size_t>(i)])], seqs[static_cast<size_t>(i)], r, i);
        }
    } catch (const std::exception &e) {  // never let a request end the scheduler thread
        for (int seq : seqs) {  // what these sequences hold is no longer known: emptied
            Slot &s = slots_[static_cast<size_t>(seq)];
            if (s.req == r) {
                s.gen = muse::generation();
                s.req.reset();
                s.reserve = 0;
                s.helper = false;
            }
            s.held_prompt.clear();
            muse_session_seq_remove(session_.get(), seq, 0, -1);
        }
        r->live_choices = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            --running_requests_;
        }
        metrics_.requests_failed.fetch_add(1);
        Item it;
        it.kind = Item::Kind::error;
        const auto *me = dynamic_cast<const muse::error *>(&e);
        it.status = me ? status_of(*me) : 500;
        it.message = e.what();
        r->push(std::move(it));
        return;
    }
    Item it;
    it.kind = Item::Kind::started;
    r->push(std::move(it));
}

void Scheduler::pump(int seq) {
    Slot &s = slots_[static_cast<size_t>(seq)];
    Item it;
    it.choice = s.choice;
    try {
        if (!s.gen.next(it.ev)) {  // DONE was already delivered (not expected)
            release(seq);
            return;
        }
    } catch (const std::exception &e) {
        it.kind = Item::Kind::error;
        it.status = 500;
        it.message = e.what();
        s.req->push(std::move(it));
        metrics_.requests_failed.fetch_add(1);
        release(seq);
        return;
    }
    // A contemplating request streams its merged answer only (agent -1): the agents' (and the
    // synthesis pass's) own text is in the result's "agents", not in the choice.
    if (s.req->job->contemplating() && it.ev.agent >= 0 && it.ev.kind != MUSE_EVENT_DONE) return;
    switch (it.ev.kind) {
    case MUSE_EVENT_ANSWER:
    case MUSE_EVENT_REASONING:
    case MUSE_EVENT_TOOL_CALL:
        if (!s.req->first_text) {
            s.req->first_text = true;
            metrics_.observe_ttft(std::chrono::duration<double>(std::chrono::steady_clock::now() - s.req->arrived).count());
        }
        s.req->push(std::move(it));
        return;
    case MUSE_EVENT_ERROR: s.req->push(std::move(it)); return;
    case MUSE_EVENT_DONE: {
        try {
            it.result_json = s.gen.result_json();
        } catch (const std::exception &) {
            it.result_json = "{}";
        }
        const nlohmann::json res = nlohmann::json::parse(it.result_json, nullptr, false);
        if (res.is_object() && res.contains("usage") && res["usage"].is_object()) {
            const nlohmann::json &u = res["usage"];
            metrics_.prompt_tokens.fetch_add(u.value("prompt_tokens", uint64_t{0}));
            metrics_.cached_prompt_tokens.fetch_add(u.value("cached_tokens", uint64_t{0}));
        }
        if (res.is_object() && res.contains("tokens") && res["tokens"].is_array())
            metrics_.generation_tokens.fetch_add(res["tokens"].size());
        else if (res.is_object() && res.contains("agents") && res.contains("usage") && res["usage"].is_object())
            metrics_.generation_tokens.fetch_add(res["usage"].value("completion_tokens", uint64_t{0}));  // every agent's
        const std::string reason = it.ev.finish_reason;
        it.kind = Item::Kind::done;
        std::shared_ptr<Request> r = s.req;
        r->push(std::move(it));
        release(seq);
        if (r->live_choices == 0) {
            if (reason == "cancelled") metrics_.requests_cancelled.fetch_add(1);
            else if (reason == "error") metrics_.requests_failed.fetch_add(1);
            else metrics_.requests_ok.fetch_add(1);
        }
        return;
    }
    default: return;  // TOKEN (text held back), tool results and artefacts (no host tools here)
    }
}

void Scheduler::release(int seq) {
    Slot &s = slots_[static_cast<size_t>(seq)];
    std::shared_ptr<Request> r = std::move(s.req);
    s.req.reset();
    s.gen = muse::generation();  // the sequence keeps its cache for a later request's prefix
    s.reserve = 0;
    if (r && r->job->contemplating())
        for (size_t i = 0; i < slots_.size(); ++i) {
            Slot &h = slots_[i];
            if (!h.helper || h.req != r) continue;
            // The library empties them when the request concludes; after a failure it may not have.
            session_.seq_remove(static_cast<int32_t>(i), 0, -1);
            h.req.reset();
            h.helper = false;
            h.reserve = 0;
            h.held_prompt.clear();
        }
    if (r && --r->live_choices == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        --running_requests_;
    }
}

void Scheduler::update_gauges() {
    int64_t used = 0;
    for (size_t i = 0; i < slots_.size(); ++i) used += std::max<int64_t>(0, session_.seq_length(static_cast<int32_t>(i)));
    metrics_.kv_cache_usage.store(static_cast<double>(used) / static_cast<double>(opts_.ctx_per_seq * opts_.n_parallel));
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.requests_running.store(running_requests_);
    metrics_.requests_waiting.store(static_cast<int64_t>(waiting_.size()));
}

} // namespace server
