// Unit tests of the Jinja engine (src/jinja/jinja*.cpp). Expected strings are
// what Python's jinja2 3.1 renders with transformers' settings (trim_blocks,
// lstrip_blocks, loopcontrols, ImmutableSandboxedEnvironment); the Python
// conformance test (tests/python/test_jinja_templates.py) checks real templates.
#include "jinja/jinja.h"
#include "core/error.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using muse::jinja::Template;
using json = nlohmann::ordered_json;

namespace {

json ctx() {
    return json::parse(R"({
        "n": 7, "f": 2.5, "s": "  Hi  ", "z": null, "t": true,
        "lst": [3, 1, 2], "d": {"b": 2, "a": 1},
        "users": [{"name": "bo", "age": 30}, {"name": "al", "age": 25}],
        "u8": "héllo ☕"
    })");
}

std::string render(const std::string &src, const json &c = ctx()) { return Template::parse(src).render(c); }

// Renders and returns the muse::Error; fails the test if none is thrown.
muse::Error render_error(const std::string &src, const json &c = ctx()) {
    try {
        render(src, c);
    } catch (const muse::Error &e) {
        return e;
    }
    FAIL("expected an error rendering: " << src);
    return muse::Error(MUSE_OK, "");
}

} // namespace

TEST_CASE("jinja: literals and printing follow Python") {
    CHECK(render("{{ 'a' }}{{ \"b\" }}{{ 'x' 'y' }}") == "abxy");
    CHECK(render(R"({{ 'tab\tnl\n \u00e9 \x41 \\ \'' }})") == "tab\tnl\n é A \\ '");
    CHECK(render("{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ true }} {{ False }} {{ none }}") ==
          "1 1.5 1000.0 1000 True False None");
    CHECK(render("{{ [1, 'a', none, true, 1.0] }}") == "[1, 'a', None, True, 1.0]");
    CHECK(render("{{ (1,) }} {{ (1, 2) }} {{ {'k': 'v', 'n': [1]} }}") == "(1,) (1, 2) {'k': 'v', 'n': [1]}");
    CHECK(render("{{ [\"it's\", 'say \"hi\"', 'a\\nb'] }}") == "[\"it's\", 'say \"hi\"', 'a\\nb']");
    CHECK(render("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 123.0 }} {{ 1 / 3 }}") ==
          "0.30000000000000004 1e+16 1e-05 123.0 0.3333333333333333");
}

TEST_CASE("jinja: arithmetic has Python semantics") {
    CHECK(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}") == "7 9 64 4");
    CHECK(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 6 / 2 }}") == "3 -4 -2 2 3.5 3.0");
    CHECK(render("{{ -7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }}") == "-4.0 0.5 0.5");
    CHECK(render("{{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] * 2 }} {{ [1] + [2] }}") == "ababab xx [1, 1] [1, 2]");
    CHECK(render("{{ 'a' ~ 1 ~ none ~ true ~ missing }}") == "a1NoneTrue");
    CHECK(render("{{ 1 == 1.0 }} {{ true == 1 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}") == "True True True False");
    CHECK(render("{{ 'H' in s }} {{ 2 in lst }} {{ 'a' in d }} {{ 'q' not in d }}") == "True True True True");
    CHECK(render("{{ n and 'x' }} {{ z or 'dflt' }} {{ not n }} {{ n if n > 5 else 'small' }}|{{ 'x' if false }}|") ==
          "x dflt False 7||");
}

TEST_CASE("jinja: attribute, subscript and slices") {
    CHECK(render("{{ d.a }} {{ d['b'] }} {{ lst[-1] }} {{ lst.1 }} {{ users[0].name }}") == "1 2 2 1 bo");
    CHECK(render("{{ lst[1:] }} {{ lst[:-1] }} {{ lst[::-1] }} {{ lst[::2] }} {{ u8[1:4] }} {{ u8[::-1] }}") ==
          "[1, 2] [3, 1] [2, 1, 3] [3, 2] éll ☕ olléh");
    // Dict methods win over keys for `.`, keys win for `[]`, as in jinja2.
    CHECK(render("{{ {'items': 1}['items'] }} {{ d.items()|list }}") == "1 [('b', 2), ('a', 1)]");
}

