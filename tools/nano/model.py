"""PyTorch implementation of Muse Glimmer (text decoder §1.6, vision encoder + adapter §2.4,
preprocessing §2.3) of /work/shared/docs/MUSE_GLIMMER.md, at nano sizes.

All parameters are stored directly in the GGUF layout so the exporter needs no permutation:
  * Q/K rows are in adjacent-pair (NORM) RoPE order (we train with NORM RoPE);
  * norm weights are the values a GGUF consumer multiplies with (no "+1" shift);
  * torch Linear weights are (out, in) == ggml [in, out].
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS_POST = 1e-8  # hard-coded eps of the two post-norms (§1.6)


# ----------------------------------------------------------------------------------------------
# configs

@dataclasses.dataclass
class TextConfig:
    n_vocab: int = 1024
    n_ctx: int = 1024
    n_embd: int = 256
    n_layer: int = 6
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_ff: int = 704
    n_swa: int = 64
    swa_pattern: Sequence[bool] = (True, True, False, True, True, False)
    rope_base: float = 10000.0       # rope.freq_base (only used by SWA layers via base_swa)
    rope_base_swa: float = 10000.0   # rope.freq_base_swa
    eps: float = 1e-6
    logit_scale: float = 1.0
    softcap: float = 30.0
    q_norm_init: float = 1.0


@dataclasses.dataclass
class VisionConfig:
    n_embd: int = 192
    n_layer: int = 4
    n_head: int = 4
    n_ff: int = 768
    patch: int = 8
    merge: int = 2
    pgrid: int = 6                   # G: position table is G x G, also the window size
    eps: float = 1e-6
    adapter1: int = 256              # mm.0 output width
    adapter2: int = 256              # mm.1 output width
    image_mean: Sequence[float] = (0.5, 0.5, 0.5)
    image_std: Sequence[float] = (0.5, 0.5, 0.5)
    max_tokens: int = 4096           # set_limit_image_tokens(1, 4096)
    min_tokens: int = 1
    pos_init: float = 0.02           # std of the initial position table (training only)


# ----------------------------------------------------------------------------------------------
# helpers

def rmsnorm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Always computed (and returned) in float32, also under bf16 autocast."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="none")


def rope_norm_cos_sin(pos: torch.Tensor, n_rot: int, base: float):
    """cos/sin of shape (len(pos), n_rot/2) for adjacent-pair RoPE: theta_i = pos * base^(-2i/n_rot)."""
    i = torch.arange(n_rot // 2, dtype=torch.float64)
    inv = base ** (-2.0 * i / n_rot)
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope_norm(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, H, d] with pairs (2i, 2i+1); cos/sin broadcastable to [..., T, H, d/2]
    ([T, d/2] is taken as [T, 1, d/2])."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[:, None, :] if cos.dim() == 2 else cos
    s = sin[:, None, :] if sin.dim() == 2 else sin
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack([y0, y1], dim=-1).flatten(-2)


# ----------------------------------------------------------------------------------------------
# text decoder (§1.6)

class TextLayer(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        D, H, KV, hd, FF = c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff
        self.attn_norm = nn.Parameter(torch.ones(D))
        self.attn_q = nn.Linear(D, H * hd, bias=False)
        self.attn_k = nn.Linear(D, KV * hd, bias=False)
        self.attn_v = nn.Linear(D, KV * hd, bias=False)
        self.attn_gate = nn.Linear(D, H * hd, bias=False)
        self.attn_output = nn.Linear(H * hd, D, bias=False)
        self.attn_q_norm = nn.Parameter(torch.full((hd,), float(c.q_norm_init)))
        self.attn_k_norm = nn.Parameter(torch.ones(hd))
        self.post_attention_norm = nn.Parameter(torch.ones(D))
        self.ffn_norm = nn.Parameter(torch.ones(D))
        self.ffn_gate = nn.Linear(D, FF, bias=False)
        self.ffn_up = nn.Linear(D, FF, bias=False)
        self.ffn_down = nn.Linear(FF, D, bias=False)
        self.post_ffw_norm = nn.Parameter(torch.ones(D))


class TextModel(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        assert len(c.swa_pattern) == c.n_layer
        self.c = c
        self.token_embd = nn.Embedding(c.n_vocab, c.n_embd)
        self.layers = nn.ModuleList([TextLayer(c) for _ in range(c.n_layer)])
        self.output_norm = nn.Parameter(torch.ones(c.n_embd))
        self.output = nn.Linear(c.n_embd, c.n_vocab, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        c = self.c
        std = 0.02
        nn.init.normal_(self.token_embd.weight, std=1.0)
        nn.init.normal_(self.output.weight, std=std)
        for L in self.layers:
            for m in (L.attn_q, L.attn_k, L.attn_v, L.attn_gate, L.ffn_gate, L.ffn_up):
                nn.init.normal_(m.weight, std=std)
            for m in (L.attn_output, L.ffn_down):
                nn.init.normal_(m.weight, std=std / math.sqrt(2 * c.n_layer))

    def attn_mask(self, pos: torch.Tensor, doc: Optional[torch.Tensor], is_swa: bool) -> torch.Tensor:
        """bool [B, 1, T, T]: causal (by index), same document, and for SWA layers
        p_q - p_k < n_swa (positions restart at 0 in every packed document)."""
        B, T = pos.shape
        i = torch.arange(T, device=pos.device)
        ok = (i[:, None] >= i[None, :])[None]
        if doc is not None:
            ok = ok & (doc[:, :, None] == doc[:, None, :])
        if is_swa:
            d = pos[:, :, None] - pos[:, None, :]
            ok = ok & (d < self.c.n_swa)
        return ok[:, None]

    def forward(self, tokens: Optional[torch.Tensor] = None, embeds: Optional[torch.Tensor] = None,
                pos: Optional[torch.Tensor] = None, doc: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens [B, T] (or embeds [B, T, D], e.g. with image rows already scattered in);
        pos [B, T] positions (default 0..T-1), doc [B, T] document ids for packed batches.
        Returns logits [B, T, V] after logit_scale and softcapping."""
        c = self.c
        x = self.token_embd(tokens) if embeds is None else embeds
        B, T, D = x.shape
        if pos is None:
            pos = torch.arange(T, device=x.device)[None].expand(B, T)
        cos, sin = rope_norm_cos_sin(pos.reshape(-1), c.head_dim, c.rope_base_swa)
        cos, sin = cos.view(B, T, 1, -1), sin.view(B, T, 1, -1)
        masks = {s: self.attn_mask(pos, doc, s) for s in (False, True)}
        h = rmsnorm(x, c.eps)                                  # scaleless initial norm
        H, KV, hd = c.n_head, c.n_head_kv, c.head_dim
        for il, L in enumerate(self.layers):
            swa = bool(c.swa_pattern[il])
            a = rmsnorm(h, c.eps) * L.attn_norm
            q = L.attn_q(a).view(B, T, H, hd)
            k = L.attn_k(a).view(B, T, KV, hd)
            v = L.attn_v(a).view(B, T, KV, hd)
            g = L.attn_gate(a)
            q = rmsnorm(q, c.eps) * L.attn_q_norm
            k = rmsnorm(k, c.eps) * L.attn_k_norm
            if swa:
                q = apply_rope_norm(q, cos, sin)
                k = apply_rope_norm(k, cos, sin)
            rep = H // KV
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                               attn_mask=masks[swa], scale=1.0 / math.sqrt(hd))
            o = o.transpose(1, 2).reshape(B, T, H * hd)
            o = o * torch.sigmoid(g)
            o = L.attn_output(o)
            o = rmsnorm(o, EPS_POST) * L.post_attention_norm
            h1 = h + o
            f = rmsnorm(h1, c.eps) * L.ffn_norm
            f = L.ffn_down(F.silu(L.ffn_gate(f)) * L.ffn_up(f))
            f = rmsnorm(f, EPS_POST) * L.post_ffw_norm
            h = h1 + f
        y = rmsnorm(h, c.eps) * self.output_norm
        logits = self.output(y) * c.logit_scale
        if c.softcap != 0:
            logits = c.softcap * torch.tanh(logits / c.softcap)
        return logits


    @torch.no_grad()
    def step(self, embeds: torch.Tensor, cache: list, pos0: int) -> torch.Tensor:
        """Incremental forward for one sequence: embeds [1, n, D] at positions pos0..pos0+n-1,
        cache = list (per layer) of [k, v] tensors [1, t, KV, hd] (RoPE'd/normed keys), updated in
        place. Returns logits [1, n, V]. Same math as forward()."""
        c = self.c
        B, n, D = embeds.shape
        H, KV, hd = c.n_head, c.n_head_kv, c.head_dim
        pos = torch.arange(pos0, pos0 + n)
        cos, sin = rope_norm_cos_sin(pos, hd, c.rope_base_swa)
        if not cache:
            cache.extend([None] * c.n_layer)
        h = rmsnorm(embeds, c.eps)
        for il, L in enumerate(self.layers):
            swa = bool(c.swa_pattern[il])
            a = rmsnorm(h, c.eps) * L.attn_norm
            q = rmsnorm(L.attn_q(a).view(B, n, H, hd), c.eps) * L.attn_q_norm
            k = rmsnorm(L.attn_k(a).view(B, n, KV, hd), c.eps) * L.attn_k_norm
            v = L.attn_v(a).view(B, n, KV, hd)
            g = L.attn_gate(a)
            if swa:
                q = apply_rope_norm(q, cos, sin)
                k = apply_rope_norm(k, cos, sin)
            if cache[il] is not None:
                k = torch.cat([cache[il][0], k], 1)
                v = torch.cat([cache[il][1], v], 1)
            cache[il] = [k, v]
            t = k.shape[1]
            kp = torch.arange(pos0 + n - t, pos0 + n)
            d = pos[:, None] - kp[None, :]
            ok = d >= 0
            if swa:
                ok = ok & (d < c.n_swa)
            rep = H // KV
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.repeat_interleave(rep, 2).transpose(1, 2),
                                               v.repeat_interleave(rep, 2).transpose(1, 2), attn_mask=ok,
                                               scale=1.0 / math.sqrt(hd))
            o = o.transpose(1, 2).reshape(B, n, H * hd) * torch.sigmoid(g)
            o = rmsnorm(L.attn_output(o), EPS_POST) * L.post_attention_norm
            h1 = h + o
            f = rmsnorm(h1, c.eps) * L.ffn_norm
            f = L.ffn_down(F.silu(L.ffn_gate(f)) * L.ffn_up(f))
            h = h1 + rmsnorm(f, EPS_POST) * L.post_ffw_norm
        y = rmsnorm(h, c.eps) * self.output_norm
        logits = self.output(y) * c.logit_scale
        if c.softcap != 0:
            logits = c.softcap * torch.tanh(logits / c.softcap)
        return logits


