"""Side-by-side decode/prefill benchmark: muse vs llama.cpp on the same GGUFs.

    .venv/bin/python benchmarks/run.py [--build build] [--models llama-0.5b,glimmer-slice]
                                       [--types F16,Q8_0] [--prompt 128[,512]] [--n 32] [--reps 3]
                                       [--threads 2[,1]] [--markdown FILE.md] [--plot FILE.png]

Models are generated once into BUILD/bench-models (random weights, realistic shapes);
--models takes model:type pairs too (llama-360m:Q8_0) to add one type of one model.
llama.cpp runs through ../shared/peers/llamacpp: the prebuilt libraries (installed into
.peers/llamacpp) and, when it exists, a local build in .peers/llamacpp-native (its README says how
to make one). Every build runs each figure; muse is compared with the best of them, figure by
figure, and the table names the build that was best. Each figure is the best of --reps rounds
in which the engines take turns, one process (two repetitions) each.
The roofline is bytes read per decoded token / the read bandwidth that
BUILD/benchmarks/stream-probe measures with the same number of threads.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def memory_bandwidth_gbs(build, threads):
    """STREAM-style read bandwidth (benchmarks/stream-probe.c) with `threads` threads."""
    # 512 MiB per thread: this host's L3 is reported at 480 MB, and a read that fits there
    # measures the cache, not the memory the weights come from.
    out = json.loads(sh([str(build / "benchmarks" / "stream-probe"), "--threads", str(threads), "--mib", "512",
                         "--reps", "5"]))
    return out["read_gbs"]


def llamacpp_refs():
    """ref.mjs of every llama.cpp install: the prebuilt one (installed when missing) and a
    local build next to it."""
    refs = []
    ref = ROOT / ".peers" / "llamacpp" / "ref.mjs"
    if not ref.exists():
        installer = ROOT.parent / "shared" / "peers" / "llamacpp" / "install.sh"
        if installer.exists():
            sh(["bash", str(installer), str(ROOT / ".peers" / "llamacpp")])
    if ref.exists():
        refs.append(ref)
    native = ROOT / ".peers" / "llamacpp-native" / "ref.mjs"
    if native.exists():
        refs.append(native)
    return refs


def weight_bytes_per_token(path):
    """Bytes a decode step reads: every tensor except the embedding table (one row)."""
    import gguf
    r = gguf.GGUFReader(str(path))
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def plot(rows, path):
    """Ratios muse / llama.cpp, prefill and decode, one bar pair per configuration."""
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed (.venv/bin/pip install matplotlib)", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r.get("llama_pp") and r.get("llama_tg")]
    if not rows:
        return
    labels = [f"{r['model']}\n{r['type']} pp{r['prompt']} t{r['threads']}" for r in rows]
    pp = [r["muse_pp"] / r["llama_pp"] for r in rows]
    tg = [r["muse_tg"] / r["llama_tg"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows)), 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], pp, 0.4, label="prefill")
    ax.bar([x + 0.2 for x in xs], tg, 0.4, label="decode")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("muse / llama.cpp (tokens/s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def best_of(runs):
    """One engine's figures over its rounds: the best speeds, the fastest load, the largest
    peak RSS (the figure a user must provision for)."""
    out = dict(runs[0])
    out["prefill_tps"] = max(r["prefill_tps"] for r in runs)
    out["decode_tps"] = max(r["decode_tps"] for r in runs)
    if "load_s" in out:
        out["load_s"] = min(r["load_s"] for r in runs)
    if "peak_rss_mb" in out:
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return out


def warm_page_cache(path):
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--models", default="llama-0.5b,glimmer-slice")
    ap.add_argument("--types", default="F16,Q8_0")
    ap.add_argument("--prompt", default="128", help="prompt lengths, comma-separated")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default=str(os.cpu_count()), help="thread counts, comma-separated")
    ap.add_argument("--markdown")
    ap.add_argument("--plot")
    args = ap.parse_args()
    build = Path(args.build)
    cache = build / "bench-models"
    cache.mkdir(parents=True, exist_ok=True)
    refs = llamacpp_refs()
    threads_list = [int(t) for t in args.threads.split(",")]
    bw = {t: memory_bandwidth_gbs(build, t) for t in threads_list}
    for t in threads_list:
        print(f"memory read bandwidth {bw[t]:.1f} GB/s (stream-probe), threads {t}")
    configs = []
    for model in args.models.split(","):
        if ":" in model:
            configs.append(tuple(model.split(":", 1)))
        else:
            configs += [(model, typ) for typ in args.types.split(",")]
    rows = []
    for model, typ in configs:
        path = cache / f"{model}-{typ}.gguf"
        if not path.exists():
            print(f"generating {path.name} ...", flush=True)
            sh([str(build / "benchmarks" / "make-bench-model"), model, typ, str(path)])
        for threads in threads_list:
            for prompt in [int(p) for p in args.prompt.split(",")]:
                # Rounds alternate the engines (muse, then each llama.cpp build, one process
                # each) and every figure is the best of its rounds: this host's memory bandwidth
                # drifts by a third over minutes, and back-to-back blocks of repetitions gave
                # one engine a slow spell the other did not see (0.5B Q8_0 decode: 38 t/s in
                # such a block, 47-48 in muse-bench runs just after). Each run starts from a file
                # in the page cache: a cold read of the 1.5 GB Glimmer slice (the previous runs
                # evict it on this host) slowed its load 3-5x and its prefill by up to 40%.
                # Two repetitions per process, the better one kept: a process's first prompt
                # runs slower (muse, Glimmer slice, 512 tokens: 537 t/s against 800 on the next
                # prompt; see docs/PERFORMANCE.md, session 12).
                common = ["--prompt", str(prompt), "--n", str(args.n), "--reps", "2", "--threads", str(threads)]
                muse_runs, peer_runs = [], {ref: [] for ref in refs}
                for _ in range(args.reps):
                    warm_page_cache(path)
                    muse_runs.append(json.loads(sh([str(build / "benchmarks" / "muse-bench"), str(path)] + common)))
                    for ref in refs:
                        warm_page_cache(path)
                        peer_runs[ref].append(json.loads(sh(["node", str(ref), "bench", str(path)] + common)))
                m = best_of(muse_runs)
                peers = [best_of(r) for r in peer_runs.values()]
                roof = bw[threads] * 1e9 / weight_bytes_per_token(path)
                row = {"model": model, "type": typ, "threads": threads, "prompt": prompt,
                       "muse_pp": m["prefill_tps"], "muse_tg": m["decode_tps"], "roofline_tg": roof,
                       "load_s": m.get("load_s"), "peak_rss_mb": m.get("peak_rss_mb"),
                       "file_mb": path.stat().st_size / 2**20}
                if peers:
                    # The best build per figure (the prebuilt's AMX kernels win prefill on
                    # Sapphire Rapids, a native build may win decode on other CPUs).
                    pp = max(peers, key=lambda l: l.get("prefill_tps") or 0)
                    tg = max(peers, key=lambda l: l.get("decode_tps") or 0)
                    row.update(llama_pp=pp.get("prefill_tps"), llama_tg=tg.get("decode_tps"),
                               llama_pp_build=pp.get("build_type"), llama_tg_build=tg.get("build_type"),
                               llama_all={l.get("build_type"): [l.get("prefill_tps"), l.get("decode_tps")]
                                          for l in peers})
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = ["| model | type | threads | prompt | muse prefill t/s | llama.cpp prefill t/s (build) | ratio | "
             "muse decode t/s | llama.cpp decode t/s (build) | ratio | decode roofline t/s | muse % of roofline | "
             "muse load s | muse peak RSS MB (x file) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        lp, lt = r.get("llama_pp"), r.get("llama_tg")
        pp_ratio = fmt(r["muse_pp"] / lp if lp else None, ".2f")
        tg_ratio = fmt(r["muse_tg"] / lt if lt else None, ".2f")
        roof_pct = 100 * r["muse_tg"] / r["roofline_tg"]
        lpb, ltb = r.get("llama_pp_build") or "-", r.get("llama_tg_build") or "-"
        lines.append(f"| {r['model']} | {r['type']} | {r['threads']} | {r['prompt']} | {r['muse_pp']:.1f} | "
                     f"{fmt(lp, '.1f')} ({lpb}) | {pp_ratio}x | {r['muse_tg']:.2f} | {fmt(lt, '.2f')} ({ltb}) | "
                     f"{tg_ratio}x | "
                     f"{r['roofline_tg']:.2f} | {roof_pct:.0f}% | {fmt(r['load_s'], '.2f')} | "
                     f"{fmt(r['peak_rss_mb'], '.0f')} ({r['peak_rss_mb'] / r['file_mb']:.2f}x) |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    sys.exit(main())