TEST_CASE("jinja: undefined behaves like jinja2's default Undefined") {
    CHECK(render("[{{ missing }}][{{ d.missing }}][{{ lst[10] }}][{{ z.attr }}]") == "[][][][]");
    CHECK(render("{{ missing is defined }} {{ d.x is undefined }} {{ missing|length }} {{ missing|default('x') }}") ==
          "False True 0 x");
    CHECK(render("{% for x in missing %}x{% endfor %}{% if missing %}t{% else %}f{% endif %}") == "f");
    auto e = render_error("line one\n{{ missing.attr }}");
    CHECK(e.status() == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(std::string(e.what()) == "template line 2: 'missing' is undefined");
    CHECK_THAT(render_error("{{ d.nope.x }}").what(), Catch::Contains("'dict object' has no attribute 'nope'"));
}

TEST_CASE("jinja: whitespace control matches trim_blocks and lstrip_blocks") {
    CHECK(render("a  {{- ' b ' -}}  c") == "a b c");
    CHECK(render("line1\n    {% if true %}\n    indented\n    {% endif %}\nline2") == "line1\n    indented\nline2");
    CHECK(render("x {%+ if true %}y{% endif %}") == "x y");
    CHECK(render("{% if true +%}\nz{% endif %}") == "\nz");
    CHECK(render("  {#- c -#}  a {# c #} b\n{# c #}\nc") == "a  b\nc");
    CHECK(render("{% for i in lst %}\n  {{ i }}\n{% endfor %}\n") == "  3\n  1\n  2\n");
    CHECK(render("text\n{{ 'v' }}\n") == "text\nv");  // one trailing newline is dropped
    CHECK(render("a\r\nb") == "a\nb");
    CHECK(render("{% raw %}{{ not rendered }}{% endraw %}") == "{{ not rendered }}");
}

TEST_CASE("jinja: set, namespace and scoping") {
    CHECK(render("{% set x = 5 %}{% set y, w = 1, 2 %}{{ x }}{{ y }}{{ w }}{% set t2 = 1, 2 %}{{ t2 }}") == "512(1, 2)");
    CHECK(render("{% set ns = namespace(c=0) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}") == "6");
    // A loop body is a scope per iteration; if blocks are not scopes.
    CHECK(render("{% for i in range(3) %}{% if i == 1 %}{% set x = 5 %}{% endif %}[{{ x }}]{% endfor %}{{ x }}") == "[][5][]");
    CHECK(render("{% if true %}{% set z2 = 1 %}{% endif %}{{ z2 }}") == "1");
    CHECK(render("{% set b %}inner {{ n }}{% endset %}[{{ b }}]{% set u | upper %}shout{% endset %}{{ u }}") == "[inner 7]SHOUT");
    CHECK(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]") == "3[]");
    CHECK_THAT(render_error("{% set d.x = 1 %}").what(), Catch::Contains("non-namespace"));
    // Block set and filter block bodies are scopes of their own.
    CHECK(render("{% set b %}{% set inner = 1 %}{% endset %}[{{ inner }}]{% filter upper %}{% set f2 = 1 %}{% endfilter %}[{{ f2 }}]") == "[][]");
    // Macros see the defining scope at call time, not the caller's loop.
    CHECK(render("{% set v = 1 %}{% macro m() %}{{ v }}{{ loop is defined }}{% endmacro %}{% set v = 2 %}{% for i in [0] %}{{ m() }}{% endfor %}") ==
          "2False");
}

TEST_CASE("jinja: if and for") {
    CHECK(render("{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}") == "mid");
    CHECK(render("{% for i in lst %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
                 "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}") ==
          "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;");
    CHECK(render("{% for i in lst %}{{ loop.previtem }}-{{ loop.nextitem }}|{{ loop.cycle('a', 'b') }} {% endfor %}") ==
          "-1|a 3-2|b 1-|a ");
    CHECK(render("{% for i in [] %}x{% else %}empty{% endfor %}") == "empty");
    CHECK(render("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}") == "b=2,a=1,ba");
    CHECK(render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}"
                 "{{ i }}{% endfor %}") == "0134");
    CHECK(render("{% for i in range(6) if i is odd %}{{ i }}{{ loop.length }}{% endfor %}") == "133353");
    CHECK(render("{% for x in [1, [2, [3]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{{ loop.depth }}"
                 "{% endif %}{% endfor %}") == "112233");
    CHECK(render("{% for c in u8 %}[{{ c }}]{% endfor %}") == "[h][é][l][l][o][ ][☕]");
}

