"""python -m muse: the installed package's command line.

    python -m muse serve -m MODEL.gguf [muse-server options]   run the bundled muse-server
    python -m muse info MODEL.gguf                              the model's architecture and sizes
    python -m muse generate -m MODEL.gguf -p PROMPT [-n 64]    greedy (or --temp) text completion
    python -m muse version                                      library version and CPU features
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _serve(argv):
    from .server import ServerNotBuilt, server_path
    try:
        exe = server_path()
    except ServerNotBuilt as e:
        print(f"muse: {e}", file=sys.stderr)
        return 2
    # The server replaces this process, so signals (Ctrl-C, SIGTERM) reach it directly.
    os.execv(exe, [exe, *argv])


def _info(a):
    import muse
    m = muse.Model(a.model, vocab_only=True)
    info = {"path": a.model, "arch": m.arch, "n_layer": m.n_layer, "n_vocab": m.n_vocab,
            "n_tensors": len(m.tensors), "name": m.metadata.get("general.name")}
    print(json.dumps(info, indent=2))
    return 0


def _generate(a):
    import muse
    m = muse.Model(a.model, threads=a.threads)
    s = m.session(n_ctx=a.ctx)
    for piece in s.generate(a.prompt, a.n, temperature=a.temp, seed=a.seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _version(_a):
    import muse
    from . import _ffi
    print(json.dumps({"version": muse.version(), "abi_version": muse.abi_version(),
                      "library": getattr(_ffi.lib, "_name", None), "system": muse.system_info()}, indent=2))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "serve":  # everything after "serve" is muse-server's own command line
        return _serve(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m muse", description=__doc__.split("\n")[0],
                                 epilog="serve: python -m muse serve -m MODEL.gguf [--port N ...] "
                                        "(muse-server's options; `serve --help` lists them)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run muse-server (its options follow)")
    p = sub.add_parser("info", help="a model's architecture and sizes")
    p.add_argument("model")
    p = sub.add_parser("generate", help="text completion")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-p", "--prompt", required=True)
    p.add_argument("-n", type=int, default=64, help="tokens to generate")
    p.add_argument("--temp", type=float, default=0.0, help="temperature (0: greedy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None)
    sub.add_parser("version", help="library version, ABI and CPU features")
    a = ap.parse_args(argv)
    return {"info": _info, "generate": _generate, "version": _version}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
