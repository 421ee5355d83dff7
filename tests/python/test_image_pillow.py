"""muse's resampler and per-family preprocessing against Pillow and references
written here from their definitions:

  - resize: Pillow's Image.resize, byte for byte, for LANCZOS, BICUBIC,
    BILINEAR, BOX and HAMMING on random (in, out) size pairs, up and down,
    including 1-pixel sides. Pillow up to 12.x always resamples horizontally
    first; Pillow 13 switches to vertical first when the height shrinks by more
    than twice as many pixels as the width, and the uint8 intermediate makes
    the orders differ. muse does both (PassOrder; the default is horizontal
    first, what existing models were trained with): each is compared with the
    installed Pillow's one-call resize when that Pillow uses the same order, and
    always with two single-axis Pillow calls in that order (single-axis resizes
    are the same in every Pillow version);
  - muse-glimmer: the grid rule of ../shared/docs/MUSE_GLIMMER.md §2.3 in plain
    Python, then Pillow LANCZOS + numpy normalization;
  - CLIP: LLaVA-1.5's expand2square + Pillow BICUBIC (llama.cpp's pad-to-square
    choice), HF CLIPImageProcessor's shortest-edge + center crop, SigLIP stretch;
  - Idefics3: transformers' Idefics3ImageProcessor size rules and splitting,
    with Pillow LANCZOS;
  - float bilinear (position tables): numpy, half-pixel centres, edge clamp.

muse runs through tests/image-tool (an internal test binary, found next to
MUSE_LIBRARY's build tree or via MUSE_IMAGE_TOOL); the test skips without it.
"""
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
           "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX,
           "hamming": Image.Resampling.HAMMING}


def image_tool():
    env = os.environ.get("MUSE_IMAGE_TOOL")
    if env:
        return Path(env)
    lib = os.environ.get("MUSE_LIBRARY")
    if lib:
        for parent in Path(lib).resolve().parents:
            cand = parent / "tests" / "image-tool"
            if cand.exists():
                return cand
    return None


TOOL = image_tool()
pytestmark = pytest.mark.skipif(TOOL is None, reason="image-tool not found (set MUSE_IMAGE_TOOL)")


class Runner:
    """Collects jobs with their input arrays, runs image-tool once, returns results."""

    def __init__(self, tmp: Path):
        self.tmp, self.jobs = tmp, []

    def add(self, job: dict, array: np.ndarray = None) -> int:
        i = len(self.jobs)
        if array is not None:
            job["input"] = str(self.tmp / f"in{i}.bin")
            np.ascontiguousarray(array).tofile(job["input"])
        job.setdefault("output", str(self.tmp / f"out{i}.bin"))
        self.jobs.append(job)
        return i

    def run(self):
        jobs, results = self.tmp / "jobs.json", self.tmp / "results.json"
        jobs.write_text(json.dumps(self.jobs))
        subprocess.run([str(TOOL), str(jobs), str(results)], check=True, timeout=600)
        out = json.loads(results.read_text())
        for job, res in zip(self.jobs, out):
            assert "error" not in res, f"{job['op']}: {res}"
        return out

    def output(self, i, dtype):
        return np.fromfile(self.jobs[i]["output"], dtype=dtype)


@pytest.fixture
def runner():
    with tempfile.TemporaryDirectory(prefix="muse-image-") as d:
        yield Runner(Path(d))


