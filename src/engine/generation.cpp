#include "engine/generation.h"

#include "core/error.h"
#include "engine/grammar-gate.h"
#include "engine/session.h"
#include "grammar/grammar-stage.h"
#include "tools/call-stage.h"

#include <algorithm>
#include <cmath>

namespace muse {

struct Generation::Snapshot {
    int32_t next_pos;
    Phase phase;
    size_t prompt_at;
    int32_t pending;
    SamplerChain chain;
    std::optional<StreamingDetokenizer> detok;
    std::unique_ptr<reasoning::ChannelParser> parser;
    std::optional<StopMatcher> stops;
    GenerationResult result;
    int32_t probed_at, stable;
    std::string last_probe_answer;
};

Generation::Generation(Session &session, int seq, GenerationSetup setup)
    : session_(&session), seq_(seq), setup_(std::move(setup)), chain_(setup_.sampling, setup_.context),
      confidence_(setup_.confidence_window, setup_.confidence_tail) {
    if (setup_.n_logprobs < 0 || setup_.n_logprobs > 64) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "n_logprobs must be in 0..64");
    for (int32_t t : session.end_of_generation()) eog_.insert(t);
    const Tokenizer *tok = setup_.tokenizer;
    if (setup_.grammar) {
        if (!tok) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "a grammar needs the tokenizer");
        auto stage = std::make_unique<grammar::GrammarStage>(setup_.grammar->matcher(), grammar::TokenTrie::of(*tok));
        if (setup_.format || setup_.thinking) {
            // With channels the grammar constrains the answer only (grammar-gate.h).
            std::vector<int32_t> openers;
            if (setup_.format && !setup_.format->think_open.empty())
                if (const auto id = tok->find_token(setup_.format->think_open)) openers.push_back(*id);
            chain_.set_grammar(std::make_unique<GrammarGate>(std::move(stage), std::move(openers)));
        } else {
            chain_.set_grammar(std::move(stage));
        }
    }
    if (setup_.format || setup_.thinking) {
        if (!tok) muse::fail(MUSE_ERR_INTERNAL, "reasoning channels need the tokenizer");
        if (!setup_.format) muse::fail(MUSE_ERR_INTERNAL, "a thinking controller needs the reasoning format");
        parser_ = reasoning::make_channel_parser(*setup_.format, setup_.start, setup_.tools);
        if (setup_.thinking) {
            ThinkingOptions options = *setup_.thinking;
            options.answer_required = options.answer_required || setup_.grammar != nullptr;
            auto controller = std::make_unique<ThinkingController>(*setup_.format, setup_.start, options, *tok);
            controller_ = controller.get();
            chain_.set_controller(std::move(controller));
            const EarlyExitOptions &e = setup_.thinking->early_exit;
            if (e.enabled && setup_.thinking->mode != reasoning::ThinkingMode::off && setup_.thinking->budget != 0) {
                if (e.interval <= 0 || e.stable <= 0 || e.probe_tokens <= 0)
                    muse::fail(MUSE_ERR_INVALID_ARGUMENT, "early exit interval, stable and probe_tokens must be positive");
                probe_seq_ = session.free_seq(seq);
                if (probe_seq_ < 0)
                    muse::fail(MUSE_ERR_INVALID_ARGUMENT, "adaptive early exit needs a free sequence: create the session "
                                                          "with n_seq_max >= 2 and leave one sequence empty");
            }
        }
    }
    if (setup_.calls) {
        if (!parser_) muse::fail(MUSE_ERR_INTERNAL, "tool calls need the reasoning format");
        if (setup_.grammar)
            muse::fail(MUSE_ERR_INVALID_ARGUMENT, "a grammar (response format) and tool calls cannot both constrain "
                                                  "one response: drop the tools or the grammar");
        set_call_stage(setup_.calls);
    }
    // Chat text renders special tokens (the parser reads the framing); raw text does not.
    if (tok) detok_.emplace(*tok, setup_.format.has_value());
    if (!setup_.stop.empty()) {
        if (!tok) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "stop strings need the model's tokenizer");
        stops_.emplace(setup_.stop);
    }
    result_.prompt_tokens = static_cast<int32_t>(setup_.prompt.ids.size());
    if (!setup_.prompt.ids.empty() && setup_.cached >= setup_.prompt.ids.size())
        muse::fail(MUSE_ERR_INTERNAL, "a generation must evaluate at least one prompt row");
    prompt_at_ = setup_.cached;
    result_.prompt_evaluated = static_cast<int32_t>(setup_.prompt.ids.size() - setup_.cached);
    if (setup_.follow) {
        if (!setup_.prompt.ids.empty()) muse::fail(MUSE_ERR_INTERNAL, "a follower generation has no prompt of its own");
        result_.prompt_tokens = static_cast<int32_t>(setup_.follow->setup_.prompt.ids.size());
        result_.prompt_evaluated = 0;
        phase_ = Phase::fork;
    } else if (setup_.prompt.ids.empty()) {
        phase_ = Phase::sample;  // continue from the last logits
    }
    observe_calls();
}

