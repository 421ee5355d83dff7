"""Python binding of muse (ctypes over the C ABI in include/muse/muse.h).

    import muse
    m = muse.Model("model.gguf", vocab_only=True)
    print(m.arch, m.n_layer, m.metadata["tokenizer.ggml.model"])
    srv = muse.serve("model.gguf", port=0); print(srv.url); srv.stop()   # muse-server
"""
from ._ffi import lib as _lib
from .chat import ChatTemplate
from .conversation import Agent, Response
from .errors import Error
from .generation import Batch, Event, Generation
from .grammar import Grammar
from .image import Image
from .model import Model, TensorInfo
from .server import Server, ServerNotBuilt, serve
from .session import Session

__all__ = ["Agent", "Batch", "ChatTemplate", "Error", "Event", "Generation", "Grammar", "Image", "Model", "Response", "Server", "ServerNotBuilt",
           "Session", "TensorInfo", "serve", "version", "abi_version", "system_info"]


def version() -> str:
    """The library's version string."""
    return _lib.muse_version().decode()


def abi_version() -> int:
    """The C ABI version the loaded library implements."""
    return int(_lib.muse_abi_version())


def system_info() -> dict:
    """What the library runs on this machine: the active CPU kernel level, whether Q8_0 weights
    use 8-bit activations (int8_matmul), the backends built in."""
    import json
    return json.loads(_lib.muse_system_info().decode())
