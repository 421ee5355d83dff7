// A generation: one response being produced on one sequence of a session. It
// owns everything per-response -- the sampler chain (with the thinking controller
// and the grammar slot), the streaming detokenizer, the reasoning-channel parser,
// stop strings, logprobs, penalties over its own history (prompt included), usage
// counters and a cancel flag -- and turns each sampled token into events.
//
// Raw generation, chat turns and early-exit probes are all generations; the
// session's scheduler advances every live one in one batched forward pass per
// step (Session::step). Events queue up in the generation and are pulled with
// next_event(). snapshot()/restore() roll a generation back (its sequence's cache
// included), for speculative decoding and probes.
#pragma once

#include "engine/aggregate.h"
#include "engine/grammar-gate.h"
#include "multimodal/mm-prompt.h"
#include "muse/muse.h"
#include "reasoning/channel-parser.h"
#include "sampling/sampler.h"
#include "sampling/stop-strings.h"
#include "thinking/thinking-controller.h"
#include "tokenizer/tokenizer.h"
#include "tools/tool.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace muse {

class Session;
class Generation;
namespace grammar {
class Grammar;
}
namespace tools {
struct CallPlan;
class CallStage;
}
class ToolPhase;

// How a generation is set up.
struct GenerationSetup {
    // The rows to evaluate first (tokens, and image rows with their embeddings). Empty:
    // continue from the logits the sequence's last evaluation left.
    MultimodalPrompt prompt;
    size_t cached = 0;  // leading rows of `prompt` the sequence already holds (prefix reuse)
    // Tokens the sequence already holds before `prompt` (its history for the penalties).
    std::vector<int32_t> context;
    SamplingParams sampling;
    size_t max_tokens = 256;
    std::vector<std::string> stop;  // generation ends before the first match (answer text)
    int n_logprobs = 0;             // top-n logprobs per token in the events (0..64)
    bool token_logprobs = false;    // the chosen token's logprob in every event even without n_logprobs
    const Tokenizer *tokenizer = nullptr;  // text events need it; nullptr: token events only
    // Reasoning channels: when set, a channel parser of this format splits the text, and
    // with `thinking` a controller steers it. start: where the response begins.
    std::optional<reasoning::ReasoningFormat> format;
    reasoning::State start = reasoning::State::answer;
    std::optional<ThinkingOptions> thinking;
    nlohmann::ordered_json tools;  // for the parser (tool-call recipients)
    int agent = 0;                 // index within a multi-generation request
    // Shares the prompt of another generation of the session (contemplating mode): no prompt
    // of its own; when the leader's prompt is evaluated, its sequence is forked into this
    // one's (no recomputation) and this one samples its first token from the same logits.
    Generation *follow = nullptr;
    // With follow: once forked, wait (holding the first logits) until release() -- DeepConf's
    // online mode starts the rest of the agents only when the warm-up ones have finished.
    bool hold = false;
    // DeepConf confidences (engine/aggregate.h) from the top-k logprobs of every step (0: off).
    int confidence_top_k = 0;
    int confidence_window = 16, confidence_tail = 32;
    // Online early stop: once a window is full, a group confidence below *stop_below ends the
    // generation ("low_confidence"). NaN (or no pointer): no threshold (yet).
    std::shared_ptr<const double> stop_below;
    // Constrained output (the chain's grammar slot): only tokens the grammar allows are
    // sampled, end-of-generation (the tokenizer's) only where it is complete. Needs `tokenizer`.
    // With reasoning channels (format/thinking) it constrains the answer only: reasoning,
    // framing and forced tokens are free (engine/grammar-gate.h).
    std::shared_ptr<const grammar::Grammar> grammar;
    // Tool calls (tools/call-stage.h): the plan of the call grammars, applied lazily at the
    // family's call trigger in the grammar slot (so not together with `grammar`). Needs `format`.
    std::shared_ptr<const tools::CallPlan> calls;
    // Tool rounds: when a response ends with calls, the generation enters its tool phase,
    // which runs them and hands back the next round's prompt rows (tools/tool-loop.h).
    std::shared_ptr<ToolPhase> tool_phase;
};

