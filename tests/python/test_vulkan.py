"""The Vulkan backend (built with -DMUSE_VULKAN=ON) against the CPU backend, through the
Python binding: the same greedy tokens for tiny models of every decoder family and weight
type, alone and as 4 batched sequences; the vision towers' embeddings; the pipeline cache file
kept across processes; and clear errors when it cannot be used.

The device comes from MUSE_VULKAN_DEVICE (the test suite sets "llvmpipe": Mesa's lavapipe,
which runs everywhere); without one the device cases skip with the reason.

The shaders multiply Q8_0 / Q4_0 weights with F32 activations, while the CPU backend
quantizes activations to 8-bit blocks where the CPU has integer dot products (as llama.cpp
does): tiny random models sit on near-ties, so the CPU side here runs its F32-activation path
(MUSE_INT8_MATMUL=0, read once by the library: set before its first use), and its vision
towers their F32 pass (MUSE_VISION_BF16=0).

K-quant models need rows of 256 (a super-block): widened twins of the tiny models (n_embd 256)
with tiny_models.py's own Q4_K / Q6_K quantizers (gguf-py has none)."""
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["MUSE_INT8_MATMUL"] = "0"
# The vision towers' CPU pass runs in BF16 where the CPU has it (5e-3 of F32); the shaders
# compute in F32, so the 1e-3 comparison is against the CPU's F32 pass.
os.environ["MUSE_VISION_BF16"] = "0"

import pytest  # noqa: E402

import numpy as np  # noqa: E402

import muse  # noqa: E402
import tiny_mmproj  # noqa: E402
import tiny_models as tm  # noqa: E402

BUILT = "vulkan" in muse.system_info()["backends"]


def vulkan_model(path):
    try:
        return muse.Model(str(path), backend="vulkan", threads=2)
    except muse.Error as e:
        pytest.skip(f"no usable Vulkan device: {e}")


@pytest.mark.skipif(BUILT, reason="this library has the Vulkan backend")
def test_a_build_without_vulkan_says_so(tmp_path):
    with pytest.raises(muse.Error, match="built without the Vulkan backend"):
        muse.Model(str(tm.tiny_model(tmp_path, "llama", "F32")), backend="vulkan")


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
def test_no_matching_device_is_a_clear_error_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_VULKAN_DEVICE", "no-such-device-anywhere")
    with pytest.raises(muse.Error, match="no device matches 'no-such-device-anywhere'"):
        muse.Model(str(tm.tiny_model(tmp_path, "llama", "F32")), backend="vulkan")


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
@pytest.mark.parametrize("variant", ["llama", "qwen2", "qwen3", "muse-glimmer"])
@pytest.mark.parametrize("wtype", ["F32", "F16", "Q8_0", "Q4_0"])
def test_same_greedy_tokens_as_the_cpu(tmp_path, variant, wtype):
    path = tm.tiny_model(tmp_path, variant, wtype)
    gpu = vulkan_model(path)
    cpu = muse.Model(str(path), backend="cpu", threads=2)
    for prompt in tm.prompts(variant, n=2):
        want = cpu.session(n_ctx=128, kv_type="f32").generate_tokens(prompt, 16)
        got = gpu.session(n_ctx=128, kv_type="f32").generate_tokens(prompt, 16)
        assert got == want, (variant, wtype, prompt)


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
@pytest.mark.parametrize("variant,wtype", [("llama", "Q4_K"), ("qwen2", "Q6_K")])
def test_k_quant_models_same_greedy_tokens_as_the_cpu(tmp_path, capfd, variant, wtype):
    path = tm.write_tiny_model(tmp_path / f"{variant}-{wtype}.gguf", variant, wtype, 0, n_embd=256, head_dim=64,
                               n_ff=512)
    gpu = vulkan_model(path)
    cpu = muse.Model(str(path), backend="cpu", threads=2)
    capfd.readouterr()
    for prompt in tm.prompts(variant, n=2):
        want = cpu.session(n_ctx=128, kv_type="f32").generate_tokens(prompt, 16)
        got = gpu.session(n_ctx=128, kv_type="f32").generate_tokens(prompt, 16)
        assert got == want, (variant, wtype, prompt)
    # The quantized token embedding's get_rows included: no op of the pass on the CPU.
    assert "runs on the CPU" not in capfd.readouterr().err


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
def test_four_batched_sequences_same_tokens_as_the_cpu(tmp_path):
    path = tm.tiny_model(tmp_path, "muse-glimmer", "Q8_0")
    gpu = vulkan_model(path)
    cpu = muse.Model(str(path), backend="cpu", threads=2)
    prompts = tm.prompts("muse-glimmer", n=4)
    want = cpu.session(n_ctx=256, n_seq_max=4, kv_type="f32").generate_many(prompts, 12)
    got = gpu.session(n_ctx=256, n_seq_max=4, kv_type="f32").generate_many(prompts, 12)
    assert got == want


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
@pytest.mark.parametrize("variant", ["qwen2", "muse-glimmer"])
def test_a_forward_pass_runs_on_the_device_alone(tmp_path, capfd, variant):
    # F16 weights: every op of these decoders has a shader, so no op falls back to the CPU
    # (each fallback prints a notice on stderr the first time) and a pass is one submission.
    path = tm.tiny_model(tmp_path, variant, "F16")
    gpu = vulkan_model(path)
    capfd.readouterr()
    gpu.session(n_ctx=128, kv_type="f16").generate_tokens(tm.prompts(variant, n=1)[0], 8)
    assert "runs on the CPU" not in capfd.readouterr().err


