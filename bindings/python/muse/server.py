"""muse-server from Python: find the executable (bundled in the installed package, or a
build tree of this checkout) and run it as a child process a program can stop.

    import muse
    with muse.serve("model.gguf", port=0, parallel=4) as srv:   # port 0: a free port
        print(srv.url)                                          # http://127.0.0.1:PORT
        ...                                                     # OpenAI-compatible routes
    # leaving the block sends SIGTERM: running requests finish, then the server exits

Command line: `python -m muse serve -m model.gguf --port 8080` (the arguments are muse-server's).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["Server", "ServerNotBuilt", "serve", "server_path"]


class ServerNotBuilt(RuntimeError):
    """No muse-server executable: the package (or build tree) was built without it."""


def server_path() -> str:
    """The muse-server executable: $MUSE_SERVER, the one bundled in this package, a build tree
    of the checkout this package sits in, then muse-server on PATH."""
    env = os.environ.get("MUSE_SERVER")
    if env:
        return env
    here = Path(__file__).resolve().parent
    bundled = here / "bin" / "muse-server"
    if bundled.is_file():
        return str(bundled)
    tried = [str(bundled)]
    root = here.parents[2] if len(here.parents) > 2 else here  # bindings/python/muse -> root
    if (root / "bindings" / "python" / "muse" / "server.py").is_file():
        for build in sorted(root.glob("build*")):
            p = build / "examples" / "muse-server"
            if p.is_file():
                return str(p)
        tried.append(str(root / "build*" / "examples" / "muse-server"))
    found = shutil.which("muse-server")
    if found:
        return found
    raise ServerNotBuilt(
        "muse-server was not built into this muse package (tried " + ", ".join(tried) + ", and PATH). "
        "It needs cpp-httplib when the package is built: install Debian's libcpp-httplib-dev, then "
        "reinstall (pip install --force-reinstall ./bindings/python), or set MUSE_SERVER to an executable.")


class Server:
    """A running muse-server child process. url/host/port once it listens; stop() ends it
    (SIGTERM: running requests get the server's grace period, then it exits)."""

    def __init__(self, argv: Sequence[str], *, timeout: float = 120.0, env: Optional[dict] = None):
        self.argv = list(argv)
        self.log: List[str] = []  # the server's stderr lines
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace", env=env)
        self.url = self.host = None
        self.port = None
        deadline = time.monotonic() + timeout
        # The server prints one line once the model is loaded and it listens (with the real port
        # when --port 0 was asked); nothing is served before that line.
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on (http://(\S+):(\d+))", line)
            if m:
                self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
                break
        if self.port is None:
            self.stop(timeout=5)
            raise RuntimeError("muse-server did not start (" + " ".join(self.argv) + "):\n" + "".join(self.log))
        # Keep draining stderr so a chatty server never blocks on a full pipe.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for line in iter(self.proc.stderr.readline, ""):
            self.log.append(line)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        return self.proc.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.running else f"exited {self.proc.returncode}"
        return f"<muse.Server {self.url} pid={self.proc.pid} {state}>"


def serve(model, *, mmproj=None, host: str = "127.0.0.1", port: int = 8080, timeout: float = 120.0,
          args: Sequence[str] = (), env: Optional[dict] = None, **options) -> Server:
    """Starts muse-server on `model` and returns once it listens (a Server; stop() it, or use it
    as a context manager). port=0 picks a free port (Server.port). Other keywords are
    muse-server options with dashes for underscores: parallel=4, ctx=2048, threads=2,
    api_key="...", alias="...", max_tokens=512; `args` are passed as they are."""
    argv = [server_path(), "-m", os.fspath(model), "--host", host, "--port", str(int(port))]
    if mmproj is not None:
        argv += ["--mmproj", os.fspath(mmproj)]
    for key, value in options.items():
        if value is not None:
            argv += ["--" + key.replace("_", "-"), str(value)]
    argv += list(args)
    return Server(argv, timeout=timeout, env=env)
