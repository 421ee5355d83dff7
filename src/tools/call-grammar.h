// Constrained tool calls: grammars for a call's body built from the declared tools'
// parameter schemas, per family, and the plan of when they apply (tool_choice,
// parallel_tool_calls). The sampler stage that applies them lazily is call-stage.h.
//
// Bodies (what follows the family's call trigger):
//   atem     after ` to=NAME<|message|>`: the ATEM block of MUSE_GLIMMER.md §3.3 for a
//            declared function, its parameters in schema order (required ones present),
//            string values raw (no `</` inside), other values JSON valid for the property.
//   Hermes   after `<tool_call>`: an optional newline, then
//            {"name":"NAME","arguments":{...}} (compact JSON, arguments valid for NAME).
//   Llama 3  from the answer's `{`: {"name":"NAME","parameters":{...}}.
// Function names are always one of the declared ones. A parameters schema the grammar
// engine cannot compile exactly (MUSE_ERR_UNSUPPORTED) constrains that function's
// arguments to any JSON object instead, so one exotic schema does not disable tools.
#pragma once

#include "grammar/grammar.h"
#include "reasoning/reasoning-format.h"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace muse::tools {

// OpenAI tool_choice: "auto", "none", "required", or a named function
// ({"type": "function", "function": {"name": ...}} or just the name).
struct ToolChoice {
    enum class Kind { automatic, none, required, named };
    Kind kind = Kind::automatic;
    std::string name;  // named

    // MUSE_ERR_INVALID_ARGUMENT for anything else (the message says what is accepted).
    static ToolChoice parse(const nlohmann::ordered_json &value);
    static ToolChoice parse(const std::string &text);  // "auto", "none", "required" or a function name
};

struct FunctionDecl {
    std::string name;
    std::string description;
    nlohmann::ordered_json parameters;  // a JSON Schema object ({"type": "object"} when absent)
};

// The functions of an OpenAI tools array ({"type": "function", "function": {...}} entries,
// or bare {"name", "parameters"} objects). MUSE_ERR_INVALID_ARGUMENT naming the entry when
// one has no name, a duplicate name, or parameters that are not an object.
std::vector<FunctionDecl> function_declarations(const nlohmann::ordered_json &tools);

enum class CallSyntax { atem, hermes, llama_json };

// How calls are written for a format; false when it has no tool-call syntax.
bool call_syntax(const reasoning::ReasoningFormat &format, CallSyntax *out);

// What the stage needs for one response: the compiled grammars and the policy.
struct CallPlan {
    CallSyntax syntax = CallSyntax::hermes;
    ToolChoice choice;
    bool parallel = true;
    bool thinking_allowed = true;  // false: thinking off / budget 0 (atem headers may not say self)
    std::vector<std::string> names;
    // The call body for one function (after its trigger) and for any declared one.
    std::map<std::string, std::shared_ptr<const grammar::Grammar>> body_for;
    std::shared_ptr<const grammar::Grammar> body_any;
    // atem: the rest of a message header, `assistant`? ` to=` recipient, without the
    // closing `<|message|>` (a control token the stage forces). One per allowed set.
    std::shared_ptr<const grammar::Grammar> header_first;  // before the first call
    std::shared_ptr<const grammar::Grammar> header_later;  // after it
    // Strings the stage forces (tokenized with special tokens by the stage).
    std::string message_open;  // atem "<|message|>"
    std::string start;         // atem "<|start|>"
    std::string message_end;   // atem "<|eom|>"
    std::string call_open;     // Hermes "<tool_call>"
    std::string call_close;    // Hermes "\n</tool_call>"
    std::string end_of_turn;   // the family's end-of-turn string ("" : the tokenizer's EOG)
};

// MUSE_ERR_INVALID_ARGUMENT: a named choice that is not declared, required/named without
// tools, or a format with no call syntax while calls are asked for.
std::shared_ptr<const CallPlan> make_call_plan(const reasoning::ReasoningFormat &format,
                                               const nlohmann::ordered_json &tools, const ToolChoice &choice,
                                               bool parallel, bool thinking_allowed);

// The GBNF texts (root rule "root"), for tests and inspection.
std::string call_body_gbnf(CallSyntax syntax, const std::vector<FunctionDecl> &functions);
std::string atem_header_gbnf(const std::vector<std::string> &recipients);

// A GBNF text's rules renamed with `prefix` (its root becomes prefix + "root"), so several
// compiled texts can share one grammar.
std::string prefix_gbnf_rules(const std::string &gbnf, const std::string &prefix);

} // namespace muse::tools
