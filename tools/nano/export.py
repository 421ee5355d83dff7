"""Export a trained NanoModel to the GGUF pair in llama.cpp's layout (MUSE_GLIMMER.md §1.1-1.3,
§2.1-2.2): <out>.gguf (general.architecture "muse-glimmer") and <out>-mmproj.gguf ("clip",
projector "muse-glimmer"). Large matrices F16 (or Q8_0), norms/biases/small tables F32.

Our PyTorch parameters are already in GGUF layout (NORM-RoPE Q/K row order, un-shifted norm
weights, torch (out, in) == ggml [in, out]), so tensors are written as they are.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np
import torch

import gguf
from model import NanoModel, TextConfig, VisionConfig
from tok import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_PATH = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "templates", "muse-glimmer.jinja"))
F32, F16, Q8_0 = "f32", "f16", "q8_0"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def _add(w: gguf.GGUFWriter, name: str, arr: np.ndarray, kind: str):
    arr = np.ascontiguousarray(arr)
    if kind == F32 or arr.ndim == 1:
        w.add_tensor(name, arr.astype(np.float32))
    elif kind == F16:
        w.add_tensor(name, arr.astype(np.float16))
    elif kind == Q8_0:
        if arr.shape[-1] % 32 != 0:
            w.add_tensor(name, arr.astype(np.float16))
            return
        q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        raise ValueError(kind)


def text_tensors(m: NanoModel) -> Dict[str, np.ndarray]:
    t = m.text
    out = {"token_embd.weight": _np(t.token_embd.weight),
           "output_norm.weight": _np(t.output_norm),
           "output.weight": _np(t.output.weight)}
    for i, L in enumerate(t.layers):
        p = f"blk.{i}."
        out[p + "attn_norm.weight"] = _np(L.attn_norm)
        out[p + "attn_q.weight"] = _np(L.attn_q.weight)
        out[p + "attn_k.weight"] = _np(L.attn_k.weight)
        out[p + "attn_v.weight"] = _np(L.attn_v.weight)
        out[p + "attn_output.weight"] = _np(L.attn_output.weight)
        out[p + "attn_q_norm.weight"] = _np(L.attn_q_norm)
        out[p + "attn_k_norm.weight"] = _np(L.attn_k_norm)
        out[p + "attn_gate.weight"] = _np(L.attn_gate.weight)
        out[p + "post_attention_norm.weight"] = _np(L.post_attention_norm)
        out[p + "ffn_norm.weight"] = _np(L.ffn_norm)
        out[p + "ffn_gate.weight"] = _np(L.ffn_gate.weight)
        out[p + "ffn_up.weight"] = _np(L.ffn_up.weight)
        out[p + "ffn_down.weight"] = _np(L.ffn_down.weight)
        out[p + "post_ffw_norm.weight"] = _np(L.post_ffw_norm)
    return out


def vision_tensors(m: NanoModel) -> Dict[str, np.ndarray]:
    v = m.vision
    out = {"v.patch_embd.weight": _np(v.patch_embd.weight),          # (D,3,ps,ps) = ggml [ps,ps,3,D]
           "v.patch_embd.bias": _np(v.patch_embd.bias),
           "v.position_embd.weight": _np(v.position_embd),            # (G*G, D) = ggml [D, G*G]
           "v.pre_ln.weight": _np(v.pre_ln.weight), "v.pre_ln.bias": _np(v.pre_ln.bias)}
    for i, L in enumerate(v.layers):
        p = f"v.blk.{i}."
        for gname, mod in (("ln1", L.ln1), ("ln2", L.ln2), ("attn_q", L.attn_q), ("attn_k", L.attn_k),
                           ("attn_v", L.attn_v), ("attn_out", L.attn_out), ("ffn_up", L.ffn_up),
                           ("ffn_down", L.ffn_down)):
            out[p + gname + ".weight"] = _np(mod.weight)
            out[p + gname + ".bias"] = _np(mod.bias)
    out["v.post_ln.weight"] = _np(v.post_ln.weight)
    out["v.post_ln.bias"] = _np(v.post_ln.bias)
    out["mm.0.weight"] = _np(v.mm0.weight)
    out["mm.1.weight"] = _np(v.mm1.weight)
    out["mm.2.weight"] = _np(v.mm2.weight)
    return out


def export_text(m: NanoModel, tk: Tokenizer, path: str, wtype: str = F16, name: str = "muse-glimmer-nano"):
    tc: TextConfig = m.tc
    arch = "muse-glimmer"
    w = gguf.GGUFWriter(path, arch)
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", 1 if wtype == F16 else 7)
    w.add_uint32(f"{arch}.context_length", tc.n_ctx)
    w.add_uint32(f"{arch}.embedding_length", tc.n_embd)
    w.add_uint32(f"{arch}.block_count", tc.n_layer)
    w.add_uint32(f"{arch}.feed_forward_length", tc.n_ff)
    w.add_uint32(f"{arch}.attention.head_count", tc.n_head)
    w.add_uint32(f"{arch}.attention.head_count_kv", tc.n_head_kv)
    w.add_float32(f"{arch}.rope.freq_base", tc.rope_base)
    w.add_float32(f"{arch}.rope.freq_base_swa", tc.rope_base_swa)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", tc.eps)
    w.add_uint32(f"{arch}.attention.key_length", tc.head_dim)
    w.add_uint32(f"{arch}.attention.value_length", tc.head_dim)
    w.add_float32(f"{arch}.final_logit_softcapping", tc.softcap)
    w.add_float32(f"{arch}.logit_scale", tc.logit_scale)
    w.add_uint32(f"{arch}.attention.sliding_window", tc.n_swa)
    w.add_array(f"{arch}.attention.sliding_window_pattern", [bool(b) for b in tc.swa_pattern])  # BOOL array
    # tokenizer: SPM vocab ("llama")
    toks, scores, types = tk.gguf_vocab()
    assert len(toks) == tc.n_vocab, (len(toks), tc.n_vocab)
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", toks)
    w.add_array("tokenizer.ggml.scores", [float(s) for s in scores])
    w.add_array("tokenizer.ggml.token_type", [int(t) for t in types])
    w.add_uint32("tokenizer.ggml.bos_token_id", tk.bos)
    w.add_uint32("tokenizer.ggml.eos_token_id", tk.eos)
    w.add_uint32("tokenizer.ggml.unknown_token_id", tk.sp.unk_id())
    w.add_uint32("tokenizer.ggml.eot_token_id", tk.eot)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", False)
    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        w.add_string("tokenizer.chat_template", f.read())
    for k, a in text_tensors(m).items():
        _add(w, k, a, wtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def export_mmproj(m: NanoModel, path: str, wtype: str = F16, name: str = "muse-glimmer-nano-mmproj"):
    vc: VisionConfig = m.vc
    w = gguf.GGUFWriter(path, "clip")
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", 1 if wtype == F16 else 7)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "muse-glimmer")
    w.add_uint32("clip.vision.embedding_length", vc.n_embd)
    w.add_uint32("clip.vision.attention.head_count", vc.n_head)
    w.add_uint32("clip.vision.attention.head_count_kv", vc.n_head)
    w.add_uint32("clip.vision.attention.head_dim", vc.n_embd // vc.n_head)
    w.add_uint32("clip.vision.feed_forward_length", vc.n_ff)
    w.add_uint32("clip.vision.block_count", vc.n_layer)
    w.add_uint32("clip.vision.projection_dim", m.tc.n_embd)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", vc.eps)
    w.add_uint32("clip.vision.image_size", vc.pgrid * vc.patch * vc.merge)
    w.add_uint32("clip.vision.patch_size", vc.patch)
    w.add_array("clip.vision.image_mean", [float(x) for x in vc.image_mean])
    w.add_array("clip.vision.image_std", [float(x) for x in vc.image_std])
    w.add_uint32("clip.vision.spatial_merge_size", vc.merge)
    w.add_bool("clip.use_gelu", True)
    small = {"v.patch_embd.weight", "v.position_embd.weight"}
    for k, a in vision_tensors(m).items():
        _add(w, k, a, F32 if k in small else wtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_text_weights_from_gguf(m: NanoModel, path: str):
    """Load (dequantized) text weights from an exported GGUF back into m.text — used by the parity
    check so the PyTorch reference sees exactly the F16-rounded weights llama.cpp sees."""
    r = gguf.GGUFReader(path)
    tens = {t.name: t for t in r.tensors}
    sd = {}
    for k, a in text_tensors(m).items():
        t = tens[k]
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        sd[k] = torch.from_numpy(np.array(data, dtype=np.float32).reshape(a.shape))
    t = m.text
    with torch.no_grad():
        t.token_embd.weight.copy_(sd["token_embd.weight"])
        t.output_norm.copy_(sd["output_norm.weight"])
        t.output.weight.copy_(sd["output.weight"])
        for i, L in enumerate(t.layers):
            p = f"blk.{i}."
            L.attn_norm.copy_(sd[p + "attn_norm.weight"])
            L.attn_q.weight.copy_(sd[p + "attn_q.weight"])
            L.attn_k.weight.copy_(sd[p + "attn_k.weight"])
            L.attn_v.weight.copy_(sd[p + "attn_v.weight"])
            L.attn_output.weight.copy_(sd[p + "attn_output.weight"])
            L.attn_q_norm.copy_(sd[p + "attn_q_norm.weight"])
            L.attn_k_norm.copy_(sd[p + "attn_k_norm.weight"])
            L.attn_gate.weight.copy_(sd[p + "attn_gate.weight"])
            L.post_attention_norm.copy_(sd[p + "post_attention_norm.weight"])
            L.ffn_norm.copy_(sd[p + "ffn_norm.weight"])
            L.ffn_gate.weight.copy_(sd[p + "ffn_gate.weight"])
            L.ffn_up.weight.copy_(sd[p + "ffn_up.weight"])
            L.ffn_down.weight.copy_(sd[p + "ffn_down.weight"])
            L.post_ffw_norm.copy_(sd[p + "post_ffw_norm.weight"])


def load_vision_from_mmproj(path: str, threads: int = 0):
    """A VisionModel (encoder + adapter, float32, eval mode) with the configuration and the
    (dequantized) weights of an mmproj GGUF: the PyTorch reference that tests and benchmarks
    compare muse's encoder with. Any mmproj of this projector works, not only nano's."""
    from model import VisionModel
    if threads:
        torch.set_num_threads(threads)
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items()}
    T = {}
    for t in r.tensors:
        a = np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        T[t.name] = torch.from_numpy(a.reshape(tuple(int(d) for d in reversed(list(t.shape)))))
    vc = VisionConfig(n_embd=meta["clip.vision.embedding_length"], n_layer=meta["clip.vision.block_count"],
                      n_head=meta["clip.vision.attention.head_count"], n_ff=meta["clip.vision.feed_forward_length"],
                      patch=meta["clip.vision.patch_size"], merge=meta.get("clip.vision.spatial_merge_size", 2),
                      pgrid=int(round(T["v.position_embd.weight"].shape[0] ** 0.5)),
                      eps=meta["clip.vision.attention.layer_norm_epsilon"],
                      adapter1=T["mm.0.weight"].shape[0], adapter2=T["mm.1.weight"].shape[0])
    m = VisionModel(vc, T["mm.2.weight"].shape[0])
    sd = {"patch_embd.weight": T["v.patch_embd.weight"], "patch_embd.bias": T["v.patch_embd.bias"],
          "position_embd": T["v.position_embd.weight"], "mm0.weight": T["mm.0.weight"],
          "mm1.weight": T["mm.1.weight"], "mm2.weight": T["mm.2.weight"]}
    for ln in ("pre_ln", "post_ln"):
        for p in ("weight", "bias"):
            sd[f"{ln}.{p}"] = T[f"v.{ln}.{p}"]
    for i in range(vc.n_layer):
        for nm in ("ln1", "attn_q", "attn_k", "attn_v", "attn_out", "ln2", "ffn_up", "ffn_down"):
            for p in ("weight", "bias"):
                sd[f"layers.{i}.{nm}.{p}"] = T[f"v.blk.{i}.{nm}.{p}"]
    m.load_state_dict(sd, strict=True)
    return m.eval()


def check_gguf(path: str, expect: Dict[str, np.ndarray]) -> None:
    """Parse with gguf-py and check names + ggml shapes (ne = reversed numpy shape)."""
    r = gguf.GGUFReader(path)
    got = {t.name: [int(x) for x in t.shape] for t in r.tensors}
    assert set(got) == set(expect), (set(got) ^ set(expect))
    for k, a in expect.items():
        assert got[k] == list(reversed(a.shape)), (k, got[k], a.shape)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="export a checkpoint (train.py --out) to the GGUF pair")
    ap.add_argument("ckpt")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "models", "muse-glimmer-nano"))
    ap.add_argument("--wtype", default=F16, choices=[F16, Q8_0])
    a = ap.parse_args()
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    m = NanoModel(TextConfig(**ck["text_config"]), VisionConfig(**ck["vision_config"]))
    m.load_state_dict(ck["model"])
    tk = Tokenizer(ck.get("tokenizer", os.path.join(HERE, "tokenizer", "nano.model")))
    export_text(m, tk, a.out + ".gguf", a.wtype)
    export_mmproj(m, a.out + "-mmproj.gguf", a.wtype)
    check_gguf(a.out + ".gguf", text_tensors(m))
    check_gguf(a.out + "-mmproj.gguf", vision_tensors(m))
    print("wrote", a.out + ".gguf", a.out + "-mmproj.gguf")
