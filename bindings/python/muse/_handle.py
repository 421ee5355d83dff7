"""Owner of one C handle: explicit close(), context manager, and release on collection."""
from __future__ import annotations

from .errors import Error


class Handle:
    _handle = None
    _kind = "object"

    def _free(self, handle) -> None:  # the C free function of the subclass
        raise NotImplementedError

    def close(self) -> None:
        """Frees the C object now (also done when the Python object is collected)."""
        if self._handle:
            self._free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _h(self):
        if not self._handle:
            raise Error(1, f"the {self._kind} is closed")
        return self._handle
