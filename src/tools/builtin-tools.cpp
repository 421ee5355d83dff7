#include "tools/builtin-tools.h"

#include "tools/calculator.h"
#include "tools/visual-tools.h"

namespace muse::tools {

std::vector<std::string> builtin_tool_names() { return {"zoom", "annotate", "calculator"}; }

std::optional<Tool> builtin_tool(std::string_view name) {
    if (name == "zoom") return zoom_tool();
    if (name == "annotate") return annotate_tool();
    if (name == "calculator") return calculator_tool();
    return std::nullopt;
}

} // namespace muse::tools
