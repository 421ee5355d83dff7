"""muse.Model: a loaded GGUF model, its metadata and tensors."""
from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _ffi
from ._ffi import lib
from ._handle import Handle
from .errors import Error, check, last_error

_BACKENDS = {"auto": 0, "cpu": 1, "vulkan": 2}

# muse_meta_type values
_META_BOOL, _META_STRING, _META_ARRAY = 7, 8, 9
_META_UINT64 = 10
_META_FLOATS = (6, 12)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file. `shape` is in ggml order (shape[0] is contiguous)."""
    name: str
    type: int
    type_name: str
    shape: Tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int


def _decode(ptr: ctypes.c_void_p, length: int) -> str:
    # Token texts may hold bytes that are not UTF-8; surrogateescape keeps them lossless.
    return ctypes.string_at(ptr, length).decode("utf-8", "surrogateescape")


class Model(Handle):
    """A GGUF model loaded by muse. Immutable; safe to share between threads.

    Model(path, *, mmproj=None, backend="auto", threads=None, vocab_only=False,
          use_mmap=True, progress=None, tokenizer=None)
    `tokenizer` is a sentencepiece .model to use instead of the GGUF's tokenizer metadata.
    `progress(fraction) -> bool` may return False to cancel the load.
    """
    _kind = "model"

    def __init__(self, path: str | os.PathLike, *, mmproj: str | os.PathLike | None = None,
                 backend: str = "auto", threads: Optional[int] = None, vocab_only: bool = False,
                 use_mmap: bool = True, progress: Optional[Callable[[float], bool]] = None,
                 tokenizer: str | os.PathLike | None = None):
        self._handle = None
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {sorted(_BACKENDS)}, not {backend!r}")
        params = _ffi.ModelParams()
        lib.muse_model_params_init(ctypes.byref(params))
        params.backend = _BACKENDS[backend]
        params.n_threads = 0 if threads is None else int(threads)
        params.vocab_only = bool(vocab_only)
        params.use_mmap = bool(use_mmap)
        mmproj_bytes = os.fsencode(mmproj) if mmproj is not None else None
        params.mmproj_path = mmproj_bytes
        tokenizer_bytes = os.fsencode(tokenizer) if tokenizer is not None else None
        params.tokenizer_path = tokenizer_bytes
        callback_error: List[BaseException] = []
        if progress is not None:
            def trampoline(fraction, _user):
                try:
                    return bool(progress(float(fraction)))
                except BaseException as e:  # never unwind through C; re-raised below
                    callback_error.append(e)
                    return False
            params.progress = _ffi.PROGRESS_CB(trampoline)
        handle = ctypes.c_void_p()
        status = lib.muse_model_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(handle))
        if callback_error:
            raise callback_error[0]
        check(status)
        self._handle = handle
        self._metadata: Optional[Dict[str, Any]] = None
        self._tensors: Optional[List[TensorInfo]] = None

    def _free(self, handle) -> None:
        lib.muse_model_free(handle)

    # ---- hyperparameters
    @property
    def arch(self) -> str:
        return lib.muse_model_arch(self._h()).decode()

    @property
    def name(self) -> str:
        return lib.muse_model_name(self._h()).decode("utf-8", "replace")

    @property
    def device(self) -> str:
        """The backend and device the decoder runs on, e.g. "cpu: cpu (avx512, vnni, amx)" or
        "vulkan: NVIDIA H200" (what backend="auto" chose). Builds the decoder if needed."""
        out = ctypes.c_char_p()
        check(lib.muse_model_device(self._h(), ctypes.byref(out)))
        return (out.value or b"").decode("utf-8", "replace")

    @property
    def n_vocab(self) -> int:
        return int(lib.muse_model_n_vocab(self._h()))

    @property
    def n_ctx_train(self) -> int:
        return int(lib.muse_model_n_ctx_train(self._h()))

    @property
    def n_embd(self) -> int:
        return int(lib.muse_model_n_embd(self._h()))

    @property
    def n_layer(self) -> int:
        return int(lib.muse_model_n_layer(self._h()))

    @property
    def gguf_version(self) -> int:
        return int(lib.muse_model_gguf_version(self._h()))

    @property
    def file_size(self) -> int:
        return int(lib.muse_model_file_size(self._h()))

    # ---- metadata
    def meta(self, key: str) -> Any:
        """One metadata value as a Python object (nested arrays become nested lists)."""
        h = self._h()
        k = key.encode()
        t = ctypes.c_int()
        check(lib.muse_model_meta_type(h, k, ctypes.byref(t)))
        t = t.value
        if t == _META_STRING:
            p, n = ctypes.c_void_p(), ctypes.c_size_t()
            check(lib.muse_model_meta_get_string(h, k, ctypes.byref(p), ctypes.byref(n)))
            return _decode(p, n.value)
        if t == _META_BOOL:
            v = ctypes.c_int64()
            check(lib.muse_model_meta_get_int(h, k, ctypes.byref(v)))
            return bool(v.value)
        if t in _META_FLOATS:
            v = ctypes.c_double()
            check(lib.muse_model_meta_get_float(h, k, ctypes.byref(v)))
            return v.value
        if t == _META_UINT64:
            v = ctypes.c_uint64()
            check(lib.muse_model_meta_get_uint(h, k, ctypes.byref(v)))
            return int(v.value)
        if t == _META_ARRAY:
            et, n = ctypes.c_int(), ctypes.c_uint64()
            check(lib.muse_model_meta_array_info(h, k, ctypes.byref(et), ctypes.byref(n)))
            if et.value == _META_STRING:
                out = []
                p, ln = ctypes.c_void_p(), ctypes.c_size_t()
                for i in range(n.value):
                    check(lib.muse_model_meta_array_get_string(h, k, i, ctypes.byref(p), ctypes.byref(ln)))
                    out.append(_decode(p, ln.value))
                return out
            return json.loads(self.meta_json(key))
        v = ctypes.c_int64()
        check(lib.muse_model_meta_get_int(h, k, ctypes.byref(v)))
        return int(v.value)

    def meta_json(self, key: str) -> str:
        """A metadata value as JSON text, exactly as the C API renders it."""
        p = ctypes.c_void_p()
        check(lib.muse_model_meta_to_json(self._h(), key.encode(), ctypes.byref(p)))
        try:
            return ctypes.string_at(p).decode()
        finally:
            lib.muse_string_free(p)

    @property
    def metadata(self) -> Dict[str, Any]:
        """All metadata, in file order, as a dict of Python values."""
        if self._metadata is None:
            h = self._h()
            out: Dict[str, Any] = {}
            key = ctypes.c_char_p()
            for i in range(int(lib.muse_model_meta_count(h))):
                check(lib.muse_model_meta_key(h, i, ctypes.byref(key)))
                k = key.value.decode("utf-8", "surrogateescape")
                out[k] = self.meta(k)
            self._metadata = out
        return self._metadata

    # ---- tensors
    @property
    def tensors(self) -> List[TensorInfo]:
        if self._tensors is None:
            h = self._h()
            out = []
            for i in range(int(lib.muse_model_tensor_count(h))):
                info = _ffi.TensorInfo()
                info.struct_size = ctypes.sizeof(info)
                check(lib.muse_model_tensor_info(h, i, ctypes.byref(info)))
                out.append(TensorInfo(info.name.decode(), int(info.type), info.type_name.decode(),
                                      tuple(int(info.dims[d]) for d in range(info.n_dims)),
                                      int(info.n_elements), int(info.n_bytes), int(info.offset)))
            self._tensors = out
        return self._tensors

    def tensor_data(self, name: str):
        """A tensor dequantized to float32: a numpy array in ggml order reversed
        (numpy's row-major shape) if numpy is installed, else an array('f')."""
        h = self._h()
        idx = ctypes.c_int64()
        check(lib.muse_model_tensor_find(h, name.encode(), ctypes.byref(idx)))
        info = self.tensors[idx.value]
        try:
            import numpy as np
        except ImportError:
            np = None
        if np is not None:
            out = np.empty(info.n_elements, dtype=np.float32)
            ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            check(lib.muse_model_tensor_read_f32(h, idx.value, ptr, out.size))
            return out.reshape(tuple(reversed(info.shape)) or (1,))
        import array
        buf = (ctypes.c_float * info.n_elements)()
        check(lib.muse_model_tensor_read_f32(h, idx.value, buf, info.n_elements))
        return array.array("f", buf)

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = False) -> List[int]:
        """Text -> token ids with the model's own tokenizer."""
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t()
        cap = len(data) + 8
        while True:
            out = (ctypes.c_int32 * cap)()
            status = lib.muse_tokenize(self._h(), data, len(data), add_special, parse_special, out, cap, ctypes.byref(n))
            if status == 8 and n.value > cap:  # MUSE_ERR_OUT_OF_RANGE: grow to the reported size
                cap = n.value
                continue
            check(status)
            return list(out[: n.value])

    def detokenize(self, ids: Sequence[int], *, render_special: bool = False) -> str:
        """Token ids -> text (bytes that are not valid UTF-8 become U+FFFD)."""
        arr = (ctypes.c_int32 * len(ids))(*[int(i) for i in ids])
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.muse_detokenize(self._h(), arr, len(ids), render_special, ctypes.byref(p), ctypes.byref(n)))
        try:
            return ctypes.string_at(p, n.value).decode("utf-8", "replace")
        finally:
            lib.muse_string_free(p)

    @property
    def chat_template(self):
        """The model's own chat template (tokenizer.chat_template) or None. bos/eos token
        texts are filled from the tokenizer."""
        from .chat import ChatTemplate
        meta = self.metadata
        if "tokenizer.chat_template" not in meta:
            return None
        h = ctypes.c_void_p()
        check(lib.muse_model_chat_template(self._h(), ctypes.byref(h)))
        tokens = meta.get("tokenizer.ggml.tokens") or []

        def text(key):
            i = meta.get(key)
            return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else ""
        return ChatTemplate(meta["tokenizer.chat_template"], _handle=h, bos_token=text("tokenizer.ggml.bos_token_id"),
                            eos_token=text("tokenizer.ggml.eos_token_id"))

    def image_tokens(self, image) -> int:
        """Embedding rows `image` (muse.Image) becomes for this model's vision projector."""
        n = ctypes.c_int64()
        check(lib.muse_model_image_tokens(self._h(), image._h(), ctypes.byref(n)))
        return int(n.value)

    def encode_image(self, image):
        """The projected embeddings of `image` (n_tokens x n_embd) the decoder receives, for
        inspection: a numpy float32 array when numpy is installed, else a list of rows."""
        n = self.image_tokens(image)
        buf = (ctypes.c_float * max(1, n * self.n_embd))()
        rows, embd = ctypes.c_int64(), ctypes.c_int64()
        check(lib.muse_model_encode_image(self._h(), image._h(), buf, n * self.n_embd, ctypes.byref(rows),
                                          ctypes.byref(embd)))
        r, d = int(rows.value), int(embd.value)
        try:
            import numpy as np
            return np.frombuffer(buf, dtype=np.float32, count=r * d).reshape(r, d).copy()
        except ImportError:
            return [list(buf[i * d:(i + 1) * d]) for i in range(r)]

    def chat_prompt(self, messages, *, thinking: str = "auto", effort=None, tools=None, variables=None,
                    template=None, thinking_budget=None, builtin_tools=None) -> str:
        """The prompt a chat turn would evaluate for `messages` (rendered with the chat template,
        thinking mode and effort applied to its variables)."""
        from . import conversation
        gp, cp, keep = conversation._params(
            None, thinking=thinking, thinking_budget=thinking_budget, min_thinking_tokens=0,
            effort=effort, wrap_up=None, continue_cue=None, tools=tools, variables=variables, template=template,
            reuse_prefix=True, max_tokens=1, seed=0, sampling={}, builtin_tools=builtin_tools)
        out = ctypes.c_void_p()
        check(lib.muse_model_chat_prompt(self._h(), conversation._messages_json(messages), ctypes.byref(cp),
                                         ctypes.byref(gp), ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode("utf-8", "replace")
        finally:
            lib.muse_string_free(out)

    def session(self, n_ctx: int = 4096, n_seq_max: int = 1, seed: int = 0, *, n_batch: int = 512,
                kv_type: str = "f16", swa_full: bool = False) -> "Session":
        """A new inference session (KV cache) over this model. swa_full keeps every position in
        the sliding-window layers' cache, so sequences can be cut back anywhere."""
        from .session import Session
        return Session(self, n_ctx=n_ctx, n_seq_max=n_seq_max, seed=seed, n_batch=n_batch, kv_type=kv_type,
                       swa_full=swa_full)

    def __repr__(self) -> str:
        if not self._handle:
            return "<muse.Model (closed)>"
        return f"<muse.Model arch={self.arch!r} n_layer={self.n_layer} n_vocab={self.n_vocab}>"
