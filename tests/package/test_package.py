"""The pip package: a wheel built from bindings/python (scikit-build-core driving the project's
CMake) installs into a fresh virtual environment, and there, with no PYTHONPATH, MUSE_LIBRARY or
checkout in sight, `import muse` loads the bundled libmuse, runs the nano model exactly as the
build tree's library does, and `python -m muse serve` / `muse.serve()` run the bundled muse-server.

Environment (tests/package.cmake sets it):
  MUSE_PACKAGE_BUILD_DIR  CMake build tree the wheel build uses. ctest passes the Release tree
                          itself, whose libmuse and muse-server are already built, so only the
                          configure and install steps run; unset: a fresh tree (a full build).
  MUSE_LIBRARY            the build tree's libmuse, the reference the package is compared with
  MUSE_SERVER_BUILT       1 when the tree has muse-server (cpp-httplib found), else 0
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NANO = ROOT / "models" / "muse-glimmer-nano.gguf"
PROMPT = "How many red shapes are there?"
N_TOKENS = 16
SERVER_BUILT = os.environ.get("MUSE_SERVER_BUILT", "1") == "1"


def clean_env(**extra):
    """The environment of a user who only ran pip install: nothing pointing into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MUSE_LIBRARY", "MUSE_SERVER", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def cache_entry(build_dir: Path, name: str):
    """(type, value) of a CMakeCache.txt entry, or None."""
    cache = build_dir / "CMakeCache.txt"
    if cache.is_file():
        m = re.search(rf"^{re.escape(name)}:([A-Z]+)=(.*)$", cache.read_text(), re.M)
        if m:
            return m.group(1), m.group(2)
    return None


