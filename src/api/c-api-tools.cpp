// C entry points and glue of tool calling (tools/tool-loop.h): host tools given as C
// callbacks become tools::Tool, and the results they fill through the setters become
// the outcome the model reads.
#include "api/api-guard.h"
#include "api/image-handle.h"
#include "api/session-params.h"
#include "tools/call-grammar.h"

#include <cstring>

namespace {

// What a muse_tool_result's setters fill (muse_tool_result::impl).
struct ResultStore {
    std::string content;
    bool failed = false;
    std::optional<muse::Image> image;
    std::vector<muse::tools::HostArtefact> artefacts;
};

ResultStore &store_of(muse_tool_result *r) {
    if (!r || !r->impl) muse::fail(MUSE_ERR_INVALID_ARGUMENT, "tool result is NULL (use the one the tool function was given)");
    return *static_cast<ResultStore *>(r->impl);
}

} // namespace

namespace muse::api {

using nlohmann::ordered_json;

void tool_settings_from(const muse_chat_params &cp, ChatRequest &r) {
    if (cp.tool_choice) r.tool_choice = tools::ToolChoice::parse(std::string(cp.tool_choice));
    r.parallel_tool_calls = cp.parallel_tool_calls != 0;
    if (cp.n_host_tools > 0) require(cp.host_tools, "host_tools");
    for (size_t i = 0; i < cp.n_host_tools; ++i) {
        const muse_tool &t = cp.host_tools[i];
        if (t.fn) continue;  // callable: offered by the tool loop
        require(t.declaration_json, "host tool declaration_json");
        ordered_json d = ordered_json::parse(t.declaration_json, nullptr, false);
        if (d.is_discarded()) fail(MUSE_ERR_INVALID_ARGUMENT, "host tool ", i, ": declaration_json is not valid JSON");
        if (r.tools.is_null()) r.tools = ordered_json::array();
        r.tools.push_back(std::move(d));
    }
}

std::shared_ptr<tools::ToolLoop> tool_loop_from(const Model &model, const muse_chat_params &cp,
                                                const ChatRequest &request) {
    tools::ToolLoopOptions o;
    o.max_rounds = cp.max_tool_rounds;
    for (size_t i = 0; i < cp.n_host_tools; ++i) {
        const muse_tool &t = cp.host_tools[i];
        if (!t.fn) continue;
        require(t.declaration_json, "host tool declaration_json");
        tools::Tool tool;
        tool.declaration = ordered_json::parse(t.declaration_json, nullptr, false);
        if (tool.declaration.is_discarded())
            fail(MUSE_ERR_INVALID_ARGUMENT, "host tool ", i, ": declaration_json is not valid JSON");
        if (tool.declaration.is_object() && !tool.declaration.contains("function") && tool.declaration.contains("name"))
            tool.declaration = {{"type", "function"}, {"function", tool.declaration}};
        tools::function_declarations(ordered_json::array({tool.declaration}));  // a clear error for a bad one
        const muse_tool_fn fn = t.fn;
        void *user = t.user_data;
        const std::string name = tool.name();
        tool.run = [fn, user, name](const ordered_json &args, const tools::ToolContext &) {
            ResultStore store;
            muse_tool_result r{};
            r.struct_size = sizeof(r);
            r.impl = &store;
            const std::string text = args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            const muse_status st = fn(name.c_str(), text.c_str(), user, &r);
            tools::ToolOutcome out;
            out.content = std::move(store.content);
            out.failed = store.failed || st != MUSE_OK;
            if (st != MUSE_OK && out.content.empty())
                out.content = std::string("error: the tool failed (") + muse_status_name(st) + ")";
            out.image = std::move(store.image);
            out.artefacts = std::move(store.artefacts);
            return out;
        };
        o.tools.push_back(std::move(tool));
    }
    std::vector<std::string> names;
    if (cp.n_builtin_tools > 0) require(cp.builtin_tools, "builtin_tools");
    for (size_t i = 0; i < cp.n_builtin_tools; ++i) names.emplace_back(require(cp.builtin_tools[i], "built-in tool name"));
    for (tools::Tool &t : tools::resolve_builtin_tools(names)) o.tools.push_back(std::move(t));
    if (o.tools.empty()) return nullptr;
    return std::make_shared<tools::ToolLoop>(model, request, std::move(o));
}

} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API muse_status muse_tool_result_set_content(muse_tool_result *r, const char *text, size_t len) {
    return guard([&] {
        ResultStore &s = store_of(r);
        require(text, "text");
        s.content.assign(text, len == static_cast<size_t>(-1) ? std::strlen(text) : len);
        r->content = s.content.c_str();
        r->content_len = s.content.size();
    });
}

MUSE_API muse_status muse_tool_result_set_error(muse_tool_result *r, const char *message) {
    return guard([&] {
        ResultStore &s = store_of(r);
        s.content = message ? message : "error";
        s.failed = true;
        r->content = s.content.c_str();
        r->content_len = s.content.size();
        r->failed = 1;
    });
}

MUSE_API muse_status muse_tool_result_set_image(muse_tool_result *r, const muse_image *image) {
    return guard([&] {
        ResultStore &s = store_of(r);
        if (!image) fail(MUSE_ERR_INVALID_ARGUMENT, "image is NULL");
        s.image = image->impl;
        r->image = image;
    });
}

MUSE_API muse_status muse_tool_result_add_artefact(muse_tool_result *r, const char *kind, const char *mime,
                                                   const void *data, size_t size) {
    return guard([&] {
        ResultStore &s = store_of(r);
        if (size > 0) require(data, "data");
        tools::HostArtefact a;
        a.kind = kind ? kind : "";
        a.mime = mime ? mime : "application/octet-stream";
        const auto *b = static_cast<const uint8_t *>(data);
        a.data.assign(b, b + size);
        s.artefacts.push_back(std::move(a));
    });
}

} // extern "C"