void Generation::set_call_stage(std::shared_ptr<const tools::CallPlan> calls) {
    if (!calls) {
        chain_.set_grammar(setup_.grammar ? std::make_unique<grammar::GrammarStage>(setup_.grammar->matcher(),
                                                                                    grammar::TokenTrie::of(*setup_.tokenizer))
                                          : nullptr);
        call_stage_ = nullptr;
        return;
    }
    auto stage = std::make_unique<tools::CallStage>(std::move(calls), *setup_.tokenizer);
    call_stage_ = stage.get();
    chain_.set_grammar(std::move(stage));
}

void Generation::observe_calls() {
    if (call_stage_ && parser_) call_stage_->observe(parser_->state(), controller_ && controller_->forcing());
}

Generation::~Generation() {
    probe_.reset();
    if (session_) session_->detach(this);
}

bool Generation::next_event(GenerationEvent &out) {
    if (events_.empty()) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
}

void Generation::deliver(GenerationEvent ev) { events_.push_back(std::move(ev)); }

void Generation::emit_text(std::vector<reasoning::ChannelEvent> events, int32_t token, bool forced, bool *first,
                           float logprob, const std::vector<TokenLogprob> &top) {
    for (reasoning::ChannelEvent &ce : events) {
        if (stops_ && stops_->matched()) return;  // nothing after a stop string
        GenerationEvent ev;
        ev.token = token;
        ev.forced = forced;
        if (ce.channel == reasoning::Channel::tool_call) {
            ev.kind = GenerationEvent::Kind::tool_call;
            ev.text = ce.text;
            ev.call = ce.call;
            if (ce.call) result_.tool_calls.push_back(*ce.call);
        } else if (ce.channel == reasoning::Channel::reasoning) {
            ev.kind = GenerationEvent::Kind::reasoning;
            ev.text = std::move(ce.text);
            result_.reasoning += ev.text;
        } else {
            ev.kind = GenerationEvent::Kind::answer;
            ev.text = stops_ ? stops_->push(ce.text) : std::move(ce.text);
            result_.answer += ev.text;
        }
        if (ev.kind != GenerationEvent::Kind::tool_call) result_.text += ev.text;
        if (ev.text.empty() && ev.kind != GenerationEvent::Kind::tool_call && !*first) continue;
        if (*first) {
            ev.logprob = logprob;
            ev.top = top;
            *first = false;
        }
        deliver(std::move(ev));
    }
}

GrammarGate::Phase Generation::grammar_phase() const {
    using reasoning::State;
    if (controller_ && controller_->forcing()) return GrammarGate::Phase::off;
    const State s = controller_ ? controller_->state() : parser_ ? parser_->state() : State::answer;
    if (s == State::answer) return GrammarGate::Phase::answer;
    // Think tags at the response start: the answer may begin here, or reasoning may open.
    if (s == State::open) return GrammarGate::Phase::open;
    return GrammarGate::Phase::off;
}

