"""Self-checks of the float64 decoder reference and the tiny models (no llama.cpp, no muse).

The reference is validated against llama.cpp in test_reference_vs_llamacpp.py; these tests pin
the spec rules llama.cpp cannot exercise (muse-glimmer with no SWA layer, softcap default) and the
reference's own consistency (KV-cache incremental evaluation == full evaluation).
"""
import gguf
import numpy as np
import pytest

import tiny_models as tm
from decoder_reference import ReferenceModel, log_softmax, rope, swa_layers_from


@pytest.fixture(scope="module")
def mdir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-ref")


def test_swa_pattern_rules():
    T, F = True, False
    assert swa_layers_from(4, 8) == [T, T, T, F, T, T, T, F]    # full = last of each group
    assert swa_layers_from(2, 3) == [T, F, T]
    assert swa_layers_from(1, 3) == [F, F, F]
    assert swa_layers_from(0, 3) == [T, T, T]
    assert swa_layers_from(None, 3) == [F, F, F]                # absent: all full / NoPE
    assert swa_layers_from([True, False, True], 3) == [T, F, T]
    assert swa_layers_from([0, 1], 2) == [F, T]
    with pytest.raises(ValueError):
        swa_layers_from([True], 2)


def test_rope_norm_equals_neox_on_permuted_dims():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 8))
    pos = np.arange(5) + 3
    # NORM pairs (2i, 2i+1); NEOX pairs (i, i + 4): permute NORM layout into NEOX layout
    perm = np.array([0, 2, 4, 6, 1, 3, 5, 7])
    a = rope(x, pos, 8, 10000.0, 1.0, neox=False)[..., perm]
    b = rope(x[..., perm], pos, 8, 10000.0, 1.0, neox=True)
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), np.linalg.norm(x, axis=-1), atol=1e-12)
    assert np.allclose(rope(x, np.zeros(5, int), 8, 1e4, 1.0, False), x)


@pytest.mark.parametrize("variant", list(tm.VARIANTS))
def test_incremental_equals_full(mdir, variant):
    m = ReferenceModel(tm.tiny_model(mdir, variant, "Q4_0"))
    toks = tm.prompts(variant, 1, length=(14, 14))[0] + [5, 9, 11]
    full = m.logits(toks)
    assert full.shape == (len(toks), tm.vocab_size(variant))
    st = m.state()
    parts = [st.eval(toks[:4]), st.eval(toks[4:9])] + [st.eval([t]) for t in toks[9:]]
    np.testing.assert_allclose(np.concatenate(parts), full, rtol=0, atol=1e-10)
    lp = m.logprobs(toks)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, atol=1e-12)


def test_greedy_api(mdir):
    m = ReferenceModel(tm.tiny_model(mdir, "qwen3", "F32"))
    p = tm.prompts("qwen3", 1)[0]
    r = m.greedy(p, 6, top=4)
    assert isinstance(r, list) and len(r) == 6 and all(isinstance(t, int) for t in r)
    assert len(r.top) == 6 and all(len(s) == 4 for s in r.top) and len(r.gaps) == 6
    lp = m.logprobs(p + list(r))
    for s, tok in enumerate(r):
        row = lp[len(p) - 1 + s]
        assert tok == int(np.argmax(row))
        assert r.top[s][0] == (tok, pytest.approx(row[tok], abs=1e-12))
        assert r.gaps[s] == pytest.approx(np.sort(row)[-1] - np.sort(row)[-2], abs=1e-12)


