#include "thinking/thinking-controller.h"

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>

namespace muse {

using reasoning::State;
using reasoning::ThinkingMode;

int32_t effort_budget(reasoning::Effort effort) {
    switch (effort) {
    case reasoning::Effort::low: return 256;
    case reasoning::Effort::medium: return 1024;
    case reasoning::Effort::high: return -1;
    }
    return -1;
}

const char *to_string(ReasoningEnd end) {
    switch (end) {
    case ReasoningEnd::none: return "none";
    case ReasoningEnd::natural: return "natural";
    case ReasoningEnd::budget: return "budget";
    case ReasoningEnd::early_exit: return "early_exit";
    case ReasoningEnd::forced_off: return "off";
    case ReasoningEnd::unfinished: return "unfinished";
    }
    return "?";
}

namespace {
// Bytes at the end of s that start a UTF-8 character whose remaining bytes are missing.
size_t incomplete_utf8_suffix(const std::string &s) {
    for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
        const auto c = static_cast<unsigned char>(s[s.size() - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}
} // namespace

ThinkingController::ThinkingController(const reasoning::ReasoningFormat &format, State start,
                                       const ThinkingOptions &options, const Tokenizer &tokenizer)
    : format_(format), options_(options), tokenizer_(tokenizer),
      watcher_(reasoning::make_channel_parser(format, start)) {
    if (options_.min_tokens < 0) fail(MUSE_ERR_INVALID_ARGUMENT, "thinking min_tokens must not be negative");
    if (options_.budget >= 0 && options_.min_tokens > options_.budget)
        fail(MUSE_ERR_INVALID_ARGUMENT, "thinking min_tokens (", options_.min_tokens, ") exceeds the budget (",
             options_.budget, ")");
    if (options_.continue_cue.empty()) options_.continue_cue = "Wait";
    answer_open_ = tokenize(format_.answer_open, true);
    wrap_up_ = tokenize(options_.wrap_up, false);
    cue_ = tokenize(options_.continue_cue, false);
    if (!format_.reasoning_close.empty()) enders_.push_back(format_.reasoning_close);
    for (const std::string &e : format_.end_of_turn)
        if (!e.empty()) enders_.push_back(e);

    const bool direct = options_.mode == ThinkingMode::off || options_.budget == 0;
    const std::string prefix = reasoning::forced_prefix(format_, start, direct ? ThinkingMode::off : options_.mode);
    if (!direct || options_.force_answer_start) queue(tokenize(prefix, true), true);
    if (direct && format_.kind != reasoning::FormatKind::plain) usage_.end = ReasoningEnd::forced_off;
}

ThinkingController::ThinkingController(const ThinkingController &o)
    : SamplerStage(o), format_(o.format_), options_(o.options_), tokenizer_(o.tokenizer_),
      watcher_(o.watcher_->clone()), queue_(o.queue_), last_forced_framing_(o.last_forced_framing_),
      answer_open_(o.answer_open_), wrap_up_(o.wrap_up_), cue_(o.cue_), enders_(o.enders_),
      ender_tokens_(o.ender_tokens_), tail_(o.tail_), utf8_pending_(o.utf8_pending_), header_(o.header_),
      header_tokens_(o.header_tokens_), reasoning_seen_(o.reasoning_seen_), cut_(o.cut_), utf8_grace_(o.utf8_grace_), usage_(o.usage_) {}

std::vector<int32_t> ThinkingController::tokenize(const std::string &text, bool parse_special) const {
    return text.empty() ? std::vector<int32_t>{} : tokenizer_.tokenize(text, false, parse_special);
}

void ThinkingController::queue(const std::vector<int32_t> &tokens, bool framing) {
    for (int32_t t : tokens) queue_.emplace_back(t, framing);
}

int32_t ThinkingController::force_next() {
    if (queue_.empty() && in_reasoning()) {
        const bool direct = options_.mode == ThinkingMode::off || options_.budget == 0;
        if (direct || cut_) {
            // Reasoning the mode does not allow, or a new reasoning message after the cut.
            queue(answer_open_, true);
        } else if (options_.budget >= 0 && usage_.reasoning_tokens >= options_.budget) {
            if (!utf8_pending_.empty() && utf8_grace_ < 3) {
                ++utf8_grace_;  // let the current character finish first
                return -1;
            }
            cut_ = true;
            usage_.end = ReasoningEnd::budget;
            if (usage_.reasoning_tokens > 0) queue(wrap_up_, false);
            queue(answer_open_, true);
        }
    }
    if (queue_.empty() && options_.answer_required && reasoning_seen_) {
        // Reasoning is over and no answer is open yet (ATEM between messages or in a new
        // header): open it, as mode off would at this point.
        const State s = watcher_->state();
        if (s == State::between || s == State::header)
            queue(tokenize(reasoning::forced_prefix(format_, s, ThinkingMode::off), true), true);
    }
    if (queue_.empty()) return -1;
    const auto [t, framing] = queue_.front();
    queue_.pop_front();
    last_forced_framing_ = framing;
    return t;
}

bool ThinkingController::would_end_reasoning(int32_t token) const {
    if (tokenizer_.is_eog(token)) return true;
    const std::string s = tail_ + tokenizer_.token_to_piece(token, true);
    return std::any_of(enders_.begin(), enders_.end(), [&](const std::string &e) { return s.find(e) != std::string::npos; });
}

void ThinkingController::ban_enders(Candidates &c, bool all_enders) {
    for (int32_t t : tokenizer_.eog_ids())
        if (t >= 0 && static_cast<size_t>(t) < c.logits.size()) c.logits[static_cast<size_t>(t)] = -INFINITY;
    if (!all_enders) return;
    if (!ender_tokens_) {
        // Tokens whose own text holds an ender; an ender split over tokens is caught by the
        // best-candidate check in apply().
        auto list = std::make_shared<std::vector<int32_t>>();
        for (int32_t t = 0; t < tokenizer_.n_vocab(); ++t) {
            const std::string piece = tokenizer_.token_to_piece(t, true);
            if (std::any_of(enders_.begin(), enders_.end(),
                            [&](const std::string &e) { return piece.find(e) != std::string::npos; }))
                list->push_back(t);
        }
        ender_tokens_ = std::move(list);
    }
    for (int32_t t : *ender_tokens_)
        if (static_cast<size_t>(t) < c.logits.size()) c.logits[static_cast<size_t>(t)] = -INFINITY;
}

void ThinkingController::apply(Candidates &c) {
    int32_t t = force_next();
    if (t < 0 && in_reasoning()) {
        const int32_t best = c.top();
        const bool early = usage_.reasoning_tokens < options_.min_tokens;
        if (would_end_reasoning(best)) {
            if (early) {
                queue(cue_, false);  // s1 budget forcing: "Wait" instead of the end of reasoning
                ++usage_.cues;
                t = force_next();
            } else if (tokenizer_.is_eog(best)) {
                // Never end the turn inside reasoning: close it and open the answer instead.
                queue(answer_open_, true);
                t = force_next();
            }
        }
        if (t < 0) ban_enders(c, early);
    } else if (t < 0 && options_.answer_required && !reasoning_seen_ && watcher_->state() == State::header) {
        restrict_header(c);
    }
    if (t >= 0) c.forced = t;
}

void ThinkingController::restrict_header(Candidates &c) {
    const std::string targets[] = {format_.reasoning_open, format_.answer_direct};
    auto inside = [&](const std::string &piece) {
        return std::any_of(std::begin(targets), std::end(targets),
                           [&](const std::string &t) { return !t.empty() && t.find(piece) != std::string::npos; });
    };
    if (!header_tokens_) {
        auto list = std::make_shared<std::vector<int32_t>>();
        for (int32_t t = 0; t < tokenizer_.n_vocab(); ++t) {
            const std::string piece = tokenizer_.token_to_piece(t, true);
            if (!piece.empty() && inside(piece)) list->push_back(t);
        }
        header_tokens_ = std::move(list);
    }
    std::vector<std::pair<int32_t, float>> ok;
    for (int32_t t : *header_tokens_) {
        if (static_cast<size_t>(t) >= c.logits.size()) continue;
        const std::string s = header_ + tokenizer_.token_to_piece(t, true);
        if (std::any_of(std::begin(targets), std::end(targets), [&](const std::string &target) {
                return !target.empty() && target.compare(0, s.size(), s) == 0;
            }))
            ok.emplace_back(t, c.logits[static_cast<size_t>(t)]);
    }
    if (ok.empty()) return;  // the header left both (cannot happen from their own pieces): the parser decides
    std::fill(c.logits.begin(), c.logits.end(), -INFINITY);
    for (const auto &[t, logit] : ok) c.logits[static_cast<size_t>(t)] = logit;
    if (ok.size() == 1) c.forced = ok.front().first;
}

void ThinkingController::on_token(int32_t token, bool forced) {
    const bool was_reasoning = in_reasoning();
    const bool closing = was_reasoning && would_end_reasoning(token);
    const std::string piece = tokenizer_.token_to_piece(token, true);
    const bool in_header = watcher_->state() == State::header;
    watcher_->feed(piece);
    if (in_header && watcher_->state() == State::header) header_ += piece;
    else header_.clear();
    if (forced) ++usage_.forced_tokens;
    if (was_reasoning) {
        // The token that closes reasoning and forced framing are not reasoning.
        if ((in_reasoning() || !closing) && !(forced && last_forced_framing_)) ++usage_.reasoning_tokens;
        else ++usage_.answer_tokens;
        size_t keep = 0;
        for (const std::string &e : enders_) keep = std::max(keep, e.size() - 1);
        tail_ += piece;
        if (tail_.size() > keep) tail_.erase(0, tail_.size() - keep);
        utf8_pending_ += piece;
        utf8_pending_.erase(0, utf8_pending_.size() - incomplete_utf8_suffix(utf8_pending_));
    } else {
        ++usage_.answer_tokens;
    }
    if (in_reasoning()) {
        reasoning_seen_ = true;
    } else if (was_reasoning) {
        tail_.clear();
        utf8_pending_.clear();
        if (usage_.end == ReasoningEnd::none) usage_.end = ReasoningEnd::natural;
    }
}

void ThinkingController::end_reasoning(ReasoningEnd why) {
    if (!in_reasoning() || cut_) return;
    cut_ = true;
    usage_.end = why;
    queue_.clear();
    queue(answer_open_, true);
}

const ThinkingUsage &ThinkingController::finish() {
    if (!watcher_->finished()) {
        const bool open = in_reasoning();
        watcher_->finish();
        if (open && (usage_.end == ReasoningEnd::none || usage_.end == ReasoningEnd::natural))
            usage_.end = ReasoningEnd::unfinished;
    }
    return usage_;
}

} // namespace muse
