"""Acceptance: muse loads every ../shared/vocab/*.gguf (vocab_only) and its metadata
equals what the file holds, as read by llama.cpp's own gguf-py reader."""
import gguf
import pytest

import muse

SPECIAL = ["bos", "eos", "eot", "eom", "unknown", "padding", "separator", "mask"]


def vocab_files(shared):
    files = sorted((shared / "vocab").glob("*.gguf"))
    assert files, "no vocab files"
    return files


def test_every_shared_vocab_loads_with_exact_metadata(shared):
    checked = 0
    for path in vocab_files(shared):
        m = muse.Model(path, vocab_only=True)
        reader = gguf.GGUFReader(str(path))
        expected = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
        got = m.metadata
        assert list(got) == list(expected), path.name
        for k, v in expected.items():
            if k == "tokenizer.ggml.scores":
                assert len(got[k]) == len(v)
                assert all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(got[k], v)), (path.name, k)
            elif isinstance(v, float):
                assert got[k] == pytest.approx(v, rel=1e-7), (path.name, k)
            else:
                assert got[k] == v, (path.name, k)
        # The tokenizer summary fields called out by the acceptance line, explicitly:
        assert m.meta("tokenizer.ggml.model") == expected["tokenizer.ggml.model"]
        if "tokenizer.ggml.pre" in expected:
            assert m.meta("tokenizer.ggml.pre") == expected["tokenizer.ggml.pre"]
        assert m.n_vocab == len(expected["tokenizer.ggml.tokens"])
        for name in SPECIAL:
            key = f"tokenizer.ggml.{name}_token_id"
            if key in expected:
                assert m.meta(key) == expected[key], (path.name, key)
        checked += 1
    print(f"{checked} vocab files checked")
    assert checked >= 7
