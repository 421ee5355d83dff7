"""Batched decoding and pulled generations: muse.Batch, muse.Generation, muse.Event.

    b = muse.Batch(8)
    ia = b.add(tok_a, seq_id=0)         # next token of sequence 0
    ib = b.add(tok_b, seq_id=1)         # and of sequence 1, in the same forward pass
    s.decode(b); la, lb = s.logits(ia), s.logits(ib)   # outputs numbered in batch order

    with s.start(prompt_ids, max_tokens=32) as g:     # nothing runs until the first event
        for ev in g:                                  # each next() steps the session if needed
            print(ev.kind, ev.text)
        print(g.result()["tokens"])
"""
from __future__ import annotations

import ctypes
import json
import threading
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from . import _ffi
from ._ffi import lib
from ._handle import Handle
from .errors import Error, check

_KINDS = {_ffi.EVENT_TOKEN: "token", _ffi.EVENT_ANSWER: "answer", _ffi.EVENT_REASONING: "reasoning",
          _ffi.EVENT_TOOL_CALL: "tool_call", _ffi.EVENT_DONE: "done", _ffi.EVENT_ERROR: "error",
          _ffi.EVENT_AGENT_DONE: "agent_done", _ffi.EVENT_TOOL_RESULT: "tool_result",
          _ffi.EVENT_ARTEFACT: "artefact"}


class Batch(Handle):
    """Batch(capacity): rows (token, pos, seq_id, logits) decoded together by Session.decode()."""
    _kind = "batch"

    def __init__(self, capacity: int = 512):
        self._handle = None
        h = ctypes.c_void_p()
        check(lib.muse_batch_create(int(capacity), ctypes.byref(h)))
        self._handle = h
        self.capacity = int(capacity)
        self.n_outputs = 0  # rows added with logits=True

    def _free(self, handle) -> None:
        lib.muse_batch_free(handle)

    def add(self, token: int, pos: int = -1, seq_id: int = 0, logits: bool = True) -> Optional[int]:
        """Appends a row (pos < 0: the sequence's next position, counting rows already here).
        Returns the row's index in the batch, which Session.logits() takes after decode() for
        a row added with logits=True (as llama.cpp's llama_get_logits_ith), else None."""
        row = len(self)
        check(lib.muse_batch_add(self._h(), int(token), int(pos), int(seq_id), bool(logits)))
        if not logits:
            return None
        self.n_outputs += 1
        return row

    def clear(self) -> None:
        lib.muse_batch_clear(self._h())
        self.n_outputs = 0

    def __len__(self) -> int:
        return int(lib.muse_batch_size(self._h()))


class Event(NamedTuple):
    """One event of a generation. kind: "token" (no text released), "answer", "reasoning",
    "tool_call" (tool = {"name", "arguments"}), "tool_result" (a call the library ran: tool =
    {"name", "arguments", "failed"}, text = its result), "artefact" (tool = {"name", "kind",
    "mime", "data"}: a file a tool made for the host), "done" (finish_reason: stop | length |
    cancelled | error) or "error" (text: the message). top: [(token, logprob)], best first.
    Contemplating mode: agent is the agent the event comes from (agents: the synthesis pass;
    -1: the aggregate answer and the final "done"); "agent_done" (finish_reason: also
    low_confidence) ends one agent while the request goes on. Otherwise agent is 0."""
    kind: str
    seq_id: int
    agent: int
    token: int
    forced: bool
    text: str
    logprob: float
    top: List[Tuple[int, float]]
    tool: Optional[Dict[str, Any]]
    finish_reason: Optional[str]


def _error_from_message(text: str) -> Error:
    for code in range(1, 11):  # "MUSE_ERR_X: ..." keeps its status
        name = lib.muse_status_name(code).decode()
        if text.startswith(name + ":"):
            return Error(code, text[len(name) + 1:].strip())
    return Error(1, text)


