"""Chat turns with the thinking-budget controller: Session.chat / Session.chat_stream.

    r = session.chat([{"role": "user", "content": "How many red shapes?"}], thinking="on",
                     thinking_budget=64)
    print(r.reasoning, r.answer, r.usage["reasoning_tokens"])
    for channel, text in session.chat_stream(messages, thinking="auto"):
        print(channel, text)
"""
from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _ffi
from ._ffi import lib
from .errors import Error, check

_MODES = {"auto": 1, "on": 2, "off": 3}
_EFFORTS = {None: 0, "low": 1, "medium": 2, "high": 3}
_CHANNELS = {0: "answer", 1: "reasoning", 2: "tool_call"}


@dataclass
class Response:
    """One assistant turn: its reasoning, its answer, the tool calls it made and the token
    accounting (prompt_tokens, cached_tokens, reasoning_tokens, answer_tokens, forced_tokens,
    cues, reasoning_end: none | natural | budget | early_exit | off | unfinished)."""
    reasoning: str
    answer: str
    tool_calls: List[Dict[str, Any]] = field(default_factory=list)
    usage: Dict[str, Any] = field(default_factory=dict)
    finish_reason: str = ""
    malformed: bool = False
    tokens: List[int] = field(default_factory=list)  # generated ids (chat_stream / start_chat; chat with logprobs)
    logprobs: List[Dict[str, Any]] = field(default_factory=list)  # with n_logprobs: {"token", "logprob", "top"}


def _generate_params(session, *, max_tokens, seed, sampling, stop=(), n_logprobs=0, thinking=None,
                     thinking_budget=None, min_thinking_tokens=0, effort=None, wrap_up=None, continue_cue=None,
                     early_exit=None):
    """muse_generate_params (and the buffers it points to) for generate / chat / start.
    thinking None: no controller (raw text; chat turns treat it as "auto")."""
    if thinking is not None and thinking not in _MODES:
        raise ValueError(f"thinking must be one of {sorted(_MODES)}, not {thinking!r}")
    if effort not in _EFFORTS:
        raise ValueError(f"effort must be one of low, medium, high or None, not {effort!r}")
    if isinstance(stop, str):
        stop = [stop]
    stop = list(stop or ())
    if not 0 <= int(n_logprobs) <= 64:
        raise ValueError(f"n_logprobs must be in 0..64, not {n_logprobs!r}")
    from .session import Session
    keep = []  # ctypes objects that must outlive the call
    sampling = dict(sampling)
    logit_bias = sampling.pop("logit_bias", None)
    default_seed = getattr(session, "_seed", 0)
    p = Session._sampling(seed=default_seed if seed is None else seed, **sampling)
    keep.append(Session._bias(p, logit_bias))
    gp = _ffi.GenerateParams()
    lib.muse_generate_params_init(ctypes.byref(gp))
    gp.max_tokens = int(max_tokens)
    gp.sampling = ctypes.pointer(p)
    if stop:
        stops = (ctypes.c_char_p * len(stop))(*[s.encode() for s in stop])
        keep.append(stops)
        gp.stop, gp.n_stop = stops, len(stop)
    gp.n_logprobs = int(n_logprobs)
    gp.thinking.mode = 0 if thinking is None else _MODES[thinking]
    gp.thinking.budget = -1 if thinking_budget is None else int(thinking_budget)
    gp.thinking.min_tokens = int(min_thinking_tokens)
    gp.thinking.effort = _EFFORTS[effort]
    if early_exit:
        opts = {} if early_exit is True else dict(early_exit)
        unknown = set(opts) - {"interval", "stable", "probe_tokens", "min_prob"}
        if unknown:
            raise ValueError(f"unknown early_exit settings {sorted(unknown)}")
        gp.thinking.early_exit = 1
        gp.thinking.early_exit_interval = int(opts.get("interval", 0))
        gp.thinking.early_exit_stable = int(opts.get("stable", 0))
        gp.thinking.early_exit_probe_tokens = int(opts.get("probe_tokens", 0))
        gp.thinking.early_exit_min_prob = float(opts.get("min_prob", 0.0))
    if wrap_up is not None:
        keep.append(wrap_up.encode())
        gp.thinking.wrap_up = keep[-1]
    if continue_cue is not None:
        keep.append(continue_cue.encode())
        gp.thinking.continue_cue = keep[-1]
    return gp, (p, keep)


def _n_logprobs(n_logprobs, logprobs) -> int:
    """n_logprobs from either keyword: logprobs=True means 1, an int means that many."""
    if logprobs is None or logprobs is False:
        return int(n_logprobs or 0)
    if logprobs is True:
        return max(1, int(n_logprobs or 0))
    return int(logprobs)