def noise(rng, w, h):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def natural(rng, w, h):
    """Smooth content with edges, closer to photos than noise (less clamping)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 7.0 + y / 11.0), 128 + 90 * np.cos(y / 5.0),
                     (x * 255 // max(w - 1, 1)) * (y % 17 < 9)], -1)
    return np.clip(base + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8)


def normalize(u8: np.ndarray, mean, std) -> np.ndarray:
    """(u8 / 255 - mean) / std in float32, planar [3, H, W]."""
    x = u8.astype(np.float32) / np.float32(255.0)
    m = np.asarray(mean, np.float32)
    s = np.asarray(std, np.float32)
    return ((x - m) / s).transpose(2, 0, 1).copy()


def pil_resize(u8: np.ndarray, w: int, h: int, f) -> np.ndarray:
    """Horizontal pass first, as every Pillow before 13 (and muse's default) does."""
    im = Image.fromarray(u8)
    if w != im.width and h != im.height:
        im = im.resize((w, im.height), f)
    return np.asarray(im.resize((w, h), f))


def pil_resize_pillow13(u8: np.ndarray, w: int, h: int, f) -> np.ndarray:
    """Pillow 13's order: vertical first when in_h - h > 0 and in_h - h > 2 * (in_w - w)."""
    im = Image.fromarray(u8)
    if w != im.width and h != im.height and (im.height - h) > 0 and (im.height - h) > (im.width - w) * 2:
        im = im.resize((im.width, h), f)
    return np.asarray(im.resize((w, h), f))


def installed_pillow_order():
    """Which order this Pillow's one-call resize uses: "hfirst" or "pillow13"."""
    a = np.random.default_rng(0).integers(0, 256, size=(97, 57, 3), dtype=np.uint8)
    direct = np.asarray(Image.fromarray(a).resize((37, 11), Image.Resampling.LANCZOS))
    if np.array_equal(direct, pil_resize(a, 37, 11, Image.Resampling.LANCZOS)):
        return "hfirst"
    assert np.array_equal(direct, pil_resize_pillow13(a, 37, 11, Image.Resampling.LANCZOS)), "unknown Pillow order"
    return "pillow13"


# ---------------------------------------------------------------- resize


def size_pairs(rng, n):
    pairs = [((1, 1), (7, 5)), ((7, 5), (1, 1)), ((1, 13), (9, 1)), ((23, 1), (1, 40)), ((64, 64), (64, 64)),
             ((100, 3), (31, 3)), ((3, 100), (3, 7)), ((2, 2), (97, 61)), ((513, 129), (64, 257))]
    while len(pairs) < n:
        w, h = (int(v) for v in rng.integers(1, 300, size=2))
        ow, oh = (int(v) for v in rng.integers(1, 300, size=2))
        pairs.append(((w, h), (ow, oh)))
    return pairs


@pytest.mark.parametrize("filt,count", [("lanczos", 40), ("bicubic", 20), ("bilinear", 20), ("box", 12),
                                        ("hamming", 12)])
def test_resize_equals_pillow_byte_for_byte(runner, filt, count):
    rng = np.random.default_rng(list(FILTERS).index(filt) + 100)
    installed = installed_pillow_order()
    cases = []
    for k, ((w, h), (ow, oh)) in enumerate(size_pairs(rng, count)):
        src = noise(rng, w, h) if k % 2 == 0 else natural(rng, w, h)
        for order in ("hfirst", "pillow13"):
            i = runner.add({"op": "resize", "width": w, "height": h, "channels": 3, "out_width": ow,
                            "out_height": oh, "filter": filt, "order": order}, src)
            cases.append((i, src, ow, oh, order))
    runner.run()
    for i, src, ow, oh, order in cases:
        got = runner.output(i, np.uint8).reshape(oh, ow, 3)
        emulated = (pil_resize if order == "hfirst" else pil_resize_pillow13)(src, ow, oh, FILTERS[filt])
        refs = [emulated]
        if order == installed:
            refs.append(np.asarray(Image.fromarray(src).resize((ow, oh), FILTERS[filt])))
        for want in refs:
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"{order}: {src.shape[1]}x{src.shape[0]} -> {ow}x{oh}: {len(bad)} bytes differ, "
                                   f"first {bad[:3]}")


def test_resize_gray_and_rgba_channels(runner):
    # The resampler is channel-generic; Pillow's L and RGBA (no premultiply for
    # an opaque image) give the reference.
    rng = np.random.default_rng(3)
    g = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    i = runner.add({"op": "resize", "width": 53, "height": 37, "channels": 1, "out_width": 20, "out_height": 71,
                    "filter": "lanczos"}, g)
    runner.run()
    np.testing.assert_array_equal(runner.output(i, np.uint8).reshape(71, 20),
                                  np.asarray(Image.fromarray(g).resize((20, 71), Image.Resampling.LANCZOS)))


# ---------------------------------------------------------------- muse-glimmer


def glimmer_grid_reference(W, H, ps, merge, T):
    """MUSE_GLIMMER.md §2.3, steps 1-5, written from the spec text."""
    P = ps * merge
    nh, nw = H / P, W / P
    r = nw / nh if nh != 0 else 1.0
    if nh * nw > T:
        nh = math.sqrt(T / r)
        nw = nh * r
    best = None
    for ch in (math.floor(nh), math.ceil(nh)):
        for cw in (math.floor(nw), math.ceil(nw)):
            if ch < 1 or cw < 1 or ch * cw > T:
                continue
            d = abs(ch / cw - H / W)
            if best is None or d < best[0] or (d == best[0] and ch * cw > best[1] * best[2]):
                best = (d, ch, cw)
    if best is None:
        return max(1, round_half_away(nw)), max(1, round_half_away(nh))
    return best[2], best[1]


