"""Conformance of muse's Jinja engine with Python's jinja2, as transformers uses it.

Every chat template in shared/templates renders a suite of conversations twice:
with jinja2 configured exactly as Hugging Face transformers configures it
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the
`{% generation %}` tag, a tojson that keeps non-ASCII, raise_exception and
strftime_now) and with muse's `jinja-render --multi`. The two renderings must
be byte-for-byte equal; where jinja2 raises, muse must fail too. (transformers
registers its AssistantTracker extension for `{% generation %}`; it is mirrored
here, else jinja2 itself would reject the templates that use the tag.)

The same comparison runs on one-line snippets of each language feature, on
snippets that must fail, and on seeded random mixes of whitespace control and of
nested scopes (set / for / macro / call / block set).

Environment: MUSE_JINJA_RENDER (the jinja-render binary; else derived from
MUSE_LIBRARY's build tree) and MUSE_SHARED_DIR (the shared/ folder; else
../shared next to the repository).
"""

import calendar
import datetime
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

jinja2 = pytest.importorskip("jinja2")
from jinja2 import nodes  # noqa: E402
from jinja2.ext import Extension  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Templates muse does not render (at most a handful), with the construct at fault.
KNOWN_UNSUPPORTED = {
    # "file.jinja": "the exact unsupported construct",
}

FIXED_NOW = datetime.datetime(2026, 1, 15, 12, 0, 0)
FIXED_EPOCH = calendar.timegm(FIXED_NOW.timetuple())