# ---- vision towers

def vision_encode_binary():
    lib = os.environ.get("MUSE_LIBRARY")
    for parent in (Path(lib).resolve().parents if lib else []):
        if (parent / "tests" / "vision-encode").exists():
            return parent / "tests" / "vision-encode"
    return None


def encode(binary, mmproj, img, tmp_path, backend):
    """Embeddings (n_tokens, n_embd_out) from vision-encode, and its stderr."""
    _, h, w = img.shape
    src, out = tmp_path / "img.f32", tmp_path / f"out-{backend}.f32"
    img.astype(np.float32).tofile(src)
    p = subprocess.run([str(binary), str(mmproj), "--image", str(src), "--size", f"{w}x{h}", "--out", str(out),
                        "--threads", "2", "--backend", backend], capture_output=True, text=True)
    no_device = ("no device matches", "no Vulkan driver", "no GPU device")
    if p.returncode != 0 and backend == "vulkan" and any(s in p.stderr for s in no_device):
        pytest.skip(f"no usable Vulkan device: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    return np.fromfile(out, np.float32).reshape(report["n_tokens"], report["n_embd_out"]), p.stderr


# One tower per projector family, at sizes that exercise each one's ops: muse-glimmer (windowed
# and global attention with GQA, rope_2d, the merge), CLIP with a class token and quick GELU,
# SigLIP with SiLU, Idefics3 with tanh GELU and the pixel-shuffle merge.
VISION = {"glimmer-gqa": (48, 40), "clip-llava": None, "siglip-mlp": None, "idefics3": None}


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
@pytest.mark.parametrize("variant", list(VISION))
def test_vision_embeddings_agree_with_the_cpu(tmp_path, variant):
    binary = vision_encode_binary()
    if binary is None:
        pytest.skip("vision-encode not found next to MUSE_LIBRARY")
    spec = tiny_mmproj.VARIANTS[variant]
    w, h = VISION[variant] or (spec.image_size, spec.image_size)
    path = tiny_mmproj.write_mmproj(tmp_path / "m.gguf", spec, "F16", seed=5)
    img = np.random.default_rng(11).standard_normal((3, h, w)).astype(np.float32)
    cpu, _ = encode(binary, path, img, tmp_path, "cpu")
    gpu, notices = encode(binary, path, img, tmp_path, "vulkan")
    # The metric of the issue: max |vulkan - cpu| over max |cpu|, over every embedding value.
    # Both run F32 activations over the same F16 weights; they differ by summation order
    # (tree sums in the shaders, SGEMM blocking on the CPU): 3e-7 to 6e-7 on lavapipe.
    rel = float(np.max(np.abs(gpu.astype(np.float64) - cpu)) / np.max(np.abs(cpu)))
    assert rel <= 1e-3, (variant, rel)
    assert "runs on the CPU" not in notices, notices  # every op of the tower has a shader


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
def test_an_image_prompt_through_the_api_same_as_the_cpu(tmp_path, capfd):
    # The public path: a text model with its mmproj on one Vulkan backend (the tower and the
    # decoder share the device), an image file decoded and preprocessed by muse.
    PIL = pytest.importorskip("PIL.Image")
    tool = next((p / "tests" / "make-chat-model" for p in Path(os.environ.get("MUSE_LIBRARY", "/")).resolve().parents
                 if (p / "tests" / "make-chat-model").exists()), None)
    if tool is None:
        pytest.skip("make-chat-model not found next to MUSE_LIBRARY")
    text, mmproj, png = tmp_path / "text.gguf", tmp_path / "mmproj.gguf", tmp_path / "img.png"
    subprocess.run([str(tool), str(text), "atem"], check=True)
    tiny_mmproj.write_mmproj(mmproj, tiny_mmproj.with_changes("glimmer-gqa", n_embd_out=64, weight_scale=3.0), "F16",
                             seed=5)
    PIL.fromarray(np.random.default_rng(3).integers(0, 256, (41, 37, 3), dtype=np.uint8)).save(png)
    prompt = "<__media__><|start|>user<|message|>How many?<|eot|><|start|>assistant"
    try:
        gpu = muse.Model(str(text), mmproj=str(mmproj), backend="vulkan", threads=2)
    except muse.Error as e:
        pytest.skip(f"no usable Vulkan device: {e}")
    cpu = muse.Model(str(text), mmproj=str(mmproj), backend="cpu", threads=2)
    img = muse.Image.open(str(png))
    capfd.readouterr()
    got_emb = np.asarray(gpu.encode_image(img), np.float64)
    got = gpu.session(n_ctx=512, kv_type="f32").generate_tokens(prompt, max_tokens=12, images=[img])
    assert "runs on the CPU" not in capfd.readouterr().err
    want_emb = np.asarray(cpu.encode_image(img), np.float64)
    want = cpu.session(n_ctx=512, kv_type="f32").generate_tokens(prompt, max_tokens=12, images=[img])
    # As above: max |vulkan - cpu| / max |cpu| (8e-6 here: weight_scale 3 makes larger activations).
    assert float(np.max(np.abs(got_emb - want_emb)) / np.max(np.abs(want_emb))) <= 1e-3
    assert got == want


# ---- the pipeline cache file

GENERATE = """
import sys
sys.path.insert(0, {bindings!r})
import muse
m = muse.Model({model!r}, backend="vulkan", threads=2)
print(m.session(n_ctx=64, kv_type="f32").generate_tokens({prompt!r}, 6))
"""


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
def test_the_pipeline_cache_is_kept_across_processes(tmp_path):
    vulkan_model(tm.tiny_model(tmp_path, "qwen2", "F16"))  # skips without a device
    model = str(tm.tiny_model(tmp_path, "qwen2", "F16"))
    cache = tmp_path / "cache"
    env = dict(os.environ, MUSE_VULKAN_CACHE_DIR=str(cache), MUSE_VULKAN_DEBUG="1")
    script = GENERATE.format(bindings=str(Path(muse.__file__).resolve().parents[1]), model=model,
                             prompt=tm.prompts("qwen2", n=1)[0])

    def run():
        p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr

    tokens, err = run()  # a fresh directory: written
    files = list(cache.glob("vulkan-*.cache"))
    assert len(files) == 1 and "pipeline cache: wrote" in err, err
    blob = files[0].read_bytes()
    assert len(blob) >= 32

    again, err = run()  # a fresh process finds it
    assert again == tokens
    assert f"pipeline cache: loaded {len(blob)} bytes" in err, err

    # Garbage of the same size, a truncated header, an empty file: ignored, replaced, same tokens.
    for bad in (bytes(len(blob)), blob[:20], b""):
        files[0].write_bytes(bad)
        out, err = run()
        assert out == tokens
        assert "pipeline cache: ignoring" in err, err
        assert files[0].read_bytes()[:32] == blob[:32]  # rewritten with this driver's header

    # A cache directory that cannot be created (a file stands in its way): still runs.
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    env["MUSE_VULKAN_CACHE_DIR"] = str(blocker / "cache")
    out, err = run()
    assert out == tokens
    assert "pipeline cache: could not write" in err, err


AUTO = """
import sys
sys.path.insert(0, {bindings!r})
import muse
m = muse.Model({model!r}, threads=2)
print(m.device)
print(m.session(n_ctx=64, kv_type="f32").generate_tokens({prompt!r}, 4))
"""


def run_auto(model, env_updates):
    """model.device and the tokens of a fresh process loading with backend="auto"."""
    env = {k: v for k, v in os.environ.items() if k != "MUSE_BACKEND"}
    env.update(env_updates)
    script = AUTO.format(bindings=str(Path(muse.__file__).resolve().parents[1]), model=model,
                         prompt=tm.prompts("qwen2", n=1)[0])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)


