"""Contemplating mode on the nano model, run by muse's C++ engine: N agents answer each
held-out episode in one batched request and vote (or DeepConf-weighted vote), against one
agent at the same temperature. Same held-out set and prompt protocol as eval_muse.py.

Each row: accuracy (count/attribute questions and all kinds), mean tokens generated per
request (all agents together), and mean wall time per request on this machine.

    PYTHONPATH=../../bindings/python MUSE_LIBRARY=../../build/src/libmuse.so \\
      .venv/bin/python tools/nano/eval/contemplate_eval.py models/muse-glimmer-nano.gguf \\
      models/muse-glimmer-nano-mmproj.gguf --n 250 --json docs/nano-contemplate.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import muse  # noqa: E402
from eval_muse import episode_messages  # noqa: E402
from heldout import heldout  # noqa: E402


def run(session, smp, agents, aggregate, temperature, budget, seed):
    msgs, images = episode_messages(smp)
    kw = dict(tools=smp["tools"] or None, max_tokens=400, reuse_prefix=False, images=images,
              variables={"current_date": smp["date"].isoformat()}, thinking="on",
              temperature=temperature, seed=seed)
    if budget is not None:
        kw.update(thinking_budget=budget, wrap_up="")
    if agents > 1:
        kw.update(agents=agents, aggregate=aggregate)
    session.seq_remove(-1)
    t = time.perf_counter()
    r = session.chat(msgs, **kw)
    wall = time.perf_counter() - t
    if agents > 1:
        tokens = sum(a.usage["completion_tokens"] for a in r.agents)
    else:
        tokens = r.usage["reasoning_tokens"] + r.usage["answer_tokens"]
    return r.answer.strip(), tokens, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("mmproj")
    ap.add_argument("--n", type=int, default=250)
    ap.add_argument("--agents", default="1,3,5,8")
    ap.add_argument("--aggregates", default="vote,weighted")
    ap.add_argument("--temperatures", default="0.7,1.0")
    ap.add_argument("--budgets", default="32,unlimited")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    m = muse.Model(a.model, mmproj=a.mmproj, threads=a.threads)
    n_max = max(int(x) for x in a.agents.split(","))
    s = m.session(n_ctx=2048 + 512 * n_max, n_seq_max=n_max)
    plain = heldout(a.n)
    rows = []
    for temperature in (float(x) for x in a.temperatures.split(",")):
        for budget_name in a.budgets.split(","):
            budget = None if budget_name == "unlimited" else int(budget_name)
            for agents in (int(x) for x in a.agents.split(",")):
                for aggregate in (a.aggregates.split(",") if agents > 1 else ["-"]):
                    per = defaultdict(lambda: [0, 0])
                    tokens, walls = [], []
                    for i, smp in enumerate(plain):
                        ans, toks, wall = run(s, smp, agents, aggregate, temperature, budget, seed=1000 + i)
                        ok = ans == smp["answer"]
                        group = "count_attr" if smp["qtype"] in ("count", "attribute") else smp["qtype"]
                        for g in (group, "all"):
                            per[g][0] += ok
                            per[g][1] += 1
                        tokens.append(toks)
                        walls.append(wall)
                    row = dict(temperature=temperature, budget=budget_name, agents=agents, aggregate=aggregate,
                               acc={g: round(h / t, 4) for g, (h, t) in sorted(per.items())},
                               n={g: t for g, (h, t) in sorted(per.items())},
                               mean_tokens=round(sum(tokens) / len(tokens), 1),
                               mean_wall_ms=round(1000 * sum(walls) / len(walls), 1))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