def shared_dir():
    env = os.environ.get("MUSE_SHARED_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        if (cand / "templates").is_dir():
            return cand
    return None


def jinja_render_binary():
    env = os.environ.get("MUSE_JINJA_RENDER")
    if env:
        return Path(env)
    lib = os.environ.get("MUSE_LIBRARY")
    if lib:
        for parent in Path(lib).resolve().parents:
            cand = parent / "tests" / "jinja-render"
            if cand.exists():
                return cand
    return None


SHARED = shared_dir()
TEMPLATES = sorted((SHARED / "templates").glob("*.jinja")) if SHARED else []


# ---- jinja2 as transformers sets it up ----------------------------------------


class AssistantTracker(Extension):
    """transformers' `{% generation %}` tag; outside training it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_assistant"), [], [], body).set_lineno(lineno)

    def _render_assistant(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# ---- the conversation suite -----------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "strict": {"type": "boolean", "default": False},
                "filters": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def call(id_, name, args):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "The capital of France is Paris."}
TOOL_TURNS = [
    {"role": "user", "content": "What's the weather in Paris and in Zürich?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            call("call_1", "get_weather", {"city": "Paris", "unit": "celsius"}),
            call("call_2", "get_weather", {"city": "Zürich", "days": 2}),
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temperature": 21.5, "sky": "clear"}'},
    {"role": "tool", "tool_call_id": "call_2", "name": "get_weather", "content": "Cloudy, 12 °C"},
    {"role": "assistant", "content": "Paris: 21.5 °C and clear. Zürich: cloudy, 12 °C."},
]


def conversations():
    base = {"bos_token": "<s>", "eos_token": "</s>", "tools": None, "documents": None}

    def conv(name, messages, **kw):
        ctx = dict(base)
        ctx["messages"] = messages
        ctx.setdefault("add_generation_prompt", True)
        ctx.update(kw)
        if name == "no-generation-flag":
            del ctx["add_generation_prompt"], ctx["tools"], ctx["documents"]
        return name, ctx

    return [
        conv("system-user", [SYSTEM, USER]),
        conv("user-only-no-prompt", [USER], add_generation_prompt=False),
        conv("multi-turn", [SYSTEM, USER, ASSISTANT, {"role": "user", "content": "And of Italy?"}]),
        conv("ends-with-assistant", [USER, ASSISTANT], add_generation_prompt=False),
        conv("tools-defined", [SYSTEM, {"role": "user", "content": "Weather in Paris?"}], tools=TOOLS),
        conv("tool-calls", [SYSTEM] + TOOL_TURNS, tools=TOOLS, add_generation_prompt=False),
        conv("tool-calls-pending", TOOL_TURNS[:4], tools=TOOLS),
        conv(
            "single-tool-call-null-content",
            [
                {"role": "user", "content": "Search for jinja."},
                {"role": "assistant", "content": None, "tool_calls": [call("c1", "search", {"query": "jinja", "strict": True, "filters": ["docs", "code"]})]},
                {"role": "tool", "tool_call_id": "c1", "name": "search", "content": "Jinja is a template engine."},
            ],
            tools=[SEARCH_TOOL],
        ),
        conv(
            "reasoning",
            [
                USER,
                {"role": "assistant", "content": "Paris.", "reasoning_content": "The user asks for France's capital.\nIt is Paris."},
                {"role": "user", "content": "Why?"},
            ],
            enable_thinking=True,
        ),
        conv(
            "reasoning-last-assistant",
            [USER, {"role": "assistant", "content": "Paris.", "reasoning_content": "Easy: Paris."}],
            add_generation_prompt=False,
            enable_thinking=True,
        ),
        conv("thinking-off", [SYSTEM, USER], enable_thinking=False),
        conv("thinking-on", [USER], enable_thinking=True),
        conv("effort-low", [SYSTEM, USER], reasoning_effort="low"),
        conv("effort-high-tools", [USER], reasoning_effort="high", tools=TOOLS),
        conv(
            "content-parts",
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A cat on a mat."}]},
                {"role": "user", "content": [{"type": "text", "text": "And the colour?"}]},
            ],
        ),
        conv(
            "non-ascii",
            [
                {"role": "system", "content": "Réponds en français. 日本語も可。"},
                {"role": "user", "content": "Grüße! Ça va? 🌍 «quotes» \"double\" 'single' \\ back\tslash"},
                {"role": "assistant", "content": "Très bien, merci — naïve café ☕."},
                {"role": "user", "content": "Ünïcödé\nnew line"},
            ],
        ),
        conv("no-tools-variable", [USER], tools=[]),
        conv("long-multi-turn", [SYSTEM] + [USER, ASSISTANT] * 3 + [{"role": "user", "content": "Thanks!"}]),
        conv(
            "reasoning-with-tool-calls",
            [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "I should call the weather tool.",
                    "tool_calls": [call("call_9", "get_weather", {"city": "Paris"})],
                },
                {"role": "tool", "tool_call_id": "call_9", "name": "get_weather", "content": "Sunny"},
            ],
            tools=TOOLS,
            enable_thinking=True,
        ),
        conv(
            "string-arguments",
            [
                {"role": "user", "content": "Search"},
                {"role": "assistant", "content": "", "tool_calls": [call("c2", "search", '{"query": "x"}')]},
                {"role": "tool", "tool_call_id": "c2", "content": "nothing found"},
            ],
            tools=[SEARCH_TOOL],
        ),
        conv("system-parts", [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, USER]),
        conv("empty-messages", []),
        conv("no-generation-flag", [SYSTEM, USER]),
        conv("named-user-empty-assistant", [{"role": "user", "content": "Hi", "name": "alice"}, {"role": "assistant", "content": ""}], add_generation_prompt=False),
        conv(
            "documents-and-extras",
            [USER],
            documents=[{"title": "Doc ünï", "text": "Paris is the capital."}, {"title": "Doc 2", "text": "Lyon."}],
            builtin_tools=["brave_search", "wolfram_alpha"],
            date_string="15 Jan 2026",
            tools=[WEATHER_TOOL],
        ),
        conv(
            "nested-arguments-thinking-key",
            [
                {"role": "system", "content": "Tools: use them."},
                {"role": "user", "content": "Plan a trip"},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "thinking": "Need weather first.",
                    "tool_calls": [
                        call("t1", "search", {"query": "trains", "filters": ["fast", "cheap"], "strict": False, "meta": {"max": 2.5, "note": None}})
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "name": "search", "content": [{"type": "text", "text": "ICE 42"}]},
                {"role": "user", "content": "Great, book it."},
            ],
            tools=TOOLS,
            enable_thinking=False,
        ),
        conv("effort-medium-thinking-off", [SYSTEM, USER, ASSISTANT], reasoning_effort="medium", enable_thinking=False, add_generation_prompt=False),
    ]


CONVERSATIONS = conversations()


def render_python(compiled, ctx):
    if isinstance(compiled, Exception):
        return None, f"{type(compiled).__name__}: {compiled}"
    try:
        return compiled.render(**ctx), None
    except Exception as e:  # jinja2 raised: muse must fail as well
        return None, f"{type(e).__name__}: {e}"


def render_muse(binary, template_path, contexts):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(contexts, f, ensure_ascii=False)
        path = f.name
    try:
        proc = subprocess.run(
            [str(binary), "--now", str(FIXED_EPOCH), "--multi", str(template_path), path],
            capture_output=True,
            timeout=60,
        )
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        return [{"error": err}] * len(contexts)
    return json.loads(proc.stdout.decode("utf-8"))


@pytest.mark.skipif(SHARED is None, reason="shared/templates not found (set MUSE_SHARED_DIR)")
@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_template_matches_jinja2(template):
    binary = jinja_render_binary()
    if binary is None or not binary.exists():
        pytest.skip("jinja-render not found (set MUSE_JINJA_RENDER)")
    if template.name in KNOWN_UNSUPPORTED:
        pytest.xfail(KNOWN_UNSUPPORTED[template.name])
    source = template.read_text(encoding="utf-8")
    try:
        compiled = make_env().from_string(source)
    except Exception as e:  # a template jinja2 rejects must fail in muse too
        compiled = e
    contexts = [ctx for _, ctx in CONVERSATIONS]
    results = render_muse(binary, template, contexts)
    assert len(results) == len(contexts)
    failures = []
    for (name, ctx), got in zip(CONVERSATIONS, results):
        want, want_err = render_python(compiled, ctx)
        if want_err is not None:
            if "error" not in got:
                failures.append(f"[{template.name} / {name}] jinja2 raised ({want_err}) but muse rendered")
            continue
        if "error" in got:
            failures.append(f"[{template.name} / {name}] muse failed: {got['error']}")
        elif got["output"] != want:
            a, b = got["output"], want
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            failures.append(
                f"[{template.name} / {name}] output differs at char {i}:\n"
                f"  muse:   {a[max(0, i - 60):i + 60]!r}\n  jinja2: {b[max(0, i - 60):i + 60]!r}"
            )
    assert not failures, f"{len(failures)} of {len(CONVERSATIONS)} conversations differ:\n" + "\n".join(failures)


def test_suite_is_wide():
    # The suite must exercise every feature the chat templates branch on.
    flat = json.dumps([ctx for _, ctx in CONVERSATIONS], ensure_ascii=False)
    for needle in ("tool_calls", "reasoning_content", "enable_thinking", "reasoning_effort", '"type": "image"', "Zürich"):
        assert needle in flat


# ---- language features, one snippet each ------------------------------------------

SNIPPET_CONTEXT = {
    "s": "  Hello, World  ",
    "n": 7,
    "f": 2.5,
    "neg": -7,
    "t": True,
    "z": None,
    "lst": [3, 1, 2],
    "words": ["b", "A", "c", "a"],
    "d": {"b": 2, "a": 1, "items": "key named items"},
    "users": [{"name": "bo", "age": 30, "tags": ["x"]}, {"name": "al", "age": 25}, {"name": "cy", "age": 30}],
    "u8": "héllo wörld ☕",
    "nested": {"a": {"b": [1, {"c": "deep"}]}},
    "big": 12345678901234,
    "fl": [0.1, 1e16, 1e-5, 123.0, 1.5e300, -0.0],
}

SNIPPETS = [
    # output and literals
    "{{ 'a' }}{{ \"b\" }}{{ 'it''s' }}{{ 'tab\\tnew\\nline \\u00e9 \\x41 \\\\' }}",
    "{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ true }} {{ True }} {{ none }} {{ None }} {{ false }}",
    "{{ [1, 'a', none, true, 1.0] }} {{ (1,) }} {{ (1, 2) }} {{ () }} {{ {'k': 'v', 'n': [1]} }}",
    "{{ fl }}{% for x in fl %} {{ x }}{% endfor %}",
    "{{ \"it's\" }} {{ [\"it's\", 'say \"hi\"', 'both \\' \"'] }} {{ ['a\\nb', '\\x01'] }}",
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }}",
    "{{ 7 / 2 }} {{ 6 / 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 / 3 }} {{ 0.1 + 0.2 }} {{ 2 ** -1 }} {{ 10 ** 15 }} {{ 1e15 * 10 }}",
    "{{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none ~ true }} {{ 'a' + 'b' }} {{ [1] + [2] }}",
    "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}",
    "{{ 'ell' in s }} {{ 2 in lst }} {{ 'a' in d }} {{ 'zz' not in d }} {{ 5 not in lst }}",
    "{{ n and 'x' }} {{ z or 'dflt' }} {{ not n }} {{ 0 or '' }}|{{ n if n > 5 else 'small' }} {{ 'x' if false }}|",
    # variables and access
    "{{ d.a }} {{ d['b'] }} {{ d['items'] }} {{ nested.a.b[1].c }} {{ nested['a']['b'][0] }} {{ lst[-1] }} {{ lst.1 }}",
    "{{ missing }}|{{ d.missing }}|{{ lst[10] }}|{{ z.attr }}|{{ missing is defined }} {{ d.missing is undefined }}",
    "{{ lst[1:] }} {{ lst[:-1] }} {{ lst[::-1] }} {{ lst[::2] }} {{ s[2:7] }} {{ u8[1:4] }} {{ u8[::-1] }} {{ lst[5:] }}",
    # statements
    "{% set x = 5 %}{% set y, w = 1, 2 %}{{ x }}{{ y }}{{ w }}{% set t2 = 1, 2 %}{{ t2 }}",
    "{% set ns = namespace(c=0, l=[]) %}{% for i in range(3) %}{% set ns.c = ns.c + i %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.c }} {{ ns.l }}",
    "{% set block %}inner {{ n }}{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}",
    "{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}{% if z %}no{% endif %}",
    "{% for i in lst %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for i in lst %}{{ loop.previtem }}-{{ loop.nextitem }}|{{ loop.cycle('odd', 'even') }} {% endfor %}",
    "{% for i in [] %}x{% else %}empty{% endfor %}{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% for i in range(6) if i is odd %}{{ i }}{{ loop.length }}{% endfor %} {% for c in 'héy' %}[{{ c }}]{% endfor %}",
    "{% for i in range(3) %}{% set x = i %}{{ x }}{% endfor %}[{{ x }}]{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{{ i }}{% endfor %}{% endfor %}",
    "{% macro m(a, b=2, c='z') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='q') }} {{ m(a=9) }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}body {{ n }}{% endcall %}",
    "{% macro args() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ args(1, 2, k=3) }}",
    "{% filter upper %}hello {{ s }}{% endfilter %}",
    "{% for u in users recursive %}{{ u.name }}{% endfor %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}",
    "{% raw %}{{ not rendered }}{% endraw %}",
    # whitespace control
    "a  {{- ' b ' -}}  c\n  {%- if true %}  d  {% endif -%}\n  e",
    "line1\n    {% if true %}\n    indented\n    {% endif %}\nline2\n  {# comment #}\nafter",
    "x {%+ if true %}y{% endif %}\n{%- if true +%}\nz{% endif %}",
    "{% for i in lst %}\n  {{ i }}\n{% endfor %}\n",
    "  {#- c -#}  a {# c #} b\n{# c #}\nc",
    "text\n{{ 'v' }}\n{% if true %}\nx{% endif %}\n",
    # filters
    "{{ s|trim }}|{{ s|length }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}",
    "{{ lst|sort }} {{ lst|sort(reverse=true) }} {{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ users|sort(attribute='age')|map(attribute='name')|list }}",
    "{{ lst|first }} {{ lst|last }} {{ lst|min }} {{ lst|max }} {{ lst|sum }} {{ lst|length }} {{ lst|count }} {{ lst|reverse|list }} {{ 'abc'|reverse }}",
    "{{ lst|join(', ') }} {{ users|join(',', attribute='name') }} {{ words|unique|list }} {{ lst|list }} {{ 'ab'|list }}",
    "{{ users|selectattr('age', 'equalto', 30)|map(attribute='name')|join }} {{ users|rejectattr('age', 'eq', 30)|map(attribute='name')|list }}",
    "{{ lst|select('odd')|list }} {{ lst|reject('odd')|list }} {{ users|selectattr('tags')|list|length }} {{ lst|map('string')|join('-') }}",
    "{{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ d|items|list }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }}",
    "{{ missing|default('dflt') }} {{ ''|default('e', true) }} {{ 0|d('zero', boolean=true) }} {{ n|default(3) }}",
    "{{ '42'|int + 1 }} {{ '4.5'|float }} {{ 'x'|int }} {{ 3.9|int }} {{ n|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 7|round }}",
    "{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ n|string ~ 'x' }} {{ '<b>x</b>'|striptags }} {{ 'one two  three'|wordcount }}",
    "{{ 'x\\n  \\n\\ny\\n'|indent(3) }}|{{ ''|indent(2, true) }}|{{ '\\n'|indent(2, true, true) }}|{{ 'a\\r\\nb'|indent }}|{{ 'p\\nq'|indent('> ') }}|",
    "{{ 'line1\\nline2\\n\\nline4'|indent(2) }}|{{ 'a\\nb'|indent(4, first=true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}",
    "{{ d|tojson }} {{ users|tojson }} {{ u8|tojson }} {{ fl|tojson }} {{ 'q\"\\\\\\n'|tojson }} {{ z|tojson }} {{ t|tojson }}",
    "{{ nested|tojson(indent=2) }} {{ d|tojson(sort_keys=true) }} {{ [] |tojson(indent=2) }} {{ {}|tojson(indent=2) }}",
    "{{ 'x'|center(9) }}|{{ 'abcdefghij'|truncate(9) }}|{{ lst|batch(2)|list }}|{{ '<&>'|e }}|{{ 'a'|safe + '<' }}",
    "{{ '%s-%d'|format('a', 3) }} {{ '%s is %s' % ('x', 1) }} {{ '%05.1f' % 2.25 }}",
    "{{ users|map(attribute='name')|map('upper')|list }} {{ users|map(attribute='missing', default='?')|list }}",
    # tests
    "{{ n is odd }} {{ n is even }} {{ n is divisibleby 7 }} {{ n is divisibleby(2) }} {{ n is number }} {{ n is integer }} {{ f is float }}",
    "{{ s is string }} {{ d is mapping }} {{ lst is sequence }} {{ lst is iterable }} {{ z is none }} {{ t is boolean }} {{ t is true }} {{ t is false }}",
    "{{ n is eq 7 }} {{ n is ne 7 }} {{ n is lt 8 }} {{ n is gt 8 }} {{ n is ge 7 }} {{ n is le 6 }} {{ 2 is in lst }} {{ 'x' is sameas 'x' }} {{ none is sameas none }}",
    "{{ d is not mapping }} {{ missing is not defined }} {{ range is callable }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ n is not string }}",
    # methods
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'hello world'.title() }}|{{ 'hi'.capitalize() }}",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a b'.split(' ') }} {{ 'l1\\nl2'.splitlines() }}",
    "{{ s.startswith('  H') }} {{ s.endswith(('x', '  ')) }} {{ 'abc'.find('c') }} {{ 'abc'.find('z') }} {{ 'aXbX'.count('X') }} {{ 'a-b'.replace('-', '_') }}",
    "{{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='x') }} {{ '{:>5}|{:<4}|{:^5}'.format('a', 'b', 'c') }} {{ '{:.2f}'.format(3.14159) }}",
    "{{ ', '.join(['a', 'b']) }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dv') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d['items'] }}",
    "{{ lst.index(2) }} {{ lst.count(3) }} {{ 'x'.join('abc') }} {{ u8.upper() }} {{ 'Ab'.swapcase() }} {{ 'abc'.removeprefix('a') }}",
    # globals
    "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ namespace(a=1).a }} {{ dict(a=1, b=2) }}",
    "{{ strftime_now('%Y-%m-%d %H:%M %A %B %d') }}",
    # undefined semantics
    "{% for x in missing %}x{% endfor %}{{ missing|length }}{{ missing|list }}{{ missing|join }}{{ missing ~ 'a' }}{% if missing %}t{% else %}f{% endif %}",
    "{{ missing == missing }} {{ missing is none }} {{ z is defined }} {{ (missing or 'o') }} {{ missing|default(none) is none }}",
    # dict key types
    "{% set m = {1: 'one', 2: 'two'} %}{{ m[1] }} {{ m }} {{ m|tojson }} {% for k, v in m|dictsort %}{{ k + 1 }}{% endfor %} {{ 1 in m }} {{ m.get(2) }}",
    # generators and markup
    "{{ (lst|map('string')) is iterable }} {{ lst|select('odd')|first }} {% if [] | select('odd') %}truthy{% endif %}",
    "{{ 'a'|safe + '<b>' }} {{ '<b>' + 'a'|safe }} {{ '<b>' ~ 'a'|safe }}",
    # corners seen in chat templates
    "{% for i in [1, 1, 2] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}",
    "{% macro m(a, b=a ~ '!') %}{% set inner = 1 %}{{ b }}{% endmacro %}{{ m('x') }}[{{ inner }}]",
    "{% macro list(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) list(lst) %}<{{ x }}>{% endcall %}",
    "{{ missing|upper }}|{{ missing|trim }}|{{ missing|string }}|{{ missing|sort }}|{{ none|string }}|{{ none|default('x') }}",
    "{{ d|length }} {{ d|list }} {{ d|first }} {{ lst|sum(start=10) }} {{ users|sum(attribute='age') }}",
    "{{ -0.0 }} {{ 1e100 }} {{ 3.0 * 2 }} {{ 10 / 5 }} {{ 123456789012345678.0 }} {{ [1e-7, 12345678.9, 0.5e-3]|tojson }} {{ 'ab' * -1 }}|",
    "{{ not missing is defined }} {{ missing is defined and missing }} {{ d.b if d is defined else 'no' }} {{ z == none }} {{ z is none or z == '' }}",
    "{{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ (1, 2) == [1, 2] }} {{ 'abc'[0:2] ~ 'x' }} {{ lst|length > 2 }} {{ 5 is gt 3 }}",
    "{{ users|selectattr('name', 'in', ['al', 'cy'])|map(attribute='age')|list }} {{ [' a ', 'b ']|map('trim')|list }} {{ ['1', '2']|map('int')|sum }}",
    "{{ {'x': 2, 'y': 1}|dictsort(false, 'value') }} {{ users|unique(attribute='age')|map(attribute='name')|list }} {{ lst[-1:-3:-1] }} {{ lst[10:-10:-1] }}",
    "{{ '%.2f'|format(3.14159) }} {{ '{:>6}'.format('ab') }} {{ '{:06.2f}'.format(3.14159) }} {{ '{!r}'.format('q') }} {{ '{0[0]}'.format(lst) }}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }},{% endfor %}{% set n = n + 1 %}{{ n }}",
    "{{ '\\u2019 \\U0001F600 \\'' }} {{ ('a' ~ 'b')|upper }} {{ 'a' if t else 'b'|upper }} {{ -neg|abs }} {{ (-neg)|abs }}",
    "{{ d.update }}|{{ d.update is defined }}|{{ lst.pop is defined }}|{{ 'x'.nosuch }}|{{ n.real }}",
    "{{ 'a b\u00a0c\u3000d'.split() }} {{ '\u00a0x\u2003'.strip() }}|{{ 'ÀÉÎ'.lower() }} {{ 'straße'.upper() }} {{ 'ÿ'.upper() }}",
    "{{ 'a\\nb\\r\\nc\\rd\\n'.splitlines() }} {{ 'a\\nb\\n'.splitlines(true) }} {{ ''.splitlines() }}",
    "{{ 'Hello World'.split(' ')|map('lower')|join('_') }} {{ 'a.b.c'.split('.')[-1] }} {{ 'x=1'.partition('=') }}",
    "{% set ns = namespace(items=[]) %}{% for u in users %}{% set ns.items = ns.items + [u.name] %}{% endfor %}{{ ns.items|join('/') }}",
    "{{ users[0].name|capitalize }} {{ users|map(attribute='name')|map('capitalize')|join(' ') }} {{ 'mixed CASE words'|title }} {{ 'o\\'neil mc-d'.title() }}",
    "{{ u8|length }} {{ u8|wordcount }} {{ u8|truncate(5) }} {{ 'a long sentence here'|truncate(10, true) }} {{ u8|center(15) }}|",
    "{{ big }} {{ big * 1000 }} {{ big / 7 }} {{ big // 7 }} {{ 2 ** 62 }} {{ (2 ** 62) - 1 + (2 ** 62) }}",
    "{{ d.b is number }} {{ 'x' is iterable }} {{ none is iterable }} {{ users[0] is mapping }} {{ lst is string }} {{ 1.0 is integer }} {{ true is number }}",
]

# Snippets where jinja2 raises; muse must raise as well.
ERROR_SNIPPETS = [
    "{{ missing.attr }}",
    "{{ missing() }}",
    "{{ lst.append(4) }}",
    "{{ 1 + 'a' }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ 5 // 0 }}",
    "{{ raise_exception('custom failure') }}",
    "{{ n|nosuchfilter }}",
    "{{ n is nosuchtest }}",
    "{{ lst|map('upper')|tojson }}",
    "{{ [1, 'a']|sort }}",
    "{{ d.pop('a') }}",
    "{% set d.x = 1 %}",
    "{{ (lst|select('odd'))|length }}",
    "{{ 1 < 'a' }}",
    "{{ 'a' in 1 }}",
    "{% for a, b in lst %}{% endfor %}",
    "{{ none + 1 }}",
    "{{ missing|int }}",
    "{{ z|tojson(indent=none) }}{{ missing|tojson }}",
]

SYNTAX_ERROR_SNIPPETS = [
    "{% if x %}unclosed",
    "{{ 1 + }}",
    "{% for %}{% endfor %}",
    "{% endif %}",
    "{{ 'unterminated }}",
    "{# no end",
    "{{ (1, 2 }}",
    "{% unknowntag %}",
]


def render_cases(cases):
    binary = jinja_render_binary()
    if binary is None or not binary.exists():
        pytest.skip("jinja-render not found (set MUSE_JINJA_RENDER)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump([{"template": t, "context": SNIPPET_CONTEXT} for t in cases], f, ensure_ascii=False)
        path = f.name
    try:
        proc = subprocess.run([str(binary), "--now", str(FIXED_EPOCH), "--cases", path], capture_output=True, timeout=60)
    finally:
        os.unlink(path)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    return json.loads(proc.stdout.decode("utf-8"))


def test_snippets_match_jinja2():
    env = make_env()
    results = render_cases(SNIPPETS)
    failures = []
    for src, got in zip(SNIPPETS, results):
        try:
            want = env.from_string(src).render(**SNIPPET_CONTEXT)
        except Exception as e:
            failures.append(f"{src!r}: jinja2 itself raised {type(e).__name__}: {e}")
            continue
        if got.get("output") != want:
            failures.append(f"{src!r}:\n  muse:   {got!r}\n  jinja2: {want!r}")
    assert not failures, f"{len(failures)} of {len(SNIPPETS)} snippets differ:\n" + "\n".join(failures)


def test_error_snippets_fail_like_jinja2():
    env = make_env()
    results = render_cases(ERROR_SNIPPETS + SYNTAX_ERROR_SNIPPETS)
    failures = []
    for src, got in zip(ERROR_SNIPPETS + SYNTAX_ERROR_SNIPPETS, results):
        try:
            want = env.from_string(src).render(**SNIPPET_CONTEXT)
            failures.append(f"{src!r}: jinja2 rendered {want!r}; the snippet should fail")
        except Exception:
            pass
        if "error" not in got:
            failures.append(f"{src!r}: muse rendered {got['output']!r} but jinja2 raises")
        elif "template line " not in got["error"]:
            failures.append(f"{src!r}: muse error does not name the line: {got['error']}")
    assert not failures, "\n".join(failures)


def test_whitespace_control_fuzz():
    """Random mixes of text and tags with every -/+ marker: trim_blocks and
    lstrip_blocks must strip exactly what jinja2 strips (fixed seed)."""
    import random

    rng = random.Random(20260115)
    texts = ["", " ", "  ", "\n", "\n\n", "  \n", "\n  ", "\t", "a", " a ", "a\n", "\n a", " \t\n ", "\r\n", "x  \n  "]
    marks = ["", "-", "+"]

    def tag():
        left, right = rng.choice(marks), rng.choice(marks)
        k = rng.random()
        if k < 0.3:
            return "{{%s 'v' %s}}" % (rng.choice(["", "-"]), rng.choice(["", "-"]))
        if k < 0.5:
            return "{#%s c %s#}" % (left, right)
        if k < 0.7:
            return "{%%%s if true %s%%}y{%%%s endif %s%%}" % (left, right, rng.choice(marks), rng.choice(marks))
        if k < 0.85:
            return "{%%%s for i in [1,2] %s%%}%s{{ i }}%s{%%%s endfor %s%%}" % (
                left, right, rng.choice(texts), rng.choice(texts), rng.choice(["", "-"]), rng.choice(marks))
        return "{%%%s set q = 1 %s%%}" % (left, right)

    cases = []
    for _ in range(1500):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts += [rng.choice(texts), tag()]
        cases.append("".join(parts) + rng.choice(texts))
    env = make_env()
    results = render_cases(cases)
    failures = []
    for src, got in zip(cases, results):
        want = env.from_string(src).render()
        if got.get("output") != want:
            failures.append(f"{src!r}:\n  muse:   {got!r}\n  jinja2: {want!r}")
    assert not failures, f"{len(failures)} of {len(cases)} differ:\n" + "\n".join(failures[:10])


def test_scoping_fuzz():
    """Random nests of set / if / for / macro / call / block-set: which
    assignments are visible where must follow jinja2's scoping (fixed seed)."""
    import random

    rng = random.Random(7)
    targets = ["x", "y", "ns.a", "ns.b"]
    values = ["1", "x", "y", "ns.a", "x ~ 'q'", "loop.index if loop is defined else 0", "(x or 0) + 1",
              "caller() if caller is defined else 'nc'", "m(2)", "varargs|length if varargs is defined else 9"]

    def stmt(d):
        r = rng.random()
        if d > 3 or r < 0.25:
            return "{{ %s }}" % rng.choice(values)
        if r < 0.45:
            return "{%% set %s = %s %%}" % (rng.choice(targets), rng.choice(values))
        if r < 0.6:
            return "{%% if %s %%}%s{%% else %%}%s{%% endif %%}" % (rng.choice(values), body(d + 1), body(d + 1))
        if r < 0.75:
            return "{%% for i in [1, 2] %%}%s{%% endfor %%}" % body(d + 1)
        if r < 0.85:
            return "{%% macro m(a, b=x) %%}%s{%% endmacro %%}" % body(d + 1)
        if r < 0.92:
            return "{%% call m(1) %%}%s{%% endcall %%}" % body(d + 1)
        return "{%% set blk %%}%s{%% endset %%}[{{ blk }}]" % body(d + 1)

    def body(d):
        return "".join(stmt(d) for _ in range(rng.randint(1, 3)))

    prologue = "{% set ns = namespace(a=0, b=0) %}{% macro m(a) %}M{{ a }}{{ caller() if caller is defined }}{% endmacro %}"
    cases = [prologue + body(0) + "|{{ x }}|{{ y }}|{{ ns.a }}|{{ ns.b }}" for _ in range(500)]
    env = make_env()
    results = render_cases(cases)
    failures = []
    for src, got in zip(cases, results):
        try:
            want = env.from_string(src).render()
        except Exception as e:
            if "error" not in got:
                failures.append(f"{src!r}:\n  muse rendered {got['output']!r}; jinja2 raised {e}")
            continue
        if got.get("output") != want:
            failures.append(f"{src!r}:\n  muse:   {got!r}\n  jinja2: {want!r}")
    assert not failures, f"{len(failures)} of {len(cases)} differ:\n" + "\n".join(failures[:5])
