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
    # Contemplating mode (agents > 1): answer/reasoning above are the aggregate's; each agent's
    # own turn is in `agents`; aggregate = {"method", "agreement", "tally": [[answer, weight]], ...}.
    agents: List["Agent"] = field(default_factory=list)
    aggregate: Dict[str, Any] = field(default_factory=dict)
    # Tool rounds (tools the library called): {"name", "arguments", "content", "failed", "image",
    # "round"} per call, and how many rounds ran after the first response.
    tool_results: List[Dict[str, Any]] = field(default_factory=list)
    tool_rounds: int = 0


@dataclass
class Agent:
    """One agent of a contemplating turn: its answer and reasoning, its trace confidence
    (DeepConf), why it ended (stop | length | cancelled | low_confidence | error), the temperature
    and seed it sampled with, whether its answer counted in the aggregate, and its usage
    (completion_tokens, reasoning_tokens, answer_tokens, reasoning_end)."""
    agent: int
    answer: str
    reasoning: str = ""
    confidence: float = 0.0
    finish_reason: str = ""
    temperature: float = 0.0
    seed: int = 0
    voted: bool = False
    usage: Dict[str, Any] = field(default_factory=dict)
    tokens: List[int] = field(default_factory=list)  # chat(..., n_logprobs=N) only
    logprobs: List[Dict[str, Any]] = field(default_factory=list)


def _generate_params(session, *, max_tokens, seed, sampling, stop=(), n_logprobs=0, thinking=None,
                     thinking_budget=None, min_thinking_tokens=0, effort=None, wrap_up=None, continue_cue=None,
                     early_exit=None, contemplate=None, grammar=None):
    """muse_generate_params (and the buffers it points to) for generate / chat / start.
    thinking None: no controller (raw text; chat turns treat it as "auto"). contemplate: the
    contemplating-mode keywords (see _CONTEMPLATE_NAMES), or None for one agent."""
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
    if contemplate:
        _fill_contemplate(gp.contemplate, keep, **contemplate)
    # Constrained answer (muse.Grammar); kept alive with the params.
    if grammar is not None:
        from .grammar import grammar_handle
        gp.grammar = grammar_handle(grammar)
        keep.append(grammar)
    return gp, (p, keep)


_AGGREGATES = {"vote": 0, "weighted": 1, "early_stop": 2, "synthesize": 3, "all": 4}
_TRACE_SCORES = {"lowest": 0, "tail": 1, "mean": 2}
_CONTEMPLATE_NAMES = ("agents", "aggregate", "temperature_spread", "agent_temperatures", "agent_budgets",
                      "agent_seeds", "confidence_window", "confidence_top_k", "trace_score", "tail_tokens",
                      "keep_top", "stop_threshold", "warmup_agents", "stop_percentile", "synthesize_reasoning",
                      "normalize")


_CONTEMPLATE_DEFAULTS = dict(agents=1, aggregate="vote", temperature_spread=0.0, agent_temperatures=None,
                             agent_budgets=None, agent_seeds=None, confidence_window=None, confidence_top_k=None,
                             trace_score="lowest", tail_tokens=None, keep_top=None, stop_threshold=None,
                             warmup_agents=None, stop_percentile=None, synthesize_reasoning=False, normalize=None)


def _pop_contemplate(kwargs: dict) -> Optional[dict]:
    """Takes the contemplating-mode keywords out of kwargs: a dict for _fill_contemplate, or None
    for one agent (where any other contemplating setting is an error, not silently ignored)."""
    opts = {k: kwargs.pop(k) for k in _CONTEMPLATE_NAMES if k in kwargs}
    agents = opts.get("agents")
    agents = 1 if agents is None else int(agents)
    if agents <= 1:
        if agents < 1:
            raise ValueError(f"agents must be at least 1, not {agents}")
        extra = sorted(k for k, v in opts.items() if k != "agents" and v != _CONTEMPLATE_DEFAULTS[k])
        if extra:
            raise ValueError(f"{', '.join(extra)}: contemplating settings need agents > 1")
        return None
    opts["agents"] = agents
    return opts


