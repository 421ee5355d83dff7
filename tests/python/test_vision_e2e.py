"""End to end: a tiny muse-glimmer text model + a tiny muse-glimmer mmproj + an image file,
through muse's public API (image decode, §2.3 preprocessing, the vision tower, §2.5 placement,
the decoder), against a reference pipeline assembled from independent parts:

* preprocessing written here from spec §2.3 (grid rule; Pillow's LANCZOS resize; normalization),
* the float64 numpy vision tower of vision_reference.py,
* the float64 numpy decoder of decoder_reference.py, fed the same prompt with the image rows
  as input embeddings between <|image_start|> and <|image_end|>.

Checks: the number of image rows equals the grid rule's nw * nh; the evaluated prompt is
[BOS] <|image_start|> rows <|image_end|> text (its length says so); the projected embeddings
match the reference within 1e-4 relative (max|a-b| / max|b|); greedy continuations are
identical up to the first reference near-tie (top-2 log-probability gap < 0.02, as in the
decoder parity tests); and chat turns place images the same way.
"""
from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import muse
import tiny_mmproj as tm
import vision_reference as vref
from decoder_reference import ReferenceModel, log_softmax

PIL = pytest.importorskip("PIL.Image")

# The reference tower is float64 and the bounds below are F32's: the library's vision matmuls
# must not round to BF16 (they would where the CPU has it; test_vision_bf16.py checks that pass).
# Read once per process when the first image is encoded, which collection precedes.
os.environ["MUSE_VISION_BF16"] = "0"

N_GEN = 12
TIE_GAP = 0.02


def _tool(name):
    lib = os.environ.get("MUSE_LIBRARY")
    if lib:
        for parent in Path(lib).resolve().parents:
            cand = parent / "tests" / name
            if cand.exists():
                return cand
    pytest.skip(f"{name} not found next to MUSE_LIBRARY")


def grid_rule(W, H, P, T):
    """Spec §2.3 steps 1-4."""
    nh, nw = H / P, W / P
    r = nw / nh if nh else 1.0
    if nh * nw > T:
        nh = math.sqrt(T / r)
        nw = nh * r
    best, best_d = None, None
    for h_ in (math.floor(nh), math.ceil(nh)):
        for w_ in (math.floor(nw), math.ceil(nw)):
            if h_ < 1 or w_ < 1 or h_ * w_ > T:
                continue
            d = abs(h_ / w_ - H / W)
            if best is None or d < best_d or (d == best_d and h_ * w_ > best[0] * best[1]):
                best, best_d = (h_, w_), d
    if best is None:
        best = (max(1, round(nh)), max(1, round(nw)))
    return best[1], best[0]  # nw, nh


def reference_embeddings(mmproj, pil_image, meta):
    ps = int(meta["clip.vision.patch_size"])
    f = int(meta.get("clip.vision.spatial_merge_size", 2))
    P = ps * f
    nw, nh = grid_rule(pil_image.width, pil_image.height, P, 4096)
    resized = pil_image.resize((nw * P, nh * P), PIL.LANCZOS) if (nw * P, nh * P) != pil_image.size else pil_image
    u8 = np.asarray(resized, dtype=np.uint8).astype(np.float32)
    mean = np.asarray(meta["clip.vision.image_mean"], np.float32)[:3]
    std = np.asarray(meta["clip.vision.image_std"], np.float32)[:3]
    planar = ((u8 / np.float32(255.0) - mean) / std).transpose(2, 0, 1)  # [3, H, W]
    return vref.encode(mmproj, planar.astype(np.float64)), (nw, nh)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    text = d / "glimmer-text.gguf"
    subprocess.run([str(_tool("make-chat-model")), str(text), "atem"], check=True)
    mmproj = d / "glimmer-mmproj.gguf"
    tm.write_mmproj(mmproj, tm.with_changes("glimmer-gqa", n_embd_out=64, weight_scale=3.0), "F32", seed=5)
    meta, _ = vref.load_mmproj(mmproj)
    return text, mmproj, meta, d


SIZES = {"square": (24, 24), "wide": (53, 17), "tall": (19, 41), "odd": (37, 23)}


