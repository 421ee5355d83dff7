"""Tools from Python: declarations derived from plain callables (type hints, defaults,
docstrings), and the tool loop end to end on tiny random models: several rounds, a tool
that raises (the model reads the error, the turn goes on), JSON-able and str returns,
declaration-only tools returned to the host, and the pull API's tool_result events.
Tiny models cannot choose to call, so tool_choice "required" / a named function with
the call grammar makes every response before the last allowed round a valid call."""
import enum
from typing import Dict, List, Literal, Optional

import pytest

import muse
from muse.tools import function_declaration, type_schema
from conftest import make_chat_model


class Unit(enum.Enum):
    C = "C"
    F = "F"


def get_weather(city: str, unit: Literal["C", "F"] = "C", days: Optional[int] = None) -> str:
    """Current weather of a city.

    Longer explanation that is not the description.

    Args:
        city: The city's name,
            continued on a second line.
        unit (str): Temperature unit.
        days: How many days.

    Returns:
        A report.
    """
    return f"sunny in {city}, 21 {unit}"


def stats(values: List[float], labels: Dict[str, int], scale: Unit = Unit.C, exact: bool = False):
    return {"n": len(values)}


def test_declaration_from_type_hints_and_docstring():
    d = function_declaration(get_weather)["function"]
    assert d["name"] == "get_weather"
    assert d["description"] == "Current weather of a city."
    p = d["parameters"]
    assert p["required"] == ["city"]
    assert p["properties"]["city"] == {"type": "string", "description": "The city's name, continued on a second line."}
    assert p["properties"]["unit"] == {"type": "string", "enum": ["C", "F"], "description": "Temperature unit.",
                                       "default": "C"}
    assert p["properties"]["days"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert p["properties"]["days"]["default"] is None
    s = function_declaration(stats)["function"]["parameters"]
    assert s["required"] == ["values", "labels"]
    assert s["properties"]["values"] == {"type": "array", "items": {"type": "number"}}
    assert s["properties"]["labels"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert s["properties"]["scale"]["enum"] == ["C", "F"]
    assert s["properties"]["exact"]["type"] == "boolean"
    assert type_schema(bool) == {"type": "boolean"}
    with pytest.raises(TypeError):
        function_declaration(lambda x: x)
    with pytest.raises(TypeError):
        type_schema(object)


@pytest.fixture(scope="module", params=["atem-tools", "hermes-tools"])
def tool_model(request, tmp_path_factory):
    return request.param, make_chat_model(tmp_path_factory, request.param)


# Tiny random models write strings until a bound: the tools used in rounds take enums.
def lookup(key: Literal["k1", "k2"]) -> dict:
    """Looks a key up."""
    return {"key": key, "value": 42}


def test_tool_loop_rounds_and_a_failing_tool(tool_model):
    kind, m = tool_model
    s = m.session(n_ctx=2048)
    calls = []

    def weather(city: Literal["Paris", "Oslo"]) -> str:
        """Weather of a city."""
        calls.append(("weather", city))
        if len(calls) == 2:
            raise RuntimeError("weather service down")
        return f"sunny in {city}"

    def find(key: Literal["x", "y"]) -> dict:
        """Looks a key up."""
        calls.append(("find", key))
        if len(calls) == 2:
            raise RuntimeError("lookup service down")
        return {"key": key, "value": 42}

    r = s.chat([{"role": "user", "content": "Weather in Paris?"}], tools=[weather, find], tool_choice="required",
               parallel_tool_calls=False, max_tool_rounds=3, thinking="off", max_tokens=1500)
    assert r.tool_rounds == 3
    assert len(calls) == 3
    assert [t["failed"] for t in r.tool_results] == [False, True, False]
    assert "service down" in r.tool_results[1]["content"]
    assert r.tool_results[1]["content"].startswith("RuntimeError")
    for t, (name, arg) in zip(r.tool_results, calls):
        assert t["name"] == ("weather" if name == "weather" else "find")
        assert arg in ("Paris", "Oslo", "x", "y")
    assert r.tool_calls == []


def test_declaration_only_tools_are_returned(tool_model):
    kind, m = tool_model
    s = m.session(n_ctx=2048)
    decl = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]}}}
    r = s.chat([{"role": "user", "content": "Weather?"}], tools=[decl, lookup], tool_choice="get_weather",
               thinking="off", max_tokens=300)
    assert len(r.tool_calls) == 1
    assert r.tool_calls[0]["name"] == "get_weather"
    assert isinstance(r.tool_calls[0]["arguments"]["city"], str)
    assert r.tool_results == []


def test_pull_api_reports_tool_results(tool_model):
    kind, m = tool_model
    s = m.session(n_ctx=2048)
    with s.start_chat([{"role": "user", "content": "Key?"}], tools=[lookup], tool_choice="lookup", max_tool_rounds=1,
                      thinking="off", max_tokens=300) as g:
        events = list(g)
    results = [e for e in events if e.kind == "tool_result"]
    assert len(results) == 1
    assert results[0].tool["name"] == "lookup"
    assert results[0].tool["failed"] is False
    assert '"value": 42' in results[0].text
    assert results[0].tool["arguments"]["key"] in ("k1", "k2")
    assert events[-1].kind == "done"


