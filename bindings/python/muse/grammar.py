"""muse.Grammar: constrained decoding from GBNF, a regex or a JSON Schema.

    g = muse.Grammar.from_json_schema({"type": "object", "properties": {"n": {"type": "integer"}}})
    g.matches('{"n": 3}')              # True
    print(g.gbnf)                      # the GBNF it compiled to
    session.generate(prompt, grammar=muse.Grammar.from_json_schema(schema, compact=True))
    session.chat(messages, response_format={"type": "json_schema", "json_schema": {"schema": schema}})

Grammars are immutable: share one across sessions, threads and generations. With thinking
enabled a grammar constrains the answer only, never the reasoning.
"""
from __future__ import annotations

import ctypes
import json
from typing import Any, Optional, Union

from ._ffi import lib
from ._handle import Handle
from .errors import Error, check

# muse_json_schema_flags
_COMPACT, _CLOSED_OBJECTS, _EXACT_ONE_OF = 1, 2, 4


class Grammar(Handle):
    """A compiled grammar. Make one with from_gbnf / from_regex / from_json_schema; errors raise
    muse.Error with the library's message (GBNF line and column; for schemas, the keyword and
    its JSON path)."""
    _kind = "grammar"

    def __init__(self, handle, source: str):
        self._handle = handle
        self.source = source  # what it was made from ("gbnf", "regex" or "json_schema")

    def _free(self, handle) -> None:
        lib.muse_grammar_free(handle)

    @classmethod
    def from_gbnf(cls, text: str, root: str = "root") -> "Grammar":
        """GBNF text (llama.cpp's format); root is the start rule."""
        h = ctypes.c_void_p()
        check(lib.muse_grammar_from_gbnf(_text(text, "text"), _text(root, "root"), ctypes.byref(h)))
        return cls(h, "gbnf")

    @classmethod
    def from_regex(cls, pattern: str) -> "Grammar":
        """A regex the whole text must match (see muse.h for the supported subset)."""
        h = ctypes.c_void_p()
        check(lib.muse_grammar_from_regex(_text(pattern, "pattern"), ctypes.byref(h)))
        return cls(h, "regex")

    @classmethod
    def from_json_schema(cls, schema: Union[dict, bool, str], *, compact: bool = False,
                         closed_objects: bool = False, exact_one_of: bool = False) -> "Grammar":
        """A JSON Schema (a dict, or JSON text). compact: no whitespace between JSON tokens (what
        a model should generate; otherwise any JSON whitespace is accepted, for checking text).
        closed_objects: objects without additionalProperties accept only their listed
        properties. exact_one_of: refuse a oneOf whose branches may overlap."""
        text = schema if isinstance(schema, str) else json.dumps(schema, ensure_ascii=False)
        flags = (_COMPACT if compact else 0) | (_CLOSED_OBJECTS if closed_objects else 0) | \
            (_EXACT_ONE_OF if exact_one_of else 0)
        h = ctypes.c_void_p()
        check(lib.muse_grammar_from_json_schema(text.encode(), flags, ctypes.byref(h)))
        return cls(h, "json_schema")

    def matches(self, text: Union[str, bytes]) -> bool:
        """Whether the whole text is a complete match."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        ok = ctypes.c_bool(False)
        check(lib.muse_grammar_matches(self._h(), data, len(data), ctypes.byref(ok)))
        return bool(ok.value)

    @property
    def gbnf(self) -> str:
        """The GBNF text the grammar was compiled from (a regex's or schema's translation)."""
        out = ctypes.c_void_p()
        check(lib.muse_grammar_to_gbnf(self._h(), ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode("utf-8", "replace")
        finally:
            lib.muse_string_free(out)

    def __repr__(self) -> str:
        return f"<muse.Grammar from {self.source}{'' if self._handle else ' (closed)'}>"


def _text(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value.encode()


def grammar_handle(grammar: Optional[Grammar]):
    """The C handle for muse_generate_params.grammar (None: no grammar)."""
    if grammar is None:
        return None
    if not isinstance(grammar, Grammar):
        raise TypeError(f"grammar must be a muse.Grammar, not {type(grammar).__name__}")
    return grammar._h()


def response_format_json(response_format: Union[None, dict, str]) -> Optional[bytes]:
    """muse_chat_params.response_format_json from OpenAI's response_format (a dict or JSON
    text); the library checks its content and names what is wrong."""
    if response_format is None:
        return None
    if isinstance(response_format, str):
        return response_format.encode()
    if not isinstance(response_format, dict):
        raise TypeError(f"response_format must be a dict or JSON text, not {type(response_format).__name__}")
    return json.dumps(response_format, ensure_ascii=False).encode()


__all__ = ["Grammar", "Error"]