def round_half_away(v):  # C lround
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def test_glimmer_grid_rule(runner):
    rng = np.random.default_rng(11)
    cases = [(10, 10, 4096), (448, 448, 4096), (1, 1000, 4096), (1, 1000, 16), (65536, 1, 4096), (3000, 2000, 4096),
             (1792, 1792, 4096), (1793, 1792, 4096), (42, 42, 4096), (640, 480, 64), (480, 640, 1)]
    for _ in range(300):
        cases.append((int(rng.integers(1, 5000)), int(rng.integers(1, 5000)), int(rng.choice([1, 16, 256, 4096]))))
    for ps, merge in [(14, 2), (16, 2)]:
        ids = [runner.add({"op": "glimmer_grid", "width": w, "height": h, "patch_size": ps, "merge": merge,
                           "max_tokens": t}) for w, h, t in cases]
        res = runner.run()
        for (w, h, t), i in zip(cases, ids):
            assert (res[i]["nw"], res[i]["nh"]) == glimmer_grid_reference(w, h, ps, merge, t), (w, h, t, ps)
        runner.jobs.clear()


def test_glimmer_preprocess_equals_pillow_lanczos_and_normalize(runner):
    rng = np.random.default_rng(5)
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    cases = []
    for w, h, T in [(640, 480, 4096), (100, 37, 4096), (10, 10, 4096), (333, 999, 64), (1, 200, 4096)]:
        src = natural(rng, w, h)
        params = {"patch_size": 14, "merge": 2, "max_tokens": T, "mean": mean, "std": std}
        cases.append((runner.add({"op": "glimmer", "width": w, "height": h, "params": params}, src), src, T))
    res = runner.run()
    for i, src, T in cases:
        nw, nh = glimmer_grid_reference(src.shape[1], src.shape[0], 14, 2, T)
        assert (res[i]["nw"], res[i]["nh"]) == (nw, nh)
        want = normalize(pil_resize(src, nw * 28, nh * 28, Image.Resampling.LANCZOS), mean, std)
        assert res[i]["tensors"] == [[nw * 28, nh * 28]]
        np.testing.assert_array_equal(runner.output(i, np.float32).reshape(want.shape), want)


# ---------------------------------------------------------------- CLIP / SigLIP