def test_muse_glimmer_pattern_absent_is_all_full(mdir):
    """§1.4 rule 3: no pattern key == every layer full/NoPE (same as u32 array [0, 0] or p = 1)."""
    a = ReferenceModel(tm.tiny_model(mdir, "muse-glimmer-nopat", "F32"))
    assert not a.has_kv("muse-glimmer.attention.sliding_window_pattern")
    assert a.swa_layers() == [False, False]
    toks = tm.prompts("muse-glimmer-nopat", 1, length=(20, 20))[0]
    ref = a.logits(toks)
    for i, pat in enumerate([(0, 0), 1, [False, False]]):
        p = tm.write_tiny_model(mdir / f"pat{i}.gguf", "muse-glimmer-nopat", "F32", swa_pattern=pat)
        np.testing.assert_array_equal(ReferenceModel(p).logits(toks), ref)
    # ... and differs from a model with SWA layers (window 8 < 21 tokens, RoPE on)
    p = tm.write_tiny_model(mdir / "pat-swa.gguf", "muse-glimmer-nopat", "F32", swa_pattern=0)
    assert np.abs(ReferenceModel(p).logits(toks) - ref).max() > 1e-3


def test_muse_glimmer_softcap_default_30(mdir):
    """§1.1: final_logit_softcapping absent -> 30.0 applies; 0 -> off."""
    a = ReferenceModel(tm.tiny_model(mdir, "muse-glimmer-u32", "F32"))
    assert not a.has_kv("muse-glimmer.final_logit_softcapping") and a.softcap == 30.0
    b = ReferenceModel(tm.write_tiny_model(mdir / "cap30.gguf", "muse-glimmer-u32", "F32", softcap=30.0))
    c = ReferenceModel(tm.write_tiny_model(mdir / "cap0.gguf", "muse-glimmer-u32", "F32", softcap=0.0))
    toks = tm.prompts("muse-glimmer-u32", 1)[0]
    np.testing.assert_array_equal(a.logits(toks), b.logits(toks))
    la, lc = a.logits(toks), c.logits(toks)
    np.testing.assert_allclose(la, 30.0 * np.tanh(lc / 30.0), atol=1e-9)
    assert np.abs(la).max() < 30.0 and np.abs(la - lc).max() > 1e-3


def test_tiny_model_layout(mdir):
    """llama.cpp naming / metadata essentials and the weight types actually written."""
    for variant, spec in tm.VARIANTS.items():
        for wt in tm.WTYPES:
            r = gguf.GGUFReader(str(tm.tiny_model(mdir, variant, wt)))
            names = {t.name: t for t in r.tensors}
            a = spec.arch
            for k in ("context_length", "embedding_length", "block_count", "feed_forward_length",
                      "attention.head_count", "attention.head_count_kv",
                      "attention.layer_norm_rms_epsilon", "rope.freq_base"):
                assert f"{a}.{k}" in r.fields, (variant, k)
            assert ("output.weight" in names) == (not spec.tied)
            assert ("blk.0.attn_q.bias" in names) == (a == "qwen2")
            assert ("blk.0.attn_q_norm.weight" in names) == (a in ("qwen3", "muse-glimmer"))
            assert ("blk.0.attn_gate.weight" in names) == (a == "muse-glimmer")
            for name, t in names.items():
                want = gguf.GGMLQuantizationType.F32 if len(t.shape) == 1 else \
                    gguf.GGMLQuantizationType[wt]
                assert t.tensor_type == want, (variant, wt, name)
            if a == "muse-glimmer":
                assert f"{a}.logit_scale" in r.fields and f"{a}.attention.sliding_window" in r.fields


def test_tiny_models_are_deterministic_and_sharp(mdir, tmp_path):
    p1 = tm.write_tiny_model(tmp_path / "a.gguf", "llama", "Q8_0", seed=3)
    p2 = tm.write_tiny_model(tmp_path / "b.gguf", "llama", "Q8_0", seed=3)
    p3 = tm.write_tiny_model(tmp_path / "c.gguf", "llama", "Q8_0", seed=4)
    assert p1.read_bytes() == p2.read_bytes() != p3.read_bytes()
    for variant in tm.VARIANTS:
        m = ReferenceModel(tm.tiny_model(mdir, variant, "F32"))
        gaps = []
        for p in tm.prompts(variant, 3):
            gaps += m.greedy(p, 24).gaps
        assert np.mean(np.array(gaps) < 0.02) < 0.06, variant
