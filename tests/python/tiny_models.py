"""Tiny random GGUF decoder models in llama.cpp's exact layout, for parity tests.

Architectures: ``llama`` (NORM rope, optional tied embeddings), ``qwen2`` (QKV biases, NEOX rope),
``qwen3`` (per-head q/k RMSNorm, NEOX rope), ``muse-glimmer`` (see docs/MUSE_GLIMMER.md §1:
attention gate, q/k norms, post-norms, logit_scale, SWA+RoPE / full+NoPE layers, softcap).

Weights are random but deterministic from ``seed``: ``write_tiny_model(path, variant, wtype, seed)``.
``wtype`` is one of F32, F16, Q8_0, Q4_0 and applies to every 2-D weight (token embedding and
output included); 1-D tensors (norms, biases) always stay F32. Every 2-D weight's row length
(ggml ne0) is a multiple of 32, so Q8_0/Q4_0 apply everywhere. Q4_K and Q6_K (not in WTYPES:
plain round-to-nearest quantizers here, since gguf-py has none) need rows that are multiples of
256, i.e. overrides such as ``n_embd=256, n_ff=512``.

The tokenizer section is real enough for llama.cpp to load the file: SentencePiece-style
("llama": <unk>,<s>,</s>, byte tokens <0x00>..<0xFF>, word pieces with scores) or byte-level BPE
("gpt2": GPT-2 byte alphabet, word pieces with consistent merges, <|endoftext|>).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter, TokenType

WTYPES = ("F32", "F16", "Q8_0", "Q4_0")
ARCHS = ("llama", "qwen2", "qwen3", "muse-glimmer")

_QTYPE = {
    "F32": GGMLQuantizationType.F32,
    "F16": GGMLQuantizationType.F16,
    "Q8_0": GGMLQuantizationType.Q8_0,
    "Q4_0": GGMLQuantizationType.Q4_0,
    "Q4_K": GGMLQuantizationType.Q4_K,
    "Q6_K": GGMLQuantizationType.Q6_K,
}


def _f16(x):
    return np.asarray(x, np.float32).astype(np.float16)


def quantize_q4_k(a: np.ndarray) -> np.ndarray:
    """Q4_K by a min/max fit per 32-element sub-block (as gguf-writer's quantize_q4_k: valid, not
    ggml's search). Rows of a multiple of 256; returns uint8 [rows, 144 * blocks]."""
    x = np.asarray(a, np.float32).reshape(-1, 8, 32)                      # super-block, sub-block
    lo, hi = np.minimum(x.min(axis=2), 0.0), np.maximum(x.max(axis=2), 0.0)
    scale, mins = (hi - lo) / 15.0, -lo
    d, dmin = _f16(scale.max(axis=1) / 63.0), _f16(mins.max(axis=1) / 63.0)
    df, dmf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    sc = np.clip(np.rint(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(np.divide(mins, dmf, out=np.zeros_like(mins), where=dmf > 0)), 0, 63).astype(np.uint8)
    step, off = (df * sc)[:, :, None], (dmf * m)[:, :, None]
    q = np.clip(np.rint(np.divide(x + off, step, out=np.zeros_like(x), where=step > 0)), 0, 15).astype(np.uint8)
    packed = np.zeros((x.shape[0], 12), np.uint8)                        # core/dequant.cpp scale_min_k4
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    q = q.reshape(-1, 4, 2, 32)                                           # chunk of 64: low, high nibbles
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    out = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), packed, qs], axis=1)
    return out.reshape(a.shape[0], -1)


