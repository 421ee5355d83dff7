"""Evaluation harness for muse-glimmer-nano (PyTorch checkpoint; greedy decoding with a KV cache).

Fixed held-out set: world seeds 900_000_000 + i (training streams use seed * 1_000_003 + i with
seeds 7 / 1234, far from this range). For every episode the prompt is the conversation up to the
first assistant message plus the generation prompt '<|start|>assistant', rendered with
muse-glimmer.jinja; images are fed as image rows between <|image_start|>/<|image_end|>.

Settings (accuracy + mean reasoning tokens):
  off        'Reasoning strength: none.' and the forced header ' to=user<|message|>'
  B in 8/16/32/64
             forced ' to=self<|message|>'; at most B reasoning tokens; if the model has not
             closed its reasoning by then the harness appends '<|eom|><|start|>assistant
             to=user<|message|>' and lets it answer
  unlimited  as above with B = 256 (the model ends its reasoning itself)
  adaptive   unlimited, but every 2 reasoning tokens the harness probes the answer (forking the
             cache, forcing the answer header) and exits early once the probed answer's first
             token has probability >= --threshold on two consecutive probes

Tool episodes (zoom, calculator) are evaluated in the unlimited setting only: the harness
executes the calls (world.zoom on the episode's scene, a safe arithmetic evaluator) and feeds
the tool message back, rendered by the template.

    python eval/eval.py out/full/ckpt.pt --n 300 [--settings off,8,16,32,64,unlimited,adaptive]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # 2 spinning OpenMP threads collapse on a busy machine
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import world  # noqa: E402
from heldout import heldout  # noqa: E402  (eval/ is on sys.path as the script's folder)
from model import NanoModel, TextConfig, VisionConfig, preprocess  # noqa: E402
from tok import Tokenizer  # noqa: E402

ANSWER_HDR = "<|eom|><|start|>assistant to=user<|message|>"


class Runner:
    def __init__(self, m: NanoModel, tk: Tokenizer):
        self.m, self.tk = m, tk

    def embed(self, ids, images):
        """token ids with <|patch|> placeholders after each <|image_start|> -> embeddings [1, n, D]."""
        ids_t = torch.tensor([ids])
        starts = [i for i, t in enumerate(ids) if t == self.tk.special["<|image_start|>"]]
        assert len(starts) == len(images), (len(starts), len(images))
        if not images:
            return self.m.text.token_embd(ids_t)
        pix = torch.stack([preprocess(im, self.m.vc) for im in images])
        ip = torch.tensor([(0, s + 1, world.IMAGE_TOKENS) for s in starts]).view(-1, 3)
        return self.m.embed(ids_t, ip, pix)

    def feed(self, state, ids, images=()):
        cache, pos = state
        logits = self.m.text.step(self.embed(ids, list(images)), cache, pos)
        return (cache, pos + len(ids)), logits[0, -1]

    def gen(self, state, logits, max_new, stop):
        out = []
        for _ in range(max_new):
            t = int(logits.argmax())
            out.append(t)
            if t in stop:
                break
            state, logits = self.feed(state, [t])
        return state, logits, out


def fork(state):
    cache, pos = state
    return ([list(x) for x in cache], pos)


def calc(expr: str) -> str:
    if not re.fullmatch(r"[0-9+\-* ]+", expr):
        return "error"
    try:
        return str(eval(expr, {"__builtins__": {}}, {}))  # digits and + - * only
    except Exception:
        return "error"


def parse_answer(text: str):
    if "to=user<|message|>" not in text:
        return None
    a = text.split("to=user<|message|>")[-1]
    return a.replace("<|eot|>", "").replace("<|eom|>", "").strip()


@torch.no_grad()
def run_episode(R: Runner, smp, setting: str, threshold: float = 0.9, max_answer: int = 12):
    tk = R.tk
    strength = "none" if setting == "off" else "high"
    msgs = []
    for mm in smp["messages"]:
        if mm["role"] == "assistant":
            break
        msgs.append(mm)
    prompt = world.render_chat(msgs, smp["tools"], strength, add_generation_prompt=True, date=smp.get("date"))
    ids = tk.encode(world.expand_media(prompt))
    state, logits = R.feed(([], 0), ids, smp["images"][:1])
    if setting == "off":
        state, logits = R.feed(state, tk.encode(" to=user<|message|>"))
        state, logits, out = R.gen(state, logits, max_answer, (tk.eot, tk.eom, tk.eos))
        return dict(answer=tk.decode(out).replace("<|eot|>", "").strip(), reasoning_tokens=0, text=tk.decode(out))
    budget = 256 if setting in ("unlimited", "adaptive") else int(setting)
    transcript = []
    n_reason = 0
    tool_rounds = 0
    while True:
        state, logits = R.feed(state, tk.encode(" to=self<|message|>"))
        transcript.append(" to=self<|message|>")
        # reasoning
        reason = []
        exited = False
        probe_hits = 0
        while n_reason < budget:
            t = int(logits.argmax())
            if t == tk.eom:
                break
            reason.append(t)
            n_reason += 1
            state, logits = R.feed(state, [t])
            if setting == "adaptive" and n_reason % 2 == 0:
                st2, lg2 = R.feed(fork(state), tk.encode(ANSWER_HDR))
                p = float(torch.softmax(lg2.float(), -1).max())
                probe_hits = probe_hits + 1 if p >= threshold else 0
                if probe_hits >= 2:
                    exited = True
                    break
        transcript.append(tk.decode(reason))
        if exited or n_reason >= budget or int(logits.argmax()) != tk.eom:
            state, logits = R.feed(state, tk.encode(ANSWER_HDR))
            transcript.append(ANSWER_HDR)
            state, logits, out = R.gen(state, logits, max_answer, (tk.eot, tk.eom, tk.eos))
            transcript.append(tk.decode(out))
            break
        # the model closed its reasoning itself: let it write the next header + message
        state, logits, out = R.gen(state, logits, 200, (tk.eot, tk.eos))
        txt = tk.decode(out)
        transcript.append(txt)
        mcall = re.search(r"<\|start\|>assistant to=(\w+)<\|message\|>.*?<atem:parameter name=\"\w+\">(.*?)</atem:parameter>",
                          txt, re.S)
        if mcall and tool_rounds < 2 and smp["tools"]:
            tool_rounds += 1
            name, arg = mcall.group(1), mcall.group(2)
            if name == "zoom" and arg in world.CELL_NAMES:
                content, imgs = world.MEDIA, [world.zoom(smp["scene"], arg)]
            elif name == "calculator":
                content, imgs = calc(arg), []
            else:
                content, imgs = "error", []
            tool_txt = (f"<|start|>tool {name}<|message|><tool_output name=\"{name}\">\n{content}\n"
                        f"</tool_output><|eot|><|start|>assistant")
            state, logits = R.feed(state, tk.encode(world.expand_media(tool_txt)), imgs)
            transcript.append(tool_txt)
            continue
        break
    full = "".join(transcript)
    return dict(answer=parse_answer(full), reasoning_tokens=n_reason, text=full)


def load(ckpt_path, tokenizer=None):
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if tokenizer:
        ck["tokenizer"] = tokenizer
    m = NanoModel(TextConfig(**ck["text_config"]), VisionConfig(**ck["vision_config"]))
    m.load_state_dict(ck["model"])
    m.eval()
    tk = Tokenizer(ck.get("tokenizer") if ck.get("tokenizer") and os.path.exists(ck["tokenizer"]) else
                   os.path.join(os.path.dirname(HERE), "tokenizer", "nano.model"))
    return m, tk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("--n", type=int, default=300, help="held-out plain episodes")
    ap.add_argument("--n-tools", type=int, default=60, help="held-out tool episodes (unlimited only)")
    ap.add_argument("--settings", default="off,8,16,32,64,unlimited,adaptive")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="", help="write the summary here")
    ap.add_argument("--tokenizer", default="", help="SentencePiece model (default: the one the checkpoint names)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m, tk = load(a.ckpt, a.tokenizer or None)
    R = Runner(m, tk)
    plain = heldout(a.n)
    summary = {}
    t0 = time.time()
    for setting in a.settings.split(","):
        per = defaultdict(lambda: [0, 0])
        toks = []
        for smp in plain:
            r = run_episode(R, smp, setting, a.threshold)
            ok = r["answer"] == smp["answer"]
            group = "count_attr" if smp["qtype"] in ("count", "attribute") else smp["qtype"]
            for g in (group, "all"):
                per[g][0] += ok
                per[g][1] += 1
            toks.append(r["reasoning_tokens"])
        summary[setting] = dict(acc={g: round(h / t, 4) for g, (h, t) in sorted(per.items())},
                                n={g: t for g, (h, t) in sorted(per.items())},
                                mean_reasoning_tokens=round(sum(toks) / len(toks), 2))
        print(setting, json.dumps(summary[setting]), f"[{time.time() - t0:.0f}s]", flush=True)
    if a.n_tools:
        per = defaultdict(lambda: [0, 0])
        for smp in heldout(a.n_tools, kinds=("zoom", "calc")):
            r = run_episode(R, smp, "unlimited")
            per[smp["kind"]][0] += r["answer"] == smp["answer"]
            per[smp["kind"]][1] += 1
        summary["tools_unlimited"] = {k: dict(acc=round(h / t, 4), n=t) for k, (h, t) in per.items()}
        print("tools", json.dumps(summary["tools_unlimited"]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