class Generation(Handle):
    """One response produced on one sequence (Session.start / Session.start_chat). Iterate it
    for its events (the last is "done"); next() steps the whole session when this generation
    has no queued event, so generations of other sequences advance too. cancel() may be called
    from any thread. close() (or the with block) frees it; a live one is cancelled."""
    _kind = "generation"

    def __init__(self, session, handle, keep, normalizer=None):
        self._lock = threading.Lock()  # cancel() from other threads vs close()
        self._handle = handle
        self.session = session  # the session must outlive the C generation
        self._keep = keep  # ctypes buffers (and callbacks) referenced by the parameters
        self._normalizer = normalizer  # contemplating mode: a Python answer normalizer
        self._finished = False
        session._track(self)

    def close(self) -> None:
        with self._lock:
            h, self._handle = self._handle, None
            if h:
                lib.muse_generation_free(h)

    def _free(self, handle) -> None:  # close() is overridden; kept for Handle's contract
        lib.muse_generation_free(handle)

    def cancel(self) -> None:
        """Ends the generation ("cancelled") at its next step. Safe from any thread."""
        with self._lock:
            if self._handle:
                lib.muse_generation_cancel(self._handle)

    @property
    def done(self) -> bool:
        """Whether the generation has ended (its events may not all have been read yet)."""
        return bool(lib.muse_generation_done(self._h()))

    def _next_raw(self) -> Tuple[Event, bytes]:
        ev = _ffi.Event()
        ev.struct_size = ctypes.sizeof(ev)
        status = lib.muse_generation_next(self._h(), ctypes.byref(ev))
        if self._normalizer is not None:
            self._normalizer.raise_pending()  # the host's normalize callable raised
        check(status)
        data = ctypes.string_at(ev.text, ev.text_len) if ev.text_len else b""
        top = [(int(ev.top_tokens[i]), float(ev.top_logprobs[i])) for i in range(ev.n_top)]
        tool = None
        if ev.kind in (_ffi.EVENT_TOOL_CALL, _ffi.EVENT_TOOL_RESULT):
            args = ev.tool_arguments.decode("utf-8", "replace") if ev.tool_arguments else "{}"
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = args
            tool = {"name": ev.tool_name.decode("utf-8", "replace") if ev.tool_name else "", "arguments": parsed}
            if ev.kind == _ffi.EVENT_TOOL_RESULT:  # text is the result the model reads
                tool["failed"] = bool(ev.tool_failed)
        elif ev.kind == _ffi.EVENT_ARTEFACT:
            tool = {"name": ev.tool_name.decode("utf-8", "replace") if ev.tool_name else "",
                    "kind": ev.artefact_kind.decode() if ev.artefact_kind else "",
                    "mime": ev.artefact_mime.decode() if ev.artefact_mime else "",
                    "data": ctypes.string_at(ev.artefact_data, ev.artefact_size) if ev.artefact_size else b""}
        finish = ev.finish_reason.decode() if ev.finish_reason else None
        event = Event(_KINDS.get(ev.kind, "error"), int(ev.seq_id), int(ev.agent), int(ev.token), bool(ev.forced),
                      data.decode("utf-8", "replace"), float(ev.logprob), top, tool, finish)
        return event, data

    def next_event(self) -> Event:
        """The next event (after "done", "done" again)."""
        event, _ = self._next_raw()
        if event.kind == "done":
            self._finished = True
        return event

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> Event:
        if self._finished:
            raise StopIteration
        return self.next_event()

    def _raw_events(self) -> Iterator[Tuple[Event, bytes]]:
        while not self._finished:
            event, data = self._next_raw()
            if event.kind == "done":
                self._finished = True
            yield event, data

    def result(self) -> Dict[str, Any]:
        """The result so far: {"reasoning", "answer", "tool_calls", "finish_reason", "usage",
        "tokens", "logprobs" (with n_logprobs), ...} as a dict; in contemplating mode also
        "agents" and "aggregate" (see Session.chat)."""
        out = ctypes.c_void_p()
        check(lib.muse_generation_result(self._h(), ctypes.byref(out)))
        try:
            return json.loads(ctypes.string_at(out).decode("utf-8", "replace"))
        finally:
            lib.muse_string_free(out)

    def __repr__(self) -> str:
        return f"<muse.Generation {'closed' if not self._handle else 'done' if self.done else 'live'}>"