def test_auto_picks_the_cpu_without_a_gpu_and_says_so(tmp_path):
    # backend="auto" takes Vulkan only for a discrete or integrated GPU: with none (lavapipe is
    # a CPU-type device, whatever MUSE_VULKAN_DEVICE names) a Vulkan build runs on the CPU and
    # says why once; a build without Vulkan says so where MUSE_VULKAN_DEVICE asks for a device.
    model = str(tm.tiny_model(tmp_path, "qwen2", "F16"))
    p = run_auto(model, {"MUSE_VULKAN_DEVICE": "llvmpipe"})
    assert p.returncode == 0, p.stderr
    device, tokens = p.stdout.splitlines()[:2]
    if BUILT and device.startswith("vulkan:"):
        pytest.skip(f"this machine has a GPU: auto chose {device}")
    assert device.startswith("cpu: "), device
    notice = "no Vulkan GPU here" if BUILT else "built without Vulkan"
    assert p.stderr.count(notice) == 1, p.stderr
    cpu = muse.Model(model, backend="cpu", threads=2)
    assert tokens == str(cpu.session(n_ctx=64, kv_type="f32").generate_tokens(tm.prompts("qwen2", n=1)[0], 4))
    # MUSE_BACKEND overrides auto: "cpu" quietly, nonsense with a clear error.
    p = run_auto(model, {"MUSE_BACKEND": "cpu", "MUSE_VULKAN_DEVICE": "llvmpipe"})
    assert p.returncode == 0 and p.stdout.startswith("cpu: ") and notice not in p.stderr, p.stderr
    p = run_auto(model, {"MUSE_BACKEND": "gpu-please"})
    assert p.returncode != 0 and "MUSE_BACKEND must be cpu, vulkan or auto" in p.stderr, p.stderr


@pytest.mark.skipif(not BUILT, reason="built without the Vulkan backend")
def test_muse_backend_vulkan_makes_auto_use_the_named_device(tmp_path):
    model = str(tm.tiny_model(tmp_path, "qwen2", "F16"))
    vulkan_model(model)  # skips without a device
    p = run_auto(model, {"MUSE_BACKEND": "vulkan"})
    assert p.returncode == 0, p.stderr
    device, tokens = p.stdout.splitlines()[:2]
    assert device.startswith("vulkan: "), device
    gpu = vulkan_model(model)
    assert gpu.device == device
    assert tokens == str(gpu.session(n_ctx=64, kv_type="f32").generate_tokens(tm.prompts("qwen2", n=1)[0], 4))
