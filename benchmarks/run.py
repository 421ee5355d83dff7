"""Side-by-side decode/prefill benchmark: muse vs llama.cpp on the same GGUFs.

    .venv/bin/python benchmarks/run.py [--build build] [--models llama-0.5b,glimmer-slice]
                                       [--types F16,Q8_0] [--prompt 128] [--n 32] [--reps 3]
                                       [--markdown docs/PERFORMANCE-latest.md]

Models are generated once into BUILD/bench-models (random weights, realistic shapes).
llama.cpp runs through ../shared/peers/llamacpp (installed into .peers/llamacpp).
The roofline is bytes read per decoded token / measured memory bandwidth.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def memory_bandwidth_gbs(threads):
    """Read bandwidth with `threads` threads each summing its own 512 MiB array (numpy
    releases the GIL): what decode does with the weights, on every core."""
    from concurrent.futures import ThreadPoolExecutor
    arrays = [np.ones(512 * 1024 * 1024 // 8) for _ in range(threads)]
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(5):
            t = time.perf_counter()
            list(pool.map(np.sum, arrays))
            best = max(best, sum(a.nbytes for a in arrays) / (time.perf_counter() - t))
    return best / 1e9


def llamacpp_ref():
    ref = ROOT / ".peers" / "llamacpp" / "ref.mjs"
    if not ref.exists():
        installer = ROOT.parent / "shared" / "peers" / "llamacpp" / "install.sh"
        if not installer.exists():
            return None
        sh(["bash", str(installer), str(ROOT / ".peers" / "llamacpp")])
    return ref


def weight_bytes_per_token(path):
    """Bytes a decode step reads: every tensor except the embedding table (one row)."""
    import gguf
    r = gguf.GGUFReader(str(path))
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--models", default="llama-0.5b,glimmer-slice")
    ap.add_argument("--types", default="F16,Q8_0")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--markdown")
    args = ap.parse_args()
    build = Path(args.build)
    cache = build / "bench-models"
    cache.mkdir(parents=True, exist_ok=True)
    ref = llamacpp_ref()
    bw = memory_bandwidth_gbs(args.threads)
    print(f"memory read bandwidth ~{bw:.1f} GB/s, threads {args.threads}")
    rows = []
    for model in args.models.split(","):
        for typ in args.types.split(","):
            path = cache / f"{model}-{typ}.gguf"
            if not path.exists():
                print(f"generating {path.name} ...", flush=True)
                sh([str(build / "benchmarks" / "make-bench-model"), model, typ, str(path)])
            common = ["--prompt", str(args.prompt), "--n", str(args.n), "--reps", str(args.reps),
                      "--threads", str(args.threads)]
            m = json.loads(sh([str(build / "benchmarks" / "muse-bench"), str(path)] + common))
            l = json.loads(sh(["node", str(ref), "bench", str(path)] + common)) if ref else None
            roof = bw * 1e9 / weight_bytes_per_token(path)
            row = {"model": model, "type": typ, "muse_pp": m["prefill_tps"], "muse_tg": m["decode_tps"],
                   "roofline_tg": roof}
            if l:
                row.update(llama_pp=l.get("prefill_tps") or l.get("prefill"), llama_tg=l.get("decode_tps") or l.get("decode"),
                           llama_build=l.get("build_type"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| model | type | muse prefill t/s | llama.cpp prefill t/s | ratio | muse decode t/s | "
             "llama.cpp decode t/s | ratio | decode roofline t/s | muse % of roofline |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        lp, lt = r.get("llama_pp"), r.get("llama_tg")
        pp_ratio = fmt(r["muse_pp"] / lp if lp else None, ".2f")
        tg_ratio = fmt(r["muse_tg"] / lt if lt else None, ".2f")
        roof_pct = 100 * r["muse_tg"] / r["roofline_tg"]
        lines.append(f"| {r['model']} | {r['type']} | {r['muse_pp']:.1f} | {fmt(lp, '.1f')} | {pp_ratio}x | "
                     f"{r['muse_tg']:.2f} | {fmt(lt, '.2f')} | {tg_ratio}x | {r['roofline_tg']:.2f} | {roof_pct:.0f}% |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
