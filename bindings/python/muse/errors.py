"""muse.Error: every failed C call becomes one, carrying the C status and message."""
from __future__ import annotations

from ._ffi import lib


class Error(Exception):
    """A muse C API call failed. `status` is the muse_status code, `status_name`
    its name (e.g. "MUSE_ERR_FORMAT"), and str(error) the library's message."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.status_name = lib.muse_status_name(status).decode()
        self.message = message
        super().__init__(f"{self.status_name}: {message}")


def check(status: int) -> None:
    if status != 0:
        raise Error(status, lib.muse_last_error().decode("utf-8", "replace"))


def last_error() -> str:
    return lib.muse_last_error().decode("utf-8", "replace")
