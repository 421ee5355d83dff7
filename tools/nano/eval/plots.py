"""Plots + markdown tables for docs/NANO.md from eval.py summaries and the training logs.

    python eval/plots.py out/full/eval.json out/full/train_log.jsonl --out ../../docs/images \
        [--muse out/full/eval_muse.json] [--perception-log out/vision/perception_log.jsonl]

The training log argument may name several consecutive stages (comma-separated); their steps
are laid end to end, with a dotted line where a stage starts.
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


def setting_rows(s, with_n=True):
    """(setting, row name, accuracy cells, mean reasoning tokens) for the settings present in s."""
    for k in SETTINGS:
        if k not in s:
            continue
        r = s[k]
        name = {"off": "thinking off", "unlimited": "unlimited", "adaptive": "adaptive early exit"}.get(k, f"budget {k}")
        cells = [f"{100 * r['acc'].get(g, float('nan')):.1f}" + (f" (n={r['n'].get(g, 0)})" if with_n else "")
                 for g in GROUPS]
        yield k, name, cells, r["mean_reasoning_tokens"]


def table(s):
    rows = ["| setting | " + " | ".join(GROUPS) + " | mean reasoning tokens |",
            "|---|" + "---|" * len(GROUPS) + "---|"]
    for _, name, cells, toks in setting_rows(s):
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {toks:.1f} |")
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
    ap.add_argument("--muse", default="", help="eval_muse.py summary: print its table against the PyTorch one")
    ap.add_argument("--perception-log", default="", help="perception.py log: draw nano-perception.png")
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

    recs, starts, offset = [], [], 0
    for path in a.train_log.split(","):
        by_step = {}
        for l in open(path):                    # a resumed run appends: keep the last record per step
            if l.strip():
                r = json.loads(l)
                by_step[r["step"]] = r
        stage = [dict(by_step[k], step=k + offset) for k in sorted(by_step)]
        if recs:
            starts.append(offset)
        recs += stage
        offset = stage[-1]["step"] if stage else offset
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for x in starts:
        ax.axvline(x, color="gray", ls=":", lw=1)
    ax.plot([r["step"] for r in recs], [r["loss_ema"] for r in recs], label="text loss (EMA)")
    ax.plot([r["step"] for r in recs], [r["aux"] for r in recs], label="auxiliary cell loss", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in recs], [r["lr"] for r in recs], "k:", lw=1, label="LR")
    ax2.set_ylabel("learning rate")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("training (2 CPU cores; dotted: a new stage)")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "nano-training.png"), dpi=120)
    print(table(s))
    if a.muse:
        mu = json.load(open(a.muse))
        print()
        print(muse_table(mu, s))
    if a.perception_log:
        perception_plot(a.perception_log, a.out)


def muse_table(mu, torch_summary):
    """The same held-out set on muse's engine, with the difference to the PyTorch harness."""
    rows = ["| setting (muse engine) | " + " | ".join(GROUPS) + " | mean reasoning tokens | count_attr vs PyTorch |",
            "|---|" + "---|" * len(GROUPS) + "---|---|"]
    for k, name, cells, toks in setting_rows(mu, with_n=False):
        diff = ""
        if k in torch_summary:
            d = 100 * (mu[k]["acc"]["count_attr"] - torch_summary[k]["acc"]["count_attr"])
            diff = f"{d:+.1f} points"
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {toks:.1f} | {diff} |")
    return "\n".join(rows)


def perception_plot(path, out):
    recs = [json.loads(l) for l in open(path) if l.strip()]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, st in (("shape_small", "o-"), ("shape_big", "s-"), ("color", ":"), ("size", "--")):
        ax.plot([r["step"] for r in recs], [100 * r[key] for r in recs], st, ms=3, label=key)
    ax.set_xlabel("perception step (32 scenes each)")
    ax.set_ylabel("held-out cell accuracy (%)")
    ax.set_ylim(40, 101)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in recs], [r["lr"] for r in recs], "k:", lw=1)
    ax2.set_ylabel("learning rate")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("vision tower pre-training (auxiliary classifier, 300 held-out scenes)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "nano-perception.png"), dpi=120)


if __name__ == "__main__":
    main()
