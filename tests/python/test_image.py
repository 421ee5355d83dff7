"""muse.Image through the C API (ctypes): decoding equals Pillow's, alpha is
composited exactly as Pillow's alpha_composite on white, and bad input gives
muse.Error with the right status.

Pillow is the reference: it writes the files (random content, random sizes
including 1-pixel edges) and decodes them with its own codecs (libpng, libjpeg,
its BMP/TGA/PPM/GIF readers), independently of stb_image."""
import io

import numpy as np
import pytest
from PIL import Image as PILImage

import muse

RNG = np.random.default_rng(1234)
SIZES = [(1, 1), (1, 9), (13, 1), (37, 23), (64, 48), (5, 77)]


def pillow_rgb(pil: PILImage.Image) -> np.ndarray:
    """What HF processors (Idefics, ...) do: alpha_composite over opaque white, then RGB."""
    rgba = pil.convert("RGBA")
    white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(PILImage.alpha_composite(white, rgba).convert("RGB"))


def muse_rgb(img: muse.Image) -> np.ndarray:
    return np.frombuffer(img.tobytes(), np.uint8).reshape(img.height, img.width, 3)


def random_pil(mode: str, w: int, h: int) -> PILImage.Image:
    bands = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    a = RNG.integers(0, 256, size=(h, w, bands), dtype=np.uint8)
    if mode in ("RGBA", "LA"):
        a[..., -1][::3] = 0  # fully transparent and opaque rows besides random alpha
        a[..., -1][1::3] = 255
    return PILImage.fromarray(a[..., 0] if bands == 1 else a)


def random_palette(w: int, h: int, transparency=None) -> PILImage.Image:
    p = PILImage.new("P", (w, h))
    p.putpalette(RNG.integers(0, 256, size=768, dtype=np.uint8).tolist())
    p.putdata(RNG.integers(0, 256, size=w * h).tolist())
    if transparency is not None:
        p.info["transparency"] = transparency
    return p


def encode(pil: PILImage.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    pil.save(b, fmt, **kw)
    return b.getvalue()


def check_equal(data: bytes, expected: np.ndarray):
    img = muse.Image.from_bytes(data)
    assert img.size == (expected.shape[1], expected.shape[0])
    np.testing.assert_array_equal(muse_rgb(img), expected)


LOSSLESS = [
    ("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "L", {}), ("PNG", "LA", {}),
    ("BMP", "RGB", {}), ("BMP", "L", {}),
    ("TGA", "RGB", {}), ("TGA", "RGBA", {}), ("TGA", "L", {}), ("TGA", "RGB", {"compression": "tga_rle"}),
    ("PPM", "RGB", {}), ("PPM", "L", {}),
]


@pytest.mark.parametrize("fmt,mode,kw", LOSSLESS, ids=[f"{f}-{m}{'-rle' if k else ''}" for f, m, k in LOSSLESS])
def test_lossless_formats_equal_pillow(fmt, mode, kw):
    for w, h in SIZES:
        pil = random_pil(mode, w, h)
        data = encode(pil, fmt, **kw)
        check_equal(data, pillow_rgb(PILImage.open(io.BytesIO(data))))


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_palette_images_equal_pillow(fmt):
    for w, h in SIZES:
        for transparency in ([None, 7] if fmt != "BMP" else [None]):
            pil = random_palette(w, h, transparency)
            kw = {"transparency": transparency} if transparency is not None else {}
            if fmt == "GIF":
                kw["optimize"] = False
            data = encode(pil, fmt, **kw)
            check_equal(data, pillow_rgb(PILImage.open(io.BytesIO(data))))


def test_gif_first_frame_only():
    frames = [random_palette(9, 6) for _ in range(3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], optimize=False, disposal=1)
    ref = PILImage.open(io.BytesIO(data))
    assert ref.n_frames == 3
    check_equal(data, pillow_rgb(ref))  # Pillow opens on frame 0


@pytest.mark.parametrize("subsampling,progressive", [(0, False), (2, False), (2, True), (1, False)])
def test_jpeg_close_to_libjpeg(subsampling, progressive):
    # stb_image and libjpeg-turbo (inside Pillow) both implement the standard but
    # round their integer IDCTs differently, so pixels may differ by a few
    # levels (we measured at most 3 on these images, mean below 0.25). Chroma
    # upsampling is the same triangle filter in both (muse fixes stb's 4:2:2 edge
    # bug, see src/image/decode.cpp) except that libjpeg falls back to plain
    # replication for chroma planes 2 samples wide or less, so images under 5
    # pixels wide differ more and are left out.
    for w, h in [(17, 9), (64, 48), (33, 70), (5, 5)]:
        y, x = np.mgrid[0:h, 0:w]
        smooth = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 3 % 256], -1)
        noisy = np.clip(smooth + RNG.integers(-20, 21, size=smooth.shape), 0, 255).astype(np.uint8)
        data = encode(PILImage.fromarray(noisy), "JPEG", quality=92, subsampling=subsampling,
                      progressive=progressive)
        ref = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).astype(int)
        got = muse_rgb(muse.Image.from_bytes(data)).astype(int)
        diff = np.abs(got - ref)
        assert diff.max() <= 4, f"{w}x{h}: max diff {diff.max()}"
        assert diff.mean() <= 0.5, f"{w}x{h}: mean diff {diff.mean()}"
    gray = PILImage.fromarray(RNG.integers(0, 256, size=(20, 30), dtype=np.uint8))
    data = encode(gray, "JPEG", quality=95)
    ref = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(muse_rgb(muse.Image.from_bytes(data)).astype(int) - ref).max() <= 2


