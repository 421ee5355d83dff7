"""The nano evaluation run by muse's C++ engine (through the Python binding) on the exported
GGUF pair, with the same held-out set as eval.py (world seeds 900_000_000 + i).

Settings map onto muse's thinking controller, with the same protocol as the PyTorch harness:
  off         Session.chat(thinking="off")  (template "Reasoning strength: none." + forced answer header)
  B           thinking="on", thinking_budget=B, wrap_up="" (the answer header is forced at B tokens)
  unlimited   thinking="on", no budget
  adaptive    thinking="on" + adaptive early exit: a probe every 2 reasoning tokens, stop once two
              probes in a row agree with first-token probability >= --threshold

The prompt's "Current date" line is the episode's own date by default (the template prefers a
`current_date` variable over strftime_now), exactly as eval.py renders it, so the two harnesses
see the same tokens; `--date today` renders what a user gets.

    PYTHONPATH=../../bindings/python MUSE_LIBRARY=../../build/src/libmuse.so \\
      .venv/bin/python eval/eval_muse.py ../../models/muse-glimmer-nano.gguf \\
      ../../models/muse-glimmer-nano-mmproj.gguf --n 250 --json out/full2/eval_muse.json
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
import world  # noqa: E402
from heldout import heldout  # noqa: E402



def to_muse(img) -> "muse.Image":
    rgb = img.convert("RGB")
    return muse.Image.from_pixels(rgb.tobytes(), rgb.width, rgb.height, 3)


def episode_messages(smp):
    """The episode's conversation up to the first assistant turn, and its images (one per
    media marker) as muse.Image."""
    msgs = []
    for m in smp["messages"]:
        if m["role"] == "assistant":
            break
        msgs.append(m)
    images = [to_muse(im) for im in smp["images"][:1]]
    n_markers = sum(str(m.get("content", "")).count(world.MEDIA) for m in msgs)
    return msgs, images[:n_markers]


def run_episode(session, smp, setting: str, threshold: float, same_date: bool):
    msgs, images = episode_messages(smp)
    kw = dict(tools=smp["tools"] or None, max_tokens=400, reuse_prefix=False)
    if same_date:       # the template prefers current_date over strftime_now (today)
        kw["variables"] = {"current_date": smp["date"].isoformat()}
    if setting == "off":
        kw.update(thinking="off")
    elif setting == "unlimited":
        kw.update(thinking="on")
    elif setting == "adaptive":
        kw.update(thinking="on", early_exit={"interval": 2, "stable": 2, "probe_tokens": 1, "min_prob": threshold})
    else:
        kw.update(thinking="on", thinking_budget=int(setting), wrap_up="")
    session.seq_remove(0)
    return session.chat(msgs, images=images, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("mmproj")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--settings", default="off,8,16,32,64,unlimited,adaptive")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    ap.add_argument("--date", choices=("episode", "today"), default="episode",
                    help="the prompt's 'Current date' line: the episode's own date, as eval.py renders it "
                         "(token-for-token comparable), or today's (strftime_now, what a user gets)")
    a = ap.parse_args()
    m = muse.Model(a.model, mmproj=a.mmproj, threads=a.threads)
    s = m.session(n_ctx=2048, n_seq_max=2)
    plain = heldout(a.n)
    summary = {}
    t0 = time.time()
    for setting in a.settings.split(","):
        per = defaultdict(lambda: [0, 0])
        toks, probes = [], []
        for smp in plain:
            r = run_episode(s, smp, setting, a.threshold, a.date == "episode")
            ok = r.answer.strip() == smp["answer"]
            group = "count_attr" if smp["qtype"] in ("count", "attribute") else smp["qtype"]
            for g in (group, "all"):
                per[g][0] += ok
                per[g][1] += 1
            toks.append(r.usage["reasoning_tokens"])
            probes.append(r.usage.get("probes", 0))
        summary[setting] = dict(acc={g: round(h / t, 4) for g, (h, t) in sorted(per.items())},
                                n={g: t for g, (h, t) in sorted(per.items())},
                                mean_reasoning_tokens=round(sum(toks) / len(toks), 2),
                                mean_probes=round(sum(probes) / len(probes), 2))
        print(setting, json.dumps(summary[setting]), f"[{time.time() - t0:.0f}s]", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
