"""Quick diagnostic of a checkpoint: does the model read the image yet?

    python diag.py out/full/ckpt.pt [--n 40] [--greedy 30]

Prints, on held-out plain episodes (eval/eval.py's seeds):
  * teacher-forced argmax accuracy of the reasoning tokens, overall and on the content words
    read from the image (color / shape / size / none / tiny after a cell name, running numbers);
  * accuracy of the training-only auxiliary cell classifier (color, shape, size per cell);
  * greedy accuracy with unlimited thinking on --greedy episodes (count + attribute questions),
    the eval harness protocol.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "eval"))

import world  # noqa: E402
from eval import Runner, heldout, load, run_episode  # noqa: E402
from train import AuxHead, FORCED_ANSWER_HEADER  # noqa: E402,F401

CATEGORY = {**{w: "color" for w in world.COLOR_NAMES}, **{w: "shape" for w in world.SHAPES},
            **{w: "size" for w in world.SIZES}, "none": "empty", "tiny": "cluster",
            **{d: "number" for d in "0123456789"}}
CONTENT = set(CATEGORY)


@torch.no_grad()
def teacher_forced(m, tk, smps):
    R = Runner(m, tk)
    tot = hit = ctot = chit = 0
    per = {}
    for smp in smps:
        text = world.expand_media(world.sample_text(smp))
        ids = tk.encode(text)
        hdr = tk.encode("<|start|>assistant to=self<|message|>")
        j = next(i for i in range(len(ids)) if ids[i:i + len(hdr)] == hdr) + len(hdr)
        e = ids.index(tk.eom, j)
        emb = R.embed(ids, smp["images"][:1])
        logits = m.text(embeds=emb)[0]
        pred = logits[j - 1:e - 1].argmax(-1).tolist()
        for t, p in zip(ids[j:e], pred):
            piece = tk.decode([t]).strip()
            tot += 1
            hit += p == t
            if piece in CONTENT:
                ctot += 1
                chit += p == t
                c = per.setdefault(CATEGORY[piece], [0, 0])
                c[0] += p == t
                c[1] += 1
    return hit / max(1, tot), chit / max(1, ctot), {k: round(h / n, 4) for k, (h, n) in sorted(per.items())}


@torch.no_grad()
def aux_accuracy(m, aux_state, smps):
    from model import preprocess
    aux = AuxHead(m.tc.n_embd)
    aux.load_state_dict(aux_state, strict=False)   # older checkpoints lack the cell-position head
    px = torch.stack([preprocess(s["images"][0], m.vc) for s in smps])
    lab = torch.tensor([s["cell_labels"][0] for s in smps])
    z = m.vision(px)
    lg = aux.logits(z)
    acc = [float((lg[j].argmax(-1) == lab[..., j]).float().mean()) for j in range(3)]
    if "cell.weight" in aux_state:
        g = int(round(z.shape[1] ** 0.5))
        ij = torch.arange(g)
        cell_of = ((ij[:, None] * 3 // g) * 3 + (ij[None, :] * 3 // g)).reshape(-1)
        acc.append(float((aux.cell(z.float()).argmax(-1) == cell_of).float().mean()))
    return acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--greedy", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    m, tk = load(a.ckpt)
    smps = heldout(a.n)
    tf_all, tf_content, per = teacher_forced(m, tk, smps)
    out = dict(step=ck["step"], tf_reasoning_acc=round(tf_all, 4), tf_content_acc=round(tf_content, 4),
               tf_content_acc_by_kind=per)
    if ck.get("aux"):
        out["aux_acc_color_shape_size_cellpos"] = [round(v, 4) for v in aux_accuracy(m, ck["aux"], smps)]
    if a.greedy:
        R = Runner(m, tk)
        ca = [s for s in heldout(a.greedy * 3) if s["qtype"] in ("count", "attribute")][:a.greedy]
        hits = sum(run_episode(R, s, "unlimited")["answer"] == s["answer"] for s in ca)
        out["greedy_count_attr_acc"] = round(hits / len(ca), 4)
        out["greedy_n"] = len(ca)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
