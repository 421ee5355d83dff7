"""Self-checks of the vision-side details of model.py against the literal wording of
MUSE_GLIMMER.md §2.3/§2.4, using slow loop implementations (the text decoder is checked
against llama.cpp itself: train.py --smoke / --check). Not named test_* on purpose: it needs
the tools/nano venv (torch), which the repository's own test runs do not have.

    .venv/bin/python check_spec.py
"""
from __future__ import annotations

import math

import numpy as np
import torch

import model as M


def check_grid_size():
    P = 16
    assert M.grid_size(96, 96, P, 4096) == (6, 6)
    assert M.grid_size(10, 10, P, 4096) == (1, 1)            # tiny images are upscaled to 1x1 tokens
    assert M.grid_size(100, 50, P, 4096) == (6, 3)
    nw, nh = M.grid_size(4000, 3000, P, 4096)
    assert nw * nh <= 4096 and abs(nh / nw - 0.75) < 0.02


def check_window_layout():
    gw, gh, G = 7, 5, 3
    sp, inv, pw, ph, sizes = M.window_layout(gw, gh, G)
    assert sorted(sp) == list(range(gw * gh))
    assert all(sp[inv[o]] == o for o in range(gw * gh))
    # windows: ceil(5/3)=2 rows x ceil(7/3)=3 cols; sizes row-major
    assert sizes == [9, 9, 3, 6, 6, 2], sizes
    assert sp[:4] == [0, 1, 2, 7]
    assert pw[0] == 1 and ph[0] == 1 and pw[3] == 1 and ph[3] == 2   # 1-indexed, permuted order


