// The grammar slot of a chat generation when tools are offered: applies the call
// grammars of a CallPlan (call-grammar.h) lazily, at the family's call trigger, and
// forces the framing around them that the plan requires.
//
//   auto     nothing is constrained until the model opens a call (`<tool_call>`, an
//            atem header addressed to a function, a Llama answer starting with `{`);
//            from there the body must be a valid call of a declared function.
//   required the answer must be a call: where the answer would start, the stage forces
//            the trigger (Hermes `<tool_call>`, atem ` to=` + a function) and the body
//            grammar follows; reasoning first is still allowed (never constrained).
//   named    the same, with that function only.
//   none     atem headers may only address self/user; Hermes' `<tool_call>` token is
//            banned when it is one token (the parser does not read calls either).
//   parallel_tool_calls false: once a call's body is complete the family's end of turn
//            is forced, so a turn holds at most one call.
// The stage learns where the response is from the generation's channel parser
// (observe(), after every token); it never acts while the parser is in reasoning, and
// waits while the thinking controller is forcing its own framing.
#pragma once

#include "reasoning/reasoning-format.h"
#include "sampling/sampler.h"
#include "tools/call-grammar.h"

#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace muse {
class Tokenizer;
}

namespace muse::tools {

class CallStage final : public SamplerStage {
public:
    CallStage(std::shared_ptr<const CallPlan> plan, const Tokenizer &tokenizer);

    const char *name() const override { return "tool-calls"; }
    void apply(Candidates &c) override;
    void accept(int32_t token, bool forced) override;
    std::unique_ptr<SamplerStage> clone() const override { return std::make_unique<CallStage>(*this); }

    // Where the response is after the latest token (the channel parser's state).
    // controller_busy: the thinking controller has framing queued; activation waits.
    void observe(reasoning::State state, bool controller_busy);

    int calls() const { return calls_; }  // call bodies completed under the grammar
    bool active() const { return m_.has_value() || !forcing_.empty() || closing_; }

private:
    enum class Part { none, header, body };
    std::vector<int32_t> tokens(const std::string &text) const;
    void start(std::shared_ptr<const grammar::Grammar> g, Part part, std::vector<int32_t> after,
               std::string_view already, std::vector<int32_t> instead = {});
    void complete();
    std::vector<int32_t> end_of_turn_tokens() const;

    std::shared_ptr<const CallPlan> plan_;
    const Tokenizer *tok_;
    std::shared_ptr<const grammar::TokenTrie> trie_;
    std::optional<grammar::Matcher> m_;
    Part part_ = Part::none;
    std::deque<int32_t> forcing_;
    std::vector<int32_t> after_;  // forced once the grammar completes; after_[0] may end it early
    // Single tokens the model may write instead of after_ once the grammar completes (an atem
    // call may end its message with <|eom|> or end the turn with <|eot|>); none: after_ is forced.
    std::vector<int32_t> instead_;
    bool closing_ = false;  // the grammar completed: the next token is after_[0] or one of instead_
    std::vector<int32_t> banned_;
    std::string recent_;  // the latest text (special tokens rendered), to read triggers and recipients
    std::string piece_;   // the latest token's text
    std::optional<reasoning::State> last_;
    bool pending_ = true;  // the state changed and was not acted on yet
    int calls_ = 0;
};

} // namespace muse::tools
