"""Acceptance: muse's dequantization of every supported type equals, bit for bit
in float32, an independent numpy implementation of the block formats written
here from the format descriptions (ggml's block layouts). The files are written
by llama.cpp's gguf-py, so muse's reader is checked against a foreign writer too.

Every operation below is a float32 operation in the order the format defines
(e.g. Q4_K: y = (d*scale)*q - (dmin*min)), so equality is exact, not approximate.
"""
import gguf
import numpy as np
import pytest

import muse

QK_K = 256
f32 = np.float32
T = gguf.GGMLQuantizationType


def f16(raw):  # little-endian half bytes -> float32
    return raw.copy().view("<f2").astype(f32)


def split(blocks, *sizes):
    out, at = [], 0
    for s in sizes:
        out.append(blocks[:, at:at + s])
        at += s
    assert at == blocks.shape[1]
    return out


# ---------------------------------------------------------------- 32-element blocks
def deq_q4_0(b):
    d, qs = split(b, 2, 16)
    d = f16(d)
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32) - 8
    return q.astype(f32) * d


def deq_q4_1(b):
    d, m, qs = split(b, 2, 2, 16)
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(f32)
    return q * f16(d) + f16(m)


def q5_high_bits(qh):
    bits = qh.copy().view("<u4")  # (n, 1)
    j = np.arange(32, dtype=np.uint32)
    return ((bits >> j) & 1).astype(np.int32) << 4  # element j takes bit j


def deq_q5_0(b):
    d, qh, qs = split(b, 2, 4, 16)
    low = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32)
    return ((low | q5_high_bits(qh)) - 16).astype(f32) * f16(d)


def deq_q5_1(b):
    d, m, qh, qs = split(b, 2, 2, 4, 16)
    low = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32)
    return (low | q5_high_bits(qh)).astype(f32) * f16(d) + f16(m)


def deq_q8_0(b):
    d, qs = split(b, 2, 32)
    return qs.view(np.int8).astype(f32) * f16(d)


# ---------------------------------------------------------------- 256-element super-blocks
def deq_q2_k(b):
    scales, qs, d, dmin = split(b, 16, 64, 2, 2)
    d, dmin = f16(d), f16(dmin)
    y = np.empty((b.shape[0], QK_K), f32)
    for n in range(2):  # two halves of 128 values, 32 bytes of qs each
        q = qs[:, 32 * n:32 * n + 32]
        for j in range(4):  # 2-bit plane j
            plane = (q >> (2 * j)) & 3
            for h in range(2):  # 16 values per scale
                sc = scales[:, 8 * n + 2 * j + h:8 * n + 2 * j + h + 1]
                dl = d * (sc & 0xF).astype(f32)
                ml = dmin * (sc >> 4).astype(f32)
                at = 128 * n + 32 * j + 16 * h
                y[:, at:at + 16] = dl * plane[:, 16 * h:16 * h + 16].astype(f32) - ml
    return y


