// The thinking-budget controller: the controller stage of a generation's sampler
// chain (sampling/sampler.h). It enforces a thinking mode and budget on one
// response before each pick, forcing and banning tokens, using only the family's
// framing strings (reasoning/reasoning-format.h), never token ids.
//
//   mode off        force the answer open at the start (atem " to=user<|message|>",
//                   think tags an empty "<think>\n\n</think>\n\n"); any reasoning the model
//                   opens later is closed again at once, so no reasoning token is spent.
//   mode on         force reasoning open at the start when the prompt did not already.
//   mode automatic  the model decides.
//   budget N        once N reasoning tokens are spent: let the current UTF-8 character
//                   finish (at most 3 more tokens), then force `wrap_up` and the format's
//                   answer_open ("<|eom|><|start|>assistant to=user<|message|>", "</think>\n\n")
//                   token by token, so an answer always follows. A later reasoning message
//                   is closed at once. budget 0 answers directly.
//   min_tokens M    until M reasoning tokens are spent, tokens that would end reasoning
//                   (its close string, an end-of-turn string, an end-of-generation token)
//                   are banned before the pick; when the best candidate was one of them,
//                   `continue_cue` is forced instead (s1's budget forcing with "Wait").
//   End-of-generation tokens are banned while reasoning; when the best candidate was one,
//   the answer is forced open instead, so a response never ends inside its reasoning.
// The controller watches the response through a ChannelParser of its own, fed with every
// token's text (special tokens rendered), and counts: reasoning tokens (every token written
// while the parser is in reasoning: the budget is checked against them before the cut, so
// a response holds at most budget + wrap-up + up to 3 character-completing tokens of
// reasoning), forced tokens, and how reasoning ended.
#pragma once

#include "reasoning/channel-parser.h"
#include "reasoning/reasoning-format.h"
#include "sampling/sampler.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace muse {

class Tokenizer;

// Adaptive early exit: every `interval` reasoning tokens the sequence is forked, the
// answer forced open on the fork and `probe_tokens` answer tokens decoded greedily; once
// the probed answer has been the same for `stable` probes in a row, each with every token's
// probability >= min_prob, reasoning is ended (ReasoningEnd::early_exit). Needs a free
// sequence in the session (n_seq_max >= 2).
struct EarlyExitOptions {
    bool enabled = false;
    int32_t interval = 16;
    int32_t stable = 2;
    float min_prob = 0.5f;
    int32_t probe_tokens = 4;
};

struct ThinkingOptions {
    reasoning::ThinkingMode mode = reasoning::ThinkingMode::automatic;
    int32_t budget = -1;      // reasoning tokens; < 0: unlimited
    int32_t min_tokens = 0;   // reasoning tokens before reasoning may end
    std::string wrap_up = "\n\nTime is up, I will answer now.";
    std::string continue_cue = "Wait";
    EarlyExitOptions early_exit;
    // The response must reach its answer (a grammar constrains it). Once reasoning has ended,
    // where the format leaves the response between messages or in a new header (ATEM) the
    // answer header is forced instead of letting the model write one; a header at the
    // response start (automatic mode) may only become the reasoning or the answer header.
    bool answer_required = false;
    // Mode off / budget 0 force the answer open at the start. false: the start is left to
    // the model (an atem turn that offers tools may open with a call, which the answer
    // header would rule out); reasoning it opens is still closed at once.
    bool force_answer_start = true;
};

// Default budgets of the effort presets (when no explicit budget is given).
int32_t effort_budget(reasoning::Effort effort);

enum class ReasoningEnd : uint8_t {
    none,        // the response had no reasoning
    natural,     // the model closed its reasoning
    budget,      // the budget ran out: wrap-up and answer forced
    early_exit,  // adaptive early exit: the probed answer was stable
    forced_off,  // mode off (or budget 0): reasoning closed before it started
    unfinished,  // generation stopped (max tokens, cancel, stop string) inside reasoning
};
const char *to_string(ReasoningEnd end);