// A call the generation's tool phase ran, and its outcome as the model read it.
struct ToolExchange {
    reasoning::ToolCall call;
    std::string content;
    bool failed = false;
    bool image = false;  // the outcome's image was appended to the conversation
    int round = 0;       // 0: the first response of the turn
};

struct GenerationEvent {
    enum class Kind { token, answer, reasoning, tool_call, done, error, tool_result, artefact };
    Kind kind = Kind::token;
    int32_t token = -1;  // -1: text flushed at the end
    bool forced = false;
    std::string text;
    float logprob = 0.0f;
    std::vector<TokenLogprob> top;
    std::optional<reasoning::ToolCall> call;
    std::optional<ToolExchange> result;          // tool_result
    std::optional<tools::HostArtefact> artefact;  // artefact: for the host only (the tool named in text)
    std::string finish_reason;  // done: "stop", "length", "cancelled", "callback", "error"
};

struct TokenLogprobs {
    int32_t token;
    float logprob;
    std::vector<TokenLogprob> top;
};

struct GenerationResult {
    std::vector<int32_t> tokens;  // generated (forced ones included, end-of-generation included)
    std::string reasoning, answer, text;  // text: everything released, in order (raw generations)
    std::vector<reasoning::ToolCall> tool_calls;  // of the last round: the calls the turn ends with
    std::vector<ToolExchange> tool_results;       // calls run by the tool phase, in order
    int32_t tool_rounds = 0;                      // rounds run after the first response
    ThinkingUsage usage;
    std::vector<TokenLogprobs> logprobs;  // with n_logprobs > 0
    int32_t prompt_tokens = 0;            // rows of the prompt (with tool rounds: of every round's prompt)
    int32_t prompt_evaluated = 0;         // of those, the rows this generation evaluated (not cached)
    bool malformed = false;
    std::string finish_reason;  // empty while live
    std::string error;
    muse_status error_status = MUSE_OK;
};

// The tool phase of a chat generation (tools/tool-loop.h): between rounds, on the
// scheduler's step, it runs the calls that closed and renders their results into the
// conversation; the generation then prefills the returned rows and samples on.
class ToolPhase {
public:
    virtual ~ToolPhase() = default;
    struct Round {
        MultimodalPrompt prompt;  // the whole extended conversation's rows
        size_t cached = 0;        // leading rows the sequence still holds (prefix reuse)
        reasoning::State start = reasoning::State::answer;
        std::shared_ptr<const tools::CallPlan> calls;
        reasoning::ReasoningFormat format;  // as the round reads calls (tool_choice may differ per round)
        nlohmann::ordered_json tools;
        std::string prompt_text;
    };
    struct Output {  // what the round that just ended said
        const std::vector<reasoning::ToolCall> &calls;
        const std::string &reasoning, &answer;
    };
    // Runs the round's calls (events through `deliver`: tool_result, artefact) and returns
    // the next round, or nullopt when the turn ends here with the calls for the host (one
    // has no callable, or max_tool_rounds was reached).
    virtual std::optional<Round> next_round(Session &session, int seq, const Output &round,
                                            const std::function<void(GenerationEvent)> &deliver) = 0;
};

class Generation {
public:
    ~Generation();
    Generation(const Generation &) = delete;
    Generation &operator=(const Generation &) = delete;

    int seq() const { return seq_; }
    int agent() const { return setup_.agent; }
    bool done() const { return phase_ == Phase::done; }
    // Thread-safe: the generation ends ("cancelled") at its session's next step.
    void cancel() { cancel_.store(true); }
    // Ends the generation now with this finish reason (the host's callback said stop).
    void stop(const std::string &reason);
    // A held follower starts sampling at the next step (no-op otherwise).
    void release();
    bool held() const { return phase_ == Phase::waiting && !held_logits_.empty(); }
    // Pops the next queued event; false when none is queued.
    bool next_event(GenerationEvent &out);
    bool has_events() const { return !events_.empty(); }
    const GenerationResult &result() const { return result_; }
    const TraceConfidence &confidence() const { return confidence_; }

