"""muse.ChatTemplate: Jinja chat templates rendered exactly like transformers' jinja2."""
from __future__ import annotations

import ctypes
import json
from typing import Any, Dict, List, Optional

from ._ffi import lib
from ._handle import Handle
from .errors import check


class ChatTemplate(Handle):
    """ChatTemplate(source).render(messages, *, tools=None, add_generation_prompt=True, **variables)"""
    _kind = "chat template"

    def __init__(self, source: str, *, _handle=None, bos_token: str = "", eos_token: str = ""):
        self._handle = None
        if _handle is None:
            h = ctypes.c_void_p()
            check(lib.muse_chat_template_create(source.encode(), ctypes.byref(h)))
            _handle = h
        self._handle = _handle
        self.source = source
        self.bos_token, self.eos_token = bos_token, eos_token

    def _free(self, handle) -> None:
        lib.muse_chat_template_free(handle)

    def render(self, messages: List[Dict[str, Any]], *, tools: Optional[list] = None,
               add_generation_prompt: bool = True, **variables) -> str:
        options = {"bos_token": self.bos_token, "eos_token": self.eos_token,
                   "add_generation_prompt": add_generation_prompt}
        if tools is not None:
            options["tools"] = tools
        options.update(variables)
        out = ctypes.c_void_p()
        check(lib.muse_chat_template_render(self._h(), json.dumps(messages, ensure_ascii=False).encode(),
                                            json.dumps(options, ensure_ascii=False).encode(), ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode("utf-8", "replace")
        finally:
            lib.muse_string_free(out)