def q3_k_scales(s):
    # 16 signed 6-bit scales (stored +32): low nibbles in bytes 0..7, high 2 bits in 8..11.
    out = np.empty((s.shape[0], 16), np.int32)
    for i in range(16):
        low = (s[:, i] & 0xF) if i < 8 else (s[:, i - 8] >> 4)
        high = (s[:, 8 + i % 4] >> (2 * (i // 4))) & 3
        out[:, i] = low.astype(np.int32) | (high.astype(np.int32) << 4)
    return out - 32


def deq_q3_k(b):
    hmask, qs, scales, d = split(b, 32, 64, 12, 2)
    d = f16(d)
    sc = q3_k_scales(scales)
    y = np.empty((b.shape[0], QK_K), f32)
    for n in range(2):
        q = qs[:, 32 * n:32 * n + 32]
        for j in range(4):
            plane = ((q >> (2 * j)) & 3).astype(np.int32)
            hbit = (hmask >> (4 * n + j)) & 1  # high bit set -> no offset, clear -> -4
            v = plane - np.where(hbit == 1, 0, 4)
            for h in range(2):
                dl = d * sc[:, 8 * n + 2 * j + h:8 * n + 2 * j + h + 1].astype(f32)
                at = 128 * n + 32 * j + 16 * h
                y[:, at:at + 16] = dl * v[:, 16 * h:16 * h + 16].astype(f32)
    return y


def k4_scale_min(s, j):
    # Scale/min j (0..7) of Q4_K/Q5_K: 6 bits each, packed into 12 bytes.
    if j < 4:
        return s[:, j] & 63, s[:, j + 4] & 63
    sc = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
    mn = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def deq_q4_k(b):
    d, dmin, scales, qs = split(b, 2, 2, 12, 128)
    d, dmin = f16(d), f16(dmin)
    y = np.empty((b.shape[0], QK_K), f32)
    for p in range(4):
        q = qs[:, 32 * p:32 * p + 32]
        for h, vals in enumerate((q & 0xF, q >> 4)):
            sc, mn = k4_scale_min(scales, 2 * p + h)
            dl = d * sc[:, None].astype(f32)
            ml = dmin * mn[:, None].astype(f32)
            y[:, 64 * p + 32 * h:64 * p + 32 * h + 32] = dl * vals.astype(f32) - ml
    return y


def deq_q5_k(b):
    d, dmin, scales, qh, qs = split(b, 2, 2, 12, 32, 128)
    d, dmin = f16(d), f16(dmin)
    y = np.empty((b.shape[0], QK_K), f32)
    for p in range(4):
        q = qs[:, 32 * p:32 * p + 32]
        for h, vals in enumerate((q & 0xF, q >> 4)):
            sub = 2 * p + h
            high = ((qh >> sub) & 1).astype(np.int32) * 16
            sc, mn = k4_scale_min(scales, sub)
            dl = d * sc[:, None].astype(f32)
            ml = dmin * mn[:, None].astype(f32)
            y[:, 32 * sub:32 * sub + 32] = dl * (vals.astype(np.int32) + high).astype(f32) - ml
    return y


def deq_q6_k(b):
    ql, qh, scales, d = split(b, 128, 64, 16, 2)
    d = f16(d)
    sc = scales.view(np.int8).astype(f32)
    y = np.empty((b.shape[0], QK_K), f32)
    for n in range(2):
        lo = ql[:, 64 * n:64 * n + 64].astype(np.int32)
        hi = qh[:, 32 * n:32 * n + 32].astype(np.int32)
        quarters = [
            (lo[:, :32] & 0xF) | ((hi >> 0) & 3) << 4,
            (lo[:, 32:] & 0xF) | ((hi >> 2) & 3) << 4,
            (lo[:, :32] >> 4) | ((hi >> 4) & 3) << 4,
            (lo[:, 32:] >> 4) | ((hi >> 6) & 3) << 4,
        ]
        for k, q in enumerate(quarters):  # quarter k: values 32k..32k+31 of this half
            for h in range(2):  # a scale per 16 values
                s = sc[:, 8 * n + 2 * k + h:8 * n + 2 * k + h + 1]
                at = 128 * n + 32 * k + 16 * h
                y[:, at:at + 16] = d * s * (q[:, 16 * h:16 * h + 16] - 32).astype(f32)
    return y


def deq_q8_k(b):
    d, qs, _bsums = split(b, 4, 256, 32)
    return d.copy().view("<f4") * qs.view(np.int8).astype(f32)


# type -> (block elements, block bytes, byte offsets of f16 scale fields, f32 scale offsets, reference)
FORMATS = {
    T.Q4_0: (32, 18, [0], [], deq_q4_0),
    T.Q4_1: (32, 20, [0, 2], [], deq_q4_1),
    T.Q5_0: (32, 22, [0], [], deq_q5_0),
    T.Q5_1: (32, 24, [0, 2], [], deq_q5_1),
    T.Q8_0: (32, 34, [0], [], deq_q8_0),
    T.Q2_K: (256, 84, [80, 82], [], deq_q2_k),
    T.Q3_K: (256, 110, [108], [], deq_q3_k),
    T.Q4_K: (256, 144, [0, 2], [], deq_q4_k),
    T.Q5_K: (256, 176, [0, 2], [], deq_q5_k),
    T.Q6_K: (256, 210, [208], [], deq_q6_k),
    T.Q8_K: (256, 292, [], [0], deq_q8_k),
}


def random_blocks(rng, n_blocks, block_bytes, f16_offsets, f32_offsets):
    b = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    # Scales: finite halves of both signs over a wide range (incl. subnormals);
    # every other byte stays random so all bit patterns of the quants occur.
    for off in f16_offsets:
        h = (rng.standard_normal(n_blocks) * 10.0 ** rng.uniform(-6, 2, n_blocks)).astype(np.float16)
        h[~np.isfinite(h)] = 1.0
        b[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    for off in f32_offsets:
        s = (rng.standard_normal(n_blocks) * 10.0 ** rng.uniform(-8, 3, n_blocks)).astype(np.float32)
        b[:, off:off + 4] = s.view(np.uint8).reshape(n_blocks, 4)
    return b


def write_model(path, tensors):
    w = gguf.GGUFWriter(str(path), "llama")
    for name, (data, raw_dtype) in tensors.items():
        w.add_tensor(name, data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("qtype", list(FORMATS), ids=lambda t: t.name)
def test_block_formats_bit_exact(tmp_path, qtype):
    block, nbytes, f16_offs, f32_offs, ref = FORMATS[qtype]
    rng = np.random.default_rng(int(qtype))
    rows, blocks_per_row = 8, 3
    raw = random_blocks(rng, rows * blocks_per_row, nbytes, f16_offs, f32_offs)
    p = tmp_path / f"{qtype.name}.gguf"
    write_model(p, {"w": (raw.reshape(rows, blocks_per_row * nbytes), qtype)})
    m = muse.Model(p)
    (info,) = m.tensors
    assert info.type_name == qtype.name
    assert info.shape == (blocks_per_row * block, rows)
    got = m.tensor_data("w").reshape(-1, block)
    want = ref(raw)
    assert want.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_float_types_bit_exact(tmp_path):
    rng = np.random.default_rng(7)
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16)  # every half, NaNs included
    halves = halves[np.isfinite(halves.view(np.float16))]
    bf = rng.integers(0, 65536, size=4096, dtype=np.uint32).astype(np.uint16)
    bf = bf[np.isfinite((bf.astype(np.uint32) << 16).view(np.float32))]
    halves = halves[: len(halves) // 32 * 32]
    bf = bf[: len(bf) // 32 * 32]
    x32 = rng.standard_normal(96).astype(np.float32)
    p = tmp_path / "floats.gguf"
    write_model(p, {
        "h": (halves.view(np.uint8).reshape(1, -1), T.F16),
        "b": (bf.view(np.uint8).reshape(1, -1), T.BF16),
        "f": (x32.view(np.uint8).reshape(1, -1), T.F32),
    })
    m = muse.Model(p)
    np.testing.assert_array_equal(m.tensor_data("h").ravel().view(np.uint32),
                                  halves.view(np.float16).astype(np.float32).view(np.uint32))
    np.testing.assert_array_equal(m.tensor_data("b").ravel().view(np.uint32), bf.astype(np.uint32) << 16)
    np.testing.assert_array_equal(m.tensor_data("f").ravel(), x32)