def _params(session, *, thinking, thinking_budget, min_thinking_tokens, effort, wrap_up, continue_cue, tools,
            variables, template, reuse_prefix, max_tokens, seed, sampling, early_exit=None, stop=(), n_logprobs=0):
    if thinking not in _MODES:
        raise ValueError(f"thinking must be one of {sorted(_MODES)}, not {thinking!r}")
    gp, (p, keep) = _generate_params(session, max_tokens=max_tokens, seed=seed, sampling=sampling, stop=stop,
                                     n_logprobs=n_logprobs, thinking=thinking, thinking_budget=thinking_budget,
                                     min_thinking_tokens=min_thinking_tokens, effort=effort, wrap_up=wrap_up,
                                     continue_cue=continue_cue, early_exit=early_exit)
    cp = _ffi.ChatParams()
    lib.muse_chat_params_init(ctypes.byref(cp))
    if tools is not None:
        keep.append(json.dumps(tools, ensure_ascii=False).encode())
        cp.tools_json = keep[-1]
    if variables:
        keep.append(json.dumps(variables, ensure_ascii=False).encode())
        cp.variables_json = keep[-1]
    if template is not None:
        keep.append(template.encode())
        cp.template_source = keep[-1]
    cp.reuse_prefix = 1 if reuse_prefix else 0
    return gp, cp, (p, keep)


def _split_images(messages):
    """Messages as JSON-able dicts with image parts' muse.Image objects taken out (in order)."""
    from .image import Image
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    images, out = [], []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") in ("image", "image_url", "input_image"):
                    img = part.get("image")
                    if not isinstance(img, Image):
                        raise TypeError("an image part needs {'type': 'image', 'image': muse.Image}")
                    images.append(img)
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            m = dict(m, content=parts)
        out.append(m)
    return out, images


def _messages_json(messages) -> bytes:
    plain, _ = _split_images(messages)
    return json.dumps(plain, ensure_ascii=False).encode()


def _attach_images(cp, messages, keep, extra=None):
    plain, images = _split_images(messages)
    images += list(extra or [])  # for "<__media__>" markers written into text contents
    if images:
        arr = (ctypes.c_void_p * len(images))(*[im._h() for im in images])
        keep.append((arr, images))
        cp.images, cp.n_images = arr, len(images)
    return json.dumps(plain, ensure_ascii=False).encode()


def _response(text: str) -> Response:
    d = json.loads(text)
    return Response(reasoning=d["reasoning"], answer=d["answer"], tool_calls=d["tool_calls"], usage=d["usage"],
                    finish_reason=d["finish_reason"], malformed=d["malformed"], tokens=d.get("tokens", []),
                    logprobs=d.get("logprobs", []))


_CHAT_NAMES = ("thinking", "thinking_budget", "min_thinking_tokens", "effort", "wrap_up", "continue_cue", "tools",
               "variables", "template", "reuse_prefix", "max_tokens", "seed", "early_exit", "stop")
_CHAT_DEFAULTS = dict(thinking="auto", thinking_budget=None, min_thinking_tokens=0, effort=None, wrap_up=None,
                      continue_cue=None, tools=None, variables=None, template=None, reuse_prefix=True,
                      max_tokens=1024, seed=None, early_exit=None, stop=())


def _chat_setup(session, messages, kwargs):
    """(seq_id, messages_json, gp, cp, keep) from chat()'s keywords."""
    kwargs = dict(kwargs)
    opts = dict(_CHAT_DEFAULTS)
    opts.update({k: kwargs.pop(k) for k in _CHAT_NAMES if k in kwargs})
    seq_id = int(kwargs.pop("seq_id", 0))
    extra_images = kwargs.pop("images", None)
    n_logprobs = _n_logprobs(kwargs.pop("n_logprobs", 0), kwargs.pop("logprobs", None))
    gp, cp, keep = _params(session, sampling=kwargs, n_logprobs=n_logprobs, **opts)
    messages_json = _attach_images(cp, messages, keep[1], extra_images)
    return seq_id, messages_json, gp, cp, keep


def _decode_pending(pending: bytes):
    """(text, rest): pieces are whole characters; join defensively anyway."""
    try:
        return pending.decode("utf-8"), b""
    except UnicodeDecodeError:
        return None, pending


