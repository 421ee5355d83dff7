// JSON Schema (draft 2020-12) to GBNF.
//
// What compiles, exactly: type (and type arrays), enum/const, properties /
// required / additionalProperties (false, true, a schema), patternProperties
// (one value schema for all patterns, no declared name matching one), items /
// prefixItems (and draft 4-7 tuple items / additionalItems), minItems / maxItems,
// minLength / maxLength, pattern (the regex subset, JSON search semantics; with a
// length only in the form ^x{m,n}$), integer bounds (digit-range grammars), number
// bounds that are integers (instances then written without an exponent), anyOf,
// allOf where the parts merge, local $ref / $defs / definitions (recursion
// included), boolean schemas, not {} / not {required: [x]}, min/maxProperties on
// maps (or where they are implied). Formats date (days per month, leap years),
// time, date-time, email, uuid, uri, hostname, ipv4 are enforced (email, uri and
// leap seconds at a non-zero offset approximately); other formats are annotations
// in 2020-12 and ignored, as are unknown keywords.
//
// oneOf compiles to an alternation: it also accepts an instance valid for several
// branches, which oneOf rejects; exact_one_of refuses oneOf unless the branches
// are disjoint by type or constant.
//
// Properties: when checking text (flexible whitespace) in any order, the required
// ones tracked (up to 12, beyond that in schema order); when generating (compact)
// in the schema's order, then additional ones. An additional property's name is any
// string that is neither declared nor matching a pattern.
//
// Refused, with the keyword and its JSON path: not (other forms), if/then/else,
// contains, uniqueItems, multipleOf, propertyNames, dependentRequired/Schemas,
// unevaluated*, $dynamicRef, non-local $ref and anchors, number bounds that are not
// integers, pattern or format together with a length, min/maxProperties beside
// declared properties.
#include "grammar/grammar.h"

#include "core/error.h"
#include "grammar/gbnf.h"
#include "grammar/regex.h"

#include <algorithm>
#include <vector>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>

namespace muse::grammar {
namespace {

using json = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {
    "$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly",
    "writeOnly", "contentMediaType", "contentEncoding", "contentSchema", "$defs", "definitions", "$anchor",
    "$dynamicAnchor", "$vocabulary", "format"};

const std::set<std::string> kRefused = {
    "not", "if", "then", "else", "contains", "minContains", "maxContains", "uniqueItems", "multipleOf",
    "propertyNames", "minProperties", "maxProperties", "dependentRequired",
    "dependentSchemas", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
    "dependencies"};

const std::vector<std::string> kAllTypes = {"null", "boolean", "object", "array", "string", "number"};


std::string sanitize(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') out += c;
        else if (!out.empty() && out.back() != '-') out += '-';
        if (out.size() > 40) break;
    }
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? "s" : out;
}

std::string pointer_escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

class SchemaCompiler {
public:
    SchemaCompiler(const json &root, const JsonSchemaOptions &o) : root_(root), o_(o) {}

    std::string run() {
        if (!o_.compact) base("ws");
        const std::string top = visit(root_, "#");
        std::string out = "root ::= " + (o_.compact ? "" : std::string("_ws ")) + top + (o_.compact ? "" : " _ws") + "\n";
        for (auto &[name, body] : rules_) out += name + " ::= " + body + "\n";
        return out;
    }

private:
    [[noreturn]] void refuse(const std::string &path, const std::string &keyword, const std::string &why) const {
        fail(MUSE_ERR_UNSUPPORTED, "JSON Schema: '", keyword, "' at ", path, ": ", why);
    }
    [[noreturn]] void invalid(const std::string &path, const std::string &why) const {
        fail(MUSE_ERR_INVALID_ARGUMENT, "JSON Schema at ", path, ": ", why);
    }

    // Base rules are named with a leading '_', which names made from schema paths never have.
    std::string ws() const { return o_.compact ? " " : " _ws "; }
    std::string sep() const { return o_.compact ? " \",\" " : " _ws \",\" _ws "; }
    std::string colon() const { return o_.compact ? " \":\" " : " _ws \":\" _ws "; }

    // A named rule, deduplicated by body.
    std::string rule(const std::string &hint, const std::string &body) {
        auto it = by_body_.find(body);
        if (it != by_body_.end()) return it->second;
        const std::string name = reserve(hint);
        define(name, body);
        return name;
    }
    std::string reserve(const std::string &hint) {
        std::string name = sanitize(hint);
        for (int n = 1; used_.count(name); ++n) name = sanitize(hint) + "-" + std::to_string(n);
        used_.insert(name);
        return name;
    }
    void define(const std::string &name, const std::string &body) {
        rules_.emplace_back(name, body);
        by_body_.emplace(body, name);
    }
    std::string base(const std::string &name) {
        const std::string full = "_" + name;
        if (!used_.count(full)) {
            used_.insert(full);
            const std::string w = ws();
            if (name == "ws") rules_.emplace_back("_ws", "[ \\t\\n\\r]*");
            else if (name == "value")
                rules_.emplace_back("_value", base("object") + " | " + base("array") + " | " + base("string") + " | " +
                                                 base("number") + " | \"true\" | \"false\" | \"null\"");
            else if (name == "object")
                rules_.emplace_back("_object", "\"{\"" + w + "( " + base("member") + " (" + sep() + base("member") +
                                                  ")* )?" + w + "\"}\"");
            else if (name == "member") rules_.emplace_back("_member", base("string") + colon() + base("value"));
            else if (name == "array")
                rules_.emplace_back("_array", "\"[\"" + w + "( " + base("value") + " (" + sep() + base("value") +
                                                 ")* )?" + w + "\"]\"");
            else if (name == "string") rules_.emplace_back("_string", "\"\\\"\" " + base("char") + "* \"\\\"\"");
            else if (name == "char")
                rules_.emplace_back("_char", "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )");
            // One character for counted lengths: no \u escape of a surrogate (a pair
            // would count as two where it is one character).
            else if (name == "lchar")
                rules_.emplace_back("_lchar", "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" "
                                              "( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )");
            else if (name == "rawchar") rules_.emplace_back("_rawchar", "[^\"\\\\\\x00-\\x1F]");
            else if (name == "number")
                rules_.emplace_back("_number", "\"-\"? " + base("uint") + " ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?");
            else if (name == "uint") rules_.emplace_back("_uint", "\"0\" | [1-9] [0-9]*");
            else if (name == "integer")
                rules_.emplace_back("_integer", "\"-\"? " + base("uint") + (o_.compact ? "" : " ( \".\" \"0\"+ )?"));
            else if (name == "never") rules_.emplace_back("_never", "[^\\u0000-\\U0010FFFF]");
            else invalid("#", "internal: unknown base rule " + name);
        }
        return full;
    }