void Generation::on_logits(const float *logits) {
    const int64_t n_vocab = session_->hparams().n_vocab;
    if (auto *gate = dynamic_cast<GrammarGate *>(chain_.grammar())) gate->set_phase(grammar_phase());
    const SamplerChain::Pick pick = chain_.sample(logits, n_vocab);
    chain_.accept(pick.token, pick.forced);
    const int32_t token = pick.token;
    result_.tokens.push_back(token);
    // A log-softmax over the vocabulary per token: only when someone reads it.
    const bool want_logprob = setup_.n_logprobs > 0 || setup_.token_logprobs || parent_;
    const float logprob = want_logprob ? SamplerChain::logprob_of(logits, n_vocab, token) : 0.0f;
    std::vector<TokenLogprob> top;
    if (setup_.n_logprobs > 0) {
        top = SamplerChain::top_logprobs(logits, n_vocab, setup_.n_logprobs);
        result_.logprobs.push_back({token, logprob, top});
    }
    if (setup_.confidence_top_k > 0) {
        std::vector<float> lps;
        for (const TokenLogprob &t : SamplerChain::top_logprobs(logits, n_vocab, setup_.confidence_top_k))
            lps.push_back(t.logprob);
        confidence_.add(lps);
    }
    if (parent_) {  // an early-exit probe: greedy answer tokens, watched by its parent
        probe_min_prob_ = std::min(probe_min_prob_, std::exp(logprob));
        if (eog_.count(token)) return finish("stop");
        probe_answer_ += setup_.tokenizer->token_to_piece(token, true);
        if (result_.tokens.size() >= setup_.max_tokens) return finish("length");
        pending_ = token;
        phase_ = Phase::feed;
        return;
    }

    const bool eog = eog_.count(token) != 0;
    bool first = true;
    if (!eog && detok_) {
        const std::string piece = detok_->push(token);
        if (parser_) emit_text(parser_->feed(piece), token, pick.forced, &first, logprob, top);
        else emit_text({reasoning::ChannelEvent{reasoning::Channel::answer, piece, std::nullopt}}, token, pick.forced,
                       &first, logprob, top);
    }
    if (first) {  // the token released no text: report it alone
        GenerationEvent ev;
        ev.token = token;
        ev.forced = pick.forced;
        ev.logprob = logprob;
        ev.top = std::move(top);
        deliver(std::move(ev));
    }
    observe_calls();
    if (eog || (stops_ && stops_->matched()) || (parser_ && parser_->state() == reasoning::State::ended)) {
        if (setup_.tool_phase && !(stops_ && stops_->matched()) && result_.tokens.size() < setup_.max_tokens &&
            enter_tool_phase())
            return;
        return finish("stop");
    }
    if (setup_.stop_below && confidence_.window_full() && confidence_.current_group() < *setup_.stop_below)
        return finish("low_confidence");  // comparisons with NaN (no threshold yet) are false
    if (result_.tokens.size() >= setup_.max_tokens) return finish("length");
    pending_ = token;
    phase_ = Phase::feed;
    maybe_probe(token, pick.forced);
}

void Generation::maybe_probe(int32_t token, bool forced) {
    if (probe_seq_ < 0 || !controller_ || forced || !controller_->in_reasoning() || controller_->reasoning_cut()) return;
    const int32_t spent = controller_->usage().reasoning_tokens;
    const EarlyExitOptions &o = setup_.thinking->early_exit;
    if (spent <= 0 || spent % o.interval != 0 || spent == probed_at_) return;
    probed_at_ = spent;
    // Fork the sequence as it is (the new token not yet evaluated), force the answer open
    // on the fork and let the probe decode a few greedy answer tokens alongside the others.
    session_->seq_copy(seq_, probe_seq_, 0, -1);
    GenerationSetup ps;
    ps.prompt.ids.push_back(token);
    const std::vector<int32_t> &open = controller_->answer_open_tokens();
    ps.prompt.ids.insert(ps.prompt.ids.end(), open.begin(), open.end());
    ps.max_tokens = static_cast<size_t>(o.probe_tokens);
    ps.tokenizer = setup_.tokenizer;
    probe_.reset(new Generation(*session_, probe_seq_, std::move(ps)));
    probe_->parent_ = this;
    probe_->start_epoch_ = start_epoch_;
    session_->live_.push_back(probe_.get());
    phase_ = Phase::waiting;
}

