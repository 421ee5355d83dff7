"""The vision towers' BF16 pass (CPUs with AVX-512 BF16 / AMX-BF16) against their F32 pass.

Where the CPU has fast BF16, muse's vision matmuls round both operands to BF16 and sum in F32
(src/backends/cpu/cpu-bf16-matmul.h); MUSE_VISION_BF16=0 keeps F32, whose agreement with the
float64 references test_vision.py checks. Here the same file and image go through both passes.

Error measure: rel = max|bf16 - f32| / max|f32| over all output values, the measure of
test_vision.py and of the benchmark's acceptance line. It bounds the worst element against the
output's scale, so one badly rounded token fails it; a norm-relative bound (||a - b|| / ||b||)
would let a few such tokens hide in the average of the others.
Bound: 1e-2. BF16 keeps 8 significant bits (2^-9 = 2e-3 relative per operand); the rounding
errors of a dot are random in sign and partly cancel, but they add up across layers (measured:
3e-3 to 8e-3 on these towers, 6e-3 on the real-width 4-layer tower of benchmarks/vision-bench.py).

Skips, saying so, where the CPU has no fast BF16 (the tool then reports "bf16": false).
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

import tiny_mmproj as tm
from test_vision import BIN, random_image, rel_err

pytestmark = pytest.mark.skipif(BIN is None, reason="vision-encode not found (set MUSE_VISION_ENCODE or MUSE_LIBRARY)")
BOUND = 1e-2

# A wider muse-glimmer tower than the tiny test variants (head dim 64 as the real one, dots of
# 256..1024 terms), 224 x 224: 256 tokens in four 8 x 8 windows, then a global layer.
WIDE = tm.MmprojSpec("muse-glimmer", n_embd=256, n_layer=4, n_head=4, n_ff=1024, patch=14, image_size=224,
                     pos_grid=8, merge=2, adapter=(512, 256), n_embd_out=128)
CASES = {
    "glimmer-wide": (WIDE, (224, 224)),
    "glimmer-gqa": (tm.VARIANTS["glimmer-gqa"], (48, 48)),
    "glimmer-fused": (tm.VARIANTS["glimmer-fused"], (48, 112)),
    "clip-llava": (tm.VARIANTS["clip-llava"], (20, 20)),
    "idefics3": (tm.VARIANTS["idefics3"], (32, 32)),
}


def encode(path, img, tmp_path, bf16):
    _, h, w = img.shape
    src, out = tmp_path / "img.f32", tmp_path / f"out-{bf16}.f32"
    img.astype(np.float32).tofile(src)
    env = dict(os.environ)
    env.pop("MUSE_VISION_BF16", None)
    if not bf16:
        env["MUSE_VISION_BF16"] = "0"
    p = subprocess.run([str(BIN), str(path), "--image", str(src), "--size", f"{w}x{h}", "--out", str(out),
                        "--threads", "2"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    emb = np.fromfile(out, np.float32).reshape(report["n_tokens"], report["n_embd_out"])
    return emb.astype(np.float64), report


@pytest.mark.parametrize("wtype", tm.WTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_bf16_pass_within_1e2_of_f32(case, wtype, tmp_path):
    spec, (w, h) = CASES[case]
    path = tm.write_mmproj(tmp_path / "m.gguf", spec, wtype, seed=5)
    img = random_image(w, h, seed=17)
    want, r32 = encode(path, img, tmp_path, bf16=False)
    assert r32["bf16"] is False, "MUSE_VISION_BF16=0 must keep the F32 pass"
    got, r16 = encode(path, img, tmp_path, bf16=True)
    if not r16["bf16"]:
        pytest.skip("this CPU has no AVX-512 BF16 / AMX-BF16 (or oneDNN may not use them): no BF16 pass to check")
    assert np.all(np.isfinite(got))
    err = rel_err(got, want)
    print(f"{case} {wtype} {w}x{h}: {got.shape[0]} tokens, BF16 vs F32 rel {err:.2e}")
    # Rounding to BF16 must show (else the F32 path ran under the BF16 flag) and stay bounded.
    assert err > 0
    assert err <= BOUND
