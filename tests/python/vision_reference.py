"""Float64 numpy references of the three mmproj vision encoders muse implements, read straight
from the GGUF with gguf-py. Written from ../shared/docs/MUSE_GLIMMER.md §2.4 (muse-glimmer) and
from llama.cpp's documented mtmd graphs (tools/mtmd/models/llava.cpp for ``mlp``,
models/siglip.cpp + transformers' Idefics3 pixel_shuffle for ``idefics3``), not from muse's C++.

``encode(path, image)``: image is the preprocessed planar RGB array (3, H, W); returns the
projected embeddings (n_tokens, n_embd_out) in float64.

Conventions: numpy shapes are the reverse of ggml's, so a GGUF matrix ``[in, out]`` is an array
(out, in) and ``y = x @ W.T``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader

_erf = np.vectorize(math.erf, otypes=[np.float64])


# ---- file access -----------------------------------------------------------------------------

def load_mmproj(path: Path | str):
    """(metadata dict, tensors dict name -> float64 array in numpy order)."""
    r = GGUFReader(str(path))
    meta = {name: f.contents() for name, f in r.fields.items()}
    tensors = {}
    for t in r.tensors:
        if t.tensor_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            raise ValueError(f"reference reads F32/F16 tensors only, {t.name} is {t.tensor_type.name}")
        shape = tuple(int(d) for d in reversed(list(t.shape)))
        tensors[t.name] = np.asarray(t.data).astype(np.float64).reshape(shape)
    return meta, tensors


# ---- elementary pieces ---------------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):  # ggml_gelu / PyTorch gelu(approximate="tanh")
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_quick(x):  # ggml_gelu_quick / CLIP quick_gelu
    return x / (1.0 + np.exp(-1.702 * x))


def silu(x):
    return x / (1.0 + np.exp(-x))


def ffn_activation(meta):
    """llama.cpp (clip.cpp load_hparams): use_gelu -> ggml_gelu, use_silu -> silu, else quick GELU."""
    if meta.get("clip.use_gelu", False):
        return gelu_tanh
    if meta.get("clip.use_silu", False):
        return silu
    return gelu_quick


def conv_patches(img, w, b, ps):
    """conv2d with stride = kernel = ps, no padding: (3, H, W) -> (gh*gw, n_embd), raster order."""
    c, h, wd = img.shape
    gh, gw = h // ps, wd // ps
    blocks = img[:, : gh * ps, : gw * ps].reshape(c, gh, ps, gw, ps)   # [c, gy, ky, gx, kx]
    out = np.einsum("ockl,cgkhl->gho", w, blocks)                        # w[o, c, ky, kx]
    out = out.reshape(gh * gw, -1)
    return out + b if b is not None else out


def attention(q, k, v, mask, scale):
    """q (n, H, d), k/v (n, Hkv, d); query head h reads kv head h // (H/Hkv). mask additive (n, n)."""
    n, heads, d = q.shape
    group = heads // k.shape[1]
    out = np.empty_like(q)
    for h in range(heads):
        s = q[:, h] @ k[:, h // group].T * scale
        if mask is not None:
            s = s + mask
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, h] = p @ v[:, h // group]
    return out.reshape(n, heads * d)


def rope_pairs(x, pos, base):
    """Adjacent-pair RoPE over the last axis (m dims): pair i turns by pos * base^(-2i/m)."""
    m = x.shape[-1]
    theta = np.asarray(pos, np.float64)[:, None] * base ** (-2.0 * np.arange(m // 2) / m)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


class Weights:
    def __init__(self, tensors):
        self.t = tensors

    def get(self, name):
        return self.t.get(name)

    def __getitem__(self, name):
        return self.t[name]


def vit_layer(x, T: Weights, il, meta, act, heads, kv_heads, hd, eps, rope=None, mask=None, legacy_swap=False):
    """One pre-LN encoder layer (llama.cpp build_vit)."""
    n = x.shape[0]
    e = x.shape[1]
    p = f"v.blk.{il}."
    h = layer_norm(x, T.get(p + "ln1.weight"), T.get(p + "ln1.bias"), eps)
    q_w, kv_w = heads * hd, kv_heads * hd
    if T.get(p + "attn_qkv.weight") is not None:
        W = T[p + "attn_qkv.weight"]
        B = T.get(p + "attn_qkv.bias")
        parts = [(W[:q_w], None if B is None else B[:q_w]),
                 (W[q_w:q_w + kv_w], None if B is None else B[q_w:q_w + kv_w]),
                 (W[q_w + kv_w:], None if B is None else B[q_w + kv_w:])]
    else:
        parts = [(T[p + f"attn_{c}.weight"], T.get(p + f"attn_{c}.bias")) for c in "qkv"]
    proj = [h @ w.T + (b if b is not None else 0.0) for w, b in parts]
    q = proj[0].reshape(n, heads, hd)
    k = proj[1].reshape(n, kv_heads, hd)
    v = proj[2].reshape(n, kv_heads, hd)
    if rope is not None:
        q, k = rope(q), rope(k)
    a = attention(q, k, v, mask, 1.0 / math.sqrt(hd))
    bo = T.get(p + "attn_out.bias")
    x = x + a @ T[p + "attn_out.weight"].T + (bo if bo is not None else 0.0)
    up, down = "ffn_up", "ffn_down"
    # clip.cpp: old converters stored fc1 as ffn_down; recognised by ffn_down's input width
    # (ggml ne[0], numpy shape[1]) being n_embd.
    if legacy_swap and T[p + "ffn_down.weight"].shape[1] == e:
        up, down = down, up
    h = layer_norm(x, T.get(p + "ln2.weight"), T.get(p + "ln2.bias"), eps)
    bu, bd = T.get(p + up + ".bias"), T.get(p + down + ".bias")
    u = act(h @ T[p + up + ".weight"].T + (bu if bu is not None else 0.0))
    return x + u @ T[p + down + ".weight"].T + (bd if bd is not None else 0.0)


def _common(meta):
    e = int(meta["clip.vision.embedding_length"])
    heads = int(meta["clip.vision.attention.head_count"])
    kv_heads = int(meta.get("clip.vision.attention.head_count_kv", heads))
    hd = int(meta.get("clip.vision.attention.head_dim", e // heads))
    return e, heads, kv_heads, hd, float(meta["clip.vision.attention.layer_norm_epsilon"]), \
        int(meta["clip.vision.block_count"]), int(meta["clip.vision.patch_size"])


# ---- muse-glimmer (MUSE_GLIMMER.md §2.4) --------------------------------------------------

def bilinear_table(table, out_h, out_w):
    """table (in_h, in_w, C) -> (out_h, out_w, C): half-pixel centres, no antialias, clamped taps."""
    in_h, in_w = table.shape[:2]

    def taps(n_in, n_out):
        res = []
        for d in range(n_out):
            s = (d + 0.5) * n_in / n_out - 0.5
            i0 = math.floor(s)
            frac = min(max(s - i0, 0.0), 1.0)
            res.append((min(max(i0, 0), n_in - 1), min(max(i0 + 1, 0), n_in - 1), frac))
        return res

    tmp = np.empty((in_h, out_w, table.shape[2]))
    for xo, (a, b, f) in enumerate(taps(in_w, out_w)):
        tmp[:, xo] = (1 - f) * table[:, a] + f * table[:, b]
    out = np.empty((out_h, out_w, table.shape[2]))
    for yo, (a, b, f) in enumerate(taps(in_h, out_h)):
        out[yo] = (1 - f) * tmp[a] + f * tmp[b]
    return out


def window_permutation(gw, gh, G):
    perm, sizes = [], []
    for wy in range(-(-gh // G)):
        for wx in range(-(-gw // G)):
            size = 0
            for hh in range(G):
                for ww in range(G):
                    gy, gx = wy * G + hh, wx * G + ww
                    if gy < gh and gx < gw:
                        perm.append(gy * gw + gx)
                        size += 1
            if size:
                sizes.append(size)
    return perm, sizes


def muse_glimmer(meta, T: Weights, img):
    e, heads, kv_heads, hd, eps, n_layer, ps = _common(meta)
    f = int(meta.get("clip.vision.spatial_merge_size", 2))
    n_rows = T["v.position_embd.weight"].shape[0]
    G = int(math.floor(math.sqrt(n_rows)))
    _, H, W = img.shape
    gh, gw = H // ps, W // ps
    n = gh * gw

    x = conv_patches(img, T["v.patch_embd.weight"], T.get("v.patch_embd.bias"), ps)
    table = T["v.position_embd.weight"][: G * G].reshape(G, G, e)      # [h, w, c], row h*G + w
    if (gw, gh) != (G, G):
        table = bilinear_table(table, gh, gw)
    x = x + table.reshape(n, e)

    perm, sizes = window_permutation(gw, gh, G)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    pos_w = np.array([o % gw + 1 for o in perm])
    pos_h = np.array([o // gw + 1 for o in perm])
    mask = np.full((n, n), -np.inf)
    start = 0
    for s in sizes:
        mask[start:start + s, start:start + s] = 0.0
        start += s

    def rope(t):  # width-first 2D RoPE, base 10000
        d = t.shape[-1]
        return np.concatenate([rope_pairs(t[..., : d // 2], pos_w, 10000.0),
                               rope_pairs(t[..., d // 2:], pos_h, 10000.0)], axis=-1)

    x = x[perm]
    x = layer_norm(x, T.get("v.pre_ln.weight"), T.get("v.pre_ln.bias"), eps) \
        if T.get("v.pre_ln.weight") is not None or T.get("v.pre_ln.bias") is not None else x
    for il in range(n_layer):
        is_global = il == n_layer - 1 or (il + 1) % 4 == 0
        x = vit_layer(x, T, il, meta, gelu_erf, heads, kv_heads, hd, eps, rope=rope,
                      mask=None if is_global else mask)
    if T.get("v.post_ln.weight") is not None or T.get("v.post_ln.bias") is not None:
        x = layer_norm(x, T.get("v.post_ln.weight"), T.get("v.post_ln.bias"), eps)
    x = x[inv]                                                          # raster order again

    mh, mw = gh // f, gw // f
    y = np.empty((mh * mw, e * f * f))
    for oy in range(mh):
        for ox in range(mw):
            o = oy * mw + ox
            for ry in range(f):
                for rx in range(f):
                    s = ry * f + rx
                    y[o, s::f * f] = x[(oy * f + ry) * gw + (ox * f + rx)]   # y[c*f² + s]
    z = gelu_erf(y @ T["mm.0.weight"].T)
    z = gelu_erf(z @ T["mm.1.weight"].T)
    return z @ T["mm.2.weight"].T


# ---- mlp: CLIP/SigLIP + LLaVA-1.5 projector (llama.cpp models/llava.cpp) ---------------------

def clip_mlp(meta, T: Weights, img):
    e, heads, kv_heads, hd, eps, n_layer, ps = _common(meta)
    act = ffn_activation(meta)
    x = conv_patches(img, T["v.patch_embd.weight"], T.get("v.patch_embd.bias"), ps)
    cls = T.get("v.class_embd")
    if cls is not None:                    # class token first, position 0 (HF CLIP)
        x = np.vstack([cls[None, :], x])
    x = x + T["v.position_embd.weight"][: x.shape[0]]
    if T.get("v.pre_ln.weight") is not None:
        x = layer_norm(x, T.get("v.pre_ln.weight"), T.get("v.pre_ln.bias"), eps)
    feature = sorted(set(int(i) for i in meta.get("clip.vision.feature_layer", [])))
    n_run = max(feature) if feature else n_layer - 1      # default: skip the last layer
    stack = []
    for il in range(n_run):
        if il in feature:
            stack.append(x)                                # input of layer il
        x = vit_layer(x, T, il, meta, act, heads, kv_heads, hd, eps, legacy_swap=True)
    if T.get("v.post_ln.weight") is not None:
        x = layer_norm(x, T.get("v.post_ln.weight"), T.get("v.post_ln.bias"), eps)
    emb = np.concatenate(stack + [x], axis=-1) if feature else x
    if cls is not None:
        emb = emb[1:]
    h = gelu_tanh(emb @ T["mm.0.weight"].T + T["mm.0.bias"])   # ggml_gelu in llama.cpp's projector
    if T.get("mm.2.weight") is not None:
        h = h @ T["mm.2.weight"].T + T["mm.2.bias"]
    return h


# ---- idefics3: SigLIP + pixel shuffle + linear (llama.cpp models/siglip.cpp) ----------------

def idefics3(meta, T: Weights, img):
    e, heads, kv_heads, hd, eps, n_layer, ps = _common(meta)
    s = int(meta["clip.vision.projector.scale_factor"])
    act = ffn_activation(meta)
    x = conv_patches(img, T["v.patch_embd.weight"], T.get("v.patch_embd.bias"), ps)
    x = x + T["v.position_embd.weight"]
    if T.get("v.pre_ln.weight") is not None:
        x = layer_norm(x, T.get("v.pre_ln.weight"), T.get("v.pre_ln.bias"), eps)
    for il in range(n_layer):
        x = vit_layer(x, T, il, meta, act, heads, kv_heads, hd, eps, legacy_swap=True)
    if T.get("v.post_ln.weight") is not None:
        x = layer_norm(x, T.get("v.post_ln.weight"), T.get("v.post_ln.bias"), eps)
    g = img.shape[1] // ps
    gp = -(-g // s) * s                                  # llama.cpp zero-pads the grid to a multiple of s
    X = np.zeros((gp, gp, e))
    X[:g, :g] = x.reshape(g, g, e)
    # transformers Idefics3Connector.pixel_shuffle, step by step
    X = X.reshape(gp, gp // s, e * s)                    # (h, w/s, e*s)
    X = X.transpose(1, 0, 2)                             # (w/s, h, e*s)
    X = X.reshape(gp // s, gp // s, e * s * s)           # (w/s, h/s, e*s²)
    X = X.transpose(1, 0, 2)                             # (h/s, w/s, e*s²)
    X = X.reshape(-1, e * s * s)
    return X @ T["mm.model.fc.weight"].T


def encode(path: Path | str, img: np.ndarray) -> np.ndarray:
    meta, tensors = load_mmproj(path)
    T = Weights(tensors)
    img = np.asarray(img, np.float64)
    kind = meta.get("clip.projector_type", "mlp")
    if kind == "muse-glimmer":
        return muse_glimmer(meta, T, img)
    if kind == "mlp":
        return clip_mlp(meta, T, img)
    if kind == "idefics3":
        return idefics3(meta, T, img)
    raise ValueError(f"no reference for projector {kind!r}")