void Generation::on_probe_done() {
    Generation &p = *probe_;
    const EarlyExitOptions &o = setup_.thinking->early_exit;
    const int32_t evaluated = static_cast<int32_t>(p.setup_.prompt.ids.size() + p.result_.tokens.size()) -
                              (p.result_.tokens.empty() ? 0 : 1);
    controller_->count_probe(evaluated);
    const bool confident = p.probe_min_prob_ >= o.min_prob;
    stable_ = confident && p.probe_answer_ == last_probe_answer_ ? stable_ + 1 : (confident ? 1 : 0);
    last_probe_answer_ = p.probe_answer_;
    probe_.reset();
    session_->seq_remove(probe_seq_, 0, -1);
    if (stable_ >= o.stable) controller_->end_reasoning(ReasoningEnd::early_exit);
    if (phase_ == Phase::waiting) phase_ = Phase::feed;
}

void Generation::finish(const std::string &reason) {
    if (phase_ == Phase::done) return;
    if (probe_) {
        probe_.reset();
        session_->seq_remove(probe_seq_, 0, -1);
    }
    phase_ = Phase::done;
    const bool stopped = stops_ && stops_->matched();
    if (!parent_ && !stopped && reason != "error" && !round_closed_) {
        bool first = false;  // trailing text belongs to no token
        std::vector<reasoning::ChannelEvent> tail;
        const std::string rest = detok_ ? detok_->flush() : std::string();
        if (parser_) {
            tail = parser_->feed(rest);
            for (auto &e : parser_->finish()) tail.push_back(std::move(e));
        } else if (!rest.empty()) {
            tail.push_back({reasoning::Channel::answer, rest, std::nullopt});
        }
        emit_text(std::move(tail), -1, false, &first, 0.0f, {});
        if (stops_ && !stops_->matched()) {
            const std::string held = stops_->flush();
            if (!held.empty()) {
                GenerationEvent ev;
                ev.kind = GenerationEvent::Kind::answer;
                ev.text = held;
                result_.answer += held;
                result_.text += held;
                deliver(std::move(ev));
            }
        }
    }
    if (controller_) {
        result_.usage = add_usage(usage_before_, controller_->finish());
    } else {
        result_.usage.answer_tokens = static_cast<int32_t>(result_.tokens.size());
    }
    if (parser_) result_.malformed = parser_->malformed();
    result_.finish_reason = reason;
    GenerationEvent done;
    done.kind = GenerationEvent::Kind::done;
    done.finish_reason = reason;
    deliver(std::move(done));
    if (parent_) parent_->on_probe_done();
}

ThinkingUsage Generation::add_usage(const ThinkingUsage &a, const ThinkingUsage &b) {
    ThinkingUsage u = b;
    u.reasoning_tokens += a.reasoning_tokens;
    u.answer_tokens += a.answer_tokens;
    u.forced_tokens += a.forced_tokens;
    u.cues += a.cues;
    u.probes += a.probes;
    u.probe_tokens += a.probe_tokens;
    if (u.end == ReasoningEnd::none) u.end = a.end;
    return u;
}

