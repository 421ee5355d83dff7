"""muse.Model against GGUF files written by an independent writer (llama.cpp's gguf-py)."""
import math

import gguf
import numpy as np
import pytest

import muse


def write_all_types(path):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("all types")
    w.add_uint8("t.u8", 250)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", math.pi)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓ \x00 nul")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_array("t.arr_str", ["a", "", "ünï"])
    w.add_array("t.arr_bool", [True, False])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_uint32("llama.block_count", 3)
    w.add_uint32("llama.context_length", 512)
    w.add_uint32("llama.embedding_length", 32)
    rng = np.random.default_rng(0)
    w.add_tensor("a.weight", rng.standard_normal((4, 32)).astype(np.float32))
    w.add_tensor("b.weight", rng.standard_normal((2, 3, 64)).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def reader_value(field):
    """The value gguf-py's reader sees, as plain Python (independent of muse)."""
    return field.contents()


def test_metadata_matches_gguf_py(tmp_path):
    p = tmp_path / "all.gguf"
    write_all_types(p)
    m = muse.Model(p)
    reader = gguf.GGUFReader(str(p))
    expected = {k: reader_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    got = m.metadata
    assert list(got) == list(expected)
    for k, v in expected.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-7), k
        elif k == "t.arr_f32":
            assert got[k] == pytest.approx(v), k
        elif k == "t.nested":  # gguf-py's reader flattens nested arrays; muse keeps the nesting
            assert [x for inner in got[k] for x in inner] == v
        else:
            assert got[k] == v, k
    assert m.meta("t.f32") == float(np.float32(0.1))  # exact f32 value, widened
    assert m.meta("t.u64") == 2**64 - 1
    assert m.meta("t.i64") == -(2**63)
    assert m.meta("t.nested") == [[1, 2], [3]]
    assert m.arch == "llama" and m.name == "all types"
    assert (m.n_layer, m.n_ctx_train, m.n_embd) == (3, 512, 32)


def test_tensors_match_gguf_py(tmp_path):
    p = tmp_path / "all.gguf"
    write_all_types(p)
    m = muse.Model(p)
    reader = gguf.GGUFReader(str(p))
    assert [t.name for t in m.tensors] == [t.name for t in reader.tensors]
    for t, r in zip(m.tensors, reader.tensors):
        assert t.shape == tuple(int(x) for x in r.shape)
        assert t.n_bytes == int(r.n_bytes)
        assert t.offset == int(r.data_offset)
        assert t.type == int(r.tensor_type)
        np.testing.assert_array_equal(m.tensor_data(t.name).ravel(), np.asarray(r.data, dtype=np.float32).ravel())


def test_vocab_only_and_mmap_options(tmp_path):
    p = tmp_path / "all.gguf"
    write_all_types(p)
    a = muse.Model(p, vocab_only=True)
    assert a.metadata["t.str"] == "héllo ✓ \x00 nul"
    with pytest.raises(muse.Error) as e:
        a.tensor_data("a.weight")
    assert "vocab-only" in str(e.value)
    b = muse.Model(p, use_mmap=False)
    np.testing.assert_array_equal(b.tensor_data("b.weight"), muse.Model(p).tensor_data("b.weight"))
    with pytest.raises(muse.Error, match="vocab-only"):
        a.device  # no decoder, so no backend


def test_device_names_the_backend_the_decoder_runs_on(tmp_path):
    import tiny_models as tm
    m = muse.Model(str(tm.tiny_model(tmp_path, "llama", "F32")), backend="cpu")
    backend, _, device = m.device.partition(": ")  # "<backend>: <device>"
    assert backend == "cpu" and device
    assert device == muse.system_info()["devices"][0]["name"]


def test_errors_carry_status_and_message(tmp_path):
    with pytest.raises(muse.Error) as e:
        muse.Model(tmp_path / "missing.gguf")
    assert e.value.status_name == "MUSE_ERR_IO"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    with pytest.raises(muse.Error) as e:
        muse.Model(bad)
    assert e.value.status_name == "MUSE_ERR_FORMAT"
    assert "count" in str(e.value)
    with pytest.raises(ValueError):
        muse.Model(bad, backend="tpu")


def test_progress_callback_and_cancel(tmp_path):
    p = tmp_path / "all.gguf"
    write_all_types(p)
    seen = []
    muse.Model(p, progress=lambda f: seen.append(f) or True)
    assert seen and seen[-1] == 1.0
    with pytest.raises(muse.Error) as e:
        muse.Model(p, progress=lambda f: False)
    assert e.value.status_name == "MUSE_ERR_CANCELLED"

    class Boom(Exception):
        pass

    def explode(_):
        raise Boom()

    with pytest.raises(Boom):
        muse.Model(p, progress=explode)


def test_close_and_context_manager(tmp_path):
    p = tmp_path / "all.gguf"
    write_all_types(p)
    with muse.Model(p) as m:
        assert m.n_layer == 3
    with pytest.raises(muse.Error):
        m.arch
    assert "closed" in repr(m)
    assert muse.abi_version() >= 1 and muse.version()


def test_system_info_lists_the_cpu_device():
    info = muse.system_info()
    assert info["backends"][0] == "cpu"
    cpu = info["devices"][0]
    assert cpu["backend"] == "cpu" and cpu["kind"] == "cpu" and cpu["name"]
    # Host memory as the OS reports it: positive, and free never above total.
    assert cpu["memory_total"] > 0 and 0 <= cpu["memory_free"] <= cpu["memory_total"]
    assert info["cpu_level"] in cpu["capabilities"]
    assert ("amx" in cpu["capabilities"]) == info["amx"]