TEST_CASE("jinja: macros, call and filter blocks") {
    CHECK(render("{% macro m(a, b=2, c='z') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='q') }}") ==
          "1-2-z 1-3-z 1-2-q");
    CHECK(render("{% macro r(k) %}{% if k > 0 %}{{ k }}{{ r(k - 1) }}{% endif %}{% endmacro %}{{ r(3) }}") == "321");
    CHECK(render("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}x{{ n }}{% endcall %}") ==
          "<b>x7</b>");
    CHECK(render("{% macro args() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ args(1, 2, k=3) }}") == "(1, 2){'k': 3}");
    CHECK(render("{% filter upper %}hello {{ n }}{% endfilter %}") == "HELLO 7");
    CHECK(render("{% generation %}kept{% endgeneration %}") == "kept");
    CHECK_THAT(render_error("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}").what(), Catch::Contains("takes not more than 1 argument"));
    CHECK_THAT(render_error("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, b=2) }}").what(), Catch::Contains("no keyword argument 'b'"));
    CHECK_THAT(render_error("{% macro m() %}x{% endmacro %}{% call m() %}body{% endcall %}").what(), Catch::Contains("special caller argument"));
}

TEST_CASE("jinja: filters") {
    CHECK(render("{{ s|trim }}|{{ s|length }}|{{ 'héllo'|upper }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}") ==
          "Hi|6|HÉLLO|Hello World|Hello");
    CHECK(render("{{ lst|sort }} {{ lst|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort }} {{ users|sort(attribute='age')|map(attribute='name')|list }}") ==
          "[1, 2, 3] [3, 2, 1] ['A', 'a', 'b'] ['al', 'bo']");
    CHECK(render("{{ lst|first }} {{ lst|last }} {{ lst|min }} {{ lst|max }} {{ lst|sum }} {{ lst|reverse|list }} {{ 'abc'|reverse }}") ==
          "3 2 1 3 6 [2, 1, 3] cba");
    CHECK(render("{{ lst|join(', ') }} {{ users|join(',', attribute='name') }} {{ ['a', 'A', 'b']|unique|list }}") ==
          "3, 1, 2 bo,al ['a', 'b']");
    CHECK(render("{{ users|selectattr('age', 'equalto', 30)|map(attribute='name')|join }} {{ lst|select('odd')|list }} {{ lst|reject('odd')|list }}") ==
          "bo [3, 1] [2]");
    CHECK(render("{{ d|dictsort }} {{ d|items|list }}") == "[('a', 1), ('b', 2)] [('b', 2), ('a', 1)]");
    CHECK(render("{{ ''|default('e', true) }} {{ '42'|int + 1 }} {{ '4.5'|float }} {{ 'x'|int }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }}") ==
          "e 43 4.5 0 3 2.57 2.0");
    CHECK(render("{{ 'a-b'|replace('-', '+') }} {{ 'a\\nb'|indent(2) }} {{ 'a\\nb'|indent(2, first=true) }}") == "a+b a\n  b   a\n  b");
    CHECK(render("{{ '%s-%d'|format('a', 3) }} {{ '<&>'|e }} {{ 'a'|safe + '<' }}") == "a-3 &lt;&amp;&gt; a&lt;");
    // jinja2's map/select/... return generators: truthy, no len(), not JSON.
    CHECK(render("{% if [] | select('odd') %}truthy{% endif %}") == "truthy");
    CHECK_THAT(render_error("{{ lst|map('string')|tojson }}").what(), Catch::Contains("not JSON serializable"));
}

