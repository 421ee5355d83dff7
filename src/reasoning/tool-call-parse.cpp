#include "reasoning/tool-call-parse.h"

#include "reasoning/text-scan.h"

namespace muse::reasoning {

namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kCallsOpen = "<atem:function_calls>";
constexpr std::string_view kCallsClose = "</atem:function_calls>";
constexpr std::string_view kInvokeOpen = "<atem:invoke name=\"";
constexpr std::string_view kInvokeClose = "</atem:invoke>";
constexpr std::string_view kParamOpen = "<atem:parameter name=\"";
constexpr std::string_view kParamClose = "</atem:parameter>";
constexpr std::string_view kNameEnd = "\">";

// A cursor over the body; every method either consumes what it expects or leaves the
// position unchanged and returns false.
struct Cursor {
    std::string_view s;
    size_t i = 0;

    void skip_space() {
        while (i < s.size() && is_space(s[i])) ++i;
    }
    bool eat(std::string_view lit) {
        if (s.substr(i, lit.size()) != lit) return false;
        i += lit.size();
        return true;
    }
    bool at(std::string_view lit) const { return s.substr(i, lit.size()) == lit; }
    // The text up to `end` (consumed too); names may not span lines or contain quotes.
    std::optional<std::string_view> until(std::string_view end, bool name) {
        size_t at_end = s.find(end, i);
        if (at_end == std::string_view::npos) return std::nullopt;
        std::string_view v = s.substr(i, at_end - i);
        if (name && (v.empty() || v.find_first_of("\"\n<>") != std::string_view::npos)) return std::nullopt;
        i = at_end + end.size();
        return v;
    }
};

// The schema of function `name`'s property `key` in an OpenAI tools array, or nullptr.
const json *property_schema(const json &tools, std::string_view name, std::string_view key) {
    if (!tools.is_array()) return nullptr;
    for (const json &tool : tools) {
        const json *fn = &tool;
        if (tool.is_object() && tool.contains("function") && tool["function"].is_object()) fn = &tool["function"];
        if (!fn->is_object() || !fn->contains("name") || (*fn)["name"] != std::string(name)) continue;
        if (!fn->contains("parameters")) return nullptr;
        const json &params = (*fn)["parameters"];
        if (!params.is_object() || !params.contains("properties") || !params["properties"].is_object()) return nullptr;
        const json &props = params["properties"];
        auto it = props.find(std::string(key));
        return it == props.end() ? nullptr : &*it;
    }
    return nullptr;
}

// Whether a schema admits strings: 1 yes, 0 no, -1 it declares no type.
int admits_string(const json &schema) {
    if (!schema.is_object() || !schema.contains("type")) return -1;
    const json &t = schema["type"];
    if (t.is_string()) return t == "string" ? 1 : 0;
    if (t.is_array()) {
        for (const json &x : t)
            if (x == "string") return 1;
        return 0;
    }
    return -1;
}

// The template prints strings raw, booleans/null as JSON words, numbers as text and
// lists/objects as JSON (render_atem in muse-glimmer.jinja); this reverses it.
json atem_value(std::string_view raw, const json *schema) {
    const int str = schema ? admits_string(*schema) : -1;
    if (str == 1) return json(std::string(raw));
    json parsed = json::parse(raw.begin(), raw.end(), nullptr, false);
    if (parsed.is_discarded()) return json(std::string(raw));
    if (str == 0 || !parsed.is_string()) return parsed;
    return json(std::string(raw));  // a quoted value with no schema: strings are written raw, keep the quotes
}

// Compact JSON; model output may hold invalid UTF-8, which becomes U+FFFD instead of throwing.
std::string compact(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

} // namespace

std::optional<std::vector<ToolCall>> parse_atem_calls(std::string_view body, std::string_view recipient,
                                                      const json &tools) {
    Cursor c{body};
    std::vector<ToolCall> calls;
    c.skip_space();
    if (!c.eat(kCallsOpen)) return std::nullopt;
    c.skip_space();
    do {
        if (!c.eat(kInvokeOpen)) return std::nullopt;
        auto name = c.until(kNameEnd, true);
        if (!name) return std::nullopt;
        json args = json::object();
        c.skip_space();
        while (c.eat(kParamOpen)) {
            auto key = c.until(kNameEnd, true);
            if (!key) return std::nullopt;
            auto value = c.until(kParamClose, false);
            if (!value) return std::nullopt;
            args[std::string(*key)] = atem_value(*value, property_schema(tools, *name, *key));
            c.skip_space();
        }
        if (!c.eat(kInvokeClose)) return std::nullopt;
        c.skip_space();
        calls.push_back({std::string(recipient), std::string(*name), compact(args)});
    } while (c.at(kInvokeOpen));
    if (!c.eat(kCallsClose)) return std::nullopt;
    c.skip_space();
    if (c.i != body.size()) return std::nullopt;
    return calls;
}

std::optional<ToolCall> parse_hermes_call(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto name = j.find("name");
    if (name == j.end() || !name->is_string() || name->get_ref<const std::string &>().empty()) return std::nullopt;
    auto args = j.find("arguments");
    if (args == j.end()) args = j.find("parameters");
    json a = json::object();
    if (args != j.end()) {
        if (args->is_string()) {
            const std::string &s = args->get_ref<const std::string &>();
            a = json::parse(s.begin(), s.end(), nullptr, false);
        } else {
            a = *args;
        }
        if (a.is_discarded() || !a.is_object()) return std::nullopt;
    }
    return ToolCall{"", name->get<std::string>(), compact(a)};
}

} // namespace muse::reasoning