    static int hex_digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    const json &resolve(const std::string &ref, const std::string &path) const {
        if (ref.empty() || ref[0] != '#')
            refuse(path, "$ref", "'" + ref + "' is not a local reference (only '#...' JSON pointers are compiled)");
        if (ref.size() > 1 && ref[1] != '/') refuse(path, "$ref", "'" + ref + "': anchors are not compiled");
        const json *cur = &root_;
        size_t i = 1;
        while (i < ref.size()) {
            size_t j = ref.find('/', i + 1);
            if (j == std::string::npos) j = ref.size();
            std::string tok = ref.substr(i + 1, j - i - 1);
            std::string dec;
            for (size_t k = 0; k < tok.size(); ++k) {
                if (tok[k] == '~' && k + 1 < tok.size()) {
                    dec += tok[k + 1] == '1' ? '/' : '~';
                    ++k;
                } else if (tok[k] == '%') {
                    // URI percent-encoding inside the fragment; anything but two hex digits is
                    // a malformed reference, not a character.
                    const int hi = k + 2 < tok.size() ? hex_digit(tok[k + 1]) : -1;
                    const int lo = hi >= 0 ? hex_digit(tok[k + 2]) : -1;
                    if (lo < 0) invalid(path, "$ref '" + ref + "' has a malformed percent escape");
                    dec += static_cast<char>(hi * 16 + lo);
                    k += 2;
                } else {
                    dec += tok[k];
                }
            }
            if (cur->is_object() && cur->contains(dec)) {
                cur = &(*cur)[dec];
            } else if (cur->is_array() && !dec.empty() && dec.size() <= 9 &&
                       std::all_of(dec.begin(), dec.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                       std::stoul(dec) < cur->size()) {
                cur = &(*cur)[std::stoul(dec)];
            } else {
                invalid(path, "$ref '" + ref + "' does not resolve");
            }
            i = j;
        }
        return *cur;
    }

    std::string ref_rule(const std::string &ref, const std::string &path) {
        auto it = refs_.find(ref);
        if (it != refs_.end()) return it->second;
        const json &target = resolve(ref, path);
        const std::string name = reserve("ref-" + (ref.size() > 1 ? ref.substr(ref.rfind('/') + 1) : "root"));
        refs_[ref] = name;
        const std::string body = visit(target, ref);
        rules_.emplace_back(name, body);
        return name;
    }

    // Whether a schema constrains anything (unknown keywords are annotations in 2020-12).
    static bool has_assertions(const json &s, const std::set<std::string> &skip) {
        static const std::set<std::string> known = {
            "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
            "additionalItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
            "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "patternProperties"};
        for (auto &[k, v] : s.items())
            if ((known.count(k) || kRefused.count(k)) && !skip.count(k)) return true;
        return false;
    }

    // allOf / $ref with siblings / anyOf with siblings: two schemas merged into one
    // where that is exact; refused otherwise.
    json merge(const json &a0, const json &b0, const std::string &path, int depth = 0) {
        if (depth > 16) refuse(path, "allOf", "merging nests too deeply");
        json a = inline_ref(a0, path), b = inline_ref(b0, path);
        if (a.is_boolean()) return a.get<bool>() ? b : a;
        if (b.is_boolean()) return b.get<bool>() ? a : b;
        // prefixItems and items of one schema object work together (items applies
        // after the prefix); across two parts they do not, so such parts are not merged.
        if ((a.contains("prefixItems") && b.contains("items")) || (b.contains("prefixItems") && a.contains("items")) ||
            (a.contains("prefixItems") && b.contains("prefixItems") && a["prefixItems"] != b["prefixItems"]))
            refuse(path, "allOf", "prefixItems and items in different parts are not merged");
        json out = a;
        for (auto &[k, v] : b.items()) {
            if (!out.contains(k)) {
                out[k] = v;
                continue;
            }
            json &x = out[k];
            if (x == v || kAnnotations.count(k)) continue;
            if (k == "properties") {
                for (auto &[pk, pv] : v.items())
                    x[pk] = x.contains(pk) ? merge(x[pk], pv, path + "/properties/" + pk, depth + 1) : pv;
            } else if (k == "required") {
                for (auto &r : v)
                    if (std::find(x.begin(), x.end(), r) == x.end()) x.push_back(r);
            } else if (k == "type") {
                std::set<std::string> ta = types_of(x), tb = types_of(v);
                json t = json::array();
                for (auto &s : ta) {
                    if (tb.count(s)) t.push_back(s);
                    else if (s == "integer" && tb.count("number")) t.push_back("integer");
                    else if (s == "number" && tb.count("integer")) t.push_back("integer");
                }
                x = t;
            } else if (k == "minimum" || k == "minLength" || k == "minItems" || k == "exclusiveMinimum") {
                x = std::max(x.get<double>(), v.get<double>());
            } else if (k == "maximum" || k == "maxLength" || k == "maxItems" || k == "exclusiveMaximum") {
                x = std::min(x.get<double>(), v.get<double>());
            } else if (k == "enum") {
                json e = json::array();
                for (auto &ev : x)
                    if (std::find(v.begin(), v.end(), ev) != v.end()) e.push_back(ev);
                x = e;
            } else if (k == "items" || k == "additionalProperties") {
                x = merge(x, v, path + "/" + k, depth + 1);
            } else {
                refuse(path, "allOf", "cannot merge two different '" + k + "'");
            }
        }
        // Closed objects: a property one side declares is extra for the other.
        for (auto *side : {&a, &b}) {
            const json &other = side == &a ? b : a;
            if (side->contains("additionalProperties") && (*side)["additionalProperties"] != json(true) &&
                other.contains("properties"))
                for (auto &[pk, pv] : other["properties"].items())
                    if (!side->contains("properties") || !(*side)["properties"].contains(pk))
                        refuse(path, "allOf", "additionalProperties of one part would apply to property '" + pk +
                                                  "' of another");
        }
        return out;
    }

    json inline_ref(const json &s, const std::string &path) {
        if (!s.is_object() || !s.contains("$ref")) return s;
        json rest = s;
        rest.erase("$ref");
        const json &target = resolve(s["$ref"].get<std::string>(), path);
        if (!has_assertions(rest, {})) return target;
        return merge(target, rest, path);
    }

    static std::set<std::string> types_of(const json &t) {
        std::set<std::string> out;
        if (t.is_string()) out.insert(t.get<std::string>());
        else if (t.is_array())
            for (auto &x : t)
                if (x.is_string()) out.insert(x.get<std::string>());
        return out;
    }

    static std::string type_of_value(const json &v) {
        if (v.is_null()) return "null";
        if (v.is_boolean()) return "boolean";
        if (v.is_object()) return "object";
        if (v.is_array()) return "array";
        if (v.is_string()) return "string";
        return "number";
    }

    // The JSON types a schema can match (coarse: for oneOf disjointness).
    std::set<std::string> may_match(const json &s, int depth = 0) {
        std::set<std::string> all(kAllTypes.begin(), kAllTypes.end());
        if (depth > 8 || s.is_boolean()) return all;
        if (s.contains("$ref") && s["$ref"].is_string() && s["$ref"].get<std::string>().rfind("#", 0) == 0)
            return may_match(resolve(s["$ref"].get<std::string>(), "#"), depth + 1);
        if (s.contains("const")) return {type_of_value(s["const"])};
        if (s.contains("enum") && s["enum"].is_array()) {
            std::set<std::string> t;
            for (auto &v : s["enum"]) t.insert(type_of_value(v));
            return t;
        }
        if (s.contains("type")) {
            auto t = types_of(s["type"]);
            if (t.count("integer")) t.insert("number");
            return t;
        }
        return all;
    }

    std::string literal(const json &v) {
        switch (v.type()) {
        case json::value_t::object: {
            std::string out = "\"{\"" + ws();
            bool first = true;
            for (auto &[k, x] : v.items()) {
                if (!first) out += sep();
                first = false;
                out += gbnf_literal(json(k).dump()) + colon() + literal(x);
            }
            return "(" + out + ws() + "\"}\")";
        }
        case json::value_t::array: {
            std::string out = "\"[\"" + ws();
            for (size_t i = 0; i < v.size(); ++i) out += (i ? sep() : "") + literal(v[i]);
            return "(" + out + ws() + "\"]\")";
        }
        case json::value_t::number_float: {
            const double d = v.get<double>();
            if (std::floor(d) == d && std::abs(d) < 1e15)
                return "(" + gbnf_literal(std::to_string(static_cast<long long>(d))) + " ( \".\" \"0\"+ )?)";
            return gbnf_literal(v.dump());
        }
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
            return "(" + gbnf_literal(v.dump()) + (o_.compact ? "" : " ( \".\" \"0\"+ )?") + ")";
        default: return gbnf_literal(v.dump(-1, ' ', false, json::error_handler_t::strict));
        }
    }

    std::string visit(const json &s, const std::string &path) {
        if (s.is_boolean()) return s.get<bool>() ? base("value") : base("never");
        if (!s.is_object()) invalid(path, "a schema must be an object or a boolean");
        if (++depth_ > 200) refuse(path, "$ref", "schema nests more than 200 levels");
        struct Guard {
            int &d;
            ~Guard() { --d; }
        } guard{depth_};
        if (s.contains("not")) {
            // not {} matches nothing; not false changes nothing; not {required: [x]}
            // forbids property x (a property whose schema is false).
            const json &n = s["not"];
            json rest = s;
            rest.erase("not");
            if (n == json(true) || n == json::object()) return base("never");
            if (n == json(false)) return visit(rest, path);
            if (n.is_object() && n.size() == 1 && n.contains("required") && n["required"].is_array() &&
                n["required"].size() == 1 && n["required"][0].is_string()) {
                if (!rest.contains("properties")) rest["properties"] = json::object();
                rest["properties"][n["required"][0].get<std::string>()] = false;
                return visit(rest, path);
            }
        }
        for (auto &[k, v] : s.items()) {
            if (!kRefused.count(k)) continue;
            if (k == "minProperties" || k == "maxProperties") continue;  // object_type decides
            if (k == "uniqueItems" && v == json(false)) continue;
            if ((k == "minProperties" || k == "minContains") && v == json(0)) continue;
            if (k == "multipleOf" && v.is_number() && v.get<double>() == 1.0 && s.contains("type") &&
                s["type"] == json("integer"))
                continue;
            if ((k == "dependentRequired" || k == "dependentSchemas") && v.is_object() &&
                v.empty())
                continue;
            if ((k == "unevaluatedProperties" || k == "unevaluatedItems") && v == json(true)) continue;
            refuse(path, k, "this keyword is not compiled");
        }
        if (s.contains("$ref")) {
            if (!s["$ref"].is_string()) invalid(path, "$ref must be a string");
            json rest = s;
            rest.erase("$ref");
            if (!has_assertions(rest, {})) return ref_rule(s["$ref"].get<std::string>(), path);
            return visit(merge(resolve(s["$ref"].get<std::string>(), path), rest, path), path + "/$ref");
        }
        if (s.contains("allOf")) {
            json merged = s;
            merged.erase("allOf");
            for (size_t i = 0; i < s["allOf"].size(); ++i)
                merged = merge(merged, s["allOf"][i], path + "/allOf/" + std::to_string(i));
            return visit(merged, path + "/allOf");
        }
        for (const char *kw : {"anyOf", "oneOf"}) {
            if (!s.contains(kw)) continue;
            const json &alts = s[kw];
            if (!alts.is_array() || alts.empty()) invalid(path, std::string(kw) + " must be a non-empty array");
            json rest = s;
            rest.erase(kw);
            const bool siblings = has_assertions(rest, {});
            if (std::string(kw) == "oneOf" && o_.exact_one_of) {
                std::vector<std::set<std::string>> ts;
                for (auto &a : alts) ts.push_back(may_match(siblings ? merge(rest, a, path) : a));
                for (size_t i = 0; i < ts.size(); ++i)
                    for (size_t j = i + 1; j < ts.size(); ++j)
                        for (auto &t : ts[i])
                            if (ts[j].count(t))
                                refuse(path, "oneOf", "branches " + std::to_string(i) + " and " + std::to_string(j) +
                                                          " may both match a " + t +
                                                          " (an alternation would accept it)");
            }
            std::string body;
            for (size_t i = 0; i < alts.size(); ++i) {
                const std::string p = path + "/" + kw + "/" + std::to_string(i);
                body += (i ? " | " : "") + (siblings ? visit(merge(rest, alts[i], p), p) : visit(alts[i], p));
            }
            return rule(std::string(kw), body);
        }
        if (s.contains("const") || s.contains("enum")) {
            std::vector<json> values;
            if (s.contains("enum")) {
                if (!s["enum"].is_array()) invalid(path, "enum must be an array");
                for (auto &v : s["enum"]) values.push_back(v);
            }
            if (s.contains("const")) {
                if (s.contains("enum") && std::find(values.begin(), values.end(), s["const"]) == values.end())
                    values.clear();
                else
                    values = {s["const"]};
            }
            json rest = s;
            rest.erase("enum");
            rest.erase("const");
            rest.erase("type");
            if (has_assertions(rest, {}))
                refuse(path, s.contains("enum") ? "enum" : "const",
                       "other assertions beside enum/const are not compiled");
            const auto types = s.contains("type") ? types_of(s["type"]) : std::set<std::string>(kAllTypes.begin(), kAllTypes.end());
            std::string body;
            for (auto &v : values) {
                std::string t = type_of_value(v);
                bool ok = types.count(t) || (t == "number" && types.count("integer") && v.is_number() &&
                                             std::floor(v.get<double>()) == v.get<double>());
                if (!ok) continue;
                body += (body.empty() ? "" : " | ") + literal(v);
            }
            return body.empty() ? base("never") : rule("enum", body);
        }
        std::set<std::string> types;
        if (s.contains("type")) {
            types = types_of(s["type"]);
            if (types.empty() && !(s["type"].is_array() && s["type"].empty()))
                invalid(path, "type must be a string or an array of strings");
        } else {
            types = std::set<std::string>(kAllTypes.begin(), kAllTypes.end());
        }
        std::string body;
        auto add = [&](const std::string &e) { body += (body.empty() ? "" : " | ") + e; };
        for (auto &t : types) {
            if (t == "null") add("\"null\"");
            else if (t == "boolean") add("\"true\" | \"false\"");
            else if (t == "string") add(string_type(s, path));
            else if (t == "number") add(number_type(s, path, false));
            else if (t == "integer") {
                if (!types.count("number")) add(number_type(s, path, true));
            } else if (t == "object") add(object_type(s, path));
            else if (t == "array") add(array_type(s, path));
            else invalid(path, "unknown type '" + t + "'");
        }
        if (body.empty()) return base("never");
        return rule(path.substr(path.rfind('/') + 1), body);
    }

    std::string string_type(const json &s, const std::string &path) {
        const bool has_len = s.contains("minLength") || s.contains("maxLength");
        uint64_t min = 0;
        int64_t max = -1;
        if (s.contains("minLength")) min = static_cast<uint64_t>(s["minLength"].get<double>());
        if (s.contains("maxLength")) max = static_cast<int64_t>(s["maxLength"].get<double>());
        if (max >= 0 && static_cast<uint64_t>(max) < min) return base("never");
        if (min > 100000 || max > 100000)
            refuse(path, min > 100000 ? "minLength" : "maxLength", "lengths beyond 100000 are not compiled");
        if (s.contains("pattern") && has_len) {
            if (auto r = counted_pattern(s["pattern"].get<std::string>(), min, max)) return rule("pattern-len", *r);
            refuse(path, "pattern", "a pattern together with minLength/maxLength is not compiled (only ^x{m,n}$ "
                                    "forms, x one character or class)");
        }
        if (s.contains("pattern")) {
            RegexOptions ro;
            ro.json_string = true;
            ro.search = true;
            std::string e;
            try {
                e = regex_to_gbnf_expr(s["pattern"].get<std::string>(), ro);
            } catch (const Error &err) {
                refuse(path + "/pattern", "pattern", err.what());
            }
            return rule("pattern", "\"\\\"\" " + e + " \"\\\"\"");
        }
        if (s.contains("format") && s["format"].is_string()) {
            const std::string f = s["format"].get<std::string>();
            // Days per month, and February 29 only in leap years (Gregorian).
            const std::string leap4 = "( \"0\" [48] | [2468] [048] | [13579] [26] )";
            const std::string date =
                "( [0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] ) | "
                "( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" ) | "
                "\"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) ) | "
                "( [0-9]{2} " + leap4 + " | ( " + leap4 + " | \"00\" ) \"00\" ) \"-02-29\" )";
            // A leap second is 23:59:60 UTC: accepted as such with Z or a zero offset only (the
            // same instant at another offset, e.g. 00:59:60+01:00, is wrongly rejected; any
            // other second 60 is invalid, which generation must never write).
            const std::string time =
                "( ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]+ )? "
                "( [zZ] | [-+] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] ) | "
                "\"23:59:60\" ( \".\" [0-9]+ )? ( [zZ] | [-+] \"00:00\" ) )";
            std::string e;
            if (f == "date") e = date;
            else if (f == "time") e = time;
            else if (f == "date-time") e = date + " [tT] " + time;
            else if (f == "uuid")
                e = "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}";
            else if (f == "email")
                e = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+ ( \".\" [a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+ )* \"@\" "
                    "[a-zA-Z0-9] ( [a-zA-Z0-9-]* [a-zA-Z0-9] )? ( \".\" [a-zA-Z0-9] ( [a-zA-Z0-9-]* [a-zA-Z0-9] )? )*";
            else if (f == "hostname")
                e = "[a-zA-Z0-9] ( [a-zA-Z0-9-]{0,61} [a-zA-Z0-9] )? ( \".\" [a-zA-Z0-9] ( [a-zA-Z0-9-]{0,61} [a-zA-Z0-9] )? )*";
            else if (f == "ipv4") {
                const std::string octet = "( [0-9] | [1-9] [0-9] | \"1\" [0-9] [0-9] | \"2\" [0-4] [0-9] | \"25\" [0-5] )";
                e = octet + " \".\" " + octet + " \".\" " + octet + " \".\" " + octet;
            } else if (f == "uri")
                e = "[a-zA-Z] [a-zA-Z0-9+.-]* \":\" [^\"\\\\\\x00-\\x20<>{}|^`]*";
            if (!e.empty()) {
                if (has_len) refuse(path, "format", "a format together with minLength/maxLength is not compiled");
                return rule(f, "\"\\\"\" " + e + " \"\\\"\"");
            }
        }
        if (!has_len) return base("string");
        std::string rep = max < 0 ? "{" + std::to_string(min) + ",}" : "{" + std::to_string(min) + "," + std::to_string(max) + "}";
        if (min == 0 && max < 0) rep = "*";
        return rule("string-len", "\"\\\"\" " + base("lchar") + rep + " \"\\\"\"");
    }

    // A pattern ^x<quantifier>$ with x one character (class, escape, '.', literal) and
    // a length range: the counts intersect exactly.
    static std::optional<std::string> counted_pattern(const std::string &p, uint64_t min, int64_t max) {
        if (p.size() < 3 || p.front() != '^' || p.back() != '$' || p[p.size() - 2] == '\\') return std::nullopt;
        const std::string inner = p.substr(1, p.size() - 2);
        size_t end = 0;
        if (inner[0] == '[') {
            end = 1;
            if (end < inner.size() && inner[end] == '^') ++end;
            if (end < inner.size() && inner[end] == ']') ++end;
            while (end < inner.size() && inner[end] != ']') end += inner[end] == '\\' ? 2 : 1;
            if (end >= inner.size()) return std::nullopt;
            ++end;
        } else if (inner[0] == '\\') {
            end = 2;
        } else if (std::string("()|*+?{}^$").find(inner[0]) == std::string::npos) {
            end = 1;
            while (end < inner.size() && (static_cast<uint8_t>(inner[end]) & 0xC0) == 0x80) ++end;
        } else {
            return std::nullopt;
        }
        const std::string atom = inner.substr(0, end), q = inner.substr(end);
        uint64_t qmin = 1;
        int64_t qmax = 1;
        if (q == "*") qmin = 0, qmax = -1;
        else if (q == "+") qmin = 1, qmax = -1;
        else if (q == "?") qmin = 0, qmax = 1;
        else if (!q.empty()) {
            unsigned long long a = 0, b = 0;
            int n = 0;
            char c1 = 0;
            if (std::sscanf(q.c_str(), "{%llu,%llu}%n", &a, &b, &n) == 2 && n == static_cast<int>(q.size())) {
                qmin = a, qmax = static_cast<int64_t>(b);
            } else if (std::sscanf(q.c_str(), "{%llu,%c%n", &a, &c1, &n) == 2 && c1 == '}' &&
                       n == static_cast<int>(q.size())) {
                qmin = a, qmax = -1;
            } else if (std::sscanf(q.c_str(), "{%llu}%n", &a, &n) == 1 && n == static_cast<int>(q.size())) {
                qmin = a, qmax = static_cast<int64_t>(a);
            } else {
                return std::nullopt;
            }
        }
        const uint64_t lo = std::max(qmin, min);
        int64_t hi = qmax < 0 ? max : (max < 0 ? qmax : std::min(qmax, max));
        RegexOptions ro;
        ro.json_string = true;
        std::string e;
        try {
            e = regex_to_gbnf_expr(atom, ro);
        } catch (const Error &) {
            return std::nullopt;
        }
        if (hi >= 0 && static_cast<uint64_t>(hi) < lo) return "[^\\u0000-\\U0010FFFF]";
        const std::string rep = "{" + std::to_string(lo) + "," + (hi >= 0 ? std::to_string(hi) : "") + "}";
        return "\"\\\"\" " + e + rep + " \"\\\"\"";
    }

    // Digits of a non-negative integer range [lo, hi] (hi < 0: unbounded), canonical
    // (no leading zeros).
    static std::string digits_between(const std::string &lo, const std::string &hi) {
        // lo and hi have the same length, lo <= hi.
        if (lo.empty()) return "";
        if (lo == hi) return gbnf_literal(lo);
        if (lo[0] == hi[0]) return gbnf_literal(lo.substr(0, 1)) + " " + digits_between(lo.substr(1), hi.substr(1));
        const size_t n = lo.size() - 1;
        const bool lo_zeros = lo.find_first_not_of('0', 1) == std::string::npos;
        const bool hi_nines = hi.find_first_not_of('9', 1) == std::string::npos;
        std::vector<std::string> alts;
        char mid_lo = lo[0] + 1, mid_hi = hi[0] - 1;
        if (lo_zeros) mid_lo = lo[0];
        else alts.push_back(gbnf_literal(lo.substr(0, 1)) + " " + digits_between(lo.substr(1), std::string(n, '9')));
        if (hi_nines) mid_hi = hi[0];
        if (mid_lo <= mid_hi)
            alts.push_back("[" + std::string(1, mid_lo) + "-" + std::string(1, mid_hi) + "]" +
                           (n ? " [0-9]{" + std::to_string(n) + "}" : ""));
        if (!hi_nines) alts.push_back(gbnf_literal(hi.substr(0, 1)) + " " + digits_between(std::string(n, '0'), hi.substr(1)));
        std::string out = "(";
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
        return out + ")";
    }

    static std::string uint_range(uint64_t lo, std::optional<uint64_t> hi) {
        if (hi && *hi < lo) return "";
        const std::string a = std::to_string(lo);
        std::vector<std::string> alts;
        const size_t max_len = hi ? std::to_string(*hi).size() : a.size();
        for (size_t len = a.size(); len <= max_len; ++len) {
            std::string l = a;
            if (len != a.size()) {  // the smallest number of this many digits
                l.assign(len, '0');
                l[0] = '1';
            }
            std::string h = hi && len == max_len ? std::to_string(*hi) : std::string(len, '9');
            alts.push_back(digits_between(l, h));
        }
        if (!hi) alts.push_back("[1-9] [0-9]{" + std::to_string(a.size()) + ",}");
        std::string out = "(";
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
        return out + ")";
    }

    // A non-negative magnitude m = I.F between a and b (integers; b absent:
    // unbounded), each end inclusive or exclusive. integer: no fraction.
    std::string magnitude(uint64_t a, bool a_ex, std::optional<uint64_t> b, bool b_ex, bool integer) {
        const std::string frac_any = integer ? "" : " ( \".\" [0-9]+ )?";
        const std::string frac_zero = integer ? "" : " ( \".\" \"0\"+ )?";
        const std::string frac_nonzero = " \".\" [0-9]* [1-9] [0-9]*";
        std::vector<std::string> alts;
        if (integer) {
            const uint64_t lo = a_ex ? a + 1 : a;
            std::optional<uint64_t> hi = b;
            if (b && b_ex) {
                if (*b == 0) return "";
                hi = *b - 1;
            }
            const std::string r = uint_range(lo, hi);
            return r.empty() ? "" : r + (o_.compact ? "" : " ( \".\" \"0\"+ )?");
        }
        const uint64_t lo_any = a_ex ? a + 1 : a;
        std::optional<uint64_t> hi_any;
        bool empty_any = false;
        if (b) {
            if (*b == 0) empty_any = true;
            else hi_any = *b - 1;
        }
        if (!empty_any && (!hi_any || *hi_any >= lo_any)) {
            const std::string r = uint_range(lo_any, hi_any);
            if (!r.empty()) alts.push_back(r + frac_any);
        }
        if (a_ex && (!b || *b > a)) alts.push_back(gbnf_literal(std::to_string(a)) + frac_nonzero);
        if (b && !b_ex && (*b > a || (*b == a && !a_ex))) alts.push_back(gbnf_literal(std::to_string(*b)) + frac_zero);
        std::string out;
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
        return out.empty() ? "" : "(" + out + ")";
    }

    std::string number_type(const json &s, const std::string &path, bool integer) {
        std::optional<double> lo, hi;
        bool lo_ex = false, hi_ex = false;
        auto num = [&](const char *k) {
            if (!s[k].is_number()) invalid(path, std::string(k) + " must be a number");
            return s[k].get<double>();
        };
        if (s.contains("minimum")) lo = num("minimum");
        // Draft 4: exclusiveMinimum/Maximum are booleans that modify minimum/maximum.
        if (s.contains("exclusiveMinimum") && s["exclusiveMinimum"].is_boolean()) {
            lo_ex = lo && s["exclusiveMinimum"].get<bool>();
        } else if (s.contains("exclusiveMinimum")) {
            const double v = num("exclusiveMinimum");
            if (!lo || v >= *lo) lo = v, lo_ex = true;
        }
        if (s.contains("maximum")) hi = num("maximum");
        if (s.contains("exclusiveMaximum") && s["exclusiveMaximum"].is_boolean()) {
            hi_ex = hi && s["exclusiveMaximum"].get<bool>();
        } else if (s.contains("exclusiveMaximum")) {
            const double v = num("exclusiveMaximum");
            if (!hi || v <= *hi) hi = v, hi_ex = true;
        }
        if (!lo && !hi) return base(integer ? "integer" : "number");
        for (auto [v, k] : {std::pair{lo, "minimum"}, std::pair{hi, "maximum"}})
            if (v && std::abs(*v) > 1e15) refuse(path, k, "bounds beyond 1e15 are not compiled");
        if (integer) {
            // Integers: bounds round inward, exclusivity folds into them.
            if (lo) {
                double v = lo_ex ? std::floor(*lo) + 1 : std::ceil(*lo);
                lo = v, lo_ex = false;
            }
            if (hi) {
                double v = hi_ex ? std::ceil(*hi) - 1 : std::floor(*hi);
                hi = v, hi_ex = false;
            }
        } else {
            for (auto [v, k] : {std::pair{lo, "minimum"}, std::pair{hi, "maximum"}})
                if (v && std::floor(*v) != *v)
                    refuse(path, k, "a number bound that is not an integer is not compiled exactly");
        }
        if (lo && hi && (*lo > *hi || (*lo == *hi && (lo_ex || hi_ex)))) return base("never");
        std::vector<std::string> alts;
        // Non-negative part: x in [max(lo,0), hi].
        if (!hi || *hi >= 0) {
            uint64_t a = 0;
            bool a_ex = false;
            if (lo && *lo >= 0) a = static_cast<uint64_t>(*lo), a_ex = lo_ex;
            std::optional<uint64_t> b;
            if (hi) b = static_cast<uint64_t>(*hi);
            const std::string m = magnitude(a, a_ex, b, hi_ex, integer);
            if (!m.empty()) alts.push_back(m);
        }
        // Negative part: x = -m with m in (max(-hi,0), -lo].
        if (!lo || *lo < 0) {
            uint64_t a = 0;
            bool a_ex = true;  // m > 0 (no "-0")
            if (hi && *hi < 0) a = static_cast<uint64_t>(-*hi), a_ex = hi_ex;
            std::optional<uint64_t> b;
            bool b_ex = false;
            if (lo) b = static_cast<uint64_t>(-*lo), b_ex = lo_ex;
            const std::string m = magnitude(a, a_ex, b, b_ex, integer);
            if (!m.empty()) alts.push_back("\"-\" " + m);
        }
        if (alts.empty()) return base("never");
        std::string body;
        for (size_t i = 0; i < alts.size(); ++i) body += (i ? " | " : "") + alts[i];
        return rule(integer ? "int-range" : "num-range", body);
    }

    // A JSON string (its quotes included) that is none of `keys` and matches none of
    // the patterns (a GBNF alternation over JSON string content), written without
    // escapes: the complement, built from the automaton of keys-or-patterns explored
    // over code-point intervals on which every class of the patterns is uniform.
    std::string key_outside(const std::vector<std::string> &keys, const std::string &patterns, const std::string &path) {
        std::string root = patterns;
        std::set<uint32_t> bounds = {0x80, 0xD800, 0xE000, 0x110000};
        auto add_cp = [&](uint32_t cp) {
            if (cp >= 0x80 && cp <= 0x10FFFF) bounds.insert(cp), bounds.insert(cp + 1);
        };
        for (auto &k : keys) {
            const std::string q = json(k).dump();
            root += " | " + gbnf_literal(q.substr(1, q.size() - 2));
            for (size_t i = 0; i < k.size();) {
                uint32_t cp;
                if (!decode_utf8(k, i, cp)) break;
                add_cp(cp);
            }
        }
        for (size_t i = 0; i + 5 < patterns.size(); ++i) {
            if (patterns[i] != '\\') continue;
            const int n = patterns[i + 1] == 'u' ? 4 : patterns[i + 1] == 'U' ? 8 : 0;
            if (n && i + 2 + n <= patterns.size()) add_cp(static_cast<uint32_t>(std::stoul(patterns.substr(i + 2, n), nullptr, 16)));
            ++i;
        }
        std::vector<CodeRange> intervals;
        for (uint32_t c = 0x20; c < 0x80; ++c)
            if (c != '"' && c != '\\') intervals.push_back({c, c});
        for (auto it = bounds.begin(); std::next(it) != bounds.end(); ++it)
            if (*it < 0xD800 || *it >= 0xE000) intervals.push_back({*it, *std::next(it) - 1});
        auto automaton = std::make_shared<Automaton>(std::make_shared<const Rules>(parse_gbnf("root ::= " + root)));
        std::map<int32_t, int> index;
        std::vector<int32_t> states{automaton->initial()};
        index[states[0]] = 0;
        std::vector<std::map<int, std::vector<CodeRange>>> moves;  // per state: target (-1 dead) -> intervals
        for (size_t k = 0; k < states.size(); ++k) {
            if (states.size() > 4000) refuse(path, "patternProperties", "the pattern's automaton is too large");
            std::map<int, std::vector<CodeRange>> m;
            for (auto iv : intervals) {
                std::string bytes;
                append_utf8(bytes, iv.lo);
                int32_t t = states[k];
                for (char b : bytes) {
                    t = automaton->step(t, static_cast<uint8_t>(b));
                    if (t < Automaton::kFirstLive) break;
                }
                int target = -1;
                if (t == Automaton::kTooDeep || t == Automaton::kTooMany || t == Automaton::kTooAmbiguous)
                    refuse(path, "patternProperties", "the pattern's automaton is too large");
                if (t >= Automaton::kFirstLive) {
                    auto [it, fresh] = index.emplace(t, static_cast<int>(states.size()));
                    if (fresh) states.push_back(t);
                    target = it->second;
                }
                auto &v = m[target];
                if (!v.empty() && v.back().hi + 1 == iv.lo) v.back().hi = iv.hi;
                else v.push_back(iv);
            }
            moves.push_back(std::move(m));
        }
        const std::string prefix = reserve("key-out");
        auto cls = [](const std::vector<CodeRange> &rs) {
            std::string c = "[";
            char buf[32];
            for (auto r : rs) {
                std::snprintf(buf, sizeof buf, r.lo > 0xFFFF ? "\\U%08X" : "\\u%04X", r.lo);
                c += buf;
                if (r.hi != r.lo) {
                    std::snprintf(buf, sizeof buf, r.hi > 0xFFFF ? "-\\U%08X" : "-\\u%04X", r.hi);
                    c += buf;
                }
            }
            return c + "]";
        };
        const std::string quote = "\"\\\"\"";
        // Past the automaton (no name or pattern can match any more): the shared rest of
        // the name, by a tail call, as in key_not_in.
        const std::string free = rule("key-free", base("rawchar") + "* " + quote);
        for (size_t k = 0; k < states.size(); ++k) {
            std::string body;
            auto add = [&](const std::string &e) { body += (body.empty() ? "" : " | ") + e; };
            if (!automaton->accepting(states[k])) add(quote);
            for (auto &[target, rs] : moves[k])
                add(cls(rs) + " " + (target < 0 ? free : prefix + "-" + std::to_string(target)));
            rules_.emplace_back(prefix + "-" + std::to_string(k), body.empty() ? base("never") : body);
            used_.insert(prefix + "-" + std::to_string(k));
        }
        return quote + " " + prefix + "-0";
    }

    // A JSON string (its quotes included) that is none of `keys`, written without escapes.
    std::string key_not_in(const std::vector<std::string> &keys) {
        struct Node {
            std::map<uint32_t, int> next;
            bool terminal = false;
        };
        std::vector<Node> trie(1);
        for (auto &k : keys) {
            int cur = 0;
            size_t i = 0;
            while (i < k.size()) {
                uint32_t cp;
                if (!decode_utf8(k, i, cp)) {
                    cp = static_cast<uint8_t>(k[i]);
                    ++i;
                }
                auto it = trie[cur].next.find(cp);
                if (it == trie[cur].next.end()) {
                    trie.push_back({});
                    it = trie[cur].next.emplace(cp, static_cast<int>(trie.size() - 1)).first;
                }
                cur = it->second;
            }
            trie[cur].terminal = true;
        }
        const std::string prefix = reserve("key-not");
        // Once the name differs from every declared one, anything may follow. An escape
        // of a quote, backslash or control character makes it differ too, unless a
        // declared name holds such characters (then no escapes at all: \u0061 is "a").
        bool plain = true;
        for (auto &k : keys)
            for (unsigned char c : k) plain &= c >= 0x20 && c != '"' && c != '\\';
        // The rest of a name that left every declared one is one shared rule, entered
        // by a tail call: whatever prefix it left at, the parser is then in the same
        // state (so the matcher builds it, and the token masks from it, once per
        // object position rather than once per prefix of every declared name). A
        // non-ASCII character outside the names' next characters likewise.
        const std::string free = rule("key-free", base(plain ? "char" : "rawchar") + "* \"\\\"\"");
        const std::string free_escape =
            plain ? rule("key-free-escape", "\"\\\\\" ( [\"\\\\bfnrt] | \"u00\" [01] [0-9a-fA-F] ) " + free) : "";
        const std::string free_multibyte = rule("key-free-multibyte", "[\\u0080-\\U0010FFFF] " + free);
        for (size_t n = 0; n < trie.size(); ++n) {
            std::string body;
            auto add = [&](const std::string &e) { body += (body.empty() ? "" : " | ") + e; };
            if (!trie[n].terminal) add("\"\\\"\"");
            std::string excluded = "\"\\\\\\x00-\\x1F";
            bool ascii_next = true;
            for (auto &[cp, child] : trie[n].next) {
                if (cp < 0x20 || cp == '"' || cp == '\\') continue;  // never written raw
                char buf[16];
                std::snprintf(buf, sizeof buf, cp > 0xFFFF ? "\\U%08X" : "\\u%04X", cp);
                add(std::string("[") + buf + "] " + prefix + "-" + std::to_string(child));
                excluded += buf;
                ascii_next &= cp < 0x80;
            }
            if (ascii_next) {
                add("[^" + excluded + "\\u0080-\\U0010FFFF] " + free);
                add(free_multibyte);
            } else {
                add("[^" + excluded + "] " + free);
            }
            if (plain) add(free_escape);
            rules_.emplace_back(prefix + "-" + std::to_string(n), body);
            used_.insert(prefix + "-" + std::to_string(n));
        }
        return "\"\\\"\" " + prefix + "-0";
    }

    std::string object_type(const json &s, const std::string &path) {
        const std::string w = ws();
        std::vector<std::pair<std::string, json>> props;
        std::set<std::string> required;
        if (s.contains("properties")) {
            if (!s["properties"].is_object()) invalid(path, "properties must be an object");
            for (auto &[k, v] : s["properties"].items()) props.push_back({k, v});
        }
        if (s.contains("required"))
            for (auto &r : s["required"]) required.insert(r.get<std::string>());
        json additional = s.contains("additionalProperties") ? s["additionalProperties"]
                                                             : json(o_.additional_properties_default);
        for (auto &r : required) {
            bool found = false;
            for (auto &p : props) found |= p.first == r;
            if (!found) props.push_back({r, additional});
        }
        const bool patterns = s.contains("patternProperties") && s["patternProperties"].is_object() &&
                              !s["patternProperties"].empty();
        int64_t min_props = 0, max_props = -1;
        if (s.contains("minProperties")) min_props = static_cast<int64_t>(s["minProperties"].get<double>());
        if (s.contains("maxProperties")) max_props = static_cast<int64_t>(s["maxProperties"].get<double>());
        const bool count_min = min_props > static_cast<int64_t>(required.size());
        const bool count_max = max_props >= 0 && !(additional == json(false) && !patterns &&
                                                   max_props >= static_cast<int64_t>(props.size()));
        if ((count_min || count_max) && !props.empty())
            refuse(path, count_min ? "minProperties" : "maxProperties",
                   "property counts are compiled only for objects without declared properties");
        if (props.empty() && additional == json(true) && !patterns && !count_min && !count_max) return base("object");
        std::vector<std::string> kv;
        std::vector<std::string> names;
        for (auto &[k, v] : props) {
            kv.push_back(gbnf_literal(json(k).dump()) + colon() +
                         visit(v, path + "/properties/" + pointer_escape(k)));
            names.push_back(k);
        }
        std::string extra, pattern_kv, pattern_union;
        const bool closed = additional.is_boolean() && !additional.get<bool>();
        if (patterns) {
            // Exact only where no name needs the complement of a pattern: additional
            // properties closed, so every other name must match a pattern; one value
            // schema for all patterns; no declared name matching a pattern.
            const json &pp = s["patternProperties"];
            const std::string ppath = path + "/patternProperties";
            bool trivial = true;
            for (auto &[p, v] : pp.items()) trivial &= v == json(true) || v == json::object();
            // With open additional properties and patterns allowing anything, patterns add nothing.
            if (!(trivial && additional == json(true))) {
                const json &value = pp.begin().value();
                RegexOptions ro;
                ro.json_string = true;
                ro.search = true;
                for (auto &[p, v] : pp.items()) {
                    // A name matching two patterns needs both schemas: one schema for all only.
                    if (v != value && !trivial)
                        refuse(ppath, "patternProperties", "patterns with different schemas are not compiled");
                    std::string e;
                    try {
                        e = regex_to_gbnf_expr(p, ro);
                    } catch (const Error &err) {
                        refuse(ppath, "patternProperties", err.what());
                    }
                    auto g = Grammar::from_gbnf("root ::= " + e + "\n");
                    for (auto &n : names) {
                        const std::string quoted = json(n).dump();
                        if (g->matches(quoted.substr(1, quoted.size() - 2)))
                            refuse(ppath, "patternProperties", "declared property '" + n + "' matches pattern '" + p + "'");
                    }
                    pattern_union += (pattern_union.empty() ? "" : " | ") + e;
                }
                pattern_kv = rule("pattern-kv", "\"\\\"\" ( " + pattern_union + " ) \"\\\"\"" + colon() +
                                                    visit(trivial ? json(true) : value, ppath));
            }
        }
        if (!closed) {
            const std::string value = visit(additional, path + "/additionalProperties");
            const std::string key = !pattern_union.empty() ? key_outside(names, pattern_union, path)
                                    : names.empty()        ? base("string")
                                                           : key_not_in(names);
            extra = rule("extra-kv", key + colon() + value);
        }
        if (!pattern_kv.empty()) extra = extra.empty() ? pattern_kv : rule("kv-any", extra + " | " + pattern_kv);
        if (count_min || count_max) {
            // A map: count its members (a duplicate name counts twice here, once in a parser).
            if (max_props >= 0 && max_props < min_props) return base("never");
            if (max_props == 0 || extra.empty()) return min_props > 0 ? base("never") : rule("object", "\"{\"" + w + "\"}\"");
            const int64_t lo = std::max<int64_t>(min_props, 1) - 1;
            const std::string rep = "{" + std::to_string(lo) + "," + (max_props >= 0 ? std::to_string(max_props - 1) : "") + "}";
            const std::string members = extra + " (" + sep() + extra + ")" + rep;
            return rule("object", "\"{\"" + w + (min_props > 0 ? members : "( " + members + " )?") + w + "\"}\"");
        }
        if (!o_.compact) {
            // Checking text: properties in any order. The rules track which required
            // properties were seen (a subset: 2^r rules, so only for few of them); an
            // optional property may repeat (a parser keeps the last, which is checked too).
            std::vector<size_t> req;
            std::string opt;
            for (size_t i = 0; i < names.size(); ++i) {
                if (required.count(names[i])) req.push_back(i);
                else opt += (opt.empty() ? "" : " | ") + kv[i];
            }
            if (!extra.empty()) opt += (opt.empty() ? "" : " | ") + extra;
            if (req.size() <= 12) {
                const std::string opt_rule = opt.empty() ? "" : rule("kv", opt);
                const std::string id = reserve("obj");
                const size_t full = (size_t(1) << req.size()) - 1;
                auto seen = [&](size_t m) { return id + "-" + std::to_string(m); };
                for (size_t m = 0; m <= full; ++m) {
                    std::string body;
                    auto add = [&](const std::string &e) { body += (body.empty() ? "" : " | ") + e; };
                    if (m == full) add("\"\"");
                    if (!opt_rule.empty()) add(sep() + opt_rule + " " + seen(m));
                    for (size_t j = 0; j < req.size(); ++j)
                        if (!(m >> j & 1)) add(sep() + kv[req[j]] + " " + seen(m | size_t(1) << j));
                    rules_.emplace_back(seen(m), body);
                    used_.insert(seen(m));
                }
                std::string start;
                auto add = [&](const std::string &e) { start += (start.empty() ? "" : " | ") + e; };
                if (req.empty()) add("\"\"");
                if (!opt_rule.empty()) add(opt_rule + " " + seen(0));
                for (size_t j = 0; j < req.size(); ++j) add(kv[req[j]] + " " + seen(size_t(1) << j));
                return rule("object", "\"{\"" + w + "( " + start + " )" + w + "\"}\"");
            }
        }
        // Schema order: none(i): no property written yet, from i on; some(i): at least one.
        const std::string id = reserve("obj");
        const size_t n = kv.size();
        auto name = [&](bool some, size_t i) { return id + (some ? "-s" : "-n") + std::to_string(i); };
        for (size_t i = n + 1; i-- > 0;) {
            std::string none, some;
            if (i == n) {
                none = extra.empty() ? "\"\"" : "( " + extra + " (" + sep() + extra + ")* )?";
                some = extra.empty() ? "\"\"" : "(" + sep() + extra + ")*";
            } else if (required.count(names[i])) {
                none = kv[i] + " " + name(true, i + 1);
                some = sep() + kv[i] + " " + name(true, i + 1);
            } else {
                none = kv[i] + " " + name(true, i + 1) + " | " + name(false, i + 1);
                some = sep() + kv[i] + " " + name(true, i + 1) + " | " + name(true, i + 1);
            }
            rules_.emplace_back(name(false, i), none);
            rules_.emplace_back(name(true, i), some);
            used_.insert(name(false, i));
            used_.insert(name(true, i));
        }
        return rule("object", "\"{\"" + w + name(false, 0) + w + "\"}\"");
    }

    std::string array_type(const json &s, const std::string &path) {
        const std::string w = ws();
        uint64_t min = s.contains("minItems") ? static_cast<uint64_t>(s["minItems"].get<double>()) : 0;
        std::optional<uint64_t> max;
        if (s.contains("maxItems")) max = static_cast<uint64_t>(s["maxItems"].get<double>());
        if (max && *max < min) return base("never");
        if (min > 100000 || (max && *max > 100000)) refuse(path, "maxItems", "item counts beyond 100000");
        std::vector<std::string> prefix;
        // Draft 4-7 tuples: items as an array, additionalItems for the rest.
        const bool tuple = s.contains("items") && s["items"].is_array();
        const char *prefix_kw = tuple ? "items" : "prefixItems";
        if (s.contains(prefix_kw)) {
            if (!s[prefix_kw].is_array()) invalid(path, "prefixItems must be an array");
            for (size_t i = 0; i < s[prefix_kw].size(); ++i)
                prefix.push_back(visit(s[prefix_kw][i], path + "/" + prefix_kw + "/" + std::to_string(i)));
        }
        const json items = tuple ? (s.contains("additionalItems") ? s["additionalItems"] : json(true))
                                 : (s.contains("items") ? s["items"] : json(true));
        const bool no_more = items.is_boolean() && !items.get<bool>();
        const std::string item = no_more ? "" : visit(items, path + "/items");
        const size_t k = prefix.size();
        if (max && *max == 0) return rule("array", "\"[\"" + w + "\"]\"");
        // Elements after the prefix: a repetition of `item`.
        auto tail = [&](uint64_t written) -> std::string {
            if (no_more) return "";
            const uint64_t lo = min > written ? min - written : 0;
            if (max && *max <= written) return "";
            std::string rep = max ? "{" + std::to_string(lo) + "," + std::to_string(*max - written) + "}"
                                  : (lo ? "{" + std::to_string(lo) + ",}" : "*");
            return "(" + sep() + item + ")" + rep;
        };
        // Position j (0-based) exists: the rest after it.
        std::function<std::string(size_t)> rest = [&](size_t j) -> std::string {
            // j elements written so far.
            if (max && j >= *max) return "";
            if (j >= k) return tail(j);
            std::string e = sep() + prefix[j] + " " + rest(j + 1);
            return j < min ? e : "(" + e + ")?";
        };
        if (k == 0 && no_more) return min > 0 ? base("never") : rule("array", "\"[\"" + w + "\"]\"");
        std::string first = k > 0 ? prefix[0] + " " + rest(1) : item + " " + tail(1);
        if (k > 0 && k < min && no_more) return base("never");
        const std::string body = min > 0 ? first : "( " + first + " )?";
        return rule("array", "\"[\"" + w + body + w + "\"]\"");
    }

    const json &root_;
    JsonSchemaOptions o_;
    std::vector<std::pair<std::string, std::string>> rules_;
    std::set<std::string> used_{"root"};
    std::map<std::string, std::string> by_body_, refs_;
    int depth_ = 0;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json &schema, const JsonSchemaOptions &options) {
    // The compiler copies sub-schemas, and copying a JSON value recurses: measure the
    // nesting first, without recursion, so a hostile document cannot exhaust the stack.
    constexpr size_t kMaxNesting = 256;
    std::vector<std::pair<const nlohmann::ordered_json *, size_t>> todo = {{&schema, 1}};
    while (!todo.empty()) {
        const auto [node, depth] = todo.back();
        todo.pop_back();
        if (depth > kMaxNesting)
            fail(MUSE_ERR_UNSUPPORTED, "JSON Schema: the document nests more than ", kMaxNesting,
                 " levels (sub-schemas may nest 200 levels at most)");
        if (node->is_structured())
            for (const auto &child : *node) todo.emplace_back(&child, depth + 1);
    }
    // A schema whose values have unexpected types can trip a JSON accessor or a
    // conversion deep in the compiler; those are the caller's bad input, not a crash.
    try {
        return SchemaCompiler(schema, options).run();
    } catch (const muse::Error &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, "JSON Schema: ", e.what());
    }
}

}  // namespace muse::grammar
