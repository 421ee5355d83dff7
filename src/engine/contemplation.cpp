#include "engine/contemplation.h"

#include "core/error.h"
#include "engine/session.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace muse {

const char *to_string(Aggregation a) {
    switch (a) {
    case Aggregation::vote: return "vote";
    case Aggregation::weighted: return "weighted";
    case Aggregation::early_stop: return "early_stop";
    case Aggregation::synthesize: return "synthesize";
    case Aggregation::all: return "all";
    }
    return "?";
}

Aggregation aggregation_from(const std::string &name) {
    for (Aggregation a : {Aggregation::vote, Aggregation::weighted, Aggregation::early_stop, Aggregation::synthesize,
                          Aggregation::all})
        if (name == to_string(a)) return a;
    fail(MUSE_ERR_INVALID_ARGUMENT, "unknown aggregation '", name, "' (vote, weighted, early_stop, synthesize, all)");
}

Contemplation::Contemplation(Session &session, int seq, GenerationSetup base, ContemplateOptions options,
                             SynthesisBuilder synthesis)
    : session_(session), seq_(seq), o_(std::move(options)), synthesis_(std::move(synthesis)) {
    const int n = o_.n_agents;
    if (n < 1 || n > KvCache::kMaxSeqs) fail(MUSE_ERR_INVALID_ARGUMENT, "n_agents ", n, " out of range (1..64)");
    const int need = n + (o_.method == Aggregation::synthesize ? 1 : 0);
    if (need > session.cache().n_seq_max())
        fail(MUSE_ERR_INVALID_ARGUMENT, n, " agents", o_.method == Aggregation::synthesize ? " and a synthesis" : "",
             " need ", need, " sequences: create the session with n_seq_max >= ", need);
    auto check_size = [&](size_t size, const char *what) {
        if (size != 0 && size != static_cast<size_t>(n))
            fail(MUSE_ERR_INVALID_ARGUMENT, what, " has ", size, " entries for ", n, " agents");
    };
    check_size(o_.temperatures.size(), "the per-agent temperatures");
    check_size(o_.budgets.size(), "the per-agent thinking budgets");
    check_size(o_.seeds.size(), "the per-agent seeds");
    if (!o_.seqs.empty()) {
        if (static_cast<int>(o_.seqs.size()) != need - 1)
            fail(MUSE_ERR_INVALID_ARGUMENT, "contemplate_seqs has ", o_.seqs.size(), " entries; ", n, " agents",
                 o_.method == Aggregation::synthesize ? " and a synthesis" : "", " need ", need - 1);
        for (size_t i = 0; i < o_.seqs.size(); ++i) {
            const int s = o_.seqs[i];
            if (s < 0 || s >= session.cache().n_seq_max() || s == seq ||
                std::find(o_.seqs.begin(), o_.seqs.begin() + static_cast<std::ptrdiff_t>(i), s) !=
                    o_.seqs.begin() + static_cast<std::ptrdiff_t>(i))
                fail(MUSE_ERR_INVALID_ARGUMENT, "contemplate_seqs: sequence ", s,
                     " is out of range, the request's own or given twice");
        }
    }
    if (o_.method == Aggregation::synthesize && !synthesis_)
        fail(MUSE_ERR_UNSUPPORTED, "synthesis is not available for this kind of request");
    if (!(o_.keep_top > 0.0 && o_.keep_top <= 1.0)) fail(MUSE_ERR_INVALID_ARGUMENT, "keep_top must be in (0, 1]");
    if (o_.confidence_window <= 0 || o_.confidence_top_k <= 0 || o_.tail_tokens <= 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "confidence window, top_k and tail tokens must be positive");
    if (!o_.normalize) o_.normalize = normalize_answer;
    result_.method = o_.method;
    threshold_ = std::make_shared<double>(o_.stop_threshold > 0 ? o_.stop_threshold
                                                                : std::numeric_limits<double>::quiet_NaN());
    calibrated_ = o_.stop_threshold > 0;

    const float t0 = base.sampling.temperature;
    for (int i = 0; i < n; ++i) {
        GenerationSetup s = i + 1 < n ? base : std::move(base);
        s.agent = i;
        s.sampling.seed = o_.seeds.empty() ? s.sampling.seed + static_cast<uint64_t>(i) : o_.seeds[static_cast<size_t>(i)];
        if (!o_.temperatures.empty()) s.sampling.temperature = o_.temperatures[static_cast<size_t>(i)];
        else if (n > 1 && o_.temperature_spread != 0.0f)
            s.sampling.temperature = std::max(0.0f, t0 + o_.temperature_spread * (static_cast<float>(i) / (n - 1) - 0.5f));
        if (!o_.budgets.empty() && o_.budgets[static_cast<size_t>(i)] >= -1 && s.thinking)
            s.thinking->budget = o_.budgets[static_cast<size_t>(i)];
        s.confidence_top_k = o_.confidence_top_k;
        s.confidence_window = o_.confidence_window;
        s.confidence_tail = o_.tail_tokens;
        if (o_.method == Aggregation::early_stop) {
            s.stop_below = threshold_;
            // DeepConf online: the warm-up agents run first and set the threshold; the rest
            // wait, already forked, and start then (with the threshold in force).
            s.hold = !calibrated_ && i >= std::max(1, o_.warmup_agents);
        }
        int agent_seq = seq;
        if (i > 0) {
            s.prompt = MultimodalPrompt{};
            s.cached = 0;
            s.follow = agents_.front().get();
            agent_seq = o_.seqs.empty() ? session.free_seq(seq) : o_.seqs[static_cast<size_t>(i - 1)];
            if (agent_seq < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "no free sequence for agent ", i, " (n_seq_max too small or in use)");
        }
        AgentResult a;
        a.agent = i;
        a.temperature = s.sampling.temperature;
        a.seed = s.sampling.seed;
        result_.agents.push_back(a);
        seqs_.push_back(agent_seq);
        agents_.push_back(session.start(agent_seq, std::move(s)));
    }
}

