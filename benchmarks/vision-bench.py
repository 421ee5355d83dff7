#!/usr/bin/env python3
"""Vision encode time per image: muse vs PyTorch on the Muse Glimmer tower, in one run.

The tower has the real width of ../shared/docs/MUSE_GLIMMER.md §2 (n_embd 1536, 24 heads of 64,
n_ff 4·1536 = 6144 (the spec gives no value), patch 14, merge 2, position grid G = 32, adapter
6144 -> 4096 -> 4096 -> 6656) but only --layers layers (default 4: three windowed, one global).
A 448 x 448 input is a 32 x 32 patch grid (1024 tokens, one 32 x 32 window) -> 256 embeddings;
--size 896 gives 4096 tokens in four windows -> 1024 embeddings.

muse runs through tests' vision-encode tool (weights mmap'd from the GGUF, F32 or F16 as stored);
PyTorch runs tools/nano/model.py's VisionModel (an independent implementation of the same tower)
in float32 with the same weights (F16 files are widened to float32 for PyTorch, whose CPU half
matmuls are not a fair baseline). Both use --threads threads; the two alternate for --rounds
rounds of --repeat timed runs (after one warm-up per process) and the medians are reported with
the load average seen, for wall time and for process CPU time (which a machine shared with other
jobs disturbs much less). muse's embeddings are compared with PyTorch's float32 ones: max|muse - torch| /
max|torch| over all values. Where the CPU has fast BF16, muse's vision matmuls use it (the tool
reports "bf16": true); --with-f32 also times muse with MUSE_VISION_BF16=0 (its F32 pass) each round.

    .venv/bin/python benchmarks/vision-bench.py --tool build/tests/vision-encode [--types F32,F16]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
import tiny_mmproj as tm  # noqa: E402

TORCH_SCRIPT = textwrap.dedent("""
    import json, statistics, sys, time
    import numpy as np, torch
    nano, mmproj, img_path, size, threads, repeat, out = sys.argv[1:8]
    size, threads, repeat = int(size), int(threads), int(repeat)
    sys.path.insert(0, nano)
    torch.set_num_threads(threads)
    from export import load_vision_from_mmproj
    m = load_vision_from_mmproj(mmproj)
    img = torch.from_numpy(np.fromfile(img_path, np.float32).reshape(1, 3, size, size))
    times, cpu = [], []
    with torch.inference_mode():
        for i in range(repeat + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            z = m(img)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    z[0].numpy().astype(np.float32).tofile(out)
    print(json.dumps({"encode_ms": times, "cpu_ms": cpu}))
""")


def find_tool(arg):
    for cand in ([arg] if arg else []) + [os.environ.get("MUSE_VISION_ENCODE"),
                                           ROOT / "build" / "tests" / "vision-encode"]:
        if cand and Path(cand).exists():
            return Path(cand)
    sys.exit("vision-encode not found: build it (target vision-encode) and pass --tool")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", help="the vision-encode binary")
    ap.add_argument("--torch-python", default=str(ROOT / "tools" / "nano" / ".venv" / "bin" / "python"))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per process (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="muse / PyTorch processes, alternating")
    ap.add_argument("--types", default="F32,F16")
    ap.add_argument("--workdir", help="where the GGUFs go (default: a temporary folder)")
    ap.add_argument("--with-f32", action="store_true", help="also time muse's F32 pass (MUSE_VISION_BF16=0)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    tool = find_tool(args.tool)
    spec = tm.MmprojSpec("muse-glimmer", n_embd=1536, n_layer=args.layers, n_head=24, n_ff=6144, patch=14,
                         image_size=32 * 14 * 2, pos_grid=32, merge=2, adapter=(4096, 4096), n_embd_out=6656)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vision-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(0).standard_normal((3, args.size, args.size)).astype(np.float32)
    img_path = work / "image.f32"
    img.tofile(img_path)
    (work / "torch_encode.py").write_text(TORCH_SCRIPT)
    print(f"tower: n_embd 1536, 24 heads, n_ff 6144, {args.layers} layers, patch 14, G 32, adapter 6144-4096-4096-6656;"
          f" input {args.size}x{args.size}; {args.threads} threads; median of {args.rounds} x {args.repeat} runs"
          f" (each process warms up once first)")
    weights = tm.make_weights(spec, seed=0)
    results = []
    for wtype in args.types.split(","):
        path = work / f"glimmer-{wtype.lower()}.gguf"
        if not path.exists():
            t0 = time.time()
            tm.write_mmproj(path, spec, wtype, weights=weights)
            print(f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.time() - t0:.0f} s")
        load = os.getloadavg()
        out_m, out_t = work / f"muse-{wtype}.f32", work / f"torch-{wtype}.f32"
        # PyTorch's OpenMP team waits passively, as tools/nano runs it on this shared machine
        # (spinning barriers lose badly when other jobs hold the cores); muse's pool sleeps too.
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
        muse_runs, torch_runs, muse_cpu, torch_cpu, f32_runs, f32_cpu = [], [], [], [], [], []
        out_f = work / f"muse-f32pass-{wtype}.f32"

        def run_muse(out, muse_env):
            p = subprocess.run([str(tool), str(path), "--image", str(img_path), "--size", f"{args.size}x{args.size}",
                                "--out", str(out), "--threads", str(args.threads), "--repeat",
                                str(args.repeat + 1)], capture_output=True, text=True, env=muse_env)
            if p.returncode:
                sys.exit(p.stderr)
            return json.loads(p.stdout)

        for _ in range(args.rounds):  # alternate, so that load changes hit both sides alike
            rm = run_muse(out_m, dict(os.environ))
            muse_runs += rm["encode_ms"][1:]
            muse_cpu += rm["cpu_ms"][1:]
            if args.with_f32:
                rf = run_muse(out_f, dict(os.environ, MUSE_VISION_BF16="0"))
                f32_runs += rf["encode_ms"][1:]
                f32_cpu += rf["cpu_ms"][1:]
            p = subprocess.run([args.torch_python, str(work / "torch_encode.py"), str(ROOT / "tools" / "nano"),
                                str(path), str(img_path), str(args.size), str(args.threads), str(args.repeat),
                                str(out_t)], capture_output=True, text=True, env=env)
            if p.returncode:
                sys.exit(p.stderr)
            rt = json.loads(p.stdout.strip().splitlines()[-1])
            torch_runs += rt["encode_ms"][1:]
            torch_cpu += rt["cpu_ms"][1:]
        muse_ms, torch_ms = statistics.median(muse_runs), statistics.median(torch_runs)
        muse_c, torch_c = statistics.median(muse_cpu), statistics.median(torch_cpu)
        a = np.fromfile(out_m, np.float32).astype(np.float64)
        b = np.fromfile(out_t, np.float32).astype(np.float64)
        rel = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        norm_rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        row = dict(weights=wtype, size=args.size, bf16=rm.get("bf16"), tokens=rm["n_tokens"], muse_ms=muse_ms,
                   torch_ms=torch_ms, norm_rel_err=norm_rel,
                   ratio=muse_ms / torch_ms, muse_cpu_ms=muse_c, torch_cpu_ms=torch_c, cpu_ratio=muse_c / torch_c,
                   rel_err=rel, muse_runs=muse_runs, torch_runs=torch_runs, muse_cpu=muse_cpu, torch_cpu=torch_cpu,
                   loadavg_before=load, loadavg_after=os.getloadavg())
        if args.with_f32:
            c = np.fromfile(out_f, np.float32).astype(np.float64)
            row.update(muse_f32_ms=statistics.median(f32_runs), muse_f32_cpu_ms=statistics.median(f32_cpu),
                       muse_f32_rel_err=float(np.max(np.abs(c - b)) / np.max(np.abs(b))), muse_f32_runs=f32_runs,
                       muse_f32_cpu=f32_cpu)
        results.append(row)
        print(f"{wtype}: wall  muse {muse_ms:8.1f} ms  PyTorch {torch_ms:8.1f} ms  "
              f"muse/PyTorch {muse_ms / torch_ms:5.2f}\n"
              f"     CPU   muse {muse_c:8.1f} ms  PyTorch {torch_c:8.1f} ms  muse/PyTorch {muse_c / torch_c:5.2f}\n"
              f"     ({rm['n_tokens']} embeddings; muse {'BF16' if rm.get('bf16') else 'F32'} vs PyTorch F32: "
              f"max rel diff {rel:.1e}, norm rel {norm_rel:.1e}; load avg {load[0]:.2f} -> {os.getloadavg()[0]:.2f})")
        if args.with_f32:
            print(f"     muse F32 pass: wall {row['muse_f32_ms']:8.1f} ms  CPU {row['muse_f32_cpu_ms']:8.1f} ms  "
                  f"(max rel diff vs PyTorch {row['muse_f32_rel_err']:.1e})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
