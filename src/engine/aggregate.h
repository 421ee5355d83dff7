// Aggregating the answers of several reasoning agents (contemplating mode):
// answer normalization for voting, majority and confidence-weighted votes, and
// DeepConf's trace confidences (arXiv 2508.15260):
//   token confidence  C_i = -(1/k) sum_{j<k} log P_i(j), over the top-k candidates
//                     of step i (high when the model is sure: the rest of the top-k is
//                     far below the pick);
//   group confidence  the mean of C over a sliding window of w tokens;
//   trace score       the lowest group confidence of the trace, or its tail
//                     confidence (the mean C of its last t tokens).
// Pure functions: the engine (engine/contemplation.*) feeds them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace muse {

// The canonical form of a final answer for voting: \boxed{...} content when present (as
// written when it is a LaTeX expression);
// yes/no words as "yes"/"no"; a multiple-choice letter ("(B)", "B)", "answer: b", "option B")
// as "b"; a number (thousands separators dropped, "3.50" -> "3.5") with the unit word that
// follows it, if any; else the text lowercased with whitespace collapsed and trailing
// punctuation dropped.
std::string normalize_answer(const std::string &answer);

using AnswerNormalizer = std::function<std::string(const std::string &)>;

struct VoteResult {
    std::string answer;       // the winning normalized answer ("" when nothing was voted)
    int winner = -1;          // index of the first trace with the winning answer
    double agreement = 0.0;   // the winner's share of the total weight
    std::vector<std::pair<std::string, double>> tally;  // normalized answer -> weight, best first
};

// A weighted vote over answers (weights < 0 or answers that normalize to "" don't vote;
// ties go to the answer seen first). Empty weights: one vote each.
VoteResult vote(const std::vector<std::string> &answers, const std::vector<double> &weights = {},
                const AnswerNormalizer &normalize = normalize_answer);

// Per-token confidences of one trace, kept incrementally.
class TraceConfidence {
public:
    explicit TraceConfidence(int window = 16, int tail = 32) : window_(window > 0 ? window : 1), tail_(tail > 0 ? tail : 1) {}
    // Adds one token from the logprobs of its step's top-k candidates.
    void add(const std::vector<float> &top_logprobs);
    void add_confidence(double c);
    int64_t n_tokens() const { return static_cast<int64_t>(c_.size()); }
    // Mean confidence of the last `window` tokens (of all of them while fewer).
    double current_group() const;
    // Whether a full window has been seen (the online stop rule waits for one).
    bool window_full() const { return static_cast<int>(c_.size()) >= window_; }
    // The lowest group confidence over the trace (every full window; the whole trace if shorter).
    double lowest_group() const;
    double tail() const;
    double mean() const;

private:
    int window_, tail_;
    std::vector<double> c_;
    double window_sum_ = 0.0, lowest_ = 0.0;
    bool has_lowest_ = false;
};

enum class TraceScore { lowest_group, tail, mean };
double trace_score(const TraceConfidence &c, TraceScore how);

// DeepConf's offline filter: the indices of the traces whose score is among the top
// `keep` fraction (0 < keep <= 1; at least one trace is kept).
std::vector<size_t> top_traces(const std::vector<double> &scores, double keep);

// DeepConf's online threshold: the score below which a new trace is stopped, from the
// scores of the warm-up traces: their `percentile` (0..100) -- e.g. 10 keeps traces at least
// as confident as the top 90% of the warm-up ones.
double calibrate_threshold(std::vector<double> warmup_scores, double percentile);

} // namespace muse