def test_alpha_composite_matches_pillow_for_every_value_pair():
    # 256 x 256 gray+alpha and RGBA: x is the colour value, y the alpha.
    y, x = np.mgrid[0:256, 0:256].astype(np.uint8)
    la = np.stack([x, y], -1)
    got = muse_rgb(muse.Image.from_pixels(la.tobytes(), 256, 256, 2))
    np.testing.assert_array_equal(got, pillow_rgb(PILImage.fromarray(la)))
    rgba = np.stack([x, 255 - x, (x * 7).astype(np.uint8), y], -1)
    got = muse_rgb(muse.Image.from_pixels(rgba, 256, 256, 4))
    np.testing.assert_array_equal(got, pillow_rgb(PILImage.fromarray(rgba)))


def test_from_pixels_with_stride_and_gray():
    w, h, stride = 5, 4, 23
    buf = RNG.integers(0, 256, size=stride * h, dtype=np.uint8)
    img = muse.Image.from_pixels(buf.tobytes(), w, h, 3, stride)
    rows = np.stack([buf[r * stride: r * stride + w * 3] for r in range(h)]).reshape(h, w, 3)
    np.testing.assert_array_equal(muse_rgb(img), rows)
    g = RNG.integers(0, 256, size=(h, w), dtype=np.uint8)
    np.testing.assert_array_equal(muse_rgb(muse.Image.from_pixels(g, w, h, 1)), np.repeat(g[..., None], 3, -1))


def test_open_file_and_to_pil(tmp_path):
    pil = random_pil("RGBA", 31, 17)
    path = tmp_path / "x.png"
    pil.save(path)
    img = muse.Image.open(path)
    assert (img.width, img.height, img.size) == (31, 17, (31, 17))
    np.testing.assert_array_equal(np.asarray(img.to_pil()), pillow_rgb(pil))
    assert "31x17" in repr(img)
    img.close()
    with pytest.raises(muse.Error):
        img.tobytes()
    with muse.Image.open(str(path)) as again:
        assert again.width == 31


def test_errors_have_status_and_message(tmp_path):
    with pytest.raises(muse.Error) as e:
        muse.Image.open(tmp_path / "missing.png")
    assert e.value.status_name == "MUSE_ERR_IO" and "missing.png" in str(e.value)
    with pytest.raises(muse.Error) as e:
        muse.Image.from_bytes(b"definitely not an image")
    assert e.value.status_name == "MUSE_ERR_FORMAT"
    png = encode(random_pil("RGB", 40, 30), "PNG")
    with pytest.raises(muse.Error) as e:
        muse.Image.from_bytes(png, max_pixels=40 * 30 - 1)
    assert e.value.status_name == "MUSE_ERR_OUT_OF_RANGE" and "40x30" in str(e.value)
    assert muse.Image.from_bytes(png, max_pixels=40 * 30).size == (40, 30)
    with pytest.raises(muse.Error) as e:
        muse.Image.from_bytes(png[: len(png) // 2])
    assert e.value.status_name == "MUSE_ERR_FORMAT"
    with pytest.raises(muse.Error) as e:
        muse.Image.from_bytes(b"")
    assert e.value.status_name == "MUSE_ERR_FORMAT"
    with pytest.raises(muse.Error):
        muse.Image.from_pixels(b"\0" * 10, 2, 2, 3)  # 12 bytes needed
    with pytest.raises(muse.Error) as e:
        muse.Image.from_pixels(b"\0" * 12, 2, 2, 5)
    assert e.value.status_name == "MUSE_ERR_INVALID_ARGUMENT"
    with pytest.raises(muse.Error):
        muse.Image.from_pixels(b"\0" * 12, 0, 2, 3)


def test_truncated_and_random_inputs_fail_cleanly():
    data = encode(random_pil("RGBA", 20, 10), "PNG")
    for n in range(0, len(data), 7):
        try:
            muse.Image.from_bytes(data[:n])
        except muse.Error as e:
            assert e.status_name == "MUSE_ERR_FORMAT"
    for _ in range(200):
        junk = RNG.integers(0, 256, size=int(RNG.integers(1, 300)), dtype=np.uint8).tobytes()
        try:
            muse.Image.from_bytes(junk)
        except muse.Error as e:
            assert e.status_name in ("MUSE_ERR_FORMAT", "MUSE_ERR_OUT_OF_RANGE")
