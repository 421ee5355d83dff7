"""muse.Grammar (bindings/python/muse/grammar.py) and constrained generation from Python:
matches() on the GBNF files of tests/grammar, regexes and schemas; errors carry the library's
message; grammar= in raw generation (generate, start, generate_many) and response_format= /
grammar= in chat, with thinking on (reasoning free, answer constrained) and at budget 0."""
import ctypes
import gc
import json
from pathlib import Path

import pytest

import muse
from conftest import make_chat_model

GRAMMARS = Path(__file__).resolve().parents[1] / "grammar"

SCHEMA = {"type": "object",
          "properties": {"city": {"type": "string", "maxLength": 8},
                         "temp": {"type": "integer", "minimum": -40, "maximum": 50},
                         "sky": {"enum": ["clear", "rain", "snow"]}},
          "required": ["city", "temp", "sky"], "additionalProperties": False}


@pytest.fixture(scope="module")
def think(tmp_path_factory):
    return make_chat_model(tmp_path_factory, "think")


@pytest.fixture(scope="module")
def atem(tmp_path_factory):
    return make_chat_model(tmp_path_factory, "atem")


def test_gbnf_files_match():
    arith = muse.Grammar.from_gbnf((GRAMMARS / "arithmetic.gbnf").read_text())
    assert arith.matches("12 * (3 + -4)") and arith.matches(b"7")
    assert not arith.matches("12 *") and not arith.matches("")
    lst = muse.Grammar.from_gbnf((GRAMMARS / "list.gbnf").read_text())
    assert lst.matches("- a\n- b\n")
    assert not lst.matches("".join(f"- {i}\n" for i in range(6)))
    tool = muse.Grammar.from_gbnf((GRAMMARS / "tool-call.gbnf").read_text())
    assert tool.matches('<tool_call>\n{"name": "get", "arguments": {"q": "x", "n": -2}}\n</tool_call>')
    assert not tool.matches('<tool_call>\n{"name": "get"}\n</tool_call>')
    js = muse.Grammar.from_gbnf((GRAMMARS / "json.gbnf").read_text())
    assert js.matches('{"a": [1, 2.5, true, null, "x"]}')
    assert not js.matches('{"a": }')
    assert muse.Grammar.from_gbnf((GRAMMARS / "arithmetic.gbnf").read_text(), root="number").matches("42")
    assert arith.gbnf == (GRAMMARS / "arithmetic.gbnf").read_text()
    assert "Grammar from gbnf" in repr(arith)


def test_regex_and_schema():
    r = muse.Grammar.from_regex(r"\d{4}-\d{2}-\d{2}")
    assert r.matches("2026-12-04")
    assert not r.matches("2026-12-4") and not r.matches("x2026-12-04")
    assert "root" in r.gbnf

    g = muse.Grammar.from_json_schema(SCHEMA)
    assert g.matches('{"city": "Oslo", "temp": -3, "sky": "snow"}')
    assert g.matches(json.dumps({"sky": "rain", "temp": 12, "city": ""}, indent=2))  # any order, any whitespace
    assert not g.matches('{"city": "Oslo", "temp": -41, "sky": "snow"}')
    assert not g.matches('{"city": "Oslo", "temp": 1}')
    c = muse.Grammar.from_json_schema(json.dumps(SCHEMA), compact=True)  # JSON text works too
    assert c.matches('{"city":"Oslo","temp":-3,"sky":"snow"}')
    assert not c.matches('{"city": "Oslo", "temp": -3, "sky": "snow"}')
    open_ = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert muse.Grammar.from_json_schema(open_).matches('{"a": 1, "b": 2}')
    assert not muse.Grammar.from_json_schema(open_, closed_objects=True).matches('{"a": 1, "b": 2}')
    email = muse.Grammar.from_json_schema({"type": "string", "format": "email"})  # not in the random test
    assert email.matches('"ada@example.org"') and not email.matches('"ada.example.org"')
    t = muse.Grammar.from_json_schema({"type": "string", "format": "time"})
    assert t.matches('"23:59:60Z"') and t.matches('"12:30:05.25+02:00"')
    assert not t.matches('"14:03:60Z"')  # a leap second is 23:59:60 UTC (found by the random test)
    one_of = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    assert muse.Grammar.from_json_schema(one_of).matches("1")
    with pytest.raises(muse.Error):
        muse.Grammar.from_json_schema(one_of, exact_one_of=True)  # the branches may overlap


def test_errors_carry_the_library_message():
    with pytest.raises(muse.Error) as e:
        muse.Grammar.from_json_schema({"properties": {"n": {"type": "integer", "multipleOf": 3}}})
    assert e.value.status_name == "MUSE_ERR_UNSUPPORTED"
    assert "multipleOf" in str(e.value) and "/properties/n" in str(e.value)
    with pytest.raises(muse.Error) as e:
        muse.Grammar.from_json_schema("{not json")
    assert "schema_json is not valid JSON" in str(e.value)
    with pytest.raises(muse.Error) as e:
        muse.Grammar.from_gbnf('root ::= "a" |\nb ::= ')
    assert "line" in str(e.value)
    with pytest.raises(muse.Error):
        muse.Grammar.from_gbnf('a ::= "x"', root="missing")
    with pytest.raises(muse.Error):
        muse.Grammar.from_regex("(?=x)")  # lookaround
    with pytest.raises(TypeError):
        muse.Grammar.from_regex(b"bytes")
    g = muse.Grammar.from_regex("a")
    g.close()
    with pytest.raises(muse.Error, match="closed"):
        g.matches("a")
    g.close()  # twice is harmless


