"""Shared pytest setup: where the library, shared/ data and generated models are."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))


def shared_dir() -> Path:
    return Path(os.environ.get("MUSE_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture
def shared():
    d = shared_dir()
    if not (d / "vocab").is_dir():
        pytest.skip(f"needs ../shared (not found at {d}); set MUSE_SHARED_DIR")
    return d


def make_chat_model(tmp_path_factory, kind):
    """A tiny random chat model of tests/chat-models.h ("atem" or "think"), written by the
    build's make-chat-model tool (found next to MUSE_LIBRARY)."""
    import muse
    tool = None
    lib = os.environ.get("MUSE_LIBRARY")
    for parent in (Path(lib).resolve().parents if lib else []):
        if (parent / "tests" / "make-chat-model").exists():
            tool = parent / "tests" / "make-chat-model"
            break
    if tool is None:
        pytest.skip("make-chat-model not found next to MUSE_LIBRARY")
    path = tmp_path_factory.mktemp("chat") / f"{kind}.gguf"
    subprocess.run([str(tool), str(path), kind], check=True)
    return muse.Model(str(path))


@pytest.fixture(scope="module", params=["atem", "think"])
def chat_model(request, tmp_path_factory):
    """(kind, model) for both chat formats."""
    return request.param, make_chat_model(tmp_path_factory, request.param)