def quantize_q6_k(a: np.ndarray) -> np.ndarray:
    """Q6_K by round-to-nearest per 16-element sub-block (int8 scales under one F16 d). Rows of a
    multiple of 256; returns uint8 [rows, 210 * blocks]."""
    x = np.asarray(a, np.float32).reshape(-1, 16, 16)
    scale = np.abs(x).max(axis=2) / 31.0
    d = _f16(scale.max(axis=1) / 127.0)
    df = d.astype(np.float32)[:, None]
    sc = np.clip(np.rint(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, 127).astype(np.int8)
    step = (df * sc.astype(np.float32))[:, :, None]
    q = (np.clip(np.rint(np.divide(x, step, out=np.zeros_like(x), where=step > 0)), -32, 31) + 32).astype(np.uint8)
    q = q.reshape(-1, 2, 4, 32)                                           # half, part, l (core/dequant.cpp deq_q6_k)
    ql = np.concatenate([(q[:, :, 0] & 15) | ((q[:, :, 2] & 15) << 4), (q[:, :, 1] & 15) | ((q[:, :, 3] & 15) << 4)],
                        axis=2).reshape(-1, 128)
    qh = ((q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6))
    out = np.concatenate([ql, qh.reshape(-1, 64), sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    return out.reshape(a.shape[0], -1)


@dataclass(frozen=True)
class TinySpec:
    arch: str
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 16
    n_ff: int = 160
    tokenizer: str = "gpt2"          # "llama" (SPM) or "gpt2" (byte-level BPE)
    tied: bool = False               # omit output.weight (llama/qwen*)
    write_head_dim: bool = False     # write attention.key_length/value_length
    eps: float = 1e-6
    rope_base: float = 10000.0
    n_ctx_train: int = 256
    # muse-glimmer only
    n_swa: int = 8
    swa_pattern: object = None       # None (absent) | int (u32 scalar) | list[bool] (BOOL array)
                                     # | tuple[int] (UINT32 array)
    rope_base_swa: float | None = None
    logit_scale: float = 1.0
    softcap: float | None = None     # None: key absent (llama.cpp then applies 30.0)
    # logit spread: std of the logits is about out_scale (via output.weight, or via the
    # output_norm weight when the embeddings are tied)
    out_scale: float = 3.0
    # scale of attn_output / ffn_down (how strongly the layers move the residual stream)
    resid_scale: float = 1.0
    # draw the weights as variant `weights_from` does (same shapes required): twins that differ
    # only in metadata
    weights_from: str | None = None


# Named variants. Each arch appears at least once; muse-glimmer covers the three
# sliding_window_pattern encodings and softcap present / absent / explicitly 0.
VARIANTS: dict[str, TinySpec] = {
    "llama": TinySpec("llama", n_embd=64, n_layer=2, head_dim=16, n_ff=160, tokenizer="llama",
                      tied=False, eps=1e-5, rope_base=10000.0, out_scale=8.0,
                      resid_scale=3.0),
    "llama-tied": TinySpec("llama", n_embd=96, n_layer=3, head_dim=24, n_ff=256, tokenizer="llama",
                           tied=True, eps=1e-6, rope_base=500000.0, out_scale=6.0,
                           resid_scale=3.0),
    "qwen2": TinySpec("qwen2", n_embd=128, n_layer=2, head_dim=32, n_ff=320, tokenizer="gpt2",
                      tied=False, eps=1e-6, rope_base=1000000.0, out_scale=8.0),
    "qwen3": TinySpec("qwen3", n_embd=64, n_layer=3, head_dim=32, n_ff=160, tokenizer="gpt2",
                      tied=True, write_head_dim=True, eps=1e-6, rope_base=1000000.0,
                      out_scale=6.0, resid_scale=3.0),
    # converter-style: BOOL array pattern, softcap present, separate SWA rope base
    "muse-glimmer": TinySpec("muse-glimmer", n_embd=64, n_layer=3, head_dim=32, n_ff=160,
                             tokenizer="gpt2", write_head_dim=True, eps=1e-6, n_swa=8,
                             swa_pattern=[True, False, True], rope_base=1000000.0,
                             rope_base_swa=10000.0, logit_scale=0.75, softcap=40.0,
                             out_scale=16.0),
    # u32 scalar period 2 (layers 0,2 SWA; 1 full), softcap key absent -> 30.0
    "muse-glimmer-u32": TinySpec("muse-glimmer", n_embd=96, n_layer=3, head_dim=24, n_ff=256,
                                 tokenizer="gpt2", write_head_dim=True, eps=1e-5, n_swa=6,
                                 swa_pattern=2, rope_base=10000.0, logit_scale=0.5,
                                 softcap=None, out_scale=14.0),
    # pattern absent (all layers full/NoPE), softcap explicitly 0 (off)
    "muse-glimmer-nopat": TinySpec("muse-glimmer", n_embd=64, n_layer=2, head_dim=16, n_ff=160,
                                   tokenizer="llama", write_head_dim=False, eps=1e-6, n_swa=8,
                                   swa_pattern=None, logit_scale=1.5, softcap=0.0,
                                   out_scale=5.0),
    # pattern as a UINT32 array [0, 1] (layer 0 full/NoPE, layer 1 SWA/RoPE, like llama.cpp's
    # test-llama-archs). An all-full muse-glimmer file (pattern absent or all zero) cannot be run by
    # llama.cpp v0.4.0 (missing key -> load error; all zero -> GGML_ASSERT(is_swa_any) in the
    # iswa KV cache), so "muse-glimmer-nopat" is checked against the reference only.
    "muse-glimmer-u32arr": TinySpec("muse-glimmer", n_embd=64, n_layer=2, head_dim=16, n_ff=160,
                                    tokenizer="llama", write_head_dim=False, eps=1e-6, n_swa=5,
                                    swa_pattern=(0, 1), logit_scale=1.5, softcap=0.0,
                                    out_scale=5.0),
}

# The default variant per architecture (what "for each arch" iterates over).
DEFAULT_VARIANTS = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
                    "muse-glimmer": "muse-glimmer"}

# Variants llama.cpp v0.4.0 cannot run (see the comment on "muse-glimmer-u32arr").
PEER_UNSUPPORTED = {"muse-glimmer-nopat": "llama.cpp v0.4.0 requires "
                    "muse-glimmer.attention.sliding_window_pattern and at least one SWA layer"}


# --------------------------------------------------------------------------------------------
# tokenizers

_WORDS = ("the of and to in is that it for was on are as with be at by this have from or one had "
          "not but what all were when we there can an your which their said if do will each about "
          "how up out them then she many some so these would other into has more her two like "
          "muse glimmer hello world").split()


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _spm_vocab(n_pieces: int = 48):
    toks, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], \
        [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    for b in range(256):
        toks.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(TokenType.BYTE)
    pieces = []
    for w in _WORDS:
        for p in ("\u2581" + w, w):
            if p not in pieces:
                pieces.append(p)
    pieces = ["\u2581"] + pieces
    for i, p in enumerate(pieces[:n_pieces]):
        toks.append(p)
        scores.append(-float(i))
        types.append(TokenType.NORMAL)
    return dict(model="llama", tokens=toks, scores=scores, types=types, merges=None,
                bos=1, eos=2, unk=0)


def _bpe_vocab(n_pieces: int = 44):
    b2u = _bytes_to_unicode()
    toks = [b2u[b] for b in range(256)]
    types = [TokenType.NORMAL] * 256
    merges: list[str] = []
    have = set(toks)
    added = 0
    for w in _WORDS:
        s = b2u[ord(" ")] + w          # "Ġword"
        for i in range(2, len(s) + 1):
            left, right, whole = s[: i - 1], s[i - 1], s[:i]
            if whole in have:
                continue
            if added >= n_pieces:
                break
            merges.append(f"{left} {right}")
            toks.append(whole)
            types.append(TokenType.NORMAL)
            have.add(whole)
            added += 1
    specials = ["<|endoftext|>", "<|start|>", "<|eot|>"]
    eos = len(toks)
    for s in specials:
        toks.append(s)
        types.append(TokenType.CONTROL)
    return dict(model="gpt2", tokens=toks, scores=None, types=types, merges=merges,
                bos=eos, eos=eos, eot=eos + 2, unk=None)


def _vocab(kind: str):
    return _spm_vocab() if kind == "llama" else _bpe_vocab()


def vocab_size(variant: str) -> int:
    return len(_vocab(VARIANTS[variant].tokenizer)["tokens"])


# --------------------------------------------------------------------------------------------
# weights

def _rng(variant: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(variant.encode())])


def make_tensors(spec: TinySpec, n_vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Float32 tensors in numpy order (out, in) = reversed ggml shape, llama.cpp names."""
    E, H, KV, D, F = spec.n_embd, spec.n_head, spec.n_head_kv, spec.head_dim, spec.n_ff

    def mat(out, inp, scale=1.0):
        return (rng.standard_normal((out, inp)) * (scale / np.sqrt(inp))).astype(np.float32)

    def normw(n, spread=0.1):
        return (1.0 + spread * rng.standard_normal(n)).astype(np.float32)

    t: dict[str, np.ndarray] = {}
    t["token_embd.weight"] = (rng.standard_normal((n_vocab, E)) / np.sqrt(E)).astype(np.float32)
    for il in range(spec.n_layer):
        p = f"blk.{il}."
        t[p + "attn_norm.weight"] = normw(E)
        t[p + "attn_q.weight"] = mat(H * D, E, 1.5)
        t[p + "attn_k.weight"] = mat(KV * D, E, 1.5)
        t[p + "attn_v.weight"] = mat(KV * D, E)
        if spec.arch == "qwen2":
            t[p + "attn_q.bias"] = (0.5 * rng.standard_normal(H * D)).astype(np.float32)
            t[p + "attn_k.bias"] = (0.5 * rng.standard_normal(KV * D)).astype(np.float32)
            t[p + "attn_v.bias"] = (0.2 * rng.standard_normal(KV * D)).astype(np.float32)
        if spec.arch in ("qwen3", "muse-glimmer"):
            t[p + "attn_q_norm.weight"] = normw(D, 0.3) * (1.5 if spec.arch == "muse-glimmer" else 1.0)
            t[p + "attn_k_norm.weight"] = normw(D, 0.3)
        if spec.arch == "muse-glimmer":
            t[p + "attn_gate.weight"] = mat(H * D, E, 2.0)
        t[p + "attn_output.weight"] = mat(E, H * D, spec.resid_scale)
        if spec.arch == "muse-glimmer":
            t[p + "post_attention_norm.weight"] = normw(E, 0.2) * 0.7
        t[p + "ffn_norm.weight"] = normw(E)
        t[p + "ffn_gate.weight"] = mat(F, E, 1.5)
        t[p + "ffn_up.weight"] = mat(F, E)
        t[p + "ffn_down.weight"] = mat(E, F, spec.resid_scale)
        if spec.arch == "muse-glimmer":
            t[p + "post_ffw_norm.weight"] = normw(E, 0.2) * 0.7
    t["output_norm.weight"] = normw(E) * (spec.out_scale if spec.tied else 1.0)
    if not spec.tied:
        t["output.weight"] = mat(n_vocab, E, spec.out_scale)
    return t


def write_tiny_model(path, variant: str = "llama", wtype: str = "F32", seed: int = 0,
                     **overrides) -> Path:
    """Write the tiny model ``variant`` with 2-D weights of type ``wtype`` to ``path``.
    ``overrides`` replace TinySpec fields (metadata-only changes keep the same random weights)."""
    spec = replace(VARIANTS[variant], **overrides)
    if spec.arch == "muse-glimmer" and spec.tied:
        raise ValueError("muse-glimmer requires output.weight")
    qtype = _QTYPE[wtype]
    voc = _vocab(spec.tokenizer)
    n_vocab = len(voc["tokens"])
    tensors = make_tensors(spec, n_vocab, _rng(spec.weights_from or variant, seed))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = spec.arch
    w = GGUFWriter(str(path), a)
    w.add_name(f"tiny-{variant}-{wtype}-s{seed}")
    w.add_file_type({"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q4_K": 15, "Q6_K": 18}[wtype])
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_layer_norm_rms_eps(spec.eps)
    w.add_rope_freq_base(spec.rope_base)
    if spec.write_head_dim or spec.head_dim * spec.n_head != spec.n_embd:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    if a == "llama":
        w.add_vocab_size(n_vocab)
        w.add_rope_dimension_count(spec.head_dim)
    if a == "muse-glimmer":
        w.add_logit_scale(spec.logit_scale)
        w.add_sliding_window(spec.n_swa)
        if spec.softcap is not None:
            w.add_final_logit_softcapping(spec.softcap)
        if spec.rope_base_swa is not None:
            w.add_float32(f"{a}.rope.freq_base_swa", spec.rope_base_swa)
        if isinstance(spec.swa_pattern, int) and not isinstance(spec.swa_pattern, bool):
            w.add_uint32(f"{a}.attention.sliding_window_pattern", spec.swa_pattern)
        elif isinstance(spec.swa_pattern, tuple):
            assert len(spec.swa_pattern) == spec.n_layer
            w.add_key_value(f"{a}.attention.sliding_window_pattern", [int(x) for x in spec.swa_pattern],
                            GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT32)
        elif spec.swa_pattern is not None:
            assert len(spec.swa_pattern) == spec.n_layer
            w.add_array(f"{a}.attention.sliding_window_pattern", [bool(x) for x in spec.swa_pattern])

    # tokenizer
    w.add_tokenizer_model(voc["model"])
    if voc["model"] == "gpt2":
        w.add_tokenizer_pre("default")
    w.add_token_list(voc["tokens"])
    w.add_token_types([int(x) for x in voc["types"]])
    if voc["scores"] is not None:
        w.add_token_scores(voc["scores"])
    if voc["merges"] is not None:
        w.add_token_merges(voc["merges"])
    w.add_bos_token_id(voc["bos"])
    w.add_eos_token_id(voc["eos"])
    if voc.get("unk") is not None:
        w.add_unk_token_id(voc["unk"])
    if voc.get("eot") is not None:
        w.add_eot_token_id(voc["eot"])
    w.add_add_bos_token(voc["model"] == "llama")

    for name, arr in tensors.items():
        if arr.ndim == 1 or qtype == GGMLQuantizationType.F32:
            w.add_tensor(name, arr.astype(np.float32))
        elif qtype == GGMLQuantizationType.F16:
            w.add_tensor(name, arr.astype(np.float16))
        elif qtype in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K):
            q = (quantize_q4_k if qtype == GGMLQuantizationType.Q4_K else quantize_q6_k)(arr)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
        else:
            q = gguf.quants.quantize(arr, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_model(directory, variant: str = "llama", wtype: str = "F32", seed: int = 0) -> Path:
    """Path of the tiny model in ``directory``, writing it first if it is not there yet."""
    p = Path(directory) / f"tiny-{variant}-{wtype}-s{seed}.gguf"
    if not p.exists():
        tmp = p.with_suffix(".tmp")
        write_tiny_model(tmp, variant, wtype, seed)
        tmp.replace(p)
    return p


def prompts(variant: str, n: int = 3, seed: int = 0, length: tuple[int, int] = (3, 12)) -> list[list[int]]:
    """Deterministic prompts of ordinary (non-control) token ids, starting with BOS."""
    voc = _vocab(VARIANTS[variant].tokenizer)
    ok = [i for i, ty in enumerate(voc["types"]) if ty in (TokenType.NORMAL, TokenType.BYTE)]
    rng = np.random.default_rng([seed, 7, zlib.crc32(variant.encode())])
    out = []
    for _ in range(n):
        k = int(rng.integers(length[0], length[1] + 1))
        out.append([voc["bos"]] + [int(x) for x in rng.choice(ok, size=k)])
    return out


if __name__ == "__main__":  # python tiny_models.py OUTDIR  -> writes every variant x type
    import sys
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
    for v in VARIANTS:
        for wt in WTYPES:
            print(tiny_model(out, v, wt))
