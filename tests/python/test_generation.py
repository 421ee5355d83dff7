"""Tokenizer and generation through the Python binding: text in, text out, and the
Python, C and C++ paths agree (C++ side: tests/test-cpp-api.cpp)."""
import threading

import pytest

import muse
import tiny_models as tm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    return muse.Model(tm.tiny_model(d, "qwen3", "F16"))


def test_tokenize_detokenize_round_trip(model):
    text = "hello world"
    ids = model.tokenize(text)
    assert ids and all(0 <= i < model.n_vocab for i in ids)
    assert model.detokenize(ids) == text
    assert model.tokenize("") == []
    with pytest.raises(muse.Error) as e:
        model.detokenize([model.n_vocab + 5])
    assert e.value.status_name == "MUSE_ERR_OUT_OF_RANGE"


def test_generate_streams_the_same_text_as_generate_tokens(model):
    prompt = model.tokenize("hello")
    ids = model.session(n_ctx=128).generate_tokens(prompt, 16)
    text = "".join(model.session(n_ctx=128).generate(prompt, 16))
    # A random model emits byte tokens that are not valid UTF-8: the stream replaces each
    # invalid sequence as it goes, detokenize() once at the end, so the number of U+FFFD
    # may differ; every valid character must be identical and in order.
    assert text.replace("\ufffd", "") == model.detokenize(ids).replace("\ufffd", "")
    # text prompts are tokenized with special tokens parsed
    assert model.session(n_ctx=128).generate_tokens("hello", 16) == \
        model.session(n_ctx=128).generate_tokens(model.tokenize("hello", add_special=True, parse_special=True), 16)


def test_sampling_is_seeded(model):
    prompt = model.tokenize("hello")
    a = model.session(n_ctx=128).generate_tokens(prompt, 16, temperature=1.0, top_k=20, seed=7)
    b = model.session(n_ctx=128).generate_tokens(prompt, 16, temperature=1.0, top_k=20, seed=7)
    c = model.session(n_ctx=128).generate_tokens(prompt, 16, temperature=1.0, top_k=20, seed=8)
    assert a == b
    assert a != c or len(a) < 3


def test_errors_then_generation_still_works(model):
    s = model.session(n_ctx=32)
    with pytest.raises(muse.Error):
        s.generate_tokens([model.n_vocab], 4)
    with pytest.raises(muse.Error):
        s.generate_tokens(list(range(5)) * 10, 4)  # longer than n_ctx
    with pytest.raises(muse.Error):
        list(s.generate([model.n_vocab], 4))
    assert len(s.generate_tokens(model.tokenize("hello"), 4)) >= 1


def test_cancel_from_another_thread(model):
    s = model.session(n_ctx=512)
    gen = s.generate(model.tokenize("hello"), 400)
    first = next(gen)
    threading.Timer(0.0, s.cancel).start()
    rest = list(gen)
    assert isinstance(first, str)
    assert s.seq_length() < 400


def test_stop_strings_and_logit_bias(model):
    prompt = model.tokenize("hello")
    full = "".join(model.session(n_ctx=128).generate(prompt, 24))
    visible = [c for c in full if c != "\ufffd" and c.strip()]
    if len(visible) >= 3:
        stop = visible[2]
        cut = "".join(model.session(n_ctx=128).generate(prompt, 24, stop=[stop]))
        assert stop not in cut
        assert full.startswith(cut.rstrip("\ufffd")[: max(0, len(cut) - 2)])
    first = model.session(n_ctx=128).generate_tokens(prompt, 1)[0]
    banned = model.session(n_ctx=128).generate_tokens(prompt, 1, logit_bias={first: float("-inf")})[0]
    assert banned != first


def test_python_generate_tokens_equals_the_cli(model, tmp_path):
    """The C++ path (muse-cli run, built on muse.hpp) and Python give the same greedy tokens."""
    import json
    import os
    import subprocess
    from pathlib import Path
    lib = Path(os.environ.get("MUSE_LIBRARY", ""))
    cli = lib.parent.parent / "examples" / "muse-cli"
    if not cli.exists():
        pytest.skip(f"muse-cli not found next to {lib}")
    prompt = model.tokenize("hello", add_special=True)
    ours = model.session(n_ctx=128).generate_tokens(prompt, 12)
    path = tmp_path / "m.gguf"
    import tiny_models as tm2
    path = tm2.tiny_model(tmp_path, "qwen3", "F16")
    out = subprocess.run([str(cli), "run", "-m", str(path), "--tokens", ",".join(map(str, prompt)), "-n", "12",
                          "--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["tokens"] == ours


def _llama_with_vocab(path, n_vocab, n_embd=32):
    """A one-layer llama GGUF with a placeholder SPM vocabulary of n_vocab tokens."""
    import gguf
    import numpy as np
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, n_vocab)])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([2, 3, 3] + [1] * (n_vocab - 3))
    t = {"token_embd.weight": (n_vocab, n_embd), "output_norm.weight": (n_embd,),
         "blk.0.attn_norm.weight": (n_embd,), "blk.0.attn_q.weight": (n_embd, n_embd),
         "blk.0.attn_k.weight": (n_embd, n_embd), "blk.0.attn_v.weight": (n_embd, n_embd),
         "blk.0.attn_output.weight": (n_embd, n_embd), "blk.0.ffn_norm.weight": (n_embd,),
         "blk.0.ffn_gate.weight": (64, n_embd), "blk.0.ffn_up.weight": (64, n_embd),
         "blk.0.ffn_down.weight": (n_embd, 64)}
    for name, shape in t.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_sentencepiece_model_file_replaces_the_gguf_tokenizer(tmp_path):
    """A model that ships a sentencepiece .model: muse loads it through libsentencepiece."""
    from pathlib import Path
    spm = Path(__file__).resolve().parents[2] / "tools" / "nano" / "tokenizer" / "nano.model"
    if not spm.exists():
        pytest.skip("no sentencepiece model in the tree")
    path = _llama_with_vocab(tmp_path / "m.gguf", 1600)
    gguf_ids = muse.Model(path).tokenize("How many red shapes?")
    try:
        m = muse.Model(path, tokenizer=spm)
        ids = m.tokenize("How many red shapes?")
    except muse.Error as e:
        if "sentencepiece" in str(e).lower() and "built without" in str(e).lower():
            pytest.skip(f"built without libsentencepiece: {e}")
        raise
    assert ids != gguf_ids
    assert m.detokenize(ids) == "How many red shapes?"
    assert len(m.session(n_ctx=64).generate_tokens(ids, 3)) >= 1
    with pytest.raises(muse.Error):
        muse.Model(path, tokenizer=tmp_path / "missing.model").tokenize("x")
    small = _llama_with_vocab(tmp_path / "small.gguf", 100)
    with pytest.raises(muse.Error) as e:  # the .model has more pieces than the model has rows
        muse.Model(small, tokenizer=spm).tokenize("x")
    assert e.value.status_name == "MUSE_ERR_FORMAT"