    // Rollback point: every per-response state plus the sequence's length.
    struct Snapshot;
    std::shared_ptr<const Snapshot> snapshot() const;
    // Returns to a snapshot: the sequence is cut back, the chain, parsers and counters restored.
    void restore(const Snapshot &s);

private:
    friend class Session;
    enum class Phase { prefill, feed, sample, waiting, fork, done };
    Generation(Session &session, int seq, GenerationSetup setup);

    // Scheduler hooks (Session::step).
    bool wants_rows() const { return phase_ == Phase::prefill || phase_ == Phase::feed; }
    int64_t prompt_left() const { return static_cast<int64_t>(setup_.prompt.ids.size() - prompt_at_); }
    // Rows this round's prompt evaluates in all (those the cache did not already hold).
    int64_t prompt_rows() const { return static_cast<int64_t>(setup_.prompt.ids.size() - setup_.cached); }
    void on_logits(const float *logits);
    void on_probe_done();
    void finish(const std::string &reason);
    void fail(muse_status status, const std::string &message);
    void deliver(GenerationEvent ev);
    void emit_text(std::vector<reasoning::ChannelEvent> events, int32_t token, bool forced, bool *first,
                   float logprob, const std::vector<TokenLogprob> &top);
    void maybe_probe(int32_t token, bool forced);
    // Where the grammar (if any) applies to the next pick: the answer only (grammar-gate.h).
    GrammarGate::Phase grammar_phase() const;
    // The response ended with calls: run them (tool phase) and set up the next round.
    // False when the turn ends here instead.
    bool enter_tool_phase();
    // Sets up the per-round state (parser, controller, call stage) for a response starting at `start`.
    void begin_round(reasoning::State start, std::shared_ptr<const tools::CallPlan> calls);
    void observe_calls();
    void set_call_stage(std::shared_ptr<const tools::CallPlan> calls);
    static ThinkingUsage add_usage(const ThinkingUsage &a, const ThinkingUsage &b);

    Session *session_;  // nullptr once the session is gone (a host freed it first)
    int seq_;
    GenerationSetup setup_;
    Phase phase_ = Phase::prefill;
    size_t prompt_at_ = 0;
    int32_t pending_ = -1;  // the last token, to evaluate next
    std::atomic<bool> cancel_{false};
    uint64_t start_epoch_ = 0;  // the session's cancel epoch when it started
    std::vector<float> held_logits_;  // a held follower's first logits
    SamplerChain chain_;
    ThinkingController *controller_ = nullptr;  // inside chain_
    tools::CallStage *call_stage_ = nullptr;     // inside chain_ (grammar slot) when tools are offered
    ThinkingUsage usage_before_;                 // of the rounds before the current one
    size_t round_reasoning_at_ = 0;              // where this round's reasoning starts in result_.reasoning
    bool round_closed_ = false;                  // the parser of this round was flushed and finished
    std::optional<StreamingDetokenizer> detok_;
    std::unique_ptr<reasoning::ChannelParser> parser_;
    std::optional<StopMatcher> stops_;
    std::unordered_set<int32_t> eog_;
    TraceConfidence confidence_;
    std::deque<GenerationEvent> events_;
    GenerationResult result_;

    // Adaptive early exit: a probe generation forked from this one, riding in the same
    // steps while this one waits for its verdict.
    std::unique_ptr<Generation> probe_;
    Generation *parent_ = nullptr;
    int probe_seq_ = -1;
    int32_t probed_at_ = 0, stable_ = 0, probe_evaluated_ = 0;
    float probe_min_prob_ = 1.0f;
    std::string probe_answer_, last_probe_answer_;
};

} // namespace muse