struct ThinkingUsage {
    int32_t reasoning_tokens = 0;  // tokens written while reasoning (continue cues and wrap-up included)
    int32_t answer_tokens = 0;     // every other token of the response, framing included
    int32_t forced_tokens = 0;     // forced by the controller (wrap-up, framing, cues)
    int32_t cues = 0;              // continue cues injected (min_tokens)
    int32_t probes = 0;            // early-exit probes run
    int32_t probe_tokens = 0;      // tokens those probes evaluated (extra compute)
    ReasoningEnd end = ReasoningEnd::none;
};

class ThinkingController final : public SamplerStage {
public:
    // start: where the response begins (reasoning::response_start on the rendered prompt).
    ThinkingController(const reasoning::ReasoningFormat &format, reasoning::State start,
                       const ThinkingOptions &options, const Tokenizer &tokenizer);
    ThinkingController(const ThinkingController &other);

    // The stage: forces queued tokens, bans what must not end reasoning now.
    const char *name() const override { return "thinking"; }
    void apply(Candidates &c) override;
    void accept(int32_t token, bool forced) override { on_token(token, forced); }
    std::unique_ptr<SamplerStage> clone() const override { return std::make_unique<ThinkingController>(*this); }

    // The next token to force, or -1 to let the chain pick (apply() calls it).
    int32_t force_next();
    // Every token appended to the response, sampled or forced, in order.
    void on_token(int32_t token, bool forced);

    // Ends reasoning now the way the budget does (adaptive early exit calls this).
    void end_reasoning(ReasoningEnd why);
    bool in_reasoning() const { return watcher_->state() == reasoning::State::reasoning; }
    // Where the response is now (after every token so far), and whether tokens are queued
    // to be forced next (framing, wrap-up, cues): a grammar on the answer waits for both.
    reasoning::State state() const { return watcher_->state(); }
    bool forcing() const { return !queue_.empty(); }
    // Reasoning was cut (budget, early exit, mode): what follows is forced wrap-up/framing.
    bool reasoning_cut() const { return cut_; }
    // The text forced to close reasoning and open the answer (for probes).
    const std::vector<int32_t> &answer_open_tokens() const { return answer_open_; }
    // Call once generation has stopped.
    const ThinkingUsage &finish();
    const ThinkingUsage &usage() const { return usage_; }
    // Early-exit bookkeeping (the probes themselves run in engine/chat-turn.cpp).
    void count_probe(int32_t tokens) {
        ++usage_.probes;
        usage_.probe_tokens += tokens;
    }

private:
    std::vector<int32_t> tokenize(const std::string &text, bool parse_special) const;
    bool would_end_reasoning(int32_t token) const;
    // Bans, in c, the tokens that may not come while reasoning (see apply).
    void ban_enders(Candidates &c, bool all_enders);
    // answer_required, at a response-start header (ATEM in automatic mode): only tokens that
    // continue the reasoning header or the answer header are left, so the model still chooses
    // whether to reason but cannot write a header the parser would recover as answer text.
    void restrict_header(Candidates &c);
    // framing: forced structure (open/close sequences), never counted as reasoning;
    // wrap-up text and continue cues are reasoning the controller wrote.
    void queue(const std::vector<int32_t> &tokens, bool framing);

    reasoning::ReasoningFormat format_;
    ThinkingOptions options_;
    const Tokenizer &tokenizer_;
    std::unique_ptr<reasoning::ChannelParser> watcher_;
    std::deque<std::pair<int32_t, bool>> queue_;  // token, framing
    bool last_forced_framing_ = false;
    std::vector<int32_t> answer_open_, wrap_up_, cue_;
    std::vector<std::string> enders_;  // strings that end reasoning when they appear
    std::shared_ptr<const std::vector<int32_t>> ender_tokens_;  // tokens whose text holds an ender (lazy)
    std::string tail_;                 // last reasoning bytes (to see enders split over tokens)
    std::string utf8_pending_;         // bytes of an unfinished UTF-8 character in reasoning
    std::string header_;               // text of the current message header (answer_required)
    std::shared_ptr<const std::vector<int32_t>> header_tokens_;  // tokens inside the two headers (lazy)
    bool reasoning_seen_ = false, cut_ = false;
    int32_t utf8_grace_ = 0;
    ThinkingUsage usage_;
};

} // namespace muse