def restore_tree(build_dir: Path, saved):
    """Undoes what the wheel build wrote into a shared tree's cache: scikit-build-core configures
    with the wheel's staging prefix, its FindPython module path and SKBUILD* entries, which an
    ordinary `cmake --install` of that tree must not inherit."""
    args = ["cmake", "-U", "SKBUILD*"]
    for name, entry in saved.items():
        args += [f"-D{name}:{entry[0]}={entry[1]}"] if entry else ["-U", name]
    r = subprocess.run(args + [str(build_dir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    (build_dir / "CMakeInit.txt").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """(venv python, wheel path, seconds the wheel build took)."""
    if not NANO.is_file():
        pytest.skip(f"the bundled model is missing ({NANO})")
    try:
        import scikit_build_core  # noqa: F401  (the build backend, from tests/requirements.txt)
    except ImportError:
        pytest.skip("scikit-build-core is not installed (pip install -r tests/requirements.txt)")
    work = tmp_path_factory.mktemp("package")
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
           "--disable-pip-version-check", "-w", str(work / "wheels")]
    build_dir = os.environ.get("MUSE_PACKAGE_BUILD_DIR")
    saved = None
    if build_dir:
        build_dir = Path(build_dir)
        cmd += ["-C", f"build-dir={build_dir}"]
        gen = cache_entry(build_dir, "CMAKE_GENERATOR")
        if gen:  # an existing tree can only be reconfigured with its own generator
            env["CMAKE_GENERATOR"] = gen[1]
        saved = {name: cache_entry(build_dir, name) for name in ("CMAKE_INSTALL_PREFIX", "CMAKE_MODULE_PATH")}
    cmd.append(str(ROOT / "bindings" / "python"))
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        if saved is not None:
            restore_tree(build_dir, saved)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"wheel build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    wheels = list((work / "wheels").glob("muse-*.whl"))
    assert len(wheels) == 1, wheels
    print(f"\nwheel {wheels[0].name} built in {seconds:.1f} s")
    # A clean virtual environment: no system site-packages, no access to the project's .venv.
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    py = work / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", str(wheels[0])],
                   check=True, env=clean_env())
    return py, wheels[0], seconds


def run_in_venv(py, code, cwd, timeout=300):
    r = subprocess.run([str(py), "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def reference_generation():
    """The same greedy tokens through the build tree's library (MUSE_LIBRARY, the checkout's binding)."""
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    import muse
    m = muse.Model(str(NANO), threads=1)
    s = m.session(n_ctx=512)
    return m.tokenize(PROMPT, add_special=True), "".join(s.generate(PROMPT, N_TOKENS, temperature=0.0)), muse.version()


def test_wheel_contents(venv):
    import zipfile
    _, wheel, _ = venv
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "muse/lib/libmuse.so.0" in names
    assert "muse/__init__.py" in names and "muse/_ffi.py" in names and "muse/__main__.py" in names
    assert ("muse/bin/muse-server" in names) == SERVER_BUILT
    # Only the library and the server: no headers, CMake package files or other programs.
    assert not [n for n in names if n.startswith("muse/include") or n.endswith(".cmake") or "muse-cli" in n]


def test_import_runs_nano_like_the_build_tree(venv, tmp_path):
    py, wheel, _ = venv
    code = f"""
import importlib.metadata, json, muse
from muse import _ffi
m = muse.Model({str(NANO)!r}, threads=1)
s = m.session(n_ctx=512)
text = "".join(s.generate({PROMPT!r}, {N_TOKENS}, temperature=0.0))
print(json.dumps({{"file": muse.__file__, "lib": _ffi.lib._name, "version": muse.version(),
                  "dist_version": importlib.metadata.version("muse"), "arch": m.arch,
                  "tokens": m.tokenize({PROMPT!r}, add_special=True), "text": text}}))
"""
    got = run_in_venv(py, code, cwd=tmp_path)
    venv_dir = py.parent.parent
    # Loaded from the installed package, not from the checkout.
    assert Path(got["file"]).is_relative_to(venv_dir), got["file"]
    assert Path(got["lib"]) == Path(got["file"]).parent / "lib" / "libmuse.so.0", got["lib"]
    assert got["arch"] == "muse-glimmer"
    tokens, text, version = reference_generation()
    assert got["tokens"] == tokens
    assert got["text"] == text and text.strip(), (got["text"], text)
    # One version: CMake's project() is the package's and the library's.
    cmake_version = re.search(r"project\(muse\s+VERSION\s+([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert got["version"] == got["dist_version"] == version == cmake_version
    assert f"muse-{cmake_version}-" in wheel.name


def test_python_m_muse_serve(venv, tmp_path):
    py, _, _ = venv
    cmd = [str(py), "-m", "muse", "serve", "-m", str(NANO), "--port", "0", "--parallel", "1", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        if not SERVER_BUILT:
            err = proc.communicate(timeout=60)[1]
            assert proc.returncode == 2 and "muse-server was not built" in err, err
            return
        port, log = None, []
        deadline = time.monotonic() + 120
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "".join(log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as r:
            assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not SERVER_BUILT, reason="muse-server was not built (no cpp-httplib)")
def test_muse_serve_handle(venv, tmp_path):
    py, _, _ = venv
    code = f"""
import json, urllib.request, muse
srv = muse.serve({str(NANO)!r}, port=0, parallel=1, threads=1, alias="nano")
with urllib.request.urlopen(srv.url + "/v1/models", timeout=30) as r:
    models = json.loads(r.read())
body = json.dumps({{"model": "nano", "messages": [{{"role": "user", "content": {PROMPT!r}}}],
                   "max_tokens": 8, "temperature": 0, "thinking": "off"}}).encode()
req = urllib.request.Request(srv.url + "/v1/chat/completions", data=body, headers={{"Content-Type": "application/json"}})
with urllib.request.urlopen(req, timeout=60) as r:
    chat = json.loads(r.read())
exe = srv.argv[0]
code = srv.stop()
print(json.dumps({{"models": models, "chat": chat, "exe": exe, "code": code, "running": srv.running}}))
"""
    got = run_in_venv(py, code, cwd=tmp_path)
    # The server bundled in the installed package, not a build tree's.
    exe = Path(got["exe"])
    assert exe.is_relative_to(py.parent.parent) and exe.parts[-3:] == ("muse", "bin", "muse-server"), exe
    assert [m["id"] for m in got["models"]["data"]] == ["nano"]
    assert got["chat"]["choices"][0]["message"]["content"].strip()
    assert got["code"] == 0 and got["running"] is False


def test_serve_without_server_says_so(venv, tmp_path):
    """A package built without cpp-httplib has no muse-server: `python -m muse serve` must say
    so plainly. Simulated by removing the bundled server from this throwaway environment (this
    test runs last in the module)."""
    py, _, _ = venv
    bundled = next(py.parent.parent.glob("lib/python*/site-packages/muse/bin/muse-server"), None)
    if bundled is not None:
        bundled.unlink()
    env = clean_env(PATH=f"{py.parent}:/usr/bin:/bin")  # no other muse-server on PATH either
    r = subprocess.run([str(py), "-m", "muse", "serve", "-m", str(NANO)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert "muse-server was not built into this muse package" in r.stderr and "libcpp-httplib-dev" in r.stderr