TEST_CASE("jinja: tojson is Python's json.dumps with ensure_ascii=False") {
    CHECK(render("{{ d|tojson }} {{ u8|tojson }} {{ z|tojson }} {{ t|tojson }} {{ [1.0, 1e16, 0.5]|tojson }}") ==
          "{\"b\": 2, \"a\": 1} \"héllo ☕\" null true [1.0, 1e+16, 0.5]");
    CHECK(render("{{ 'q\"\\\\\\n<>&\\x01'|tojson }}") == "\"q\\\"\\\\\\n<>&\\u0001\"");
    CHECK(render("{{ d|tojson(indent=2) }}") == "{\n  \"b\": 2,\n  \"a\": 1\n}");
    CHECK(render("{{ d|tojson(sort_keys=true) }} {{ [] |tojson(indent=2) }} {{ {'k': []}|tojson(indent=2) }}") ==
          "{\"a\": 1, \"b\": 2} [] {\n  \"k\": []\n}");
    CHECK(render("{{ {1: 'x'}|tojson }}") == "{\"1\": \"x\"}");
}

TEST_CASE("jinja: tests") {
    CHECK(render("{{ n is odd }} {{ n is even }} {{ n is divisibleby 7 }} {{ n is divisibleby(2) }} {{ n is number }} {{ f is float }}") ==
          "True False True False True True");
    CHECK(render("{{ s is string }} {{ d is mapping }} {{ lst is sequence }} {{ lst is iterable }} {{ z is none }} {{ t is boolean }}") ==
          "True True True True True True");
    CHECK(render("{{ n is eq 7 }} {{ n is ne 7 }} {{ n is lt 8 }} {{ n is ge 7 }} {{ 2 is in lst }} {{ d is not mapping }} {{ t is true }}") ==
          "True False True True True False True");
}

TEST_CASE("jinja: string, dict and list methods") {
    CHECK(render("{{ s.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ s.lstrip() }}|{{ s.rstrip() }}|") == "Hi|a|Hi  |  Hi|");
    CHECK(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}") ==
          "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b,c'] ['a,b', 'c']");
    CHECK(render("{{ s.startswith('  H') }} {{ s.endswith(('x', '  ')) }} {{ 'abc'.find('c') }} {{ 'aXbX'.count('X') }}") ==
          "True True 2 2");
    CHECK(render("{{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{:.2f}'.format(3.14159) }}") ==
          "1 and b aba 3.14");
    CHECK(render("{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dv') }} {{ d.keys()|list }} {{ d.values()|list }}") ==
          "1 None dv ['b', 'a'] [2, 1]");
    // The immutable sandbox forbids mutating lists and dicts.
    CHECK_THAT(render_error("{% set x = lst.append(4) %}").what(), Catch::Contains("unsafe"));
    CHECK_THAT(render_error("{{ d.pop('a') }}").what(), Catch::Contains("unsafe"));
}

