"""muse.Session: a KV cache over a model; evaluate tokens, read logits."""
from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Iterator, List, Optional, Sequence

from . import _ffi
from ._ffi import lib
from ._handle import Handle
from .conversation import ChatMixin
from .errors import Error, check
from .generation import Batch, Generation, _error_from_message

_KV_TYPES = {"f16": 0, "f32": 1}


class Session(ChatMixin, Handle):
    """Create with Model.session(n_ctx=4096, n_seq_max=1, seed=0, n_batch=512, kv_type="f16").
    Use from one thread at a time. The model stays alive while the session does."""
    _kind = "session"

    def __init__(self, model, *, n_ctx: int, n_seq_max: int, seed: int, n_batch: int, kv_type: str,
                 swa_full: bool = False):
        self._handle = None
        self._gens = weakref.WeakSet()  # live muse.Generation objects of this session
        self._gens_lock = threading.Lock()
        if kv_type not in _KV_TYPES:
            raise ValueError(f"kv_type must be one of {sorted(_KV_TYPES)}, not {kv_type!r}")
        self.model = model
        p = _ffi.SessionParams()
        lib.muse_session_params_init(ctypes.byref(p))
        p.n_ctx, p.n_seq_max, p.n_batch, p.seed = int(n_ctx), int(n_seq_max), int(n_batch), int(seed)
        p.kv_type = _KV_TYPES[kv_type]
        p.swa_full = 1 if swa_full else 0
        h = ctypes.c_void_p()
        check(lib.muse_session_create(model._h(), ctypes.byref(p), ctypes.byref(h)))
        self._handle = h
        self._seed = int(seed)
        self.n_seq_max = int(n_seq_max)
        self.n_vocab = model.n_vocab

    def _free(self, handle) -> None:
        with self._gens_lock:  # generations must be freed before their session
            gens = list(self._gens)
        for g in gens:
            g.close()
        lib.muse_session_free(handle)

    def eval(self, tokens: Sequence[int], *, seq_id: int = 0) -> List[float]:
        """Appends tokens to a sequence and returns the logits of the last one."""
        arr = (ctypes.c_int32 * len(tokens))(*[int(t) for t in tokens])
        out = ctypes.POINTER(ctypes.c_float)()
        check(lib.muse_session_eval(self._h(), int(seq_id), arr, len(tokens), ctypes.byref(out)))
        return out[: self.n_vocab]

    def _prompt_ids(self, prompt, images=None, seq_id: int = 0) -> List[int]:
        if images:
            # Text with <__media__> markers: evaluated here (images encoded by the mmproj);
            # generation then continues from it with an empty prompt.
            if not isinstance(prompt, str):
                raise TypeError("images need a text prompt with one <__media__> marker per image")
            self.eval_prompt(prompt, images, seq_id=seq_id)
            return []
        if isinstance(prompt, str):  # text: special tokens parsed, BOS as the model's metadata says
            return self.model.tokenize(prompt, add_special=self.seq_length(seq_id) == 0, parse_special=True)
        return [int(t) for t in prompt]

    def eval_prompt(self, text: str, images=(), *, seq_id: int = 0, add_bos: Optional[bool] = None) -> List[float]:
        """Evaluates a text prompt in which each "<__media__>" marker stands for the next image
        (muse.Image), encoded by the model's vision projector and wrapped as its family does.
        BOS: as the model says when the sequence is empty (add_bos=None). Returns the logits."""
        from .image import Image
        images = list(images)
        for im in images:
            if not isinstance(im, Image):
                raise TypeError(f"images must be muse.Image objects, not {type(im).__name__}")
        arr = (ctypes.c_void_p * max(1, len(images)))(*[im._h() for im in images])
        bos = (-1 if self.seq_length(seq_id) == 0 else 0) if add_bos is None else (1 if add_bos else 0)
        logits = ctypes.POINTER(ctypes.c_float)()
        check(lib.muse_session_eval_prompt(self._h(), int(seq_id), text.encode(), arr, len(images), bos,
                                           ctypes.byref(logits), None))
        return logits[: self.n_vocab]

    @staticmethod
    def _sampling(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, seed=0, repeat_penalty=1.0,
                  presence_penalty=0.0, frequency_penalty=0.0):
        p = _ffi.SamplingParams()
        lib.muse_sampling_params_init(ctypes.byref(p))
        p.temperature, p.top_k, p.top_p, p.min_p = float(temperature), int(top_k), float(top_p), float(min_p)
        p.repeat_penalty, p.presence_penalty = float(repeat_penalty), float(presence_penalty)
        p.frequency_penalty, p.seed = float(frequency_penalty), int(seed)
        return p

    def generate(self, prompt, max_tokens: int = 256, *, seq_id: int = 0, seed: Optional[int] = None,
                 stop: Sequence[str] = (), logit_bias: Optional[dict] = None, images=None,
                 **options) -> Iterator[str]:
        """Generates from a text (or token ids) prompt, yielding text pieces as they are made.
        Sampling keywords: temperature, top_k, top_p, min_p, repeat_penalty, presence_penalty,
        frequency_penalty; logit_bias {token: bias}. Stops after an end-of-generation token,
        before any `stop` string, or at max_tokens. images: muse.Image objects for the
        "<__media__>" markers of a text prompt (needs the model's mmproj). Thinking keywords
        (thinking, thinking_budget, ...) and n_logprobs as in start(); the text of every channel
        is yielded. Events are pulled on the calling thread (a muse.Generation); cancel() from
        another thread ends it. With agents > 1 (contemplating keywords as in Session.chat) it
        yields (agent, text) pairs: agent -1 is the aggregate answer; the result (agents,
        aggregate) is in self.last_result afterwards."""
        contemplating = int(options.get("agents") or 1) > 1
        pending = {}
        with self.start(prompt, max_tokens, seq_id=seq_id, seed=seed, stop=stop, logit_bias=logit_bias,
                        images=images, **options) as g:
            for ev, data in g._raw_events():
                if ev.kind == "error":
                    raise _error_from_message(ev.text)
                if data and ev.kind in ("answer", "reasoning", "token"):
                    buf = pending.get(ev.agent, b"") + data
                    try:  # pieces are whole characters; join defensively anyway
                        text = buf.decode("utf-8")
                        pending[ev.agent] = b""
                    except UnicodeDecodeError:
                        pending[ev.agent] = buf
                        continue
                    yield (ev.agent, text) if contemplating else text
            if contemplating:
                self.last_result = g.result()
        for agent, rest in pending.items():
            if rest:
                text = rest.decode("utf-8", "replace")
                yield (agent, text) if contemplating else text

    def start(self, prompt=(), max_tokens: int = 256, *, seq_id: int = 0, seed: Optional[int] = None,
              stop: Sequence[str] = (), n_logprobs: int = 0, logprobs=None, thinking: Optional[str] = None,
              thinking_budget: Optional[int] = None, min_thinking_tokens: int = 0, effort: Optional[str] = None,
              wrap_up: Optional[str] = None, continue_cue: Optional[str] = None, early_exit=None,
              logit_bias: Optional[dict] = None, images=None, grammar=None, **sampling) -> Generation:
        """Starts a generation on sequence seq_id (prompt: text or token ids; empty continues
        what the sequence holds) and returns it as a muse.Generation: iterate it for events,
        or step the session (step()) to advance every live generation together. Sampling
        keywords as in generate(); n_logprobs (or logprobs=True/int): top-n alternatives per
        token; thinking: None (raw text), "auto", "on" or "off" with the thinking keywords of
        chat(). Contemplating keywords (agents, aggregate, ...) as in Session.chat: the events
        then carry their agent. grammar: a muse.Grammar the output (with thinking: the answer)
        must follow. Fails when the sequence already has a live generation."""
        from .conversation import _generate_params, _n_logprobs, _normalizer_of, _pop_contemplate
        contemplate = _pop_contemplate(sampling)  # before any work: bad settings raise first
        ids = self._prompt_ids(prompt, images, seq_id)
        if logit_bias is not None:
            sampling["logit_bias"] = logit_bias
        gp, keep = _generate_params(self, max_tokens=max_tokens, seed=seed, sampling=sampling, stop=stop,
                                    n_logprobs=_n_logprobs(n_logprobs, logprobs), thinking=thinking,
                                    thinking_budget=thinking_budget, min_thinking_tokens=min_thinking_tokens,
                                    effort=effort, wrap_up=wrap_up, continue_cue=continue_cue,
                                    early_exit=early_exit, contemplate=contemplate, grammar=grammar)
        arr = (ctypes.c_int32 * max(1, len(ids)))(*ids)
        h = ctypes.c_void_p()
        check(lib.muse_generation_start(self._h(), int(seq_id), arr, len(ids), ctypes.byref(gp), ctypes.byref(h)))
        return Generation(self, h, (gp, keep, arr), normalizer=_normalizer_of(keep))

    def step(self) -> int:
        """Advances every live generation of this session by one batched forward pass (their
        events queue up for iteration); returns how many are still live."""
        n = ctypes.c_int32()
        check(lib.muse_session_step(self._h(), ctypes.byref(n)))
        return int(n.value)

    def generate_many(self, prompts, max_tokens: int = 256, *, seed=None, **options) -> List[List[int]]:
        """Runs the prompts (token lists or texts) as concurrent generations on sequences
        0..len(prompts)-1, all decoded together in one batched forward pass per step, and returns
        each one's generated tokens. The session needs n_seq_max >= len(prompts). seed: an int
        (prompt i gets seed + i), a list (one per prompt) or None (the session's seed + i).
        Other keywords as in start()."""
        prompts = list(prompts)
        if len(prompts) > self.n_seq_max:
            raise ValueError(f"generate_many of {len(prompts)} prompts needs a session with n_seq_max >= "
                             f"{len(prompts)} (this one has {self.n_seq_max})")
        if "seq_id" in options:
            raise TypeError("generate_many uses sequences 0..len(prompts)-1; seq_id is not accepted")
        if seed is None:
            seeds = [self._seed + i for i in range(len(prompts))]
        elif isinstance(seed, (list, tuple)):
            if len(seed) != len(prompts):
                raise ValueError(f"seed list has {len(seed)} entries for {len(prompts)} prompts")
            seeds = [int(x) for x in seed]
        else:
            seeds = [int(seed) + i for i in range(len(prompts))]
        gens: List[Generation] = []
        try:
            for i, prompt in enumerate(prompts):
                gens.append(self.start(prompt, max_tokens, seq_id=i, seed=seeds[i], **options))
            while self.step() > 0:
                pass
            out = []
            for g in gens:
                for ev in g:  # drain the queued events; an error is raised
                    if ev.kind == "error":
                        raise _error_from_message(ev.text)
                out.append([int(t) for t in g.result()["tokens"]])
            return out
        finally:
            for g in gens:
                g.close()

    def decode(self, batch: Batch) -> None:
        """Runs one forward pass over a muse.Batch (any mix of sequences); the rows added with
        logits=True can then be read with logits(row). On error the session is unchanged."""
        if not isinstance(batch, Batch):
            raise TypeError(f"decode needs a muse.Batch, not {type(batch).__name__}")
        check(lib.muse_session_decode(self._h(), batch._h()))

    def logits(self, i: int) -> List[float]:
        """The logits (n_vocab floats) of the last decoded batch's output `i`: the rows added with
        logits=True are numbered 0, 1, ... in batch order (Batch.add returns the number)."""
        out = ctypes.POINTER(ctypes.c_float)()
        check(lib.muse_session_logits(self._h(), int(i), ctypes.byref(out)))
        return out[: self.n_vocab]

    def _track(self, generation) -> None:
        with self._gens_lock:
            self._gens.add(generation)

    @staticmethod
    def _bias(p, logit_bias):
        """Fills the logit-bias arrays of SamplingParams; returns the buffers to keep alive."""
        if not logit_bias:
            return None
        toks = (ctypes.c_int32 * len(logit_bias))(*[int(t) for t in logit_bias])
        vals = (ctypes.c_float * len(logit_bias))(*[float(v) for v in logit_bias.values()])
        p.logit_bias_tokens, p.logit_bias_values, p.n_logit_bias = toks, vals, len(logit_bias)
        return toks, vals

    def generate_tokens(self, tokens, max_tokens: int, temperature: float = 0.0, top_k: int = 0,
                        top_p: float = 1.0, min_p: float = 0.0, seed: Optional[int] = None, *,
                        repeat_penalty: float = 1.0, presence_penalty: float = 0.0,
                        frequency_penalty: float = 0.0, seq_id: int = 0,
                        logit_bias: Optional[dict] = None, images=None) -> List[int]:
        """Evaluates the prompt (token ids, or text), then samples up to max_tokens
        (greedy at temperature 0), stopping after an end-of-generation token (kept in the result).
        images: muse.Image objects for the "<__media__>" markers of a text prompt."""
        tokens = self._prompt_ids(tokens, images, seq_id)
        p = self._sampling(temperature, top_k, top_p, min_p, self._seed if seed is None else seed,
                           repeat_penalty, presence_penalty, frequency_penalty)
        bias_keep = self._bias(p, logit_bias)  # noqa: F841  (must outlive the call)
        arr = (ctypes.c_int32 * len(tokens))(*[int(t) for t in tokens])
        out = (ctypes.c_int32 * max(1, int(max_tokens)))()
        n = ctypes.c_size_t()
        check(lib.muse_session_generate_tokens(self._h(), int(seq_id), arr, len(tokens), ctypes.byref(p),
                                               int(max_tokens), out, ctypes.byref(n)))
        return list(out[: n.value])

    def cancel(self) -> None:
        """Stops every generation running on this session (a blocking call on another thread,
        or pulled generations) at its next step. Safe from any thread."""
        if self._handle:
            lib.muse_session_cancel(self._handle)

    def seq_length(self, seq_id: int = 0) -> int:
        n = lib.muse_session_seq_length(self._h(), int(seq_id))
        if n < 0:
            check(1)
        return int(n)

    def seq_remove(self, seq_id: int = 0, p0: int = 0, p1: int = -1) -> None:
        check(lib.muse_session_seq_remove(self._h(), int(seq_id), int(p0), int(p1)))

    def seq_copy(self, src: int, dst: int, p0: int = 0, p1: int = -1) -> None:
        check(lib.muse_session_seq_copy(self._h(), int(src), int(dst), int(p0), int(p1)))