@pytest.mark.parametrize("shape", sorted(SIZES))
def test_image_prompt_matches_reference_pipeline(setup, shape):
    text, mmproj, meta, d = setup
    w, h = SIZES[shape]
    rng = np.random.default_rng(sum(map(ord, shape)))
    pil = PIL.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    png = d / f"{shape}.png"
    pil.save(png)

    want_emb, (nw, nh) = reference_embeddings(mmproj, pil, meta)
    m = muse.Model(str(text), mmproj=str(mmproj))
    img = muse.Image.open(str(png))
    assert m.image_tokens(img) == nw * nh
    emb = np.asarray(m.encode_image(img), dtype=np.float64)
    assert emb.shape == (nw * nh, 64)
    rel = float(np.max(np.abs(emb - want_emb)) / np.max(np.abs(want_emb)))
    assert rel <= 1e-4, f"embeddings differ: rel {rel:.3g}"

    question = "<|start|>user<|message|>How many?<|eot|><|start|>assistant"
    prompt = "<__media__>" + question
    s = m.session(n_ctx=512)
    got = s.generate_tokens(prompt, max_tokens=N_GEN, images=[img])

    bos = m.tokenize("", add_special=True)
    start = m.tokenize("<|image_start|>", parse_special=True)
    end = m.tokenize("<|image_end|>", parse_special=True)
    assert len(start) == 1 and len(end) == 1, "the wrapper strings must be single tokens"
    rest = m.tokenize(question, parse_special=True)
    inputs = list(bos) + start + [row for row in want_emb] + end + rest
    # The evaluated prompt: BOS, wrapper, nw*nh rows, wrapper, text (+ generated - 1).
    assert s.seq_length() == len(inputs) + len(got) - 1

    r = ReferenceModel(text)
    want = r.greedy(inputs, N_GEN, top=2)
    compared = 0
    for step, tok in enumerate(want):
        if want.gaps[step] < TIE_GAP:
            break
        assert step < len(got), f"muse stopped early: {got} vs {list(want)}"
        assert got[step] == tok, f"step {step}: muse {got[step]} ref {tok}\nmuse {got}\nref  {list(want)}"
        compared += 1
    assert compared >= 1, "a near-tie at the first step: the greedy comparison would prove nothing"
    # Near-ties cut the greedy comparison short; the log-probabilities after the prompt are
    # compared whatever they are (F32 KV cache: float32 arithmetic vs float64, as in
    # test_decoder_parity's 1e-4 bound, with margin for the vision tower in front).
    s32 = m.session(n_ctx=512, kv_type="f32")
    got_lp = log_softmax(np.asarray(s32.eval_prompt(prompt, [img]), dtype=np.float64))
    want_lp = log_softmax(r.logits(inputs)[-1])
    assert float(np.max(np.abs(got_lp - want_lp))) <= 1e-3


def test_image_rows_at_any_batch_boundary(setup):
    """Prompt chunks of any size: a chunk may begin (or end) inside the image rows, or with the
    first of them (BOS and <|image_start|> make n_batch 2 start the second chunk on it)."""
    text, mmproj, meta, d = setup
    pil = PIL.fromarray(np.random.default_rng(4).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    png = d / "chunks.png"
    pil.save(png)
    m = muse.Model(str(text), mmproj=str(mmproj))
    img = muse.Image.open(str(png))
    prompt = "<__media__><|start|>user<|message|>How many?<|eot|><|start|>assistant"
    want = m.session(n_ctx=512, kv_type="f32").generate_tokens(prompt, max_tokens=N_GEN, images=[img])
    messages = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Count."}]}]
    want_chat = m.session(n_ctx=512, kv_type="f32").chat(messages, thinking="off", max_tokens=N_GEN).tokens
    for n_batch in (1, 2, 3, 5):
        s = m.session(n_ctx=512, kv_type="f32", n_batch=n_batch)
        assert s.generate_tokens(prompt, max_tokens=N_GEN, images=[img]) == want, f"n_batch {n_batch}"
        s = m.session(n_ctx=512, kv_type="f32", n_batch=n_batch)  # the scheduler's prompt chunks
        assert s.chat(messages, thinking="off", max_tokens=N_GEN).tokens == want_chat, f"chat, n_batch {n_batch}"


def test_chat_turn_places_images_and_reuses_them(setup):
    text, mmproj, meta, d = setup
    pil = PIL.fromarray(np.random.default_rng(9).integers(0, 256, (30, 30, 3), dtype=np.uint8))
    png = d / "chat.png"
    pil.save(png)
    m = muse.Model(str(text), mmproj=str(mmproj))
    img = muse.Image.open(str(png))
    messages = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Count."}]}]
    prompt = m.chat_prompt(messages, thinking="off")
    assert "<__media__>Count." in prompt  # the image part became the marker
    assert prompt.startswith("<s>")  # the template writes BOS itself: no second one is added
    s = m.session(n_ctx=512)
    r1 = s.chat(messages, thinking="off", max_tokens=6)
    n_rows = m.image_tokens(img)
    text_tokens = len(m.tokenize(prompt.replace("<__media__>", ""), add_special=False, parse_special=True))
    assert r1.usage["prompt_tokens"] == text_tokens + 1 + n_rows + 1  # <|image_start|> rows <|image_end|>
    follow = messages + [{"role": "assistant", "content": r1.answer}, {"role": "user", "content": "Sure?"}]
    r2 = s.chat(follow, thinking="off", max_tokens=6)
    assert r2.usage["cached_tokens"] > n_rows  # the image rows were reused, not re-evaluated
    fresh = m.session(n_ctx=512).chat(follow, thinking="off", max_tokens=6)
    assert fresh.answer == r2.answer


def test_image_errors_are_clear(setup):
    text, mmproj, meta, d = setup
    m_text_only = muse.Model(str(text))
    pil = PIL.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))
    png = d / "small.png"
    pil.save(png)
    img = muse.Image.open(str(png))
    with pytest.raises(muse.Error, match="mmproj"):
        m_text_only.encode_image(img)
    m = muse.Model(str(text), mmproj=str(mmproj))
    s = m.session(n_ctx=512)
    with pytest.raises(muse.Error, match="marker"):
        s.eval_prompt("no marker here", [img])
    with pytest.raises(muse.Error, match="image"):
        s.chat([{"role": "user", "content": "<__media__> hi"}], max_tokens=2)
    # Still usable.
    assert s.generate_tokens("<__media__>hi", max_tokens=2, images=[img])