bool Generation::enter_tool_phase() {
    // Close the round: what the detokenizer and parser still hold belongs to it (an atem
    // call block is delivered here, its <|eot|> never being fed).
    bool first = false;
    std::vector<reasoning::ChannelEvent> tail = parser_ ? parser_->feed(detok_ ? detok_->flush() : std::string())
                                                        : std::vector<reasoning::ChannelEvent>{};
    if (parser_)
        for (auto &e : parser_->finish()) tail.push_back(std::move(e));
    emit_text(std::move(tail), -1, false, &first, 0.0f, {});
    round_closed_ = true;
    if (result_.tool_calls.empty() || !session_) return false;
    try {
        const std::string round_reasoning = result_.reasoning.substr(round_reasoning_at_);
        const ToolPhase::Output out{result_.tool_calls, round_reasoning, result_.answer};
        std::optional<ToolPhase::Round> next = setup_.tool_phase->next_round(
            *session_, seq_, out, [this](GenerationEvent ev) {
                if (ev.result) result_.tool_results.push_back(*ev.result);
                deliver(std::move(ev));
            });
        if (!next) return false;
        // The next round: the conversation now holds the calls and their results.
        ++result_.tool_rounds;
        if (parser_) result_.malformed = result_.malformed || parser_->malformed();
        result_.tool_calls.clear();
        result_.answer.clear();
        round_reasoning_at_ = result_.reasoning.size();
        // Usage counts every round's prompt: rows it held and rows actually evaluated.
        result_.prompt_tokens += static_cast<int32_t>(next->prompt.ids.size());
        result_.prompt_evaluated += static_cast<int32_t>(next->prompt.ids.size() - next->cached);
        setup_.prompt = std::move(next->prompt);
        setup_.cached = next->cached;
        setup_.start = next->start;
        setup_.format = std::move(next->format);
        setup_.tools = std::move(next->tools);
        prompt_at_ = setup_.cached;
        pending_ = -1;
        begin_round(next->start, std::move(next->calls));
        phase_ = Phase::prefill;
        return true;
    } catch (const Error &e) {
        fail(e.status(), e.what());
        return true;
    } catch (const std::exception &e) {
        fail(MUSE_ERR_INTERNAL, std::string("tool phase: ") + e.what());
        return true;
    }
}

void Generation::begin_round(reasoning::State start, std::shared_ptr<const tools::CallPlan> calls) {
    const Tokenizer &tok = *setup_.tokenizer;
    detok_.emplace(tok, true);
    parser_ = reasoning::make_channel_parser(*setup_.format, start, setup_.tools);
    if (controller_) {
        usage_before_ = add_usage(usage_before_, controller_->finish());
        auto controller = std::make_unique<ThinkingController>(*setup_.format, start, *setup_.thinking, tok);
        controller_ = controller.get();
        chain_.set_controller(std::move(controller));
    }
    set_call_stage(std::move(calls));
    round_closed_ = false;
    observe_calls();
}

void Generation::fail(muse_status status, const std::string &message) {
    if (phase_ == Phase::done) return;
    result_.error = message;
    result_.error_status = status;
    GenerationEvent ev;
    ev.kind = GenerationEvent::Kind::error;
    ev.text = message;
    deliver(std::move(ev));
    finish("error");
}

void Generation::stop(const std::string &reason) { finish(reason); }

void Generation::release() {
    if (held()) phase_ = Phase::sample;
}

std::shared_ptr<const Generation::Snapshot> Generation::snapshot() const {
    if (!session_) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "the generation's session was freed");
    if (probe_) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "a generation cannot be snapshot while its early-exit probe runs");
    auto s = std::make_shared<Snapshot>(Snapshot{session_->cache().seq_next_pos(seq_), phase_, prompt_at_, pending_, chain_,
                                                 detok_, parser_ ? parser_->clone() : nullptr, stops_, result_, probed_at_,
                                                 stable_, last_probe_answer_});
    return s;
}

void Generation::restore(const Snapshot &s) {
    if (!session_) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "the generation's session was freed");
    if (probe_) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "a generation cannot be restored while its early-exit probe runs");
    session_->seq_remove(seq_, s.next_pos, -1);
    phase_ = s.phase;
    prompt_at_ = s.prompt_at;
    pending_ = s.pending;
    chain_ = s.chain;
    controller_ = dynamic_cast<ThinkingController *>(chain_.controller());
    call_stage_ = dynamic_cast<tools::CallStage *>(chain_.grammar());
    detok_.reset();
    if (s.detok) detok_.emplace(*s.detok);
    parser_ = s.parser ? s.parser->clone() : nullptr;
    stops_ = s.stops;
    result_ = s.result;
    probed_at_ = s.probed_at;
    stable_ = s.stable;
    last_probe_answer_ = s.last_probe_answer;
    events_.clear();
    cancel_.store(false);
}

} // namespace muse