# ----------------------------------------------------------------------------------------------
# preprocessing (§2.3)

def grid_size(W: int, H: int, P: int, T: int):
    """muse_glimmer_grid_size: returns (nw', nh') merged-token grid."""
    nh = H / P
    nw = W / P
    r = nw / nh if nh != 0 else 1.0
    if nh * nw > T:
        nh = math.sqrt(T / r)
        nw = nh * r
    best = None
    best_d = None
    for a in (math.floor(nh), math.ceil(nh)):
        for b in (math.floor(nw), math.ceil(nw)):
            if a < 1 or b < 1 or a * b > T:
                continue
            d = abs(a / b - H / W)
            if best is None or d < best_d or (d == best_d and a * b > best[0] * best[1]):
                best, best_d = (a, b), d
    if best is None:
        def lround(v):
            return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)
        best = (max(1, lround(nh)), max(1, lround(nw)))
    return best[1], best[0]


def preprocess(img, vc: VisionConfig) -> torch.Tensor:
    """PIL.Image (RGB) -> normalized float tensor [3, H', W'] (torch layout)."""
    from PIL import Image
    P = vc.patch * vc.merge
    nw, nh = grid_size(img.width, img.height, P, vc.max_tokens)
    tw, th = nw * P, nh * P
    if (tw, th) != (img.width, img.height):
        img = img.resize((tw, th), Image.LANCZOS)   # Pillow Lanczos(a=3), horizontal then vertical
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    a = (a - np.asarray(vc.image_mean, np.float32)) / np.asarray(vc.image_std, np.float32)
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


