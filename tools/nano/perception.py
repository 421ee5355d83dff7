"""Perception data and the perception-only pre-training of the vision tower.

    python perception.py --warm out/tail/ckpt.pt --out out/vision --steps 1500 --lr 1e-3

The auxiliary perception loss (train.AuxHead: per-cell color / shape / size, per-row cell
position) needs only images, and images are cheap: a scene renders in ~1 ms while an episode
of ~300 text tokens carries one image. The second session's model saw ~13k images in 1,920
steps and recognised small shapes only 60% of the time; here the tower sees tens of thousands
of scenes, and train.py can add a batch of such scenes to every language-model step
(`perception` images per step) so the tower keeps learning while the text model learns to read it.

Scenes come from their own seed range (never the held-out one: 900,000,000+) and are a pure
function of (seed, step), like the episode stream.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Tuple

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

import world
from model import VisionConfig, VisionModel, preprocess

HERE = os.path.dirname(os.path.abspath(__file__))

# share of perception images that are zoom-tool views of a tiny-shape cluster
ZOOM_SHARE = 0.1


def perception_batch(seed: int, step: int, n: int, vc: VisionConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """n scenes for step `step`: pixels [n, 3, H, W] and cell labels [n, 9, 3] (world.cell_labels)."""
    px, lab = [], []
    for j in range(n):
        rng = random.Random((seed * 1_000_003 + 700_000_000 + step * n + j) * 31 + 5)
        if rng.random() < ZOOM_SHARE:
            sc = world.random_scene(rng, n_min=1, n_max=6, cluster_p=1.0)
            region = world.cell_name(sc.cluster[0], sc.cluster[1])
            im, lb = world.zoom(sc, region), world.cell_labels(sc, region)
        else:
            sc = world.random_scene(rng)
            im, lb = world.render(sc), world.cell_labels(sc)
        px.append(preprocess(im, vc))
        lab.append(lb)
    return torch.stack(px), torch.tensor(lab, dtype=torch.long)


def heldout_views(n: int, vc: VisionConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first n held-out scenes (eval seeds), for accuracy checks."""
    px, lab = [], []
    for j in range(n):
        sc = world.random_scene(random.Random(900_000_000 + j))
        px.append(preprocess(world.render(sc), vc))
        lab.append(world.cell_labels(sc))
    return torch.stack(px), torch.tensor(lab, dtype=torch.long)


@torch.no_grad()
def perception_accuracy(vision: VisionModel, aux, px: torch.Tensor, lab: torch.Tensor) -> dict:
    """Accuracy of the auxiliary classifier on labelled views: color, shape, size over occupied
    cells and empty ones, and shape separately for big and small shapes."""
    lg = aux.logits(vision(px))
    out = {}
    for j, name in enumerate(("color", "shape", "size")):
        out[name] = round(float((lg[j].argmax(-1) == lab[..., j]).float().mean()), 4)
    pred, true, size = lg[1].argmax(-1), lab[..., 1], lab[..., 2]
    for s, name in ((1, "shape_big"), (2, "shape_small")):
        k = size == s
        out[name] = round(float((pred[k] == true[k]).float().mean()), 4) if k.any() else None
    return out


def warm_start(vision: VisionModel, aux, ckpt: str) -> None:
    """Start from another run's vision tower and auxiliary heads. A position table of another
    size (another window size) is resampled to this one (bilinear, antialiased), so the rows
    still know roughly where they are."""
    import torch.nn.functional as F
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    sd = {k[7:]: v for k, v in ck["model"].items() if k.startswith("vision.")}
    G0 = int(round(sd["position_embd"].shape[0] ** 0.5))
    G = vision.c.pgrid
    if G0 != G:
        pe = sd["position_embd"].view(G0, G0, -1).permute(2, 0, 1)[None]
        pe = F.interpolate(pe, size=(G, G), mode="bilinear", align_corners=False, antialias=True)
        sd["position_embd"] = pe[0].permute(1, 2, 0).reshape(G * G, -1)
    vision.load_state_dict(sd)
    aux.load_state_dict(ck["aux"])
    print(f"vision tower warm-started from {ckpt} (step {ck['step']}, window {G0} -> {G})", flush=True)


def pretrain(args) -> None:
    import train
    torch.set_num_threads(args.threads)
    cfg = dict(train.CONFIGS[args.config])
    torch.manual_seed(cfg["seed"] + 101)
    vc = VisionConfig(**cfg["vision"])
    from tok import Tokenizer
    m = train.build(cfg, Tokenizer())          # whole model, so the checkpoint has the usual layout
    aux = train.AuxHead(m.tc.n_embd)
    if args.warm:
        warm_start(m.vision, aux, args.warm)
    params = list(m.vision.parameters()) + list(aux.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    vx, vl = heldout_views(300, vc)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "perception_log.jsonl"), "w")
    t0 = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        if step >= args.steps * 0.7:           # cosine over the last 30%
            p = (step - args.steps * 0.7) / (args.steps * 0.3)
            lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + torch.cos(torch.tensor(p * 3.14159265)).item())
        for g in opt.param_groups:
            g["lr"] = lr
        px, lab = perception_batch(cfg["seed"], step, args.batch, vc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = m.vision(px)
        loss = aux(z, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            rec = dict(step=step + 1, loss=round(float(loss.detach()), 4), lr=round(lr, 6),
                       elapsed_s=round(time.time() - t0, 1), **perception_accuracy(m.vision, aux, vx, vl))
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
    torch.save(dict(model=m.state_dict(), aux=aux.state_dict(), step=args.steps, cfg=cfg,
                    text_config=train.dataclasses.asdict(m.tc), vision_config=train.dataclasses.asdict(m.vc),
                    perception=dict(steps=args.steps, batch=args.batch, lr=args.lr)),
               os.path.join(args.out, "ckpt.pt"))


def main():
    import train
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="full2", choices=sorted(train.CONFIGS))
    ap.add_argument("--out", default=os.path.join(HERE, "out", "vision"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--warm", default="", metavar="CKPT", help="start from CKPT's vision tower and auxiliary heads")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    pretrain(ap.parse_args())


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