class _Normalizer:
    """A Python str -> str callable as a muse_normalize_cb. An exception (or a non-str return)
    makes muse use its own rule for that answer; the first exception is kept and re-raised by
    the call that ran the request."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"normalize must be a callable str -> str, not {type(fn).__name__}")
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.cb = _ffi.NORMALIZE_CB(self._call)  # kept alive by whoever keeps this object

    def _call(self, answer, out, capacity, _user):
        try:
            text = self.fn((answer or b"").decode("utf-8", "replace"))
            if not isinstance(text, str):
                raise TypeError(f"normalize must return a str, not {type(text).__name__}")
            data = text.encode("utf-8")
            if len(data) >= capacity:  # cut on a character boundary
                data = data[: max(0, capacity - 1)].decode("utf-8", "ignore").encode("utf-8")
            ctypes.memmove(out, data, len(data))
            out[len(data)] = b"\0"
            return len(data)
        except BaseException as e:  # never unwind through C
            if self.error is None:
                self.error = e
            return -1

    def raise_pending(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e


def _fill_contemplate(c, keep, *, agents, aggregate="vote", temperature_spread=0.0, agent_temperatures=None,
                      agent_budgets=None, agent_seeds=None, confidence_window=None, confidence_top_k=None,
                      trace_score="lowest", tail_tokens=None, keep_top=None, stop_threshold=None,
                      warmup_agents=None, stop_percentile=None, synthesize_reasoning=False, normalize=None):
    """Fills muse_contemplate_params; the arrays and the callback go into keep."""
    n = int(agents)
    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, not {aggregate!r}")
    if trace_score not in _TRACE_SCORES:
        raise ValueError(f"trace_score must be one of {', '.join(_TRACE_SCORES)}, not {trace_score!r}")
    c.n_agents = n
    c.aggregate = _AGGREGATES[aggregate]
    c.temperature_spread = float(temperature_spread or 0.0)
    c.confidence_window = int(confidence_window or 0)
    c.confidence_top_k = int(confidence_top_k or 0)
    c.trace_score = _TRACE_SCORES[trace_score]
    c.tail_tokens = int(tail_tokens or 0)
    c.keep_top = float(keep_top or 0.0)
    c.stop_threshold = float(stop_threshold or 0.0)
    c.warmup_agents = int(warmup_agents or 0)
    c.stop_percentile = float(stop_percentile or 0.0)
    c.synthesize_reasoning = 1 if synthesize_reasoning else 0

    def per_agent(name, values, ctype, conv):
        if values is None:
            return None
        values = list(values)
        if len(values) != n:  # muse reads exactly n_agents entries
            raise ValueError(f"{name} has {len(values)} entries for {n} agents")
        arr = (ctype * n)(*[conv(v) for v in values])
        keep.append(arr)
        return arr

    temps = per_agent("agent_temperatures", agent_temperatures, ctypes.c_float, float)
    if temps is not None:
        c.agent_temperatures = temps
    budgets = per_agent("agent_budgets", agent_budgets, ctypes.c_int32,
                        lambda b: -2 if b is None else int(b))  # None: the request's budget
    if budgets is not None:
        c.agent_budgets = budgets
    seeds = per_agent("agent_seeds", agent_seeds, ctypes.c_uint64, int)
    if seeds is not None:
        c.agent_seeds = seeds
    if normalize is not None:
        norm = _Normalizer(normalize)
        keep.append(norm)
        c.normalize = norm.cb


def _normalizer_of(keep) -> Optional[_Normalizer]:
    for k in keep[1]:
        if isinstance(k, _Normalizer):
            return k
    return None


def _n_logprobs(n_logprobs, logprobs) -> int:
    """n_logprobs from either keyword: logprobs=True means 1, an int means that many."""
    if logprobs is None or logprobs is False:
        return int(n_logprobs or 0)
    if logprobs is True:
        return max(1, int(n_logprobs or 0))
    return int(logprobs)


def _params(session, *, thinking, thinking_budget, min_thinking_tokens, effort, wrap_up, continue_cue, tools,
            variables, template, reuse_prefix, max_tokens, seed, sampling, early_exit=None, stop=(), n_logprobs=0,
            contemplate=None, tool_choice=None, parallel_tool_calls=True, max_tool_rounds=4, builtin_tools=None):
    if thinking not in _MODES:
        raise ValueError(f"thinking must be one of {sorted(_MODES)}, not {thinking!r}")
    gp, (p, keep) = _generate_params(session, max_tokens=max_tokens, seed=seed, sampling=sampling, stop=stop,
                                     n_logprobs=n_logprobs, thinking=thinking, thinking_budget=thinking_budget,
                                     min_thinking_tokens=min_thinking_tokens, effort=effort, wrap_up=wrap_up,
                                     continue_cue=continue_cue, early_exit=early_exit, contemplate=contemplate)
    cp = _ffi.ChatParams()
    lib.muse_chat_params_init(ctypes.byref(cp))
    # ---- tools: callables become host tools the library calls (muse.tools); a list of
    # declaration dicts only is passed as the tools JSON, as before.
    from .tools import apply_tools
    if tools is not None and any(not isinstance(t, dict) and not callable(t) for t in tools):
        raise TypeError("tools must be callables or OpenAI declaration dicts")
    callable_tools = tools is not None and any(callable(t) and not isinstance(t, dict) for t in tools)
    if tools is not None and not callable_tools:
        keep.append(json.dumps(tools, ensure_ascii=False).encode())
        cp.tools_json = keep[-1]
    apply_tools(cp, keep, tools if callable_tools else None, tool_choice, parallel_tool_calls, max_tool_rounds,
                builtin_tools)
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


def _agent(d: Dict[str, Any]) -> Agent:
    return Agent(agent=int(d["agent"]), answer=d["answer"], reasoning=d.get("reasoning", ""),
                 confidence=float(d.get("confidence", 0.0)), finish_reason=d.get("finish_reason", ""),
                 temperature=float(d.get("temperature", 0.0)), seed=int(d.get("seed", 0)),
                 voted=bool(d.get("voted", False)), usage=d.get("usage", {}))


def _response_of(d: Dict[str, Any]) -> Response:
    return Response(reasoning=d["reasoning"], answer=d["answer"], tool_calls=d["tool_calls"], usage=d["usage"],
                    finish_reason=d["finish_reason"], malformed=d["malformed"], tokens=d.get("tokens", []),
                    logprobs=d.get("logprobs", []), agents=[_agent(a) for a in d.get("agents", [])],
                    aggregate=d.get("aggregate", {}), tool_results=d.get("tool_results", []),
                    tool_rounds=int(d.get("tool_rounds", 0)))


def _response(text: str) -> Response:
    return _response_of(json.loads(text))


_CHAT_NAMES = ("thinking", "thinking_budget", "min_thinking_tokens", "effort", "wrap_up", "continue_cue", "tools",
               "variables", "template", "reuse_prefix", "max_tokens", "seed", "early_exit", "stop",
               "tool_choice", "parallel_tool_calls", "max_tool_rounds", "builtin_tools")
_CHAT_DEFAULTS = dict(thinking="auto", thinking_budget=None, min_thinking_tokens=0, effort=None, wrap_up=None,
                      continue_cue=None, tools=None, variables=None, template=None, reuse_prefix=True,
                      max_tokens=1024, seed=None, early_exit=None, stop=(),
                      tool_choice=None, parallel_tool_calls=True, max_tool_rounds=4, builtin_tools=None)


def _chat_setup(session, messages, kwargs):
    """(seq_id, messages_json, gp, cp, keep) from chat()'s keywords."""
    kwargs = dict(kwargs)
    opts = dict(_CHAT_DEFAULTS)
    opts.update({k: kwargs.pop(k) for k in _CHAT_NAMES if k in kwargs})
    seq_id = int(kwargs.pop("seq_id", 0))
    extra_images = kwargs.pop("images", None)
    n_logprobs = _n_logprobs(kwargs.pop("n_logprobs", 0), kwargs.pop("logprobs", None))
    contemplate = _pop_contemplate(kwargs)
    # Constrained answer: grammar= (a muse.Grammar) or response_format= (OpenAI's; dict or JSON).
    grammar = kwargs.pop("grammar", None)
    response_format = kwargs.pop("response_format", None)
    gp, cp, keep = _params(session, sampling=kwargs, n_logprobs=n_logprobs, contemplate=contemplate, **opts)
    if grammar is not None:
        from .grammar import grammar_handle
        gp.grammar = grammar_handle(grammar)
        keep[1].append(grammar)
    if response_format is not None:
        from .grammar import response_format_json
        keep[1].append(response_format_json(response_format))
        cp.response_format_json = keep[1][-1]
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
             logprobs=None, agents: int = 1, aggregate: str = "vote", temperature_spread: float = 0.0,
             agent_temperatures=None, agent_budgets=None, agent_seeds=None, confidence_window: Optional[int] = None,
             confidence_top_k: Optional[int] = None, trace_score: str = "lowest", tail_tokens: Optional[int] = None,
             keep_top: Optional[float] = None, stop_threshold: Optional[float] = None,
             warmup_agents: Optional[int] = None, stop_percentile: Optional[float] = None,
             synthesize_reasoning: bool = False, normalize=None, tool_choice=None, parallel_tool_calls: bool = True,
             max_tool_rounds: int = 4, builtin_tools=None, **sampling) -> Response:
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
        images given here (after those of the parts, in order).

        Contemplating mode (agents > 1; the session needs n_seq_max >= agents, + 1 for
        "synthesize"): the prompt is evaluated once and forked to `agents` agents decoded together.
        Agent i samples with seed + i (or agent_seeds[i]) at the temperature spread evenly over
        temperature +- temperature_spread / 2 (or agent_temperatures[i]); agent_budgets[i]
        overrides thinking_budget (None: the request's). aggregate: "vote" (majority of the
        normalized answers), "weighted" (DeepConf: confidence-weighted, the keep_top fraction of
        traces votes), "early_stop" (agents whose group confidence falls under stop_threshold, or
        a threshold calibrated at stop_percentile of the first warmup_agents traces, are stopped),
        "synthesize" (a last pass reads the answers and writes one; synthesize_reasoning shows it
        their reasoning tails) or "all" (every answer; the vote is reported too). Confidence:
        confidence_top_k candidates per token, groups of confidence_window tokens, trace_score
        "lowest" (group) | "tail" (last tail_tokens) | "mean". normalize: a str -> str callable
        giving the canonical form answers are voted on (default: muse's own rule).
        Response.answer is then the aggregate; Response.agents lists each agent (muse.Agent) and
        Response.aggregate = {"method", "agreement", "tally", ...}; usage["prompt_tokens_evaluated"]
        counts the prompt rows actually run.

        Constrained answer: response_format (OpenAI's: {"type": "text" | "json_object"} or
        {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}, a dict or JSON text)
        or grammar (a muse.Grammar), not both. The reasoning is never constrained.


        Tools: tools=[callable or OpenAI declaration dict, ...]. Callables are called by the
        library between rounds (declarations derived from type hints and docstrings, see
        muse.tools) until the model answers or max_tool_rounds rounds ran; calls of
        declaration-only tools end the turn in Response.tool_calls. tool_choice: "auto",
        "none", "required" or a function name; parallel_tool_calls=False: one call per
        response. Response.tool_results lists the calls that ran."""
        seq_id, messages_json, gp, cp, keep = _chat_setup(self, messages, dict(
            thinking=thinking, thinking_budget=thinking_budget, min_thinking_tokens=min_thinking_tokens,
            effort=effort, wrap_up=wrap_up, continue_cue=continue_cue, tools=tools, variables=variables,
            template=template, reuse_prefix=reuse_prefix, max_tokens=max_tokens, seq_id=seq_id, seed=seed,
            early_exit=early_exit, images=images, stop=stop, n_logprobs=n_logprobs, logprobs=logprobs,
            agents=agents, aggregate=aggregate, temperature_spread=temperature_spread,
            agent_temperatures=agent_temperatures, agent_budgets=agent_budgets, agent_seeds=agent_seeds,
            confidence_window=confidence_window, confidence_top_k=confidence_top_k, trace_score=trace_score,
            tail_tokens=tail_tokens, keep_top=keep_top, stop_threshold=stop_threshold, warmup_agents=warmup_agents,
            stop_percentile=stop_percentile, synthesize_reasoning=synthesize_reasoning, normalize=normalize,
            tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls, max_tool_rounds=max_tool_rounds,
            builtin_tools=builtin_tools, **sampling))
        # muse_session_chat's JSON has no logprobs: they are collected from the stream (per agent)
        collected: Dict[int, Tuple[List[int], List[Dict[str, Any]]]] = {}
        cb = _ffi.TOKEN_CB(0)
        if gp.n_logprobs > 0:
            def on_token(event, _user):
                ev = event.contents
                if ev.token >= 0:
                    toks, lps = collected.setdefault(int(ev.agent), ([], []))
                    toks.append(int(ev.token))
                    lps.append({"token": int(ev.token), "logprob": float(ev.logprob),
                                "top": [[int(ev.top_tokens[i]), float(ev.top_logprobs[i])] for i in range(ev.n_top)]})
                return True
            cb = _ffi.TOKEN_CB(on_token)
        out = ctypes.c_void_p()
        status = lib.muse_session_chat(self._h(), seq_id, messages_json, ctypes.byref(cp), ctypes.byref(gp), cb,
                                       None, ctypes.byref(out))
        norm = _normalizer_of(keep)
        if norm is not None:
            norm.raise_pending()
        check(status)
        try:
            r = _response(ctypes.string_at(out).decode("utf-8", "replace"))
        finally:
            lib.muse_string_free(out)
        if gp.n_logprobs > 0:
            if r.agents:
                for a in r.agents:
                    a.tokens, a.logprobs = collected.get(a.agent, ([], []))
            else:
                r.tokens, r.logprobs = collected.get(0, ([], []))
        return r

    def start_chat(self, messages, **kwargs):
        """Starts a chat turn (keywords as chat()) as a muse.Generation pulled event by event;
        several (one per sequence) advance together. Nothing runs until the first event.
        With agents > 1 the events carry their agent (-1: the aggregate answer and the final
        "done"); each agent's end is an "agent_done" event."""
        from .generation import Generation
        seq_id, messages_json, gp, cp, keep = _chat_setup(self, messages, kwargs)
        h = ctypes.c_void_p()
        check(lib.muse_generation_start_chat(self._h(), seq_id, messages_json, ctypes.byref(cp), ctypes.byref(gp),
                                             ctypes.byref(h)))
        return Generation(self, h, (gp, cp, keep), normalizer=_normalizer_of(keep))

    def chat_stream(self, messages, **kwargs) -> Iterator[Tuple[Any, ...]]:
        """Like chat(), yielding (channel, text) as the turn streams: channel is "reasoning" or
        "answer"; tool calls come whole as ("tool_call", {"name": ..., "arguments": {...}}); calls the
        library ran as ("tool_result", {"name", "arguments", "failed", "content"}) and files tools
        made for the host as ("artefact", {"name", "kind", "mime", "data"}).
        With agents > 1 it yields (agent, channel, text) triples instead: agent 0..agents-1 for
        the agents' own text, agents for the synthesis pass, -1 for the aggregate answer.
        The final Response is in self.last_response afterwards. Events are pulled from a
        muse.Generation on the calling thread; Session.cancel() (any thread) ends the turn."""
        contemplating = int(kwargs.get("agents") or 1) > 1
        pending: Dict[Tuple[int, str], bytes] = {}
        error = None
        with self.start_chat(messages, **kwargs) as g:
            for ev, data in g._raw_events():
                if ev.kind == "tool_call":
                    yield (ev.agent, "tool_call", ev.tool) if contemplating else ("tool_call", ev.tool)
                elif ev.kind == "tool_result":  # a call the library ran: its result as the model reads it
                    yield ("tool_result", dict(ev.tool, content=ev.text))
                elif ev.kind == "artefact":
                    yield ("artefact", ev.tool)
                elif ev.kind == "error":
                    from .generation import _error_from_message
                    error = _error_from_message(ev.text)
                elif ev.kind in ("reasoning", "answer") and data:
                    key = (ev.agent, ev.kind)
                    text, pending[key] = _decode_pending(pending.get(key, b"") + data)
                    if text is not None:
                        yield (ev.agent, ev.kind, text) if contemplating else (ev.kind, text)
            for (agent, channel), rest in pending.items():
                if rest:
                    text = rest.decode("utf-8", "replace")
                    yield (agent, channel, text) if contemplating else (channel, text)
            if error is not None:
                raise error
            d = g.result()
        self.last_response = _response_of(d)

    def chat_prompt(self, messages, **kwargs) -> str:
        """The prompt chat() would evaluate for `messages` (same keywords)."""
        return self.model.chat_prompt(messages, **kwargs)