Contemplation::~Contemplation() = default;

bool Contemplation::next_event(GenerationEvent &ev, int &agent) {
    const size_t n = agents_.size();
    for (size_t k = 0; k < n; ++k) {
        const size_t i = (next_agent_ + k) % n;
        if (agents_[i]->next_event(ev)) {
            agent = static_cast<int>(i);
            next_agent_ = i + 1;
            return true;
        }
    }
    if (synth_ && synth_->next_event(ev)) {
        agent = static_cast<int>(n);
        return true;
    }
    if (agents_done_ && (!synth_ || synth_->done()) && !tail_events_.empty()) {
        agent = tail_events_.front().first;
        ev = std::move(tail_events_.front().second);
        tail_events_.erase(tail_events_.begin());
        return true;
    }
    return false;
}

void Contemplation::pump() {
    if (done_) return;
    if (cancelled_.load() && synth_) synth_->cancel();
    session_.step();
    after_step();
}

void Contemplation::cancel() {
    cancelled_.store(true);
    for (auto &a : agents_) a->cancel();  // the vector is fixed after construction
}

void Contemplation::after_step() {
    if (o_.method == Aggregation::early_stop && !calibrated_) {
        std::vector<double> scores;
        for (const auto &a : agents_)
            if (a->done() && a->result().finish_reason != "error") scores.push_back(trace_score(a->confidence(), o_.score));
        const int warmup = std::min(std::max(1, o_.warmup_agents), static_cast<int>(agents_.size()));
        if (static_cast<int>(scores.size()) >= warmup ||
            std::all_of(agents_.begin(), agents_.end(), [](const auto &a) { return a->done() || a->held(); })) {
            *threshold_ = calibrate_threshold(scores, o_.stop_percentile);
            calibrated_ = true;
            for (auto &a : agents_) a->release();
        }
    }
    if (!agents_done_ && std::all_of(agents_.begin(), agents_.end(), [](const auto &a) { return a->done(); })) {
        agents_done_ = true;
        finish_agents();
    }
    if (synth_ && synth_->done() && !done_) {
        const GenerationResult &r = synth_->result();
        result_.prompt_tokens_evaluated += r.prompt_evaluated;
        result_.synthesis_prompt_tokens = r.prompt_tokens;
        result_.synthesis_cached_tokens = r.prompt_tokens - r.prompt_evaluated;
        result_.completion_tokens += static_cast<int32_t>(r.tokens.size());
        if (r.finish_reason == "error") {
            result_.error = r.error;
            result_.error_status = r.error_status;
        }
        conclude(r.answer, r.reasoning, r.finish_reason);
    }
}

