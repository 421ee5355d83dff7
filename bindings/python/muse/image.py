"""muse.Image: a decoded RGB8 image (alpha composited on white), for vision models."""
from __future__ import annotations

import ctypes
import os
from typing import Optional, Tuple

from ._ffi import ImageParams, lib
from ._handle import Handle
from .errors import Error, check


def _params(max_pixels: Optional[int]) -> ImageParams:
    p = ImageParams()
    lib.muse_image_params_init(ctypes.byref(p))
    if max_pixels is not None:
        p.max_pixels = max_pixels
    return p


class Image(Handle):
    """An image decoded by muse (PNG, JPEG, BMP, GIF, TGA, PNM, PSD, HDR) or built from pixels.

        img = muse.Image.open("cat.png")          # or Image.from_bytes(data), Image.from_pixels(...)
        img.size                                  # (width, height)
        img.tobytes()                             # width * height * 3 bytes, row-major RGB

    max_pixels (default 64 Mpx) is checked from the file header before decoding."""
    _kind = "image"

    def __init__(self, _handle):
        self._handle = _handle

    def _free(self, handle) -> None:
        lib.muse_image_free(handle)

    @classmethod
    def open(cls, path, *, max_pixels: Optional[int] = None) -> "Image":
        h = ctypes.c_void_p()
        p = _params(max_pixels)
        check(lib.muse_image_load_file(os.fsencode(path), ctypes.byref(p), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_bytes(cls, data, *, max_pixels: Optional[int] = None) -> "Image":
        """Decodes an encoded image (the bytes of a PNG, JPEG, ... file)."""
        buf = bytes(data)
        h = ctypes.c_void_p()
        p = _params(max_pixels)
        check(lib.muse_image_load_memory(buf, len(buf), ctypes.byref(p), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_pixels(cls, data, width: int, height: int, channels: int = 3, stride: int = 0) -> "Image":
        """Copies 8-bit pixels: channels 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA),
        rows `stride` bytes apart (0: width * channels). Any buffer works (bytes, numpy)."""
        buf = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else memoryview(data)
        width, height, channels, stride = int(width), int(height), int(channels), int(stride)
        for name, v in (("width", width), ("height", height), ("channels", channels), ("stride", stride)):
            if not -2**31 <= v < 2**31:
                raise Error(1, f"{name} {v} does not fit in int32")
        row = width * channels
        if width > 0 and height > 0 and 1 <= channels <= 4 and stride >= 0:
            need = (height - 1) * (stride or row) + row
            if len(buf) < need:
                raise Error(1, f"pixel buffer holds {len(buf)} bytes; {width}x{height}x{channels} "
                               f"(stride {stride or row}) needs {need}")
        raw = bytes(buf)
        h = ctypes.c_void_p()
        check(lib.muse_image_from_pixels(raw, width, height, channels, stride, ctypes.byref(h)))
        return cls(h)

    @property
    def width(self) -> int:
        return int(lib.muse_image_width(self._h()))

    @property
    def height(self) -> int:
        return int(lib.muse_image_height(self._h()))

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height), as Pillow's Image.size."""
        return self.width, self.height

    def tobytes(self) -> bytes:
        """The pixels: width * height * 3 bytes, row-major, RGB."""
        ptr = lib.muse_image_pixels(self._h())
        return ctypes.string_at(ptr, self.width * self.height * 3)

    def to_pil(self):
        """A Pillow RGB image with the same pixels (needs Pillow)."""
        from PIL import Image as PILImage  # optional dependency

        return PILImage.frombytes("RGB", self.size, self.tobytes())

    def __repr__(self) -> str:
        return f"muse.Image({self.width}x{self.height})" if self._handle else "muse.Image(closed)"
