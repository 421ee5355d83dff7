"""Tools for chat turns: plain Python callables (or OpenAI declarations) the library calls
between rounds of a turn.

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Current weather of a city.

        Args:
            city: The city's name.
            unit: Temperature unit.
        '''
        return f"21 {unit}"

    r = session.chat(messages, tools=[get_weather], tool_choice="auto", max_tool_rounds=4)

The declaration is derived from the signature: str/int/float/bool, list[...]/tuple, dict,
Optional[...], Literal[...] and Enum types become JSON Schema; parameters with a default
are not required; the docstring's first paragraph is the description and a Google-style
"Args:" section describes the parameters. A callable may return str, any JSON-able value
(sent as JSON) or a muse.Image (shown to the model when it has an mmproj); raising is
allowed: the model reads the error and the turn goes on.
"""
from __future__ import annotations

import ctypes
import enum
import inspect
import json
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _ffi
from ._ffi import lib

_ST_OK = 0
_ST_INVALID = 1  # MUSE_ERR_INVALID_ARGUMENT: a value the tool could not turn into a result


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def type_schema(tp) -> Dict[str, Any]:
    """The JSON Schema of a type annotation (an empty schema for Any or no annotation)."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is type(None):
        return {"type": "null"}
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        types = sorted({_json_type(v) for v in values})
        return {"type": types[0] if len(types) == 1 else types, "enum": values}
    if origin is typing.Literal:
        values = list(args)
        types = sorted({_json_type(v) for v in values})
        return {"type": types[0] if len(types) == 1 else types, "enum": values}
    if origin is typing.Union or (hasattr(typing, "UnionType") and origin is getattr(__import__("types"), "UnionType", None)):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:  # Optional[X]
            inner = type_schema(non_null[0])
            return {"anyOf": [inner, {"type": "null"}]} if inner else {}
        return {"anyOf": [type_schema(a) for a in args]}
    if tp in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence,
                                                        getattr(__import__("collections.abc").abc, "Sequence")):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [type_schema(a) for a in args], "items": False}
        item = args[0] if args else Any
        schema = {"type": "array"}
        if type_schema(item):
            schema["items"] = type_schema(item)
        return schema
    if tp is dict or origin is dict:
        schema = {"type": "object"}
        if len(args) == 2 and type_schema(args[1]):
            schema["additionalProperties"] = type_schema(args[1])
        return schema
    raise TypeError(f"cannot derive a JSON Schema for the annotation {tp!r}; give the tool as an OpenAI "
                    f"declaration dict instead")


def _docstring_parts(doc: str) -> Tuple[str, Dict[str, str]]:
    """(description: the first paragraph, {parameter: description} from a Google-style Args: section)."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    paragraphs = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)
    description = " ".join(line.strip() for line in paragraphs[0].splitlines())
    params: Dict[str, str] = {}
    lines = doc.splitlines()
    in_args, current, indent = False, None, None
    for line in lines:
        if re.match(r"^\s*(Args|Arguments|Parameters)\s*:\s*$", line):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if not line.strip():
            continue
        lead = len(line) - len(line.lstrip())
        if re.match(r"^\s*[A-Z][A-Za-z ]*:\s*$", line) and (indent is None or lead < indent):
            break  # the next section (Returns:, Raises:)
        m = re.match(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
        if m and (indent is None or lead <= indent):
            indent = lead
            current = m.group(1).lstrip("*")
            params[current] = m.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
    return description, params


def function_declaration(fn: Callable) -> Dict[str, Any]:
    """The OpenAI tool declaration of a callable (see the module docstring)."""
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise TypeError("a tool callable needs a name (a def function, not a lambda)")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    sig = inspect.signature(fn)
    description, arg_docs = _docstring_parts(inspect.getdoc(fn) or "")
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        schema = dict(type_schema(hints.get(p.name, p.annotation)))
        if p.name in arg_docs and arg_docs[p.name]:
            schema["description"] = arg_docs[p.name]
        if p.default is not inspect.Parameter.empty:
            if isinstance(p.default, enum.Enum):
                schema["default"] = p.default.value
            elif p.default is None or isinstance(p.default, (str, int, float, bool, list, dict)):
                schema["default"] = p.default
        else:
            required.append(p.name)
        properties[p.name] = schema
    parameters: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def _convert_args(fn: Callable, args: Dict[str, Any]) -> Dict[str, Any]:
    """Enum parameters get their members back (the model writes values)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return args
    out = dict(args)
    for k, v in args.items():
        tp = hints.get(k)
        if inspect.isclass(tp) and issubclass(tp, enum.Enum):
            try:
                out[k] = tp(v)
            except ValueError:
                pass
    return out


class _HostTools:
    """The muse_tool array of one chat call, and the ctypes callbacks that keep it alive."""

    def __init__(self, tools):
        from .image import Image
        self.decls: List[bytes] = []
        self.fns: List[Optional[Callable]] = []
        self.errors: List[BaseException] = []
        for t in tools or ():
            if isinstance(t, dict):
                self.decls.append(json.dumps(t, ensure_ascii=False).encode())
                self.fns.append(None)
            elif callable(t):
                self.decls.append(json.dumps(function_declaration(t), ensure_ascii=False).encode())
                self.fns.append(t)
            else:
                raise TypeError(f"a tool must be a callable or an OpenAI declaration dict, not {type(t).__name__}")
        image_type = Image

        def call(name, arguments, user, result):
            fn = self.fns[int(user or 0)]
            try:
                args = json.loads(arguments.decode("utf-8", "replace"))
                value = fn(**_convert_args(fn, args))
                if isinstance(value, image_type):
                    check = lib.muse_tool_result_set_image(result, value._h())
                    text = b""
                    lib.muse_tool_result_set_content(result, text, 0)
                    return check
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
                data = text.encode("utf-8")
                return lib.muse_tool_result_set_content(result, data, len(data))
            except BaseException as e:  # the model reads the error; never unwind through C
                msg = f"{type(e).__name__}: {e}".encode("utf-8", "replace")
                lib.muse_tool_result_set_error(result, msg)
                return _ST_OK

        self._cb = _ffi.TOOL_FN(call)
        self.array = (_ffi.Tool * max(1, len(self.decls)))()
        for i, d in enumerate(self.decls):
            self.array[i].declaration_json = d
            self.array[i].fn = self._cb if self.fns[i] is not None else _ffi.TOOL_FN(0)
            self.array[i].user_data = i

    def apply(self, cp) -> None:
        if self.decls:
            cp.host_tools = ctypes.cast(self.array, ctypes.c_void_p)
            cp.n_host_tools = len(self.decls)


def apply_tools(cp, keep: list, tools, tool_choice, parallel_tool_calls, max_tool_rounds, builtin_tools) -> None:
    """Fills the ABI 5 tool fields of a ChatParams; what must stay alive goes into keep."""
    if tools:
        host = _HostTools(tools)
        keep.append(host)
        host.apply(cp)
    if tool_choice is not None:
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name", "")
        keep.append(str(tool_choice).encode())
        cp.tool_choice = keep[-1]
    cp.parallel_tool_calls = 1 if parallel_tool_calls else 0
    cp.max_tool_rounds = int(max_tool_rounds)
    if builtin_tools:
        names = [n.encode() for n in builtin_tools]
        arr = (ctypes.c_char_p * len(names))(*names)
        keep.append((arr, names))
        cp.builtin_tools = arr
        cp.n_builtin_tools = len(names)
