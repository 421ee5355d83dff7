#include "tools/call-grammar.h"

#include "core/error.h"
#include "grammar/gbnf.h"

#include <algorithm>
#include <set>

namespace muse::tools {

namespace {

using json = nlohmann::ordered_json;


bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Compact JSON for a schema, closed objects; MUSE_ERR_UNSUPPORTED schemas become any
// object (see the header) and malformed ones are the caller's error.
std::string schema_gbnf(const json &schema, const std::string &prefix, std::string *top) {
    grammar::JsonSchemaOptions o;
    o.compact = true;
    o.additional_properties_default = false;
    std::string text;
    try {
        text = grammar::json_schema_to_gbnf(schema, o);
    } catch (const Error &e) {
        if (e.status() != MUSE_ERR_UNSUPPORTED) throw;
        text = grammar::json_schema_to_gbnf(json{{"type", "object"}, {"additionalProperties", true}}, o);
    }
    *top = prefix + "root";
    return prefix_gbnf_rules(text, prefix);
}

// Whether a property's value is written raw in an ATEM block (the template prints
// strings unquoted): the schema admits strings, or says nothing about the type.
bool raw_value(const json &schema) {
    if (!schema.is_object() || !schema.contains("type")) return !schema.contains("enum") && !schema.contains("const");
    const json &t = schema["type"];
    if (t.is_string()) return t == "string";
    if (t.is_array())
        for (const json &x : t)
            if (x == "string") return true;
    return false;
}

std::string atem_function(const FunctionDecl &f, size_t index, std::string *rules) {
    const std::string fp = "f" + std::to_string(index) + "-";
    std::string body = grammar::gbnf_literal("<atem:invoke name=\"" + f.name + "\">\n");
    const json &params = f.parameters;
    std::set<std::string> required;
    if (params.contains("required") && params["required"].is_array())
        for (const json &r : params["required"])
            if (r.is_string()) required.insert(r.get<std::string>());
    size_t k = 0;
    if (params.contains("properties") && params["properties"].is_object()) {
        for (auto it = params["properties"].begin(); it != params["properties"].end(); ++it, ++k) {
            const json &ps = it.value();
            std::string value;
            if (ps.is_object() && ps.contains("enum") && ps["enum"].is_array() && raw_value(ps)) {
                for (const json &v : ps["enum"]) {
                    if (!v.is_string()) continue;
                    value += (value.empty() ? "( " : " | ") + grammar::gbnf_literal(v.get<std::string>());
                }
                value = value.empty() ? "atem-text" : value + " )";
            } else if (raw_value(ps)) {
                // Raw text up to the closing tag; a maxLength bounds it (then without '<').
                value = "atem-text";
                if (ps.is_object() && ps.contains("maxLength") && ps["maxLength"].is_number_integer() &&
                    ps["maxLength"].get<int64_t>() >= 0)
                    value = "[^<]{0," + std::to_string(ps["maxLength"].get<uint64_t>()) + "}";
            } else {
                std::string top;
                *rules += schema_gbnf(ps, fp + "p" + std::to_string(k) + "-", &top);
                value = top;
            }
            std::string item = grammar::gbnf_literal("<atem:parameter name=\"" + it.key() + "\">") + " " + value + " " +
                               grammar::gbnf_literal("</atem:parameter>\n");
            body += " " + (required.count(it.key()) ? item : "( " + item + " )?");
        }
    }
    body += " " + grammar::gbnf_literal("</atem:invoke>\n");
    *rules += fp + "invoke ::= " + body + "\n";
    return fp + "invoke";
}

} // namespace

ToolChoice ToolChoice::parse(const std::string &text) {
    ToolChoice c;
    if (text == "auto" || text.empty()) c.kind = Kind::automatic;
    else if (text == "none") c.kind = Kind::none;
    else if (text == "required") c.kind = Kind::required;
    else {
        c.kind = Kind::named;
        c.name = text;
    }
    return c;
}

ToolChoice ToolChoice::parse(const json &value) {
    if (value.is_null()) return {};
    if (value.is_string()) return parse(value.get<std::string>());
    if (value.is_object() && value.contains("function") && value["function"].is_object() &&
        value["function"].contains("name") && value["function"]["name"].is_string()) {
        ToolChoice c;
        c.kind = Kind::named;
        c.name = value["function"]["name"].get<std::string>();
        if (c.name.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "tool_choice names an empty function");
        return c;
    }
    fail(MUSE_ERR_INVALID_ARGUMENT, "tool_choice must be \"auto\", \"none\", \"required\", a function name or "
                                    "{\"type\": \"function\", \"function\": {\"name\": ...}}, not ", value.dump());
}

std::vector<FunctionDecl> function_declarations(const json &tools) {
    std::vector<FunctionDecl> out;
    if (tools.is_null()) return out;
    if (!tools.is_array()) fail(MUSE_ERR_INVALID_ARGUMENT, "tools must be a JSON array");
    std::set<std::string> seen;
    for (size_t i = 0; i < tools.size(); ++i) {
        const json &t = tools[i];
        const json *fn = &t;
        if (t.is_object() && t.contains("function")) fn = &t["function"];
        if (!fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string() ||
            (*fn)["name"].get_ref<const std::string &>().empty())
            fail(MUSE_ERR_INVALID_ARGUMENT, "tool ", i, " has no function name (expected {\"type\": \"function\", "
                                            "\"function\": {\"name\": ..., \"parameters\": {...}}})");
        FunctionDecl d;
        d.name = (*fn)["name"].get<std::string>();
        if (d.name.find_first_of("\"<>\n") != std::string::npos)
            fail(MUSE_ERR_INVALID_ARGUMENT, "tool ", i, ": the function name '", d.name,
                 "' may not contain quotes, angle brackets or newlines");
        if (!seen.insert(d.name).second) fail(MUSE_ERR_INVALID_ARGUMENT, "tool ", i, ": '", d.name, "' is declared twice");
        if (fn->contains("description") && (*fn)["description"].is_string())
            d.description = (*fn)["description"].get<std::string>();
        d.parameters = fn->contains("parameters") ? (*fn)["parameters"] : json{{"type", "object"}};
        if (d.parameters.is_null()) d.parameters = json{{"type", "object"}};
        if (!d.parameters.is_object())
            fail(MUSE_ERR_INVALID_ARGUMENT, "tool ", i, " ('", d.name, "'): parameters must be a JSON Schema object");
        out.push_back(std::move(d));
    }
    return out;
}

bool call_syntax(const reasoning::ReasoningFormat &f, CallSyntax *out) {
    if (f.kind == reasoning::FormatKind::atem) *out = CallSyntax::atem;
    else if (!f.tool_call_open.empty() && !f.tool_call_close.empty()) *out = CallSyntax::hermes;
    else if (f.json_tool_calls) *out = CallSyntax::llama_json;
    else return false;
    return true;
}

std::string prefix_gbnf_rules(const std::string &gbnf, const std::string &prefix) {
    // Rule names: the left sides. Everything else outside literals, classes and repetition
    // counts that is a name is a reference to one of them.
    std::set<std::string> names;
    size_t at = 0;
    while (at < gbnf.size()) {
        size_t eol = gbnf.find('\n', at);
        if (eol == std::string::npos) eol = gbnf.size();
        const std::string line = gbnf.substr(at, eol - at);
        const size_t def = line.find(" ::= ");
        if (def != std::string::npos && def > 0 && is_name_char(line[0])) names.insert(line.substr(0, def));
        at = eol + 1;
    }
    std::string out;
    for (size_t i = 0; i < gbnf.size();) {
        const char c = gbnf[i];
        if (c == '"' || c == '[') {
            const char close = c == '"' ? '"' : ']';
            size_t j = i + 1;
            while (j < gbnf.size() && gbnf[j] != close) j += gbnf[j] == '\\' ? 2 : 1;
            out.append(gbnf, i, j + 1 - i);
            i = j + 1;
        } else if (c == '{') {  // a repetition count: numbers, not rule names ("0" may be both)
            const size_t j = gbnf.find('}', i);
            const size_t end = j == std::string::npos ? gbnf.size() : j + 1;
            out.append(gbnf, i, end - i);
            i = end;
        } else if (c == '#') {
            while (i < gbnf.size() && gbnf[i] != '\n') ++i;
        } else if (is_name_char(c)) {
            size_t j = i;
            while (j < gbnf.size() && is_name_char(gbnf[j])) ++j;
            const std::string word = gbnf.substr(i, j - i);
            out += names.count(word) ? prefix + word : word;
            i = j;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

std::string call_body_gbnf(CallSyntax syntax, const std::vector<FunctionDecl> &functions) {
    if (functions.empty()) fail(MUSE_ERR_INVALID_ARGUMENT, "a call grammar needs at least one declared function");
    std::string rules, alts;
    if (syntax == CallSyntax::atem) {
        rules += "atem-text ::= ( [^<] | \"<\" [^/] )*\n";
        for (size_t i = 0; i < functions.size(); ++i)
            alts += (alts.empty() ? "" : " | ") + atem_function(functions[i], i, &rules);
        return "root ::= " + grammar::gbnf_literal("<atem:function_calls>\n") + " ( " + alts + " ) " +
               grammar::gbnf_literal("</atem:function_calls>") + "\n" + rules;
    }
    const std::string key = syntax == CallSyntax::hermes ? "arguments" : "parameters";
    for (size_t i = 0; i < functions.size(); ++i) {
        std::string top;
        rules += schema_gbnf(functions[i].parameters, "f" + std::to_string(i) + "-", &top);
        alts += std::string(alts.empty() ? "" : " | ") + grammar::gbnf_literal("{\"name\":") + " " +
                grammar::gbnf_literal("\"" + functions[i].name + "\"") + " " + grammar::gbnf_literal(",\"" + key + "\":") + " " + top + " " +
                grammar::gbnf_literal("}");
    }
    return std::string("root ::= ") + (syntax == CallSyntax::hermes ? "\"\\n\"? " : "") + "( " + alts + " )\n" + rules;
}

std::string atem_header_gbnf(const std::vector<std::string> &recipients) {
    std::string alts;
    for (const std::string &r : recipients) alts += (alts.empty() ? "" : " | ") + grammar::gbnf_literal(r);
    return "root ::= \"assistant\"? \" to=\" ( " + alts + " )\n";
}

std::shared_ptr<const CallPlan> make_call_plan(const reasoning::ReasoningFormat &format, const json &tools,
                                               const ToolChoice &choice, bool parallel, bool thinking_allowed) {
    auto plan = std::make_shared<CallPlan>();
    plan->choice = choice;
    plan->parallel = parallel;
    plan->thinking_allowed = thinking_allowed;
    const std::vector<FunctionDecl> fns = function_declarations(tools);
    for (const FunctionDecl &f : fns) plan->names.push_back(f.name);
    using Kind = ToolChoice::Kind;
    if ((choice.kind == Kind::required || choice.kind == Kind::named) && fns.empty())
        fail(MUSE_ERR_INVALID_ARGUMENT, "tool_choice \"", choice.kind == Kind::named ? choice.name : "required",
             "\" needs declared tools");
    if (choice.kind == Kind::named && !std::count(plan->names.begin(), plan->names.end(), choice.name))
        fail(MUSE_ERR_INVALID_ARGUMENT, "tool_choice names '", choice.name, "', which is not a declared tool");
    if (!call_syntax(format, &plan->syntax)) {
        if (choice.kind == Kind::required || choice.kind == Kind::named)
            fail(MUSE_ERR_UNSUPPORTED, "the model's chat template has no tool-call syntax muse knows (ATEM, "
                                       "Hermes <tool_call>, Llama 3 JSON): tool_choice \"required\" cannot be met");
        return nullptr;  // calls cannot be written, so nothing to constrain
    }
    if (!format.end_of_turn.empty()) plan->end_of_turn = format.end_of_turn.front();
    if (plan->syntax == CallSyntax::atem) {
        plan->message_open = "<|message|>";
        plan->start = "<|start|>";
        plan->message_end = "<|eom|>";
    } else if (plan->syntax == CallSyntax::hermes) {
        plan->call_open = format.tool_call_open;
        plan->call_close = "\n" + format.tool_call_close;
    }
    if (fns.empty()) {
        if (plan->syntax != CallSyntax::atem) return nullptr;
    } else if (choice.kind != Kind::none) {
        std::vector<FunctionDecl> allowed;
        for (const FunctionDecl &f : fns)
            if (choice.kind != Kind::named || f.name == choice.name) allowed.push_back(f);
        plan->body_any = grammar::Grammar::from_gbnf(call_body_gbnf(plan->syntax, allowed));
        for (const FunctionDecl &f : allowed)
            plan->body_for[f.name] = allowed.size() == 1 ? plan->body_any
                                                          : grammar::Grammar::from_gbnf(call_body_gbnf(plan->syntax, {f}));
    }
    if (plan->syntax == CallSyntax::atem) {
        // Recipients a header may name: reasoning (when thinking is allowed), the user
        // (unless a call is required first) and the callable functions.
        std::vector<std::string> first, later;
        if (thinking_allowed) first.push_back("self"), later.push_back("self");
        later.push_back("user");
        if (choice.kind == Kind::none || choice.kind == Kind::automatic) first.push_back("user");
        if (choice.kind != Kind::none)
            for (const std::string &n : plan->names)
                if (choice.kind != Kind::named || n == choice.name) first.push_back(n);
        if (parallel && choice.kind != Kind::none)
            for (const std::string &n : plan->names)
                if (choice.kind != Kind::named || n == choice.name) later.push_back(n);
        plan->header_first = grammar::Grammar::from_gbnf(atem_header_gbnf(first));
        plan->header_later = grammar::Grammar::from_gbnf(atem_header_gbnf(later));
    }
    return plan;
}

} // namespace muse::tools
