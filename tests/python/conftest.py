"""Shared pytest setup: where the library, shared/ data and generated models are."""
import os
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