class ChatMixin:
    """Session methods for chat turns (mixed into muse.Session)."""

    def chat(self, messages, *, thinking: str = "auto", thinking_budget: Optional[int] = None,
             min_thinking_tokens: int = 0, effort: Optional[str] = None, wrap_up: Optional[str] = None,
             continue_cue: Optional[str] = None, tools=None, variables: Optional[dict] = None,
             template: Optional[str] = None, reuse_prefix: bool = True, max_tokens: int = 1024, seq_id: int = 0,
             seed: Optional[int] = None, early_exit=None, images=None, stop=(), n_logprobs: int = 0,
             logprobs=None, **sampling) -> Response:
        """One assistant turn for `messages` (OpenAI chat format), rendered with the model's chat
        template. thinking: "auto" (the model decides), "on", "off" (no reasoning token at all);
        thinking_budget: reasoning tokens before a wrap-up and the answer are forced;
        min_thinking_tokens: reasoning may not end earlier ("Wait" is injected); effort:
        "low" | "medium" | "high" (template variable + default budget). Sampling keywords as
        in generate(); stop: strings that end the turn (before them); n_logprobs (or
        logprobs=True/int): top-n logprobs of every token, in Response.logprobs.
        The sequence keeps the conversation: the next call reuses its prefix.
        early_exit: True or {"interval", "stable", "probe_tokens", "min_prob"} for adaptive early
        exit (needs a session with n_seq_max >= 2). Images: content parts
        {"type": "image", "image": muse.Image}, or "<__media__>" markers in text contents with the
        images given here (after those of the parts, in order)."""
        seq_id, messages_json, gp, cp, keep = _chat_setup(self, messages, dict(
            thinking=thinking, thinking_budget=thinking_budget, min_thinking_tokens=min_thinking_tokens,
            effort=effort, wrap_up=wrap_up, continue_cue=continue_cue, tools=tools, variables=variables,
            template=template, reuse_prefix=reuse_prefix, max_tokens=max_tokens, seq_id=seq_id, seed=seed,
            early_exit=early_exit, images=images, stop=stop, n_logprobs=n_logprobs, logprobs=logprobs, **sampling))
        tokens: List[int] = []
        lps: List[Dict[str, Any]] = []
        cb = _ffi.TOKEN_CB(0)
        if gp.n_logprobs > 0:  # muse_session_chat's JSON has no logprobs: collect them from the stream
            def on_token(event, _user):
                ev = event.contents
                if ev.token >= 0:
                    tokens.append(int(ev.token))
                    lps.append({"token": int(ev.token), "logprob": float(ev.logprob),
                                "top": [[int(ev.top_tokens[i]), float(ev.top_logprobs[i])] for i in range(ev.n_top)]})
                return True
            cb = _ffi.TOKEN_CB(on_token)
        out = ctypes.c_void_p()
        check(lib.muse_session_chat(self._h(), seq_id, messages_json, ctypes.byref(cp),
                                    ctypes.byref(gp), cb, None, ctypes.byref(out)))
        try:
            r = _response(ctypes.string_at(out).decode("utf-8", "replace"))
        finally:
            lib.muse_string_free(out)
        if gp.n_logprobs > 0:
            r.tokens, r.logprobs = tokens, lps
        return r

    def start_chat(self, messages, **kwargs):
        """Starts a chat turn (keywords as chat()) as a muse.Generation pulled event by event;
        several (one per sequence) advance together. Nothing runs until the first event."""
        from .generation import Generation
        seq_id, messages_json, gp, cp, keep = _chat_setup(self, messages, kwargs)
        h = ctypes.c_void_p()
        check(lib.muse_generation_start_chat(self._h(), seq_id, messages_json, ctypes.byref(cp), ctypes.byref(gp),
                                             ctypes.byref(h)))
        return Generation(self, h, (gp, cp, keep))

    def chat_stream(self, messages, **kwargs) -> Iterator[Tuple[str, Any]]:
        """Like chat(), yielding (channel, text) as the turn streams: channel is "reasoning" or
        "answer"; tool calls come whole as ("tool_call", {"name": ..., "arguments": {...}}).
        The final Response is in self.last_response afterwards. Events are pulled from a
        muse.Generation on the calling thread; Session.cancel() (any thread) ends the turn."""
        pending = {"reasoning": b"", "answer": b""}
        error = None
        with self.start_chat(messages, **kwargs) as g:
            for ev, data in g._raw_events():
                if ev.kind == "tool_call":
                    yield "tool_call", ev.tool
                elif ev.kind == "error":
                    from .generation import _error_from_message
                    error = _error_from_message(ev.text)
                elif ev.kind in pending and data:
                    text, pending[ev.kind] = _decode_pending(pending[ev.kind] + data)
                    if text is not None:
                        yield ev.kind, text
            for channel, rest in pending.items():
                if rest:
                    yield channel, rest.decode("utf-8", "replace")
            if error is not None:
                raise error
            d = g.result()
        self.last_response = Response(reasoning=d["reasoning"], answer=d["answer"], tool_calls=d["tool_calls"],
                                      usage=d["usage"], finish_reason=d["finish_reason"], malformed=d["malformed"],
                                      tokens=d.get("tokens", []), logprobs=d.get("logprobs", []))

    def chat_prompt(self, messages, **kwargs) -> str:
        """The prompt chat() would evaluate for `messages` (same keywords)."""
        return self.model.chat_prompt(messages, **kwargs)