void Contemplation::finish_agents() {
    std::vector<std::string> answers;
    std::vector<double> scores;
    std::vector<bool> eligible;
    for (size_t i = 0; i < agents_.size(); ++i) {
        const GenerationResult &r = agents_[i]->result();
        AgentResult &a = result_.agents[i];
        a.answer = r.answer;
        a.reasoning = r.reasoning;
        a.finish_reason = r.finish_reason;
        a.usage = r.usage;
        a.tokens = static_cast<int32_t>(r.tokens.size());
        a.token_ids = r.tokens;
        a.confidence = trace_score(agents_[i]->confidence(), o_.score);
        result_.completion_tokens += a.tokens;
        answers.push_back(r.answer);
        scores.push_back(a.confidence);
        eligible.push_back(r.finish_reason != "error" && r.finish_reason != "low_confidence" &&
                           r.finish_reason != "cancelled");
    }
    const GenerationResult &lead = agents_.front()->result();
    result_.prompt_tokens = lead.prompt_tokens;
    result_.prompt_tokens_evaluated = lead.prompt_evaluated;
    result_.cached_tokens = lead.prompt_tokens - lead.prompt_evaluated;
    if (std::none_of(eligible.begin(), eligible.end(), [](bool b) { return b; })) {
        // Nothing to vote on: every agent failed, was stopped or cancelled.
        for (size_t i = 0; i < agents_.size(); ++i)
            if (!agents_[i]->result().error.empty()) {
                result_.error = agents_[i]->result().error;
                result_.error_status = agents_[i]->result().error_status;
                break;
            }
        const std::string why = !result_.error.empty() ? "error"
                                : agents_.front()->result().finish_reason == "cancelled" ? "cancelled"
                                                                                          : "low_confidence";
        conclude("", "", why);
        return;
    }
    std::vector<double> weights(answers.size(), -1.0);
    if (o_.method == Aggregation::weighted || o_.method == Aggregation::early_stop) {
        std::vector<size_t> idx;
        std::vector<double> s;
        for (size_t i = 0; i < answers.size(); ++i)
            if (eligible[i]) {
                idx.push_back(i);
                s.push_back(scores[i]);
            }
        for (size_t k : top_traces(s, o_.keep_top)) weights[idx[k]] = std::max(scores[idx[k]], 1e-6);
    } else {
        for (size_t i = 0; i < answers.size(); ++i)
            if (eligible[i]) weights[i] = 1.0;
    }
    for (size_t i = 0; i < answers.size(); ++i) result_.agents[i].voted = weights[i] >= 0.0;
    result_.vote = vote(answers, weights, o_.normalize);
    result_.agreement = result_.vote.agreement;
    if (o_.method == Aggregation::synthesize && !cancelled_.load()) {
        synth_seq_ = o_.seqs.empty() ? session_.free_seq(seq_) : o_.seqs.back();
        if (synth_seq_ < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "no free sequence for the synthesis");
        if (session_.cache().seq_length(synth_seq_) != 0)
            fail(MUSE_ERR_INVALID_ARGUMENT, "the synthesis's sequence ", synth_seq_, " is not empty");
        session_.seq_copy(seq_, synth_seq_, 0, lead.prompt_tokens);  // the shared prompt, no recomputation
        synth_ = session_.start(synth_seq_, synthesis_(result_.agents, synth_seq_));
        return;
    }
    const int w = result_.vote.winner;
    const std::string &reason = agents_[static_cast<size_t>(std::max(w, 0))]->result().finish_reason;
    conclude(w >= 0 ? answers[static_cast<size_t>(w)] : "", w >= 0 ? result_.agents[static_cast<size_t>(w)].reasoning : "",
             reason);
}

void Contemplation::conclude(const std::string &answer, const std::string &reasoning, const std::string &reason) {
    result_.answer = answer;
    result_.reasoning = reasoning;
    result_.finish_reason = reason;
    GenerationEvent a;
    a.kind = GenerationEvent::Kind::answer;
    a.text = answer;
    tail_events_.emplace_back(-1, std::move(a));
    if (!result_.error.empty()) {
        GenerationEvent e;
        e.kind = GenerationEvent::Kind::error;
        e.text = result_.error;
        tail_events_.emplace_back(-1, std::move(e));
    }
    GenerationEvent d;
    d.kind = GenerationEvent::Kind::done;
    d.finish_reason = reason;
    tail_events_.emplace_back(-1, std::move(d));
    done_ = true;
    // The agents' own sequences and the synthesis's go back to the session; the request's
    // sequence keeps the prompt and agent 0's response.
    for (size_t i = 1; i < seqs_.size(); ++i) session_.seq_remove(seqs_[i], 0, -1);
    if (synth_seq_ >= 0) session_.seq_remove(synth_seq_, 0, -1);
}

} // namespace muse