TEST_CASE("jinja: globals") {
    CHECK(render("{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}") == "[0, 1, 2] [1, 4, 7] [5, 3, 1]");
    CHECK(render("{{ namespace(a=1).a }} {{ dict(a=1) }}") == "1 {'a': 1}");
    auto t = Template::parse("{{ strftime_now('%Y-%m-%d %H:%M %B') }}");
    t.now = std::chrono::system_clock::time_point(std::chrono::seconds(1768478400)); // 2026-01-15 12:00 UTC
    CHECK(t.render(json::object()) == "2026-01-15 12:00 January");
    auto e = render_error("ok\n\n{{ raise_exception('Only user and assistant roles are supported') }}");
    CHECK(e.status() == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(std::string(e.what()) == "template line 3: Only user and assistant roles are supported");
}

TEST_CASE("jinja: syntax errors name the line") {
    auto syntax = [](const std::string &src) {
        try {
            Template::parse(src);
        } catch (const muse::Error &e) {
            CHECK(e.status() == MUSE_ERR_FORMAT);
            return std::string(e.what());
        }
        FAIL("expected a syntax error: " << src);
        return std::string();
    };
    CHECK(syntax("a\n{% if x %}\nunclosed") == "template line 3: unexpected end of template; the block opened at line 2 expects 'endif'");
    CHECK(syntax("\n\n{{ 1 + }}") == "template line 3: unexpected '}}'");
    CHECK(syntax("{% endif %}") == "template line 1: unknown tag 'endif'");
    CHECK(syntax("x\n{{ 'unterminated }}") == "template line 2: unterminated string literal");
    CHECK(syntax("{# no end") == "template line 1: missing end of comment tag");
    CHECK(syntax("\n{{ (1, 2 }}") == "template line 2: unexpected '}', expected ')'");
    CHECK(syntax("{% for %}{% endfor %}") == "template line 1: expected a name, got '%}'");
    // As in jinja2, an if test takes no inline if-expression (a set value does).
    CHECK(syntax("{% if a if b else c %}{% endif %}") == "template line 1: expected end of statement '%}', got 'if'");
}

TEST_CASE("jinja: unsupported constructs are reported, not misrendered") {
    auto unsupported = [](const std::string &src) {
        try {
            Template::parse(src);
        } catch (const muse::Error &e) {
            CHECK(e.status() == MUSE_ERR_UNSUPPORTED);
            return std::string(e.what());
        }
        FAIL("expected MUSE_ERR_UNSUPPORTED: " << src);
        return std::string();
    };
    CHECK(unsupported("x\n{% include 'other.jinja' %}") == "template line 2: the 'include' tag is not supported");
    CHECK(unsupported("{% extends 'base' %}") == "template line 1: the 'extends' tag is not supported");
    CHECK(unsupported("{{ f(*args) }}") == "template line 1: '*args' and '**kwargs' in calls is not supported");
    CHECK_THAT(render_error("{{ 'x'|groupby('a') }}").what(), Catch::Contains("not supported"));
}

TEST_CASE("jinja: hostile templates fail cleanly") {
    CHECK_THAT(render_error("{% macro r(k) %}{{ r(k + 1) }}{% endmacro %}{{ r(0) }}").what(),
               Catch::Contains("maximum recursion depth exceeded"));
    CHECK_THAT(render_error("{{ range(10 ** 9)|length }}").what(), Catch::Contains("range too big"));
    CHECK_THAT(render_error("{{ 'a' * 10 ** 12 }}").what(), Catch::Contains("too large"));
    CHECK_THAT(render_error("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}").what(),
               Catch::Contains("too large"));
    CHECK_THAT(render_error("{{ 2 ** 64 }}").what(), Catch::Contains("integer overflow"));
    CHECK_THAT(render_error("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}").what(),
               Catch::Contains("nesting too deep"));
    CHECK_THAT(render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").what(), Catch::Contains("nesting too deep"));
    CHECK_THAT(render_error("{{ 'x'|center(10 ** 9) }}").what(), Catch::Contains("too large"));
    CHECK_THAT(render_error("{% for i in range(1000000) %}{{ 'x' * 1000 }}{% endfor %}").what(), Catch::Contains("too large"));
    json deep_ctx = json::array();
    for (int k = 0; k < 1000; ++k) deep_ctx = json::array({deep_ctx});  // past the 512 limit; nlohmann copies recursively
    CHECK_THROWS_AS(render("{{ x }}", json{{"x", deep_ctx}}), muse::Error);
    std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
    CHECK_THROWS_AS(Template::parse("{{ " + deep + " }}"), muse::Error);
    std::string ifs;
    for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
    CHECK_THROWS_AS(Template::parse(ifs), muse::Error);
    std::string chain = "{{ x";
    for (int k = 0; k < 20000; ++k) chain += ".a";
    CHECK_THROWS_AS(Template::parse(chain + " }}"), muse::Error);
}

TEST_CASE("jinja: the work budget stops runaway loops with a clear error") {
    // 10^12 iterations of an empty body: without the budget this runs for hours; with
    // the default one it fails in about a second.
    const muse::Error e =
        render_error("{% for a in range(1000000) %}{% for b in range(1000000) %}{% endfor %}{% endfor %}");
    CHECK(e.status() == MUSE_ERR_INVALID_ARGUMENT);
    CHECK_THAT(e.what(), Catch::Contains("units of work") && Catch::Contains("template line 1"));
    // Work that is not a statement is charged too: a filter over a list in a loop, and a
    // loop condition that keeps nothing (a small budget keeps the test fast).
    for (const char *src : {"{% set l = range(1000)|list %}{% for a in l %}{{ l|select('odd')|list|length }}{% endfor %}",
                            "{% for a in range(1000) %}{% for b in range(1000) if b < 0 %}{% endfor %}{% endfor %}"}) {
        Template t = Template::parse(src);
        t.max_work = 100000;
        INFO(src);
        CHECK_THROWS_WITH(t.render(json::object()), Catch::Contains("more than 100000 units of work"));
    }
    // Lists share their elements: [x, x] nested 40 deep is cheap to build but has 2^40
    // leaves to print, compare or encode; a list of one long string repeated copies it.
    const std::string dag =
        "{% set ns = namespace(d=1) %}{% for i in range(40) %}{% set ns.d = [ns.d, ns.d] %}{% endfor %}";
    for (const std::string &src : {dag + "{{ ns.d }}", dag + "{{ ns.d|tojson }}", dag + "{{ ns.d == [ns.d[0], ns.d[1]] }}",
                                   std::string("{% set big = 'x' * 10000000 %}{{ ([big] * 1000)|length }}")}) {
        Template t = Template::parse(src);
        t.max_work = 100000;
        INFO(src);
        CHECK_THROWS_WITH(t.render(json::object()), Catch::Contains("more than 100000 units of work"));
    }
    // Output that grows with a width: refused before it is written.
    CHECK_THAT(render_error("{{ '%1000000000d' % 1 }}").what(), Catch::Contains("format width or precision too large"));
    CHECK_THAT(render_error("{{ '%.500f' % 1.5 }}").what(), Catch::Contains("format width or precision too large"));
    CHECK(render("{{ '%5d|%.3f|%400d' % (42, 1.5, 7) }}").size() == 5 + 1 + 5 + 1 + 400);
    CHECK_THAT(render_error("{{ {'a': 1}|tojson(indent=1000000000) }}").what(), Catch::Contains("too large"));
    CHECK_THAT(render_error("{% set ns = namespace(d=1) %}{% for i in range(400) %}{% set ns.d = [ns.d] %}{% endfor %}"
                            "{{ ns.d|tojson(indent=1000000)|length }}")
                   .what(),
               Catch::Contains("JSON text too large"));
    // The budget is per render, and adjustable.
    Template t = Template::parse("{% for a in range(1000) %}{{ a }}{% endfor %}");
    CHECK(t.render(json::object()).size() == 2890);
    CHECK(t.render(json::object()).size() == 2890);  // a second render starts afresh
    t.max_work = 1500;
    CHECK_THROWS_WITH(t.render(json::object()), Catch::Contains("more than 1500 units of work"));
    t.max_work = 10000;
    CHECK(t.render(json::object()).size() == 2890);
}
