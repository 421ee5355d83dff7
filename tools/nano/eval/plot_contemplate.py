"""Accuracy against wall time of the contemplating rows (contemplate_eval.py's JSON), and the
markdown table for docs/NANO.md.

    .venv/bin/python tools/nano/eval/plot_contemplate.py docs/data/nano-contemplate.json docs/images
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(r):
    return "1 agent" if r["agents"] == 1 else f'{r["agents"]} {r["aggregate"]}'


def main():
    rows = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in ((axes[0], "count_attr", "count / attribute questions"), (axes[1], "all", "all kinds")):
        for (t, b), marker in zip(sorted({(r["temperature"], r["budget"]) for r in rows}), "osD^v<>"):
            group = [r for r in rows if r["temperature"] == t and r["budget"] == b]
            for agg, style in (("vote", "-"), ("weighted", "--")):
                line = sorted((r for r in group if r["agents"] == 1 or r["aggregate"] == agg), key=lambda r: r["agents"])
                ax.plot([r["mean_wall_ms"] for r in line], [100 * r["acc"][key] for r in line], style, marker=marker,
                        label=f"T {t}, budget {b}, {agg}")
                for r in line:
                    ax.annotate(str(r["agents"]), (r["mean_wall_ms"], 100 * r["acc"][key]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
        ax.set_title(title)
        ax.set_xlabel("mean wall time per request (ms, 2 threads)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("muse-glimmer-nano: N agents (numbers at the points) vs one agent, muse's C++ engine")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "nano-contemplate.png"), dpi=120)
    print("| temperature | budget | agents | aggregate | count_attr | all | mean tokens / request | mean wall ms | "
          "wall vs 1 agent |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(x for x in rows if x["temperature"] == r["temperature"] and x["budget"] == r["budget"]
                    and x["agents"] == 1)
        print(f'| {r["temperature"]} | {r["budget"]} | {r["agents"]} | {r["aggregate"]} | '
              f'{100 * r["acc"]["count_attr"]:.1f} | {100 * r["acc"]["all"]:.1f} | {r["mean_tokens"]:.0f} | '
              f'{r["mean_wall_ms"]:.0f} | {r["mean_wall_ms"] / base["mean_wall_ms"]:.2f}x |')


if __name__ == "__main__":
    main()
