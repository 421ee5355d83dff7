"""Regenerates the fuzzer's seed corpus (committed in corpus/gguf): small GGUF
files covering every value type, nested arrays, alignment and each tensor type.
Run with the project's venv: .venv/bin/python tests/fuzz/make_seed_corpus.py"""
from pathlib import Path

import gguf
import numpy as np

OUT = Path(__file__).parent / "corpus" / "gguf"
T = gguf.GGMLQuantizationType
BLOCK = {T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q5_0: (32, 22), T.Q5_1: (32, 24), T.Q8_0: (32, 34),
         T.Q2_K: (256, 84), T.Q3_K: (256, 110), T.Q4_K: (256, 144), T.Q5_K: (256, 176),
         T.Q6_K: (256, 210), T.Q8_K: (256, 292)}


def write(name, build, **kw):
    w = gguf.GGUFWriter(str(OUT / name), "llama", **kw)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def metadata(w):
    w.add_uint8("a.u8", 1); w.add_int8("a.i8", -1); w.add_uint16("a.u16", 2); w.add_int16("a.i16", -2)
    w.add_uint32("a.u32", 3); w.add_int32("a.i32", -3); w.add_uint64("a.u64", 4); w.add_int64("a.i64", -4)
    w.add_float32("a.f32", 0.5); w.add_float64("a.f64", 0.25); w.add_bool("a.b", True)
    w.add_string("a.s", "text"); w.add_array("a.arr", [1, 2]); w.add_array("a.strs", ["x", "yz"])
    w.add_array("a.nested", [[1], [2, 3]])
    w.add_tensor("t", np.arange(32, dtype=np.float32))


def quants(w):
    rng = np.random.default_rng(0)
    for t, (_, nbytes) in BLOCK.items():
        raw = rng.integers(0, 256, size=(1, nbytes), dtype=np.uint8)
        raw[:, :2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
        w.add_tensor(t.name.lower(), raw, raw_dtype=t)
    w.add_tensor("f16", np.ones(32, np.float16))


OUT.mkdir(parents=True, exist_ok=True)
write("metadata.gguf", metadata)
write("quants.gguf", quants)
write("aligned64.gguf", lambda w: (w.add_uint32("general.alignment", 64), w.add_tensor("x", np.zeros(8, np.float32)),
                                   w.add_tensor("y", np.zeros(8, np.float32))))
write("empty.gguf", lambda w: None)
print(sorted(p.name for p in OUT.iterdir()))