def llava_pad_reference(u8, S, mean):
    """LLaVA-1.5: expand2square(img, tuple(int(x * 255) for x in mean)), then CLIP's bicubic resize."""
    img = Image.fromarray(u8)
    w, h = img.size
    bg = tuple(int(float(np.float32(m)) * 255) for m in mean)
    if w != h:
        side = max(w, h)
        sq = Image.new("RGB", (side, side), bg)
        sq.paste(img, ((side - w) // 2, (side - h) // 2))
        img = sq
    return pil_resize(np.asarray(img), S, S, Image.Resampling.BICUBIC)


def clip_crop_reference(u8, S):
    """HF CLIPImageProcessor: resize shortest edge to S (bicubic), center crop S x S."""
    h, w = u8.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(S * long / short)
    nw, nh = (S, new_long) if w <= h else (new_long, S)
    r = pil_resize(u8, nw, nh, Image.Resampling.BICUBIC)
    top, left = (nh - S) // 2, (nw - S) // 2
    return r[top:top + S, left:left + S]


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_clip_preprocess(runner, mode):
    rng = np.random.default_rng(8)
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    S = 336
    cases = []
    for w, h in [(640, 480), (480, 640), (336, 336), (50, 20), (1, 700), (999, 3), (3, 500)]:
        src = natural(rng, w, h)
        params = {"image_size": S, "clip_resize": mode, "mean": mean, "std": std}
        cases.append((runner.add({"op": "clip", "width": w, "height": h, "params": params}, src), src))
    res = runner.run()
    for i, src in cases:
        if mode == "pad":
            ref = llava_pad_reference(src, S, mean)
        elif mode == "crop":
            ref = clip_crop_reference(src, S)
        else:
            ref = pil_resize(src, S, S, Image.Resampling.BICUBIC)
        assert res[i]["tensors"] == [[S, S]]
        np.testing.assert_array_equal(runner.output(i, np.float32).reshape(3, S, S), normalize(ref, mean, std))


# ---------------------------------------------------------------- Idefics3


def idefics3_reference(u8, longest_edge, tile):
    """transformers' Idefics3ImageProcessor (do_resize, do_image_splitting), LANCZOS
    throughout: returns (tiles row-major, global image, rows, cols)."""
    h, w = u8.shape[:2]
    # _resize_output_size_rescale_to_max_len
    aspect = w / h
    if w >= h:
        w2 = longest_edge
        h2 = int(w2 / aspect)
        h2 += h2 % 2
    else:
        h2 = longest_edge
        w2 = int(h2 * aspect)
        w2 += w2 % 2
    h2, w2 = max(h2, 1), max(w2, 1)
    img = pil_resize(u8, w2, h2, Image.Resampling.LANCZOS) if (w2, h2) != (w, h) else u8
    # resize_for_vision_encoder
    aspect = w2 / h2
    if w2 >= h2:
        w3 = math.ceil(w2 / tile) * tile
        h3 = math.ceil(int(w3 / aspect) / tile) * tile
    else:
        h3 = math.ceil(h2 / tile) * tile
        w3 = math.ceil(int(h3 * aspect) / tile) * tile
    img = pil_resize(img, w3, h3, Image.Resampling.LANCZOS) if (w3, h3) != (w2, h2) else img
    # split_image
    if h3 > tile or w3 > tile:
        rows, cols = math.ceil(h3 / tile), math.ceil(w3 / tile)
        oh, ow = math.ceil(h3 / rows), math.ceil(w3 / cols)
        tiles = [img[r * oh:min(r * oh + oh, h3), c * ow:min(c * ow + ow, w3)] for r in range(rows)
                 for c in range(cols)]
        glob = pil_resize(img, tile, tile, Image.Resampling.LANCZOS)
        return tiles, glob, rows, cols
    return [], img, 0, 0


@pytest.mark.parametrize("longest_edge,tile", [(64, 16), (2048, 512), (1456, 364)])
def test_idefics3_preprocess(runner, longest_edge, tile):
    rng = np.random.default_rng(longest_edge)
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    sizes = [(50, 30), (17, 90), (10, 10), (64, 64), (100, 7), (1, 1), (33, 64)] if tile == 16 else \
        [(640, 480), (300, 1000), (512, 512), (1999, 301)]
    cases = []
    for w, h in sizes:
        src = natural(rng, w, h)
        params = {"image_size": tile, "longest_edge": longest_edge, "mean": mean, "std": std}
        cases.append((runner.add({"op": "idefics3", "width": w, "height": h, "params": params}, src), src))
        runner.add({"op": "idefics3_sizes", "width": w, "height": h, "longest_edge": longest_edge, "tile": tile})
    res = runner.run()
    for i, src in cases:
        tiles, glob, rows, cols = idefics3_reference(src, longest_edge, tile)
        assert (res[i]["rows"], res[i]["cols"]) == (rows, cols)
        assert res[i]["tensors"] == [[tile, tile]] * (len(tiles) + 1)
        got = runner.output(i, np.float32).reshape(len(tiles) + 1, 3, tile, tile)
        for k, t in enumerate(tiles + [glob]):
            np.testing.assert_array_equal(got[k], normalize(t, mean, std), err_msg=f"image {k} of {src.shape}")


# ---------------------------------------------------------------- float bilinear


def bilinear_reference(src, out_w, out_h):
    """Half-pixel centres, no antialias, edge clamp; src is [H, W, C] float."""
    in_h, in_w = src.shape[:2]

    def axis(n_in, n_out):
        s = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        f = np.floor(s)
        t = np.clip(s - f, 0.0, 1.0)
        i0 = np.clip(f, 0, n_in - 1).astype(int)
        i1 = np.clip(f + 1, 0, n_in - 1).astype(int)
        return i0, i1, t

    x0, x1, tx = axis(in_w, out_w)
    y0, y1, ty = axis(in_h, out_h)
    tx, ty = tx[None, :, None], ty[:, None, None]
    top = (1 - tx) * src[y0][:, x0] + tx * src[y0][:, x1]
    bot = (1 - tx) * src[y1][:, x0] + tx * src[y1][:, x1]
    return (1 - ty) * top + ty * bot


def test_bilinear_f32(runner):
    rng = np.random.default_rng(2)
    cases = []
    for (w, h, c), (ow, oh) in [((32, 32, 8), (20, 44)), ((5, 3, 1), (17, 9)), ((1, 1, 4), (3, 2)),
                                ((40, 40, 16), (40, 40)), ((7, 9, 3), (2, 1)), ((64, 1, 2), (5, 7))]:
        src = rng.normal(size=(h, w, c)).astype(np.float32)
        i = runner.add({"op": "bilinear_f32", "width": w, "height": h, "channels": c, "out_width": ow,
                        "out_height": oh}, src)
        cases.append((i, src, ow, oh))
    runner.run()
    for i, src, ow, oh in cases:
        got = runner.output(i, np.float32).reshape(oh, ow, src.shape[2])
        np.testing.assert_allclose(got, bilinear_reference(src.astype(np.float64), ow, oh), rtol=1e-5, atol=1e-6)
