"""Independent float64 numpy reference of the token decoder for llama / qwen2 / qwen3 / muse-glimmer.

Written from docs (docs/MUSE_GLIMMER.md §1 for muse-glimmer; llama.cpp's published semantics for
the other three), not from muse's C++. Reads a GGUF with gguf-py's GGUFReader, dequantizes every
weight with gguf.quants.dequantize (F16/Q8_0/Q4_0/...) and computes in float64.

    m = ReferenceModel("model.gguf")
    m.logits(tokens)     -> float64 [n_tokens, n_vocab]   (every position)
    m.logprobs(tokens)   -> log-softmax of the above
    r = m.greedy(tokens, 24, top=5)  -> list[int] with r.top (per step [(token, logprob)] * top)
                                        and r.gaps (per step top-1 minus top-2 logprob)
    s = m.state(); s.eval(tokens) -> logits of those tokens, with a KV cache (incremental use)

By default everything is exact float64 on the exactly dequantized weights. For validating against
llama.cpp's CPU backend, two opt-in emulations reproduce its roundings (they are not part of the
model semantics): ``act_quant=True`` rounds the activation entering each weight matmul the way
ggml does (to F16 for F16 weights, to Q8_0 blocks for Q8_0/Q4_0 weights), and ``kv_f16=True``
emulates llama.cpp's default F16 KV cache without flash attention (K, V stored as F16; Q rounded
to F16 for K·Q; softmax probabilities rounded to F16 for V·P).

Semantics:
* all archs: RMSNorm y = x / sqrt(mean(x^2) + eps) * w with eps = attention.layer_norm_rms_epsilon;
  causal attention with scale 1/sqrt(head_dim); GQA (q head j reads kv head j // (n_head/n_head_kv));
  SwiGLU FFN  W_down( silu(W_gate f) * (W_up f) ); output = output.weight or, when absent, the
  tied token_embd.weight (llama/qwen2/qwen3 only).
* RoPE: theta_i = pos * freq_scale * base^(-2i/n_rot), i < n_rot/2; NORM (llama, muse-glimmer)
  rotates adjacent pairs (2i, 2i+1), NEOX (qwen2, qwen3) rotates (i, i + n_rot/2).
* qwen2: optional Q/K/V biases (added after the matmul). qwen3: per-head RMSNorm of q and k
  (weights attn_q_norm / attn_k_norm, eps from metadata) before RoPE.
* muse-glimmer: exactly §1.6 (scaleless initial norm, sigmoid gate from the same normed input,
  per-head q/k norms, RoPE only on SWA layers with base rope.freq_base_swa and freq_scale 1,
  NoPE on full layers, SWA window p_q - p_k < n_swa, post-norms with eps 1e-8, logit_scale,
  final softcap with default 30.0 when the key is absent and none when it is 0) and the §1.4
  layer-typing rules (u32 scalar period / BOOL-or-int array / absent -> all full).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "muse-glimmer")
_ROPE_NEOX = {"qwen2", "qwen3"}
_MISSING = object()


def rmsnorm(x: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _f16(x):
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def round_activation(x: np.ndarray, wtype) -> np.ndarray:
    """The rounding ggml's CPU backend applies to the activation of a matmul with weights of type
    `wtype` (its vec_dot_type): F32 none, F16 -> F16, Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 -> Q8_0 blocks."""
    T = gguf.GGMLQuantizationType
    if wtype == T.F32:
        return x
    if wtype == T.F16:
        return _f16(x)
    if wtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        q = gguf.quants.quantize(np.ascontiguousarray(x, dtype=np.float32), T.Q8_0)
        return gguf.quants.dequantize(q, T.Q8_0).astype(np.float64).reshape(x.shape)
    raise NotImplementedError(f"activation rounding for {wtype!r}")


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def rope(x: np.ndarray, pos: np.ndarray, n_rot: int, base: float, freq_scale: float,
         neox: bool) -> np.ndarray:
    """x: [n_tokens, n_heads, head_dim]; rotates the first n_rot dims of every head."""
    half = n_rot // 2
    inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    theta = (pos.astype(np.float64) * freq_scale)[:, None] * inv[None, :]      # [n, half]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def swa_layers_from(value, n_layer: int) -> list[bool]:
    """muse-glimmer §1.4: `value` of attention.sliding_window_pattern -> is_swa per layer.
    u32 scalar p: (p == 0) or (il % p < p - 1); array (BOOL or int): value[il] != 0, length must
    be n_layer; absent (None): every layer full attention (NoPE)."""
    if value is None:
        return [False] * n_layer
    if isinstance(value, (list, tuple)):
        if len(value) != n_layer:
            raise ValueError(f"sliding_window_pattern has {len(value)} entries, n_layer is {n_layer}")
        return [bool(v) for v in value]
    p = int(value)
    return [(p == 0) or (il % p < p - 1) for il in range(n_layer)]


@dataclass
class _Layer:
    t: dict
    is_swa: bool = False
    use_rope: bool = True


class GreedyResult(list):
    """The greedy continuation (a list of token ids) plus per-step diagnostics."""

    def __init__(self, tokens=(), top=(), gaps=()):
        super().__init__(tokens)
        self.top: list[list[tuple[int, float]]] = list(top)   # per step: [(token, logprob)] * k
        self.gaps: list[float] = list(gaps)                    # per step: lp[top1] - lp[top2]

    @property
    def tokens(self) -> list[int]:
        return list(self)


class ReferenceState:
    """KV cache of one sequence; eval(tokens) appends and returns their logits [n, n_vocab]."""

    def __init__(self, model: "ReferenceModel"):
        self.model = model
        self.pos = 0
        self.k = [None] * model.n_layer
        self.v = [None] * model.n_layer

    def eval(self, tokens) -> np.ndarray:
        return self.model._forward(self, list(tokens))


class ReferenceModel:
    def __init__(self, path, act_quant=False, kv_f16: bool = False):
        """act_quant: True rounds every matmul's activation as ggml does; a collection of
        GGMLQuantizationType rounds only those weight types' activations."""
        self.path = str(path)
        self.act_quant = act_quant
        self.kv_f16 = kv_f16
        r = GGUFReader(self.path)
        self._fields = r.fields
        self.arch = self.kv("general.architecture")
        if self.arch not in SUPPORTED_ARCHS:
            raise ValueError(f"unsupported architecture {self.arch!r}")
        a = self.arch
        self.tensors: dict[str, np.ndarray] = {}
        self.tensor_types: dict[str, gguf.GGMLQuantizationType] = {}
        for t in r.tensors:
            self.tensor_types[t.name] = t.tensor_type
            shape = tuple(int(s) for s in reversed(t.shape.tolist()))   # numpy order
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            self.tensors[t.name] = np.asarray(w, dtype=np.float64).reshape(shape)

        self.n_embd = int(self.kv(f"{a}.embedding_length"))
        self.n_layer = int(self.kv(f"{a}.block_count"))
        self.n_head = int(self._scalar_or_first(f"{a}.attention.head_count"))
        self.n_head_kv = int(self._scalar_or_first(f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = int(self.kv(f"{a}.attention.key_length", self.n_embd // self.n_head))
        hd_v = int(self.kv(f"{a}.attention.value_length", self.head_dim))
        if hd_v != self.head_dim:
            raise ValueError("key_length != value_length is not supported")
        self.n_rot = int(self.kv(f"{a}.rope.dimension_count", self.head_dim))
        self.eps = float(self.kv(f"{a}.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self.kv(f"{a}.rope.freq_base", 10000.0))
        factor = float(self.kv(f"{a}.rope.scaling.factor", self.kv(f"{a}.rope.scale_linear", 0.0)))
        self.freq_scale = 1.0 if factor == 0.0 else 1.0 / factor
        self.neox = a in _ROPE_NEOX
        self.scale = 1.0 / math.sqrt(self.head_dim)

        self.tok_embd = self.tensors["token_embd.weight"]
        self.n_vocab = self.tok_embd.shape[0]
        self.out_norm = self.tensors["output_norm.weight"]
        self.out_name = "output.weight"
        if "output.weight" in self.tensors:
            self.out_w = self.tensors["output.weight"]
        elif a == "muse-glimmer":
            raise ValueError("muse-glimmer requires output.weight (no tying)")
        else:
            self.out_w = self.tok_embd
            self.out_name = "token_embd.weight"

        # muse-glimmer specifics (§1.1, §1.4)
        self.logit_scale = 1.0
        self.softcap = 0.0
        self.n_swa = 0
        self.rope_base_swa = self.rope_base
        is_swa = [False] * self.n_layer
        if a == "muse-glimmer":
            self.logit_scale = float(self.kv(f"{a}.logit_scale"))
            self.softcap = float(self.kv(f"{a}.final_logit_softcapping", 30.0))
            self.n_swa = int(self.kv(f"{a}.attention.sliding_window"))
            self.rope_base_swa = float(self.kv(f"{a}.rope.freq_base_swa", self.rope_base))
            is_swa = self.swa_layers()

        self.layers = []
        for il in range(self.n_layer):
            p = f"blk.{il}."
            t = {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}
            if a == "muse-glimmer":
                self.layers.append(_Layer(t, is_swa=is_swa[il], use_rope=is_swa[il]))
            else:
                self.layers.append(_Layer(t, is_swa=False, use_rope=True))

    # ---- metadata ---------------------------------------------------------------------------
    def has_kv(self, key: str) -> bool:
        return key in self._fields

    def kv(self, key: str, default=_MISSING):
        f = self._fields.get(key)
        if f is None:
            if default is _MISSING:
                raise KeyError(f"required key missing: {key}")
            return default
        return f.contents()

    def _scalar_or_first(self, key, default=_MISSING):
        v = self.kv(key, default)
        if isinstance(v, list):
            if len(set(v)) != 1:
                raise ValueError(f"per-layer {key} is not supported")
            return v[0]
        return v

    def swa_layers(self) -> list[bool]:
        key = f"{self.arch}.attention.sliding_window_pattern"
        f = self._fields.get(key)
        if f is None:
            value = None
        elif f.types and f.types[0] == GGUFValueType.ARRAY:
            value = list(f.contents())
        else:
            value = int(f.contents())
        return swa_layers_from(value, self.n_layer)

    # ---- forward ----------------------------------------------------------------------------
    def _mm(self, x: np.ndarray, name: str) -> np.ndarray:
        """x @ W.T for the weight tensor `name` (numpy order (out, in))."""
        wtype = self.tensor_types[name]
        if self.act_quant is True or (self.act_quant and wtype in self.act_quant):
            x = round_activation(x, wtype)
        return x @ self.tensors[name].T

    def state(self) -> ReferenceState:
        return ReferenceState(self)

    def _forward(self, st: ReferenceState, tokens: list[int]) -> np.ndarray:
        if not tokens:
            return np.zeros((0, self.n_vocab))
        n = len(tokens)
        H, KV, D = self.n_head, self.n_head_kv, self.head_dim
        muse = self.arch == "muse-glimmer"
        pos = st.pos + np.arange(n)
        # Items are token ids or input-embedding rows (image chunks), which take the same path.
        if all(isinstance(t, (int, np.integer)) for t in tokens):
            x = self.tok_embd[np.asarray(tokens)]
        else:
            x = np.stack([self.tok_embd[int(t)] if isinstance(t, (int, np.integer))
                          else np.asarray(t, dtype=np.float64).reshape(-1) for t in tokens])
        if muse:
            x = rmsnorm(x, self.eps)                                     # scaleless initial norm
        head_map = np.arange(H) // (H // KV)
        for il, L in enumerate(self.layers):
            t = L.t
            p_ = f"blk.{il}."
            a = rmsnorm(x, self.eps) * t["attn_norm.weight"]
            q = self._mm(a, p_ + "attn_q.weight")
            k = self._mm(a, p_ + "attn_k.weight")
            v = self._mm(a, p_ + "attn_v.weight")
            for name, y in (("attn_q", q), ("attn_k", k), ("attn_v", v)):
                if name + ".scale" in t:
                    y *= t[name + ".scale"].reshape(-1)[0]
                if name + ".bias" in t:
                    y += t[name + ".bias"]
            q = q.reshape(n, H, D)
            k = k.reshape(n, KV, D)
            v = v.reshape(n, KV, D)
            if "attn_q_norm.weight" in t:
                q = rmsnorm(q, self.eps) * t["attn_q_norm.weight"]
            if "attn_k_norm.weight" in t:
                k = rmsnorm(k, self.eps) * t["attn_k_norm.weight"]
            if L.use_rope:
                base, fs = (self.rope_base_swa, 1.0) if (muse and L.is_swa) else \
                    (self.rope_base, self.freq_scale)
                q = rope(q, pos, self.n_rot, base, fs, self.neox)
                k = rope(k, pos, self.n_rot, base, fs, self.neox)
            if self.kv_f16:
                k, v, q = _f16(k), _f16(v), _f16(q)
            st.k[il] = k if st.k[il] is None else np.concatenate([st.k[il], k], axis=0)
            st.v[il] = v if st.v[il] is None else np.concatenate([st.v[il], v], axis=0)
            K = st.k[il][:, head_map, :]                                 # [T, H, D]
            V = st.v[il][:, head_map, :]
            kpos = np.arange(K.shape[0])
            s = np.einsum("nhd,thd->hnt", q, K) * self.scale
            mask = kpos[None, :] <= pos[:, None]
            if L.is_swa:
                mask &= (pos[:, None] - kpos[None, :]) < self.n_swa
            s = np.where(mask[None, :, :], s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            if self.kv_f16:
                p = _f16(p)
            o = np.einsum("hnt,thd->nhd", p, V).reshape(n, H * D)
            if muse:
                o = o * _sigmoid(self._mm(a, p_ + "attn_gate.weight"))
            o = self._mm(o, p_ + "attn_output.weight")
            if "attn_output.scale" in t:
                o *= t["attn_output.scale"].reshape(-1)[0]
            if "attn_output.bias" in t:
                o += t["attn_output.bias"]
            if muse:
                o = rmsnorm(o, 1e-8) * t["post_attention_norm.weight"]
            x = x + o
            f = rmsnorm(x, self.eps) * t["ffn_norm.weight"]
            f = _silu(self._mm(f, p_ + "ffn_gate.weight")) * self._mm(f, p_ + "ffn_up.weight")
            f = self._mm(f, p_ + "ffn_down.weight")
            if muse:
                f = rmsnorm(f, 1e-8) * t["post_ffw_norm.weight"]
            x = x + f
        st.pos += n
        y = rmsnorm(x, self.eps) * self.out_norm
        logits = self._mm(y, self.out_name)
        if muse:
            logits = logits * self.logit_scale
            if self.softcap != 0.0:
                logits = self.softcap * np.tanh(logits / self.softcap)
        return logits

    # ---- public API -------------------------------------------------------------------------
    def logits(self, tokens) -> np.ndarray:
        return self._forward(self.state(), list(tokens))

    def logprobs(self, tokens) -> np.ndarray:
        return log_softmax(self.logits(tokens))

    def greedy(self, tokens, n: int, top: int = 5) -> GreedyResult:
        st = self.state()
        last = st.eval(tokens)[-1]
        out, tops, gaps = [], [], []
        for step in range(n):
            lp = log_softmax(last)
            order = np.argsort(-lp, kind="stable")
            tok = int(order[0])
            out.append(tok)
            tops.append([(int(i), float(lp[i])) for i in order[:top]])
            gaps.append(float(lp[order[0]] - lp[order[1]]))
            if step + 1 < n:
                last = st.eval([tok])[-1]
        return GreedyResult(out, tops, gaps)
