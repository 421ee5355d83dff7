"""Plots + markdown table for docs/NANO.md from an eval.py summary and the training log.

    python eval/plots.py out/full/eval.json out/full/train_log.jsonl --out ../../docs/images
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SETTINGS = ["off", "8", "16", "32", "64", "unlimited", "adaptive"]
GROUPS = ["count_attr", "compare", "spatial", "arith", "all"]


def table(s):
    rows = ["| setting | " + " | ".join(GROUPS) + " | mean reasoning tokens |",
            "|---|" + "---|" * len(GROUPS) + "---|"]
    for k in SETTINGS:
        if k not in s:
            continue
        r = s[k]
        name = {"off": "thinking off", "unlimited": "unlimited", "adaptive": "adaptive early exit"}.get(k, f"budget {k}")
        cells = [f"{100 * r['acc'].get(g, float('nan')):.1f} (n={r['n'].get(g, 0)})" for g in GROUPS]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {r['mean_reasoning_tokens']:.1f} |")
    if "tools_unlimited" in s:
        for k, r in s["tools_unlimited"].items():
            rows.append(f"| tool episodes: {k} (unlimited) | " + " | ".join("" for _ in GROUPS[:-1])
                        + f" | {100 * r['acc']:.1f} (n={r['n']}) | |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_json", help="eval.py --json summary; several comma-separated ones are merged "
                                      "(settings run in parallel processes)")
    ap.add_argument("train_log")
    ap.add_argument("--out", required=True)
    ap.add_argument("--merged", default="", help="also write the merged summary here")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    s = {}
    for p in a.eval_json.split(","):
        s.update(json.load(open(p)))
    if a.merged:
        with open(a.merged, "w") as f:
            json.dump(s, f, indent=1)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for g, st in (("count_attr", "o-"), ("all", "s--"), ("arith", "^:"), ("compare", "v:"), ("spatial", "d:")):
        xs, ys, labels = [], [], []
        for k in SETTINGS[:-1]:
            if k in s:
                xs.append(s[k]["mean_reasoning_tokens"])
                ys.append(100 * s[k]["acc"].get(g, float("nan")))
                labels.append(k)
        ax.plot(xs, ys, st, label=g)
        if g == "count_attr":
            for x, y, t in zip(xs, ys, labels):
                ax.annotate(t, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
            if "adaptive" in s:
                ax.plot([s["adaptive"]["mean_reasoning_tokens"]], [100 * s["adaptive"]["acc"]["count_attr"]], "k*",
                        ms=10, label="count_attr, adaptive exit")
    ax.set_xlabel("mean reasoning tokens")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("muse-glimmer-nano: accuracy vs thinking budget (PyTorch)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "nano-budget.png"), dpi=120)

    by_step = {}
    for l in open(a.train_log):                 # a resumed run appends: keep the last record per step
        if l.strip():
            r = json.loads(l)
            by_step[r["step"]] = r
    recs = [by_step[k] for k in sorted(by_step)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([r["step"] for r in recs], [r["loss_ema"] for r in recs], label="text loss (EMA)")
    ax.plot([r["step"] for r in recs], [r["aux"] for r in recs], label="auxiliary cell loss", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in recs], [r["lr"] for r in recs], "k:", lw=1, label="LR")
    ax2.set_ylabel("learning rate")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("training (2 shared CPU cores)")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "nano-training.png"), dpi=120)
    print(table(s))


if __name__ == "__main__":
    main()