def test_raw_generation_follows_the_grammar(think):
    s = think.session(n_ctx=1024, n_seq_max=4)
    g = muse.Grammar.from_regex(r"(cat|dog|eel)s?: [1-9][0-9]{0,2}")
    for seed in range(4):
        text = "".join(s.generate([1, 2, 3], 32, seed=seed, temperature=1.0, grammar=g))
        assert g.matches(text), text
    # The pull API keeps the grammar alive on its own.
    gen = s.start([4, 5], 16, grammar=muse.Grammar.from_regex("[xyz]{3}"), temperature=1.0)
    gc.collect()
    texts = [ev.text for ev in gen if ev.kind == "answer"]
    assert len("".join(texts)) == 3 and set("".join(texts)) <= set("xyz")
    assert gen.result()["finish_reason"] == "stop"
    gen.close()
    # generate_many: four at once, each constrained.
    digits = muse.Grammar.from_regex("[0-9]{2,5}")
    outs = s.generate_many([[1], [2], [3], [4]], 16, seed=10, temperature=1.0, grammar=digits)
    for toks in outs:
        text = think.detokenize(toks)
        assert digits.matches(text), text
    with pytest.raises(TypeError):
        s.start([1], 4, grammar="[0-9]")


@pytest.mark.parametrize("kind", ["think", "atem"])
def test_chat_response_format_with_thinking(kind, think, atem):
    model = think if kind == "think" else atem
    s = model.session(n_ctx=2048)
    check = muse.Grammar.from_json_schema(SCHEMA)
    rf = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
    for thinking, budget in [("on", 16), ("on", 0), ("off", None)]:
        for seed in range(3):
            r = s.chat([{"role": "user", "content": "Weather?"}], thinking=thinking, thinking_budget=budget,
                       response_format=rf, temperature=1.0, seed=seed, max_tokens=300)
            assert r.finish_reason == "stop"
            assert check.matches(r.answer), r.answer
            data = json.loads(r.answer)
            assert data["sky"] in ("clear", "rain", "snow") and -40 <= data["temp"] <= 50
            if budget:
                # Reasoned freely: the reasoning is no JSON, and the same seed without the
                # schema reasons the same text.
                assert r.usage["reasoning_tokens"] > 0 and not check.matches(r.reasoning)
                free = s.chat([{"role": "user", "content": "Weather?"}], thinking=thinking, thinking_budget=budget,
                              temperature=1.0, seed=seed, max_tokens=r.usage["reasoning_tokens"] + 12)
                assert free.reasoning == r.reasoning
            else:
                assert r.usage["reasoning_tokens"] == 0 and r.reasoning == ""
    # The same through a pulled chat generation, with grammar= instead of response_format=.
    gen = s.start_chat([{"role": "user", "content": "Weather?"}], thinking="on", thinking_budget=8,
                       grammar=muse.Grammar.from_json_schema(SCHEMA, compact=True), temperature=1.0, seed=5,
                       max_tokens=300)
    chunks = {"reasoning": "", "answer": ""}
    for ev in gen:
        if ev.kind in chunks:
            chunks[ev.kind] += ev.text
    gen.close()
    assert chunks["reasoning"] and check.matches(chunks["answer"])


def test_chat_json_object_and_text(think):
    s = think.session(n_ctx=2048)
    # json_object: any object. A random model never closes its first key (any string is a
    # key), so only the start can be checked here; the schema cases above check whole answers.
    r = s.chat([{"role": "user", "content": "x"}], thinking="off", response_format='{"type": "json_object"}',
               temperature=0.0, max_tokens=40)
    free = s.chat([{"role": "user", "content": "x"}], thinking="off", temperature=0.0, max_tokens=40)
    assert r.answer.startswith('{"') and not free.answer.startswith('{"')
    assert r.finish_reason == "length"
    plain = s.chat([{"role": "user", "content": "x"}], thinking="off", response_format={"type": "text"},
                   temperature=0.0, max_tokens=12)
    unconstrained = s.chat([{"role": "user", "content": "x"}], thinking="off", temperature=0.0, max_tokens=12)
    assert plain.answer == unconstrained.answer  # "text" is no constraint


def test_chat_bad_response_format(think):
    s = think.session(n_ctx=512)
    msgs = [{"role": "user", "content": "x"}]
    for rf, needle in [({"type": "yaml"}, '"yaml" is unknown'),
                       ({"type": "json_schema"}, 'needs a "json_schema" object'),
                       ({"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "(?<=a)"}}},
                        "response_format json_schema"),
                       ("[1]", "must be a JSON object")]:
        with pytest.raises(muse.Error) as e:
            s.chat(msgs, response_format=rf, max_tokens=4)
        assert needle in str(e.value), str(e.value)
    with pytest.raises(muse.Error, match="give one of them"):
        s.chat(msgs, response_format={"type": "json_object"}, grammar=muse.Grammar.from_regex("a"), max_tokens=4)
    with pytest.raises(TypeError):
        s.chat(msgs, response_format=42, max_tokens=4)
    # The session still works.
    assert s.chat(msgs, thinking="off", max_tokens=4).finish_reason in ("stop", "length")