# ----------------------------------------------------------------------------------------------
# vision encoder + adapter (§2.4)

def window_layout(grid_w: int, grid_h: int, G: int):
    """sp_perm, inv_perm, pos_w, pos_h (1-indexed, permuted order), window sizes, ds_perm."""
    sp_perm, sizes = [], []
    nwin_h = -(-grid_h // G)
    nwin_w = -(-grid_w // G)
    for wy in range(nwin_h):
        for wx in range(nwin_w):
            s = 0
            for hh in range(G):
                for ww in range(G):
                    gy, gx = wy * G + hh, wx * G + ww
                    if gy < grid_h and gx < grid_w:
                        sp_perm.append(gy * grid_w + gx)
                        s += 1
            if s:
                sizes.append(s)
    n = grid_w * grid_h
    inv = [0] * n
    for i, o in enumerate(sp_perm):
        inv[o] = i
    pos_w = [(o % grid_w) + 1 for o in sp_perm]
    pos_h = [(o // grid_w) + 1 for o in sp_perm]
    return sp_perm, inv, pos_w, pos_h, sizes


def pixel_shuffle_perm(grid_w: int, grid_h: int, f: int):
    ds = []
    for oy in range(grid_h // f):
        for ox in range(grid_w // f):
            for ry in range(f):
                for rx in range(f):
                    ds.append((oy * f + ry) * grid_w + (ox * f + rx))
    return ds


class VisionLayer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        D = c.n_embd
        self.ln1 = nn.LayerNorm(D, eps=c.eps)
        self.attn_q = nn.Linear(D, D)
        self.attn_k = nn.Linear(D, D)
        self.attn_v = nn.Linear(D, D)
        self.attn_out = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D, eps=c.eps)
        self.ffn_up = nn.Linear(D, c.n_ff)
        self.ffn_down = nn.Linear(c.n_ff, D)


class VisionModel(nn.Module):
    def __init__(self, c: VisionConfig, n_embd_text: int):
        super().__init__()
        self.c = c
        D = c.n_embd
        self.patch_embd = nn.Conv2d(3, D, kernel_size=c.patch, stride=c.patch, bias=True)
        self.position_embd = nn.Parameter(torch.randn(c.pgrid * c.pgrid, D) * c.pos_init)
        self.pre_ln = nn.LayerNorm(D, eps=c.eps)
        self.layers = nn.ModuleList([VisionLayer(c) for _ in range(c.n_layer)])
        self.post_ln = nn.LayerNorm(D, eps=c.eps)
        f2 = c.merge * c.merge
        self.mm0 = nn.Linear(f2 * D, c.adapter1, bias=False)
        self.mm1 = nn.Linear(c.adapter1, c.adapter2, bias=False)
        self.mm2 = nn.Linear(c.adapter2, n_embd_text, bias=False)
        self._cache = {}

    def _layout(self, grid_w: int, grid_h: int, device):
        key = (grid_w, grid_h, str(device))
        if key not in self._cache:
            c = self.c
            sp, inv, pw, ph, sizes = window_layout(grid_w, grid_h, c.pgrid)
            n = grid_w * grid_h
            mask = torch.zeros(n, n, dtype=torch.bool)
            o = 0
            for s in sizes:
                mask[o:o + s, o:o + s] = True
                o += s
            d = c.n_embd // c.n_head
            cw, sw = rope_norm_cos_sin(torch.tensor(pw), d // 2, 10000.0)
            ch, sh = rope_norm_cos_sin(torch.tensor(ph), d // 2, 10000.0)
            ds = pixel_shuffle_perm(grid_w, grid_h, c.merge)
            self._cache[key] = dict(
                sp=torch.tensor(sp, device=device), inv=torch.tensor(inv, device=device),
                mask=mask.to(device), cw=cw.to(device), sw=sw.to(device), ch=ch.to(device),
                sh=sh.to(device), ds=torch.tensor(ds, device=device))
        return self._cache[key]

    def rope2d(self, x, L):
        d = x.shape[-1]
        xw = apply_rope_norm(x[..., : d // 2], L["cw"], L["sw"])
        xh = apply_rope_norm(x[..., d // 2:], L["ch"], L["sh"])
        return torch.cat([xw, xh], dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, H', W'] (all images of a batch share the size) -> [N, n_tok_merged, n_embd_text]."""
        c = self.c
        N = pixels.shape[0]
        x = self.patch_embd(pixels)                          # [N, D, gh, gw]
        gh, gw = x.shape[2], x.shape[3]
        D = c.n_embd
        G = c.pgrid
        pe = self.position_embd.view(G, G, D).permute(2, 0, 1)[None]   # [1, D, G(h), G(w)]
        if (gw, gh) != (G, G):
            pe = F.interpolate(pe, size=(gh, gw), mode="bilinear", align_corners=False, antialias=False)
        x = x + pe
        x = x.flatten(2).transpose(1, 2)                     # [N, gh*gw, D], token = h*gw + w
        L = self._layout(gw, gh, x.device)
        x = x[:, L["sp"]]
        x = self.pre_ln(x)
        nh = c.n_head
        d = D // nh
        n = x.shape[1]
        for il, blk in enumerate(self.layers):
            is_global = (il == c.n_layer - 1) or ((il + 1) % 4 == 0)
            hN = blk.ln1(x)
            q = blk.attn_q(hN).view(N, n, nh, d)
            k = blk.attn_k(hN).view(N, n, nh, d)
            v = blk.attn_v(hN).view(N, n, nh, d)
            q = self.rope2d(q, L)
            k = self.rope2d(k, L)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                               attn_mask=None if is_global else L["mask"],
                                               scale=1.0 / math.sqrt(d))
            a = a.transpose(1, 2).reshape(N, n, D)
            x = x + blk.attn_out(a)
            x = x + blk.ffn_down(gelu_erf(blk.ffn_up(blk.ln2(x))))
        x = self.post_ln(x)
        x = x[:, L["inv"]]
        f2 = c.merge * c.merge
        y = x[:, L["ds"]].view(N, -1, f2, D).transpose(2, 3).reshape(N, -1, D * f2)  # c*f^2 + s
        z = self.mm2(gelu_erf(self.mm1(gelu_erf(self.mm0(y)))))
        return z


# ----------------------------------------------------------------------------------------------
# full model

class NanoModel(nn.Module):
    def __init__(self, tc: TextConfig, vc: VisionConfig):
        super().__init__()
        self.tc, self.vc = tc, vc
        self.text = TextModel(tc)
        self.vision = VisionModel(vc, tc.n_embd)

    def embed(self, tokens: torch.Tensor, image_pos: Optional[torch.Tensor], pixels: Optional[torch.Tensor]):
        """tokens [B, T]; image_pos [N, 3] long rows (b, start, count) — the count image rows of
        image n replace tokens [start, start+count) of sequence b; pixels [N, 3, H, W]."""
        x = self.text.token_embd(tokens)
        if pixels is not None and pixels.shape[0] > 0:
            z = self.vision(pixels)
            x = x.clone()
            for n in range(z.shape[0]):
                b, s, cnt = (int(v) for v in image_pos[n])
                x[b, s:s + cnt] = z[n, :cnt]
        return x

    def forward(self, tokens, image_pos=None, pixels=None, pos=None, doc=None):
        return self.text(embeds=self.embed(tokens, image_pos, pixels), pos=pos, doc=doc)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
