// Tool-call bodies into name + JSON arguments: the ATEM call block of muse-glimmer
// (MUSE_GLIMMER.md §3.3) and the Hermes/Qwen `{"name": ..., "arguments": ...}` object.
#pragma once

#include "reasoning/channel-parser.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>
#include <vector>

namespace muse::reasoning {

// One call per `<atem:invoke>` of
//   <atem:function_calls> (<atem:invoke name="N"> (<atem:parameter name="K">V</atem:parameter>)* </atem:invoke>)+
//   </atem:function_calls>
// with any whitespace between tags and around the block; V is the raw text up to the first
// `</atem:parameter>`. nullopt when `body` is anything else. Values are typed as
// channel-parser.h describes, with `tools` (an OpenAI tools array, or null).
std::optional<std::vector<ToolCall>> parse_atem_calls(std::string_view body, std::string_view recipient,
                                                      const nlohmann::ordered_json &tools);

// A JSON object with a non-empty string "name" and "arguments" (or "parameters"): an
// object, or a string holding a JSON object; absent means {}. nullopt otherwise.
std::optional<ToolCall> parse_hermes_call(std::string_view body);

} // namespace muse::reasoning
