"""Tiny random mmproj GGUFs (``general.architecture = "clip"``) in llama.cpp's layout, for the
vision encoder tests: the ``muse-glimmer`` projector (../shared/docs/MUSE_GLIMMER.md §2.1/§2.2),
the LLaVA-1.5 ``mlp`` projector over a CLIP or SigLIP ViT, and ``idefics3`` (SmolVLM).

Key and tensor names follow llama.cpp's ``tools/mtmd/clip-impl.h`` (``clip.vision.*`` keys,
``v.*`` / ``mm.*`` tensors) and gguf-py's writer. Shapes below are numpy (PyTorch) order; GGUF
stores them reversed (ggml order), e.g. ``v.patch_embd.weight`` numpy ``(n_embd, 3, ps, ps)`` is
ggml ``[ps, ps, 3, n_embd]``.

``write_mmproj(path, spec, wtype, seed)`` writes one file; ``wtype`` ("F32" or "F16") applies to
the matrices, the conv kernel and the position table; 1-D tensors stay F32.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

WTYPES = ("F32", "F16")


@dataclass(frozen=True)
class MmprojSpec:
    family: str                      # "muse-glimmer" | "mlp" | "idefics3"
    n_embd: int = 48
    n_layer: int = 3
    n_head: int = 4
    n_head_kv: int | None = None     # muse-glimmer only: writes attention.head_count_kv
    head_dim: int | None = None      # muse-glimmer only: writes attention.head_dim
    n_ff: int = 96
    patch: int = 4
    image_size: int = 32             # mlp / idefics3: the fixed input side; muse-glimmer: nominal
    pos_grid: int = 4                # muse-glimmer: G (table of G*G rows)
    merge: int = 2                   # muse-glimmer spatial_merge_size / idefics3 scale_factor
    write_merge_key: bool = True     # muse-glimmer: absent key -> default 2
    adapter: tuple = (64, 48)        # muse-glimmer: mm.0 / mm.1 widths; mlp: (mm.0 width,)
    n_embd_out: int = 32
    eps: float = 1e-6
    class_token: bool = False        # mlp (CLIP)
    feature_layers: tuple | None = None  # mlp: clip.vision.feature_layer
    pre_ln: bool = True
    post_ln: bool = True
    biases: bool = True              # patch / q / k / v / out / ffn biases
    use_gelu: bool | None = None     # clip.use_gelu (None: key absent)
    use_silu: bool | None = None
    fused_qkv: bool = False          # one v.blk.N.attn_qkv instead of attn_q/k/v
    legacy_ffn_names: bool = False   # old converters: fc1 stored as ffn_down, fc2 as ffn_up
    mm2: bool = True                 # mlp: mm.2 present
    weight_scale: float = 1.0        # multiplies the 1/sqrt(fan_in) init of the matrices

    @property
    def kv_heads(self) -> int:
        return self.n_head_kv or self.n_head

    @property
    def hd(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


# Named variants. Every family appears several times: GQA and not, fused QKV, optional
# tensors absent, partial windows and a resized position table (muse-glimmer), class token,
# feature-layer stacks, quick/tanh GELU and SiLU (mlp), padded pixel shuffle and legacy
# ffn names (idefics3).
VARIANTS: dict[str, MmprojSpec] = {
    # 5 layers: windowed 0, 1, 2; global 3 (every 4th) and 4 (last). GQA 4 -> 2, head_dim 12.
    "glimmer-gqa": MmprojSpec("muse-glimmer", n_embd=48, n_layer=5, n_head=4, n_head_kv=2, head_dim=12,
                              n_ff=80, patch=4, pos_grid=3, merge=2, adapter=(64, 40), n_embd_out=32),
    # 4 layers (3 windowed + global), no GQA, everything nano's PyTorch tower has (cross-check).
    "glimmer-plain": MmprojSpec("muse-glimmer", n_embd=64, n_layer=4, n_head=4, n_ff=128, patch=6,
                                pos_grid=4, merge=2, adapter=(96, 64), n_embd_out=40, eps=1e-5),
    # 2 layers (windowed, then the last = global), fused QKV, no biases / pre-LN, merge key absent.
    "glimmer-fused": MmprojSpec("muse-glimmer", n_embd=32, n_layer=2, n_head=8, n_head_kv=2, head_dim=8,
                                n_ff=64, patch=8, pos_grid=5, merge=2, write_merge_key=False,
                                adapter=(48, 48), n_embd_out=24, fused_qkv=True, biases=False, pre_ln=False),
    # LLaVA-1.5 style: CLIP (class token, pre-LN, quick GELU, no post-LN), feature layer
    # absent (runs n_layer - 1 layers), fc1/fc2 stored under swapped names; 5 x 5 patches.
    "clip-llava": MmprojSpec("mlp", n_embd=40, n_layer=3, n_head=4, n_ff=72, patch=4, image_size=20,
                             adapter=(56,), n_embd_out=32, class_token=True, post_ln=False,
                             legacy_ffn_names=True),
    # Feature layers {0, 2, 3} stacked (3 x n_embd into mm.0), post-LN, tanh GELU, 4 x 4 patches.
    "clip-stack": MmprojSpec("mlp", n_embd=32, n_layer=3, n_head=2, n_ff=48, patch=6, image_size=24,
                             adapter=(40,), n_embd_out=24, class_token=True, feature_layers=(0, 2, 3),
                             use_gelu=True),
    # SigLIP-like (no class token, no pre-LN), SiLU FFN, no mm.2: output is gelu(mm.0 x + b).
    "siglip-mlp": MmprojSpec("mlp", n_embd=48, n_layer=2, n_head=3, n_ff=64, patch=4, image_size=28,
                             adapter=(36,), n_embd_out=36, pre_ln=False, use_silu=True, mm2=False),
    # SmolVLM style: SigLIP, tanh GELU, post-LN, 8 x 8 patches, scale factor 2.
    "idefics3": MmprojSpec("idefics3", n_embd=48, n_layer=3, n_head=4, n_ff=80, patch=4, image_size=32,
                           merge=2, n_embd_out=40, pre_ln=False, use_gelu=True),
    # 5 x 5 patches with scale factor 2: the grid is padded with zero patches to 6 x 6.
    "idefics3-pad": MmprojSpec("idefics3", n_embd=32, n_layer=2, n_head=2, n_ff=56, patch=4, image_size=20,
                               merge=2, n_embd_out=24, pre_ln=False, use_gelu=True, legacy_ffn_names=True),
    # 9 x 9 patches, scale factor 3.
    "idefics3-s3": MmprojSpec("idefics3", n_embd=24, n_layer=2, n_head=2, n_ff=40, patch=3, image_size=27,
                              merge=3, n_embd_out=32, pre_ln=False, use_gelu=True),
}


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}/{seed}".encode()))


def make_weights(spec: MmprojSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """All tensors of the file, numpy order, float32 (before any F16 rounding)."""
    s = spec
    e, q, kv, ff, ps = s.n_embd, s.n_head * s.hd, s.kv_heads * s.hd, s.n_ff, s.patch
    t: dict[str, np.ndarray] = {}

    # float32 draws: the benchmark writes real-width towers (~700 M parameters) with this too.
    def normal(name, shape, scale):
        a = _rng(name, seed).standard_normal(shape, dtype=np.float32)
        a *= np.float32(scale)
        return a

    def mat(name, out_dim, in_dim):
        t[name] = normal(name, (out_dim, in_dim), s.weight_scale / np.sqrt(in_dim))

    def vec(name, n, std=0.1, mean=0.0):
        t[name] = normal(name, n, std) + np.float32(mean)

    t["v.patch_embd.weight"] = normal("patch", (e, 3, ps, ps), 1.0 / np.sqrt(3 * ps * ps))
    if s.biases:
        vec("v.patch_embd.bias", e)
    if s.family == "muse-glimmer":
        n_pos = s.pos_grid * s.pos_grid
    else:
        n_pos = (s.image_size // ps) ** 2 + (1 if s.class_token else 0)
    t["v.position_embd.weight"] = normal("pos", (n_pos, e), 0.5)
    if s.class_token:
        vec("v.class_embd", e, std=0.5)
    if s.pre_ln:
        vec("v.pre_ln.weight", e, mean=1.0)
        vec("v.pre_ln.bias", e)
    if s.post_ln:
        vec("v.post_ln.weight", e, mean=1.0)
        vec("v.post_ln.bias", e)
    for il in range(s.n_layer):
        p = f"v.blk.{il}."
        vec(p + "ln1.weight", e, mean=1.0)
        vec(p + "ln1.bias", e)
        vec(p + "ln2.weight", e, mean=1.0)
        vec(p + "ln2.bias", e)
        for nm, out_dim in (("attn_q", q), ("attn_k", kv), ("attn_v", kv)):
            mat(p + nm + ".weight", out_dim, e)
            if s.biases:
                vec(p + nm + ".bias", out_dim)
        mat(p + "attn_out.weight", e, q)
        mat(p + "ffn_up.weight", ff, e)
        mat(p + "ffn_down.weight", e, ff)
        if s.biases:
            vec(p + "attn_out.bias", e)
            vec(p + "ffn_up.bias", ff)
            vec(p + "ffn_down.bias", e)
    f2 = s.merge * s.merge
    if s.family == "muse-glimmer":
        mat("mm.0.weight", s.adapter[0], f2 * e)
        mat("mm.1.weight", s.adapter[1], s.adapter[0])
        mat("mm.2.weight", s.n_embd_out, s.adapter[1])
    elif s.family == "mlp":
        n_feat = len(set(s.feature_layers)) if s.feature_layers else 1
        mat("mm.0.weight", s.adapter[0], n_feat * e)
        vec("mm.0.bias", s.adapter[0])
        if s.mm2:
            mat("mm.2.weight", s.n_embd_out, s.adapter[0])
            vec("mm.2.bias", s.n_embd_out)
    else:
        mat("mm.model.fc.weight", s.n_embd_out, f2 * e)
    return t


def stored_name(spec: MmprojSpec, name: str) -> str:
    """The name a tensor gets in the file (legacy converters swapped ffn_up / ffn_down)."""
    if spec.legacy_ffn_names:
        if ".ffn_up." in name:
            return name.replace(".ffn_up.", ".ffn_down.")
        if ".ffn_down." in name:
            return name.replace(".ffn_down.", ".ffn_up.")
    return name


def write_mmproj(path: Path | str, spec: MmprojSpec, wtype: str = "F32", seed: int = 0,
                 weights: dict[str, np.ndarray] | None = None, skip: tuple = (), extra_kv=None) -> Path:
    """Writes the file; `skip` drops keys or tensors by name (negative tests), `extra_kv`
    (a callable taking the writer) adds or overrides metadata."""
    assert wtype in WTYPES
    s = spec
    w_all = weights if weights is not None else make_weights(spec, seed)
    path = Path(path)
    w = GGUFWriter(str(path), "clip")

    def kv(key, fn, value):
        if key not in skip:
            fn(key, value)

    kv("clip.has_vision_encoder", w.add_bool, True)
    kv("clip.projector_type", w.add_string, s.family)
    kv("clip.vision.embedding_length", w.add_uint32, s.n_embd)
    kv("clip.vision.feed_forward_length", w.add_uint32, s.n_ff)
    kv("clip.vision.block_count", w.add_uint32, s.n_layer)
    kv("clip.vision.attention.head_count", w.add_uint32, s.n_head)
    if s.n_head_kv is not None:
        kv("clip.vision.attention.head_count_kv", w.add_uint32, s.n_head_kv)
    if s.head_dim is not None:
        kv("clip.vision.attention.head_dim", w.add_uint32, s.head_dim)
    kv("clip.vision.attention.layer_norm_epsilon", w.add_float32, s.eps)
    kv("clip.vision.projection_dim", w.add_uint32, s.n_embd_out)
    kv("clip.vision.image_size", w.add_uint32, s.image_size)
    kv("clip.vision.patch_size", w.add_uint32, s.patch)
    kv("clip.vision.image_mean", w.add_array, [0.48145466, 0.4578275, 0.40821073])
    kv("clip.vision.image_std", w.add_array, [0.26862954, 0.26130258, 0.27577711])
    if s.family == "muse-glimmer" and s.write_merge_key:
        kv("clip.vision.spatial_merge_size", w.add_uint32, s.merge)
    if s.family == "idefics3":
        kv("clip.vision.projector.scale_factor", w.add_uint32, s.merge)
    if s.feature_layers is not None:
        kv("clip.vision.feature_layer", w.add_array, [int(x) for x in s.feature_layers])
    if s.use_gelu is not None:
        kv("clip.use_gelu", w.add_bool, s.use_gelu)
    if s.use_silu is not None:
        kv("clip.use_silu", w.add_bool, s.use_silu)
    if extra_kv:
        extra_kv(w)

    def put(name, arr):
        if name in skip:
            return
        big = arr.ndim >= 2 and name not in ("v.class_embd",)
        dtype = np.float16 if (wtype == "F16" and big) else np.float32
        w.add_tensor(name, arr if arr.dtype == dtype else arr.astype(dtype))

    for name, arr in w_all.items():
        blk_qkv = s.fused_qkv and any(f".{k}." in name for k in ("attn_q", "attn_k", "attn_v"))
        if blk_qkv:
            if ".attn_q." in name:  # write the fused tensor once, at Q's turn
                p = name.split("attn_q.")[0]
                suffix = name.split("attn_q.")[1]
                put(p + "attn_qkv." + suffix,
                    np.concatenate([w_all[p + "attn_q." + suffix], w_all[p + "attn_k." + suffix],
                                    w_all[p + "attn_v." + suffix]], axis=0))
            continue
        put(stored_name(s, name), arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def with_changes(name: str, **changes) -> MmprojSpec:
    return replace(VARIANTS[name], **changes)