def test_bad_tools_are_errors(tool_model):
    kind, m = tool_model
    s = m.session(n_ctx=2048)
    with pytest.raises(TypeError):
        s.chat([{"role": "user", "content": "x"}], tools=[42])
    with pytest.raises(muse.Error):
        s.chat([{"role": "user", "content": "x"}], tools=[lookup], tool_choice="missing_tool")


def test_chat_stream_yields_tool_results(tool_model):
    kind, m = tool_model
    s = m.session(n_ctx=2048)
    items = list(s.chat_stream([{"role": "user", "content": "Key?"}], tools=[lookup], tool_choice="required",
                               max_tool_rounds=1, parallel_tool_calls=False, thinking="off", max_tokens=300))
    kinds = [i[0] for i in items]
    assert kinds.count("tool_call") == 1
    results = [i[1] for i in items if i[0] == "tool_result"]
    assert len(results) == 1 and results[0]["failed"] is False and '"value": 42' in results[0]["content"]
    assert s.last_response.tool_rounds == 1


def test_a_returned_image_enters_the_conversation(tmp_path_factory):
    """A tool returning muse.Image: with an mmproj the image becomes an image part of the tool
    message (its rows are evaluated in the next round); without one the model reads a note."""
    import os
    import subprocess
    from pathlib import Path
    import tiny_mmproj as tm
    lib = Path(os.environ["MUSE_LIBRARY"]).resolve()
    tool = next((p / "tests" / "make-chat-model" for p in lib.parents if (p / "tests" / "make-chat-model").exists()),
                None)
    if tool is None:
        pytest.skip("make-chat-model not found next to MUSE_LIBRARY")
    d = tmp_path_factory.mktemp("toolimg")
    text, mmproj = d / "text.gguf", d / "mmproj.gguf"
    subprocess.run([str(tool), str(text), "atem-tools"], check=True)
    tm.write_mmproj(mmproj, tm.with_changes("glimmer-gqa", n_embd_out=64, weight_scale=3.0), "F32", seed=5)
    img = muse.Image.from_pixels(bytes(range(256)) * 9, 24, 32, 3)

    returned = {"value": img}

    def zoom_in(region: Literal["top", "bottom"]):
        """Zooms into a region of the picture."""
        return returned["value"]

    def run(vision: bool, value):
        returned["value"] = value
        m = muse.Model(str(text), mmproj=str(mmproj)) if vision else muse.Model(str(text))
        r = m.session(n_ctx=4096).chat([{"role": "user", "content": "Look closer."}], tools=[zoom_in],
                                       tool_choice="zoom_in", max_tool_rounds=1, parallel_tool_calls=False,
                                       thinking="off", max_tokens=300)
        assert r.tool_rounds == 1
        return r

    seen, blank, unseen = run(True, img), run(True, ""), run(False, img)
    assert seen.tool_results[0]["image"] is True
    assert blank.tool_results[0]["image"] is False
    assert unseen.tool_results[0]["image"] is False
    assert "cannot see" in unseen.tool_results[0]["content"]
    # The same call, an empty text result either way: the second round's prompt differs by the
    # image's rows and its start/end markers exactly.
    n_rows = muse.Model(str(text), mmproj=str(mmproj)).image_tokens(img)
    assert seen.usage["prompt_tokens"] - blank.usage["prompt_tokens"] == n_rows + 2


def test_builtin_calculator_runs_in_the_loop(tool_model):
    """A built-in tool named per request runs in the same loop as host tools: its declaration is
    offered, the (grammar-valid) call is executed by the library and its result fed back."""
    kind, m = tool_model
    s = m.session(n_ctx=4096)
    r = s.chat([{"role": "user", "content": "What is 6*7?"}], builtin_tools=["calculator"], tool_choice="calculator",
               max_tool_rounds=1, parallel_tool_calls=False, thinking="off", max_tokens=1500)
    assert r.tool_rounds == 1
    assert len(r.tool_results) == 1
    res = r.tool_results[0]
    assert res["name"] == "calculator"
    expr = res["arguments"]["expression"]
    assert isinstance(expr, str)
    if res["failed"]:
        assert res["content"]  # a random expression: the calculator says what is wrong with it
    else:
        # the library's answer equals Python's for what it accepted (only arithmetic characters)
        assert set(expr) <= set("0123456789.+-*/%()^ eE")
        want = eval(expr.replace("^", "**"), {"__builtins__": {}})  # noqa: S307 - arithmetic only
        assert abs(float(res["content"]) - float(want)) <= 1e-9 * max(1.0, abs(float(want)))
    with pytest.raises(muse.Error):
        s.chat([{"role": "user", "content": "x"}], builtin_tools=["no_such_tool"], thinking="off", max_tokens=8)


def test_chat_prompt_offers_callable_and_builtin_tools(tool_model):
    """Model.chat_prompt renders what the first round evaluates: callables' derived declarations
    and built-in tools are in it, as declaration dicts are."""
    kind, m = tool_model
    messages = [{"role": "user", "content": "Key?"}]
    from muse.tools import function_declaration
    with_callable = m.chat_prompt(messages, tools=[lookup])
    with_dict = m.chat_prompt(messages, tools=[function_declaration(lookup)])
    assert "lookup" in with_callable
    assert with_callable == with_dict
    assert "calculator" in m.chat_prompt(messages, builtin_tools=["calculator"])
    assert "calculator" not in with_callable
