"""llama.cpp parity: greedy continuation of a token prompt by the exported text GGUF in llama.cpp
(node .peers/llamacpp/ref.mjs greedy) vs the PyTorch text model holding the same (F16-rounded)
weights. Text-only prompts (no image rows)."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Dict, List

import torch

TIE = 0.01        # logprob gap below which a greedy divergence is a numerical near-tie
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
REF = os.path.join(REPO, ".peers", "llamacpp", "ref.mjs")
INSTALL = os.path.normpath(os.path.join(REPO, "..", "shared", "peers", "llamacpp", "install.sh"))


def ensure_peer() -> bool:
    if os.path.exists(REF) and os.path.isdir(os.path.join(REPO, ".peers", "llamacpp", "node_modules")):
        return True
    if not os.path.exists(INSTALL):
        return False
    r = subprocess.run(["bash", INSTALL, os.path.join(REPO, ".peers", "llamacpp")], cwd=REPO,
                       capture_output=True, text=True)
    return r.returncode == 0 and os.path.exists(REF)


def llama_greedy(gguf_path: str, tokens: List[int], n: int = 16, top: int = 5) -> Dict:
    r = subprocess.run(["node", REF, "greedy", gguf_path, "--tokens", ",".join(map(str, tokens)),
                        "--n", str(n), "--top", str(top)], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise RuntimeError("ref.mjs failed: " + r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


@torch.no_grad()
def torch_greedy(text_model, tokens: List[int], n: int = 16, top: int = 5, stop=()):
    ids = list(tokens)
    out, tops = [], []
    for _ in range(n):
        logits = text_model(torch.tensor([ids]))[0, -1].double()
        lp = torch.log_softmax(logits, -1)
        v, i = lp.topk(top)
        tops.append([[int(a), float(b)] for a, b in zip(i, v)])
        t = int(i[0])
        out.append(t)
        ids.append(t)
        if t in stop:
            break
    return out, tops


def compare(text_model, gguf_path: str, prompts: List[List[int]], n: int = 16, stop=()) -> Dict:
    res = []
    ok_all = True
    for p in prompts:
        ref = llama_greedy(gguf_path, p, n)
        mine, mtops = torch_greedy(text_model, p, n, stop=stop)
        lt = ref["tokens"]
        # node-llama-cpp ends the sequence at an end-of-generation token without reporting it;
        # the torch side reports the stop token it ended on
        eog = bool(mine) and mine[-1] in stop
        mine_cmp = mine[:-1] if eog else mine
        k = min(len(lt), len(mine_cmp))
        same = lt == mine_cmp
        # first divergence: a near-tie (both sides' top-2 within TIE of each other) is reported as
        # such; the comparison of logprobs stops there (the contexts differ afterwards)
        div = next((i for i in range(k) if lt[i] != mine_cmp[i]), None)
        tie = False
        if div is not None:
            mine_lp = dict((a, b) for a, b in mtops[div])
            ref_lp = dict((a, b) for a, b in ref["top"][div])
            a, b = lt[div], mine_cmp[div]
            tie = (a in mine_lp and b in ref_lp and abs(mine_lp[a] - mine_lp[b]) < TIE
                   and abs(ref_lp[a] - ref_lp[b]) < TIE)
        upto = k if div is None else div + 1
        maxdiff = 0.0
        for st in range(upto):
            mine_lp = dict((a, b) for a, b in mtops[st])
            for tid, lp in ref["top"][st]:
                if tid in mine_lp:
                    maxdiff = max(maxdiff, abs(mine_lp[tid] - lp))
        ok_all &= same or tie
        res.append(dict(prompt_len=len(p), llama=lt, torch=mine, torch_ended_on_eog=eog, same=same,
                        first_divergence=div, near_tie_divergence=tie, max_top5_logprob_diff=maxdiff,
                        llama_top1=[t[0] for t in ref["top"][:4]], torch_top1=[t[0] for t in mtops[:4]],
                        build_type=ref.get("build_type")))
    return dict(ok=ok_all, results=res)
