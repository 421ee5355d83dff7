"""Regenerates the image fuzzer's seed corpus (committed in corpus-image/): tiny
files of every format muse decodes, written by Pillow (PSD and HDR, which Pillow
cannot write, by hand). regress-*.* files are inputs the fuzzer once found
crashing stb_image; they are kept by hand, not generated here. tests/test-image.cpp decodes the same files and checks
their pixels against the pattern below, so keep the two in sync.
Run with the project's venv: .venv/bin/python tests/fuzz/make_image_corpus.py"""
import struct
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).parent / "corpus-image"
W, H = 7, 5


def pattern():
    """RGBA pattern: R, G, B, A as functions of (x, y); A has 0 and 255 in it."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 37 + y * 11 + 3) % 256
    g = (x * 5 + y * 29 + 40) % 256
    b = (x * x * 3 + y * 7 + 200) % 256
    a = (x * 51 + y * 73) % 256
    return np.stack([r, g, b, a], axis=-1).astype(np.uint8)


def smooth():
    """16x16 gradient for the lossy format (JPEG)."""
    y, x = np.mgrid[0:16, 0:16]
    return np.stack([x * 16, y * 16, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def psd(rgb: np.ndarray) -> bytes:
    """Minimal 8-bit RGB PSD: no colour data, resources or layers; raw planar image data."""
    h, w, c = rgb.shape
    out = b"8BPS" + struct.pack(">H6xHIIHH", 1, c, h, w, 8, 3)
    out += struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0)
    for ch in range(c):
        out += rgb[:, :, ch].tobytes()
    return out


def hdr() -> bytes:
    """Radiance HDR, flat RGBE scanlines (width < 8 is never run-length encoded)."""
    y, x = np.mgrid[0:H, 0:W]
    mant = np.stack([(x * 40 + 7) % 256, (y * 50 + 30) % 256, ((x + y) * 20 + 100) % 256], axis=-1)
    exp = 120 + (x + y) % 12  # 2^(e-136): from tiny to about 4.0 (clipped by the tone map)
    rgbe = np.concatenate([mant, exp[..., None]], axis=-1).astype(np.uint8)
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (H, W) + rgbe.tobytes()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    px = pattern()
    rgba = Image.fromarray(px)
    rgb = Image.fromarray(np.ascontiguousarray(px[:, :, :3]))
    gray = Image.fromarray(np.ascontiguousarray(px[:, :, 0]))
    la = Image.fromarray(np.ascontiguousarray(px[:, :, [0, 3]]))

    rgb.save(OUT / "rgb.png")
    rgba.save(OUT / "rgba.png")
    gray.save(OUT / "gray.png")
    la.save(OUT / "la.png")
    # Palette PNG: index i = pixel i, pixel 3 transparent through tRNS.
    pal = Image.new("P", (W, H))
    pal.putdata(list(range(W * H)))
    pal.putpalette(px[:, :, :3].reshape(-1).tolist())
    pal.save(OUT / "palette.png", transparency=3)
    pal.save(OUT / "palette.gif", transparency=3, optimize=False)
    Image.fromarray(px[:, :, 0].astype("<u2") * 257).save(OUT / "gray16.png")

    rgb.save(OUT / "rgb.bmp")
    pal.save(OUT / "palette.bmp")
    rgb.save(OUT / "rgb.tga")
    rgba.save(OUT / "rgba.tga")
    rgb.save(OUT / "rle.tga", compression="tga_rle")
    rgb.save(OUT / "rgb.ppm")
    gray.save(OUT / "gray.pgm")

    sm = Image.fromarray(smooth())
    sm.save(OUT / "smooth.jpg", quality=95)
    sm.save(OUT / "progressive.jpg", quality=90, progressive=True)
    sm.convert("L").save(OUT / "gray.jpg", quality=95)

    (OUT / "rgb.psd").write_bytes(psd(px[:, :, :3]))
    (OUT / "radiance.hdr").write_bytes(hdr())


if __name__ == "__main__":
    main()
