"""muse's vision encoders against the float64 numpy references of vision_reference.py, on tiny
random mmproj GGUFs written by tiny_mmproj.py, through the vision-encode tool.

Error measure: rel = max|muse - ref| / max|ref| over all output values.
* F32 weights: rel <= 1e-4 (muse computes in float32; the references in float64).
* F16 weights: the reference reads the same F16 values back from the file and muse
  dequantizes them exactly, so the same 1e-4 holds; in addition the F16 file's output must stay
  within 2e-2 of the F32 file's (half precision keeps 11 significant bits, 2^-11 = 4.9e-4 per
  weight; a few layers of random weights amplify that to ~1e-3).
* Cross-check (when tools/nano/.venv exists): nano's independent PyTorch Muse Glimmer tower
  (tools/nano/model.py, float32) on the same file agrees with muse within 1e-4.

These hold muse's F32 pass, so the tool runs with MUSE_VISION_BF16=0: where the CPU has fast
BF16, muse's vision matmuls otherwise round their operands to BF16, a different contract that
test_vision_bf16.py checks against this F32 pass.

Environment: MUSE_VISION_ENCODE (the tool), else found in MUSE_LIBRARY's build tree.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

import tiny_mmproj as tm
import vision_reference as ref

ROOT = Path(__file__).resolve().parents[2]
NANO = ROOT / "tools" / "nano"
NANO_PY = NANO / ".venv" / "bin" / "python"
TOL = 1e-4


def vision_encode_binary():
    env = os.environ.get("MUSE_VISION_ENCODE")
    if env:
        return Path(env)
    lib = os.environ.get("MUSE_LIBRARY")
    if lib:
        for parent in Path(lib).resolve().parents:
            cand = parent / "tests" / "vision-encode"
            if cand.exists():
                return cand
    return None


BIN = vision_encode_binary()
pytestmark = pytest.mark.skipif(BIN is None, reason="vision-encode not found (set MUSE_VISION_ENCODE or MUSE_LIBRARY)")


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def random_image(w, h, seed):
    return np.random.default_rng(seed).standard_normal((3, h, w)).astype(np.float32)


def run_tool(mmproj, img, tmp_path, *extra):
    """Runs vision-encode; returns (embeddings (n_tokens, n_embd_out), its JSON report)."""
    _, h, w = img.shape
    src, out = tmp_path / "img.f32", tmp_path / "out.f32"
    img.astype(np.float32).tofile(src)
    p = subprocess.run([str(BIN), str(mmproj), "--image", str(src), "--size", f"{w}x{h}", "--out", str(out),
                        "--threads", "2", *extra], capture_output=True, text=True,
                       env=dict(os.environ, MUSE_VISION_BF16="0"))
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    emb = np.fromfile(out, np.float32).reshape(report["n_tokens"], report["n_embd_out"])
    return emb, report


def run_tool_error(mmproj, w, h, tmp_path):
    src, out = tmp_path / "img.f32", tmp_path / "out.f32"
    np.zeros(3 * w * h, np.float32).tofile(src)
    p = subprocess.run([str(BIN), str(mmproj), "--image", str(src), "--size", f"{w}x{h}", "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 1, (p.stdout, p.stderr)
    return p.stderr


# Input sizes per variant: square, wide, tall, odd (grids that are not multiples of the
# window side G, merged grids of odd size). muse-glimmer takes multiples of patch*merge; the
# mlp / idefics3 encoders take exactly image_size x image_size (their position table is fixed).
SIZES = {
    "glimmer-gqa": {"square": (48, 48), "wide": (80, 24), "tall": (24, 64), "odd": (40, 56)},
    "glimmer-plain": {"square": (24, 24), "wide": (72, 36), "tall": (36, 84), "odd": (60, 36)},
    "glimmer-fused": {"square": (80, 80), "wide": (96, 32), "tall": (16, 48), "odd": (48, 112)},
}
FIXED = ["clip-llava", "clip-stack", "siglip-mlp", "idefics3", "idefics3-pad", "idefics3-s3"]

CASES = [(v, shape) for v in SIZES for shape in SIZES[v]] + [(v, "square") for v in FIXED]


def size_of(variant, shape):
    if variant in SIZES:
        return SIZES[variant][shape]
    s = tm.VARIANTS[variant].image_size
    return (s, s)


@pytest.mark.parametrize("variant,shape", CASES, ids=[f"{v}-{s}" for v, s in CASES])
def test_matches_reference_f32(variant, shape, tmp_path):
    spec = tm.VARIANTS[variant]
    path = tm.write_mmproj(tmp_path / "m.gguf", spec, "F32", seed=1)
    w, h = size_of(variant, shape)
    img = random_image(w, h, seed=zlib.crc32(f"{variant}/{shape}".encode()))
    emb, report = run_tool(path, img, tmp_path)
    want = ref.encode(path, img)
    assert emb.shape == want.shape
    err = rel_err(emb, want)
    print(f"{variant} {shape} {w}x{h}: {emb.shape[0]} tokens, rel err {err:.2e}")
    assert err <= TOL


F16_CASES = [(v, "odd" if v in SIZES else "square") for v in tm.VARIANTS]


@pytest.mark.parametrize("variant,shape", F16_CASES, ids=[f"{v}-{s}" for v, s in F16_CASES])
def test_f16_weights(variant, shape, tmp_path):
    spec = tm.VARIANTS[variant]
    w, h = size_of(variant, shape)
    img = random_image(w, h, seed=7)
    p16 = tm.write_mmproj(tmp_path / "m16.gguf", spec, "F16", seed=2)
    emb16, _ = run_tool(p16, img, tmp_path)
    err = rel_err(emb16, ref.encode(p16, img))
    p32 = tm.write_mmproj(tmp_path / "m32.gguf", spec, "F32", seed=2)
    drift = rel_err(emb16, ref.encode(p32, img))
    print(f"{variant} F16: rel err {err:.2e}; vs F32 weights {drift:.2e}")
    assert err <= TOL
    assert drift <= 2e-2


def test_token_counts_and_info(tmp_path):
    path = tm.write_mmproj(tmp_path / "m.gguf", tm.VARIANTS["glimmer-gqa"], "F32")
    info = json.loads(subprocess.run([str(BIN), str(path), "--info"], capture_output=True, text=True,
                                     check=True).stdout)
    spec = tm.VARIANTS["glimmer-gqa"]
    assert info["projector"] == "muse-glimmer" and info["n_head_kv"] == 2 and info["head_dim"] == 12
    assert info["pos_grid"] == spec.pos_grid and info["n_merge"] == 2 and info["ffn_act"] == "gelu_erf"
    img = random_image(40, 56, 3)
    emb, report = run_tool(path, img, tmp_path)
    assert report["n_tokens"] == (40 // 8) * (56 // 8)   # §2.3: (W / (ps·merge)) · (H / (ps·merge))
    assert emb.shape == (35, spec.n_embd_out)


@pytest.mark.parametrize("variant,w,h,needle", [
    ("glimmer-gqa", 44, 48, "multiple of 8"),
    ("clip-llava", 24, 20, "takes 20x20"),
    ("idefics3", 32, 64, "takes 32x32"),
])
def test_rejects_sizes_the_encoder_cannot_take(variant, w, h, needle, tmp_path):
    path = tm.write_mmproj(tmp_path / "m.gguf", tm.VARIANTS[variant], "F32")
    assert needle in run_tool_error(path, w, h, tmp_path)


def test_unsupported_projector_is_named(tmp_path):
    path = tm.write_mmproj(tmp_path / "m.gguf", tm.VARIANTS["idefics3"], "F32",
                           skip=("clip.projector_type",),
                           extra_kv=lambda w: w.add_string("clip.projector_type", "qwen2vl_merger"))
    assert "'qwen2vl_merger' is not supported" in run_tool_error(path, 32, 32, tmp_path)


NANO_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    sys.path.insert(0, sys.argv[1])
    from export import load_vision_from_mmproj
    mmproj, img_path, w, h, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    m = load_vision_from_mmproj(mmproj, threads=1)
    img = np.fromfile(img_path, np.float32).reshape(1, 3, h, w)
    with torch.no_grad():
        z = m(torch.from_numpy(img))[0]
    z.numpy().astype(np.float32).tofile(out)
""")


@pytest.mark.skipif(not (NANO_PY.exists() and (NANO / "model.py").exists()),
                    reason="tools/nano/.venv (PyTorch) not set up")
@pytest.mark.parametrize("shape", ["square", "wide", "odd"])
def test_matches_nano_pytorch_tower(shape, tmp_path):
    spec = tm.VARIANTS["glimmer-plain"]
    path = tm.write_mmproj(tmp_path / "m.gguf", spec, "F32", seed=3)
    w, h = SIZES["glimmer-plain"][shape]
    img = random_image(w, h, seed=11)
    emb, _ = run_tool(path, img, tmp_path)
    script = tmp_path / "nano_encode.py"
    script.write_text(NANO_SCRIPT)
    out = tmp_path / "nano.f32"
    # PyTorch must not inherit a sanitizer build's preloaded ASan runtime.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    p = subprocess.run([str(NANO_PY), str(script), str(NANO), str(path), str(tmp_path / "img.f32"), str(w), str(h),
                        str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    theirs = np.fromfile(out, np.float32).reshape(emb.shape)
    err = rel_err(emb, theirs.astype(np.float64))
    print(f"nano {shape} {w}x{h}: rel err {err:.2e}")
    assert err <= TOL