def check_pixel_shuffle():
    gw, gh, f, C = 4, 6, 2, 5
    x = torch.randn(gw * gh, C)
    ds = M.pixel_shuffle_perm(gw, gh, f)
    y = x[torch.tensor(ds)].view(-1, f * f, C).transpose(1, 2).reshape(-1, C * f * f)   # as in VisionModel
    for o in range((gw // f) * (gh // f)):
        oy, ox = divmod(o, gw // f)
        for c in range(C):
            for ry in range(f):
                for rx in range(f):
                    s = ry * f + rx
                    assert y[o, c * f * f + s] == x[(oy * f + ry) * gw + (ox * f + rx), c]


def check_bilinear_pos():
    G, C, gw, gh = 3, 4, 7, 5
    table = torch.randn(G * G, C)
    pe = table.view(G, G, C).permute(2, 0, 1)[None]
    got = torch.nn.functional.interpolate(pe, size=(gh, gw), mode="bilinear", align_corners=False,
                                          antialias=False)[0].permute(1, 2, 0)        # [gh, gw, C]

    def axis(dst, n_in, n_out):
        src = (dst + 0.5) * (n_in / n_out) - 0.5
        i0 = math.floor(src)
        fr = min(1.0, max(0.0, src - i0))
        return min(max(i0, 0), n_in - 1), min(max(i0 + 1, 0), n_in - 1), fr

    for y in range(gh):
        y0, y1, fy = axis(y, G, gh)
        for x in range(gw):
            x0, x1, fx = axis(x, G, gw)
            T = table.view(G, G, C)
            top = T[y0, x0] * (1 - fx) + T[y0, x1] * fx
            bot = T[y1, x0] * (1 - fx) + T[y1, x1] * fx
            ref = top * (1 - fy) + bot * fy
            assert torch.allclose(got[y, x], ref, atol=1e-6), (y, x)


def check_rope2d():
    vc = M.VisionConfig(n_embd=32, n_layer=1, n_head=2, n_ff=16, pgrid=2)
    vm = M.VisionModel(vc, 8)
    L = vm._layout(4, 2, "cpu")
    sp, _, pw, ph, _ = M.window_layout(4, 2, 2)
    d = 16
    x = torch.randn(1, 8, 2, d)
    got = vm.rope2d(x, L)
    ref = x.clone()
    for i in range(8):
        for half, pos in ((0, pw[i]), (1, ph[i])):
            for j in range(d // 4):
                th = pos * 10000.0 ** (-2 * j / (d / 2))
                a, b = half * d // 2 + 2 * j, half * d // 2 + 2 * j + 1
                x0, x1 = x[0, i, :, a], x[0, i, :, b]
                ref[0, i, :, a] = x0 * math.cos(th) - x1 * math.sin(th)
                ref[0, i, :, b] = x0 * math.sin(th) + x1 * math.cos(th)
    assert torch.allclose(got, ref, atol=1e-5)


def check_vision_naive():
    """VisionModel.forward vs a per-token loop implementation of §2.4 steps 1-9."""
    torch.manual_seed(0)
    vc = M.VisionConfig(n_embd=16, n_layer=5, n_head=2, n_ff=24, patch=4, merge=2, pgrid=3,
                        adapter1=12, adapter2=10)
    vm = M.VisionModel(vc, 8).eval()
    with torch.no_grad():
        for p in vm.parameters():
            p.normal_(0, 0.3)
    img = torch.randn(1, 3, 16, 24)                       # grid_h 4, grid_w 6
    with torch.no_grad():
        got = vm(img)[0]
        gh, gw, D, ps, G = 4, 6, 16, 4, 3
        patches = []
        for gy in range(gh):
            for gx in range(gw):
                blk = img[0, :, gy * ps:(gy + 1) * ps, gx * ps:(gx + 1) * ps]
                patches.append((vm.patch_embd.weight * blk[None]).sum((1, 2, 3)) + vm.patch_embd.bias)
        x = torch.stack(patches)
        pe = torch.nn.functional.interpolate(vm.position_embd.view(G, G, D).permute(2, 0, 1)[None], size=(gh, gw),
                                             mode="bilinear", align_corners=False)[0].permute(1, 2, 0).reshape(-1, D)
        x = x + pe
        sp, inv, pw, ph, sizes = M.window_layout(gw, gh, G)
        x = x[torch.tensor(sp)]
        win = []
        for k, s in enumerate(sizes):
            win += [k] * s
        x = vm.pre_ln(x)
        dh = D // 2

        def rope(v, i):
            out = v.clone()
            for half, pos in ((0, pw[i]), (1, ph[i])):
                for j in range(dh // 4):
                    th = pos * 10000.0 ** (-2 * j / (dh / 2))
                    a = half * dh // 2 + 2 * j
                    out[a] = v[a] * math.cos(th) - v[a + 1] * math.sin(th)
                    out[a + 1] = v[a] * math.sin(th) + v[a + 1] * math.cos(th)
            return out
        n = x.shape[0]
        for il, blk in enumerate(vm.layers):
            glob = il == vc.n_layer - 1 or (il + 1) % 4 == 0
            h = blk.ln1(x)
            q, k, v = blk.attn_q(h), blk.attn_k(h), blk.attn_v(h)
            att = torch.zeros(n, D)
            for hd in range(2):
                sl = slice(hd * dh, (hd + 1) * dh)
                qs = torch.stack([rope(q[i, sl], i) for i in range(n)])
                ks = torch.stack([rope(k[i, sl], i) for i in range(n)])
                sc = qs @ ks.T / math.sqrt(dh)
                if not glob:
                    for i in range(n):
                        for j in range(n):
                            if win[i] != win[j]:
                                sc[i, j] = -float("inf")
                att[:, sl] = torch.softmax(sc, -1) @ v[:, sl]
            x = x + blk.attn_out(att)
            x = x + blk.ffn_down(torch.nn.functional.gelu(blk.ffn_up(blk.ln2(x))))
        x = vm.post_ln(x)[torch.tensor(inv)]
        ys = []
        for oy in range(gh // 2):
            for ox in range(gw // 2):
                vec = torch.zeros(4 * D)
                for c in range(D):
                    for ry in range(2):
                        for rx in range(2):
                            vec[c * 4 + ry * 2 + rx] = x[(oy * 2 + ry) * gw + ox * 2 + rx, c]
                ys.append(vec)
        y = torch.stack(ys)
        g = torch.nn.functional.gelu
        ref = vm.mm2(g(vm.mm1(g(vm.mm0(y)))))
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()


def check_lanczos_is_pillow():
    from PIL import Image
    a = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    im = Image.fromarray(a)
    vc = M.VisionConfig()
    t = M.preprocess(im, vc)                       # 30x20 -> grid (2,1) tokens -> 32x16
    assert tuple(t.shape) == (3, 16, 32)
    ref = np.asarray(im.resize((32, 16), Image.LANCZOS), np.float32) / 255.0
    assert np.allclose(t.permute(1, 2, 0).numpy(), (ref - 0.5) / 0.5)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("check_") and callable(fn):
            fn()
            print("ok", name)
