"""The Vulkan backend (built with -DMUSE_VULKAN=ON) against the CPU backend, through the
Python binding: the same greedy tokens for tiny models of every decoder family and weight
type, alone and as 4 batched sequences, and clear errors when it cannot be used.

The device comes from MUSE_VULKAN_DEVICE (the test suite sets "llvmpipe": Mesa's lavapipe,
which runs everywhere); without one the device cases skip with the reason.

The shaders multiply Q8_0 / Q4_0 weights with F32 activations, while the CPU backend
quantizes activations to 8-bit blocks where the CPU has integer dot products (as llama.cpp
does): tiny random models sit on near-ties, so the CPU side here runs its F32-activation path
(MUSE_INT8_MATMUL=0, read once by the library: set before its first use)."""
import os

os.environ["MUSE_INT8_MATMUL"] = "0"

import pytest  # noqa: E402

import muse  # noqa: E402
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
