// muse's built-in tools, opt-in per request by name: "zoom" and "annotate"
// (visual-tools.h) and "calculator". Each is a tools::Tool (tool.h), so the chat
// tool loop runs them exactly as it runs a host's tools.
#pragma once

#include "tools/tool.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muse::tools {

// The names builtin_tool() knows, in a stable order.
std::vector<std::string> builtin_tool_names();

// The built-in tool called `name`, or nullopt for an unknown name.
std::optional<Tool> builtin_tool(std::string_view name);

} // namespace muse::tools
