"""The binding's ctypes structs match the library's: every params struct's _init writes its
C sizeof into struct_size, which must equal ctypes.sizeof of the binding's mirror (a smaller
mirror would let _init write past the Python buffer)."""
import ctypes

from muse import _ffi
from muse._ffi import lib


def c_size(init_name):
    buf = (ctypes.c_uint8 * 4096)()  # far larger than any params struct
    getattr(lib, init_name)(ctypes.cast(buf, ctypes.c_void_p))
    return ctypes.c_uint32.from_buffer(buf).value


def test_params_structs_match_the_library():
    for init, mirror in [("muse_model_params_init", _ffi.ModelParams),
                         ("muse_session_params_init", _ffi.SessionParams),
                         ("muse_sampling_params_init", _ffi.SamplingParams),
                         ("muse_generate_params_init", _ffi.GenerateParams),
                         ("muse_chat_params_init", _ffi.ChatParams),
                         ("muse_image_params_init", _ffi.ImageParams)]:
        fn = getattr(lib, init)
        argtypes = fn.argtypes
        fn.argtypes = [ctypes.c_void_p]
        try:
            assert c_size(init) == ctypes.sizeof(mirror), f"{mirror.__name__} differs from C ({init})"
        finally:
            fn.argtypes = argtypes
