// Contemplating mode: one request answered by N reasoning agents in parallel, whose
// answers are merged. It is a scheduling policy of the engine, not a loop of its own:
//   - agent 0 evaluates the prompt (and its images) once; agents 1..N-1 follow it
//     (GenerationSetup::follow): when the prompt is in, its sequence is forked into
//     theirs (shared prefix blocks, no recomputation) and all N sample their first
//     token from the same logits, each with its own seed, temperature and budget;
//   - every session step decodes all live agents in its one batched forward pass, and a
//     finished agent leaves the batch at once;
//   - DeepConf confidences are tracked per agent; with early_stop an agent whose running
//     group confidence falls below the threshold is stopped: a fixed threshold, or one
//     calibrated from warm-up agents that run first while the others wait, already forked;
//   - when all are done the answers are aggregated (vote, weighted, early_stop, all), or
//     a final synthesis pass on the shared prefix reads them and writes the answer.
#pragma once

#include "engine/aggregate.h"
#include "engine/generation.h"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace muse {

class Session;

enum class Aggregation { vote, weighted, early_stop, synthesize, all };
const char *to_string(Aggregation a);
Aggregation aggregation_from(const std::string &name);  // throws MUSE_ERR_INVALID_ARGUMENT

struct ContemplateOptions {
    int n_agents = 1;
    Aggregation method = Aggregation::vote;
    float temperature_spread = 0.0f;  // agent temperatures spread evenly over T +- spread/2
    // Per-agent overrides (empty, or one entry per agent); budgets < -1 keep the request's.
    std::vector<float> temperatures;
    std::vector<int32_t> budgets;
    std::vector<uint64_t> seeds;  // default: the request's seed + agent index
    // DeepConf.
    int confidence_top_k = 10;
    int confidence_window = 16;
    int tail_tokens = 32;
    TraceScore score = TraceScore::lowest_group;
    double keep_top = 1.0;             // weighted: vote with the top fraction of traces only
    double stop_threshold = 0.0;       // early_stop: fixed threshold (> 0), else calibrated
    int warmup_agents = 2;             // early_stop: agents finished before calibrating
    double stop_percentile = 10.0;     // early_stop: percentile of the warm-up scores
    bool synthesize_reasoning = false; // synthesize: show each agent's reasoning tail too
    AnswerNormalizer normalize = normalize_answer;
    // Sequences of agents 1..n-1 (then the synthesis's), named by the host; empty: each takes
    // the session's first free sequence when it starts.
    std::vector<int> seqs;
};

struct AgentResult {
    int agent = 0;
    std::string answer, reasoning, finish_reason;
    double confidence = 0.0;  // the trace score
    float temperature = 0.0f;
    uint64_t seed = 0;
    ThinkingUsage usage;
    int32_t tokens = 0;
    std::vector<int32_t> token_ids;
    bool voted = false;  // its answer was counted (weighted: among the kept traces)
};

struct ContemplationResult {
    std::string answer, reasoning;  // the aggregate (synthesize: the synthesis's own)
    std::vector<AgentResult> agents;
    VoteResult vote;
    double agreement = 0.0;
    Aggregation method = Aggregation::vote;
    int32_t prompt_tokens = 0, prompt_tokens_evaluated = 0, completion_tokens = 0;
    int32_t cached_tokens = 0;  // prompt rows the request's sequence already held (prefix reuse)
    int32_t synthesis_prompt_tokens = 0, synthesis_cached_tokens = 0;  // synthesize: its prompt, and what it reused
    std::string finish_reason;  // empty while running
    std::string error;
    muse_status error_status = MUSE_OK;
};

// Builds the synthesis pass's set-up from the agents' answers (and reasoning summaries),
// on a sequence that already holds the shared prompt prefix.
using SynthesisBuilder = std::function<GenerationSetup(const std::vector<AgentResult> &agents, int seq)>;

class Contemplation {
public:
    // base: the request as one generation (prompt, sampling, thinking...). Agents use seq and
    // n_agents - 1 free sequences of the session (one more for synthesis).
    Contemplation(Session &session, int seq, GenerationSetup base, ContemplateOptions options,
                  SynthesisBuilder synthesis = nullptr);
    ~Contemplation();

    bool done() const { return done_; }
    // Events of every agent (GenerationEvent with their agent index; an agent's end is a done
    // event with agent() set), then the aggregate answer (agent -1) and the final done.
    bool next_event(GenerationEvent &ev, int &agent);
    // Advances the request (one session step) until it has an event or is done.
    void pump();
    // Thread-safe: every agent (and the synthesis) stops at the next step.
    void cancel();
    const ContemplationResult &result() const { return result_; }
    int seq() const { return seq_; }

private:
    void after_step();
    void finish_agents();
    void conclude(const std::string &answer, const std::string &reasoning, const std::string &reason);

    Session &session_;
    int seq_;
    ContemplateOptions o_;
    SynthesisBuilder synthesis_;
    std::vector<std::unique_ptr<Generation>> agents_;
    std::vector<int> seqs_;
    std::unique_ptr<Generation> synth_;
    int synth_seq_ = -1;
    std::shared_ptr<double> threshold_;
    size_t next_agent_ = 0;  // round-robin over the agents' event queues
    std::vector<std::pair<int, GenerationEvent>> tail_events_;
    bool agents_done_ = false, done_ = false, calibrated_ = false;
    std::atomic<bool> cancelled_{false};
    ContemplationResult result_;
};

} // namespace muse
