"""Train muse-glimmer-nano on the procedural world (2 CPU threads, seeded, reproducible).

    python train.py --smoke                 # tiny config, ~300 steps, export + gguf + llama.cpp checks
    python train.py --config full           # the real run (<= ~2 h on 2 cores); resumable (--resume)

Data is a pure function of (seed, step): every step packs freshly generated episodes
(world.make_sample) into fixed-length rows with per-document positions and a block-diagonal
causal mask, so a run can be resumed exactly from a checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from typing import Dict, List

import numpy as np
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # 2 spinning OpenMP threads collapse on a busy machine
import torch
import torch.nn.functional as F

import world
from model import NanoModel, TextConfig, VisionConfig, count_params, preprocess
from perception import perception_batch
from tok import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

# ----------------------------------------------------------------------------------------------
# configs

# Training episode mix: fewer tool episodes than the world's default mix (their ~450-token tool
# preamble made them ~45% of all tokens) and fewer thinking-off ones; the held-out set uses the
# world's default mix (world.make_sample without mix).
TRAIN_MIX = {"plain": 0.825, "off": 0.13, "calc": 0.015, "zoom": 0.03}

# The bundled model's shape: ~7.8M parameters (5.6M text incl. 0.8M embeddings, 2.2M vision).
# pos_init: a first run with the usual 0.02 position table had image rows that did not encode
# their cell at all after 300 steps (cell-position probe at chance), so the text model could not
# look cells up; 0.5 ~ the patch embedding scale.
FULL_TEXT = dict(n_embd=256, n_layer=6, n_head=4, n_head_kv=2, head_dim=64, n_ff=704, n_swa=256,
                 swa_pattern=(True, True, False, True, True, False), logit_scale=1.0, softcap=30.0,
                 n_ctx=1024)
FULL_VISION = dict(n_embd=192, n_layer=4, n_head=4, n_ff=768, patch=8, merge=2, pgrid=6,
                   adapter1=256, adapter2=256, pos_init=0.5)

CONFIGS = {
    # second session: the text model trained from scratch (its 1,920-step run)
    "full": dict(
        text=FULL_TEXT, vision=FULL_VISION,
        steps=3000, seq_len=768, rows=3, lr=3e-3, min_lr=1e-4, warmup=100, wd=0.05, clip=1.0,
        schedule="wsd", decay_frac=0.25,
        p_trunc=0.15, seed=1234, bf16=True, aux=0.5, mix=TRAIN_MIX),
    # third session: the text model of "full" fine-tuned with a new vision tower whose attention
    # windows are the 3x3 scene cells (pgrid 4 -> 4x4-patch = 32 px windows; "full"'s 6x6-patch
    # windows cut the middle row and column of cells in half, so 3 of its 4 layers saw parts of
    # those shapes only). The tower is pre-trained by perception.py, then both are trained
    # together: fresh AdamW, warmup, constant LR, cosine decay; `perception` extra scenes per
    # step feed the auxiliary loss; the vision tower's LR is scaled by vision_lr_mult; prompts
    # carry the template's "Current date" line (world.sample_date).
    "full2": dict(
        text=FULL_TEXT, vision=dict(FULL_VISION, pgrid=4),
        steps=2400, seq_len=768, rows=3, lr=1e-3, min_lr=5e-5, warmup=50, wd=0.05, clip=1.0,
        schedule="wsd", decay_frac=0.3, vision_lr_mult=0.2, perception=16,
        p_trunc=0.15, seed=4321, bf16=True, aux=1.0, mix=TRAIN_MIX),
    # smoke: tiny, a few hundred steps (< 5 min including the checks)
    "smoke": dict(
        text=dict(n_embd=128, n_layer=4, n_head=4, n_head_kv=2, head_dim=32, n_ff=256, n_swa=32,
                  swa_pattern=(True, False, True, False), logit_scale=0.5, softcap=30.0, n_ctx=1024,
                  q_norm_init=2.0),
        vision=dict(n_embd=64, n_layer=2, n_head=2, n_ff=128, patch=8, merge=2, pgrid=6,
                    adapter1=128, adapter2=128),
        steps=300, seq_len=768, rows=2, lr=3e-3, min_lr=3e-4, warmup=30, wd=0.0, clip=1.0,
        p_trunc=0.15, seed=7, bf16=True, aux=0.5),
}

FORCED_ANSWER_HEADER = "<|eom|><|start|>assistant to=user<|message|>"


# ----------------------------------------------------------------------------------------------
# data

class Episode:
    __slots__ = ("ids", "mask", "images", "sample", "labels")

    def __init__(self, ids, mask, images, sample, labels=None):
        self.ids, self.mask, self.images, self.sample = ids, mask, images, sample
        self.labels = labels


def encode_sample(tk: Tokenizer, vc: VisionConfig, smp: Dict, rng: random.Random, p_trunc: float) -> Episode:
    text = world.expand_media(world.sample_text(smp))
    spans = world.train_spans(text)
    ids, mask = tk.encode_with_mask(text, spans)
    # thinking-budget augmentation: cut the (first) reasoning after k tokens, jump to the answer
    if smp["kind"] == "plain" and rng.random() < p_trunc:
        hdr = tk.encode("<|start|>assistant to=self<|message|>")
        j = _find(ids, hdr)
        if j >= 0:
            r0 = j + len(hdr)
            r1 = ids.index(tk.eom, r0)
            n = r1 - r0
            if n > 2:
                k = rng.randint(0, n - 1)
                ids = ids[:r0 + k] + ids[r1:]
                mask = mask[:r0 + k] + mask[r1:]
                forced = len(tk.encode(FORCED_ANSWER_HEADER))
                for t in range(r0 + k, r0 + k + forced):   # forced by the harness: no loss
                    mask[t] = False
    pix = [preprocess(im, vc) for im in smp["images"]]
    return Episode(ids, mask, pix, None, smp.get("cell_labels"))


def _find(seq: List[int], sub: List[int]) -> int:
    n = len(sub)
    for i in range(len(seq) - n + 1):
        if seq[i:i + n] == sub:
            return i
    return -1


class Stream:
    """Deterministic episode stream: episode i comes from world seed base + i."""

    def __init__(self, tk, vc, seed: int, p_trunc: float, start: int = 0, mix=None):
        self.tk, self.vc, self.seed, self.p_trunc, self.mix = tk, vc, seed, p_trunc, mix
        self.i = start
        self.pending = None

    def next(self) -> Episode:
        if self.pending is not None:
            e, self.pending = self.pending, None
            return e
        s = self.seed * 1_000_003 + self.i
        self.i += 1
        return encode_sample(self.tk, self.vc, world.make_sample(s, self.mix), random.Random(s ^ 0x5EED), self.p_trunc)


def make_batch(stream: Stream, rows: int, T: int, tk: Tokenizer, split: int = 256):
    """One optimizer step's data: episodes are drawn from the stream until they hold rows*T
    tokens, then grouped by length (<= split and > split) into padded sub-batches, so attention
    is never computed across episodes. Returns a list of sub-batch dicts."""
    budget = rows * T
    eps, total = [], 0
    while total < budget:
        e = stream.next()
        if eps and total + len(e.ids) > budget:
            stream.pending = e
            break
        eps.append(e)
        total += len(e.ids)
    groups = [[e for e in eps if len(e.ids) <= split], [e for e in eps if len(e.ids) > split]]
    out = []
    img_start = tk.special["<|image_start|>"]
    P = stream.vc.patch * stream.vc.merge
    for g in groups:
        if not g:
            continue
        L = max(len(e.ids) for e in g)
        tokens = torch.zeros(len(g), L, dtype=torch.long)
        labels = torch.full((len(g), L), -100, dtype=torch.long)
        image_pos, pixels, cell_lab = [], [], []
        for r, e in enumerate(g):
            n = len(e.ids)
            ids = torch.tensor(e.ids)
            tokens[r, :n] = ids
            m = torch.tensor(e.mask)
            labels[r, :n - 1] = torch.where(m[1:], ids[1:], torch.full_like(ids[1:], -100))
            starts = [i for i, t in enumerate(e.ids) if t == img_start]
            assert len(starts) == len(e.images)
            for s0, px in zip(starts, e.images):
                image_pos.append((r, s0 + 1, (px.shape[1] // P) * (px.shape[2] // P)))
                pixels.append(px)
            cell_lab.extend(e.labels if e.labels is not None else [[[-100] * 3] * 9] * len(e.images))
        out.append(dict(tokens=tokens, labels=labels, pos=None, doc=None,
                        image_pos=torch.tensor(image_pos, dtype=torch.long).view(-1, 3),
                        pixels=torch.stack(pixels) if pixels else None, n_tokens=sum(len(e.ids) for e in g),
                        cell_labels=torch.tensor(cell_lab, dtype=torch.long).view(-1, 9, 3)))
    return out


# ----------------------------------------------------------------------------------------------
# training

class AuxHead(torch.nn.Module):
    """Training-only auxiliary perception loss (not exported): the adapter output of the 2x2
    merged tokens of each 3x3-grid cell is mean-pooled and classified into color / shape / size.
    It gives the vision tower a dense signal from the first step; the exported model is the
    plain Muse Glimmer graph."""

    def __init__(self, d: int):
        super().__init__()
        self.color = torch.nn.Linear(d, 8)
        self.shape = torch.nn.Linear(d, 6)
        self.size = torch.nn.Linear(d, 4)
        self.cell = torch.nn.Linear(d, 9)

    def logits(self, z: torch.Tensor):
        N, n, D = z.shape
        g = int(round(n ** 0.5))                     # merged grid side (6 for 96 px images)
        k = g // 3
        cells = z.float().view(N, 3, k, 3, k, D).mean((2, 4)).reshape(N, 9, D)
        return [head(cells) for head in (self.color, self.shape, self.size)]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = 0.0
        for j, lg in enumerate(self.logits(z)):
            loss = loss + F.cross_entropy(lg.reshape(-1, lg.shape[-1]), labels[..., j].reshape(-1), ignore_index=-100) / 3
        # every image row also says which cell it belongs to: the text model looks cells up by
        # content (2 of its layers have no RoPE), so the cell identity must be readable from the row
        N, n, D = z.shape
        g = int(round(n ** 0.5))
        ij = torch.arange(g)
        cell_of = ((ij[:, None] * 3 // g) * 3 + (ij[None, :] * 3 // g)).reshape(-1).repeat(N)
        return loss + F.cross_entropy(self.cell(z.float()).reshape(-1, 9), cell_of)


def forward_with_aux(m: NanoModel, aux, b):
    """Text logits (and the auxiliary perception loss when aux is given) for one sub-batch."""
    x = m.text.token_embd(b["tokens"])
    aux_loss = None
    if b["pixels"] is not None:
        z = m.vision(b["pixels"])
        x = x.clone()
        for n in range(z.shape[0]):
            r, s0, cnt = (int(v) for v in b["image_pos"][n])
            x[r, s0:s0 + cnt] = z[n, :cnt].to(x.dtype)
        if aux is not None:
            aux_loss = aux(z, b["cell_labels"])
    return m.text(embeds=x), aux_loss


def lr_at(step, cfg):
    """Linear warmup, then either a cosine to min_lr over the whole run, or (schedule 'wsd')
    constant LR followed by a cosine decay over the last decay_frac of the steps. With WSD the
    total --steps can still be changed on --resume before the decay starts (deadline control)."""
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    if cfg.get("tail_from") is not None and step >= cfg["tail_from"]:
        # continuation of a finished run (--tail-from/--tail-lr): a second, low-LR cosine to min_lr
        p = (step - cfg["tail_from"]) / max(1, cfg["steps"] - cfg["tail_from"])
        return cfg["min_lr"] + 0.5 * (cfg["tail_lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * min(1.0, p)))
    if cfg.get("schedule") == "wsd":
        d0 = int(cfg["steps"] * (1 - cfg["decay_frac"]))
        if step < d0:
            return cfg["lr"]
        p = (step - d0) / max(1, cfg["steps"] - d0)
    else:
        p = (step - cfg["warmup"]) / max(1, cfg["steps"] - cfg["warmup"])
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * min(1.0, p)))


def build(cfg, tk):
    tc = TextConfig(n_vocab=tk.n_vocab, **cfg["text"])
    vc = VisionConfig(**cfg["vision"])
    return NanoModel(tc, vc)


def param_groups(m, wd, vision_lr_mult=None):
    """AdamW groups: matrices decay, the rest not; with vision_lr_mult the vision tower gets its
    own two groups whose LR is the schedule's times that factor."""
    groups = {}
    for n, p in m.named_parameters():
        decay = p.dim() >= 2 and "position_embd" not in n
        vis = vision_lr_mult is not None and n.startswith("vision.")
        groups.setdefault((vis, decay), []).append(p)
    out = []
    for vis in (False, True):        # decayed group first: the order that older checkpoints' optimizer state has
        for decay in (True, False):
            if (vis, decay) in groups:
                out.append(dict(params=groups[(vis, decay)], weight_decay=wd if decay else 0.0,
                                lr_mult=vision_lr_mult if vis else 1.0))
    return out


def init_from(m, aux, text_ckpt: str, vision_ckpt: str):
    """Start a run from trained parts: text.* from text_ckpt, vision.* (and the auxiliary heads)
    from vision_ckpt; the configs must match the parts they provide."""
    if text_ckpt:
        ck = torch.load(text_ckpt, map_location="cpu", weights_only=False)
        assert ck["text_config"] == dataclasses.asdict(m.tc), "text config differs from " + text_ckpt
        m.text.load_state_dict({k[5:]: v for k, v in ck["model"].items() if k.startswith("text.")})
        print(f"text model from {text_ckpt} (step {ck['step']})")
    if vision_ckpt:
        ck = torch.load(vision_ckpt, map_location="cpu", weights_only=False)
        assert ck["vision_config"] == dataclasses.asdict(m.vc), "vision config differs from " + vision_ckpt
        m.vision.load_state_dict({k[7:]: v for k, v in ck["model"].items() if k.startswith("vision.")})
        if aux is not None and ck.get("aux") is not None:
            aux.load_state_dict(ck["aux"])
        print(f"vision tower from {vision_ckpt} (step {ck['step']})")


def train(cfg: Dict, out_dir: str, resume: bool = False, log_every: int = 10, max_minutes: float = 0,
          save_every_min: float = 10.0, threads: int = 2, stop_at: int = 0, init_text: str = "",
          init_vision: str = ""):
    torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    tk = Tokenizer()
    m = build(cfg, tk)
    aux = AuxHead(m.tc.n_embd) if cfg.get("aux", 0) > 0 else None
    params = param_groups(m, cfg["wd"], cfg.get("vision_lr_mult"))
    if aux is not None:
        params.append(dict(params=list(aux.parameters()), weight_decay=0.0, lr_mult=1.0))
    opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.95), eps=1e-8)
    os.makedirs(out_dir, exist_ok=True)
    ck_path = os.path.join(out_dir, "ckpt.pt")
    step = 0
    stream = Stream(tk, m.vc, cfg["seed"], cfg["p_trunc"], mix=cfg.get("mix"))
    if resume and os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        m.load_state_dict(ck["model"])
        if aux is not None and ck.get("aux") is not None:
            aux.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        stream.i = ck["stream_i"]
        if ck.get("pending_seed") is not None:
            stream.pending = None
            stream.i = ck["pending_seed"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}")
    elif init_text or init_vision:
        init_from(m, aux, init_text, init_vision)
    n_text, n_vis = count_params(m.text), count_params(m.vision)
    print(f"params: text {n_text:,}  vision+adapter {n_vis:,}  total {n_text + n_vis:,}", flush=True)
    t0 = time.time()
    step0 = step
    last_save = t0
    tok_count = 0
    loss_ema = None
    log = open(os.path.join(out_dir, "train_log.jsonl"), "a")
    m.train()
    while step < cfg["steps"]:
        batch = make_batch(stream, cfg["rows"], cfg["seq_len"], tk)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg) * g.get("lr_mult", 1.0)
        n_lab = sum(int((b["labels"] != -100).sum()) for b in batch)
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        aux_sum = 0.0
        n_img = sum(0 if b["pixels"] is None else b["pixels"].shape[0] for b in batch)
        for b in batch:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.get("bf16"))):
                logits, aux_loss = forward_with_aux(m, aux, b)
            lsum = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), b["labels"].view(-1),
                                   ignore_index=-100, reduction="sum") / max(1, n_lab)
            total = lsum
            if aux_loss is not None:
                w = b["pixels"].shape[0] / max(1, n_img)
                total = total + cfg["aux"] * w * aux_loss
                aux_sum += w * float(aux_loss.detach())
            total.backward()
            loss += float(lsum.detach())
        if aux is not None and cfg.get("perception"):
            # extra labelled scenes for the auxiliary loss only (perception.py), with the same
            # weight as all the episodes' images together: the tower sees ~3x the images per
            # step for ~15% more time. They come from perception.py's stream (same seed
            # formula), so with the same seed they repeat scenes its pre-training saw.
            px, lab = perception_batch(cfg["seed"], step, cfg["perception"], m.vc)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.get("bf16"))):
                z = m.vision(px)
            p_loss = aux(z, lab)
            (cfg["aux"] * p_loss).backward()
            aux_sum += float(p_loss.detach())
        gn = torch.nn.utils.clip_grad_norm_(m.parameters(), cfg["clip"])
        opt.step()
        step += 1
        tok_count += sum(b["n_tokens"] for b in batch)
        li = loss
        loss_ema = li if loss_ema is None else 0.95 * loss_ema + 0.05 * li
        if step % log_every == 0 or step == cfg["steps"]:
            el = time.time() - t0
            rec = dict(step=step, loss=round(li, 4), loss_ema=round(loss_ema, 4), aux=round(aux_sum, 4), gnorm=round(float(gn), 3),
                       lr=round(lr_at(step - 1, cfg), 6), elapsed_s=round(el, 1),
                       steps_per_s=round((step - step0) / el, 3), tok_per_s=round(tok_count / el, 1))
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        now = time.time()
        if now - last_save > save_every_min * 60 or step == cfg["steps"]:
            save(ck_path, m, opt, step, stream, cfg, tk, aux)
            last_save = now
        if (max_minutes and now - t0 > max_minutes * 60) or step == stop_at:
            print(f"stopped at step {step}; checkpoint saved, rerun with --resume to continue")
            save(ck_path, m, opt, step, stream, cfg, tk, aux)
            break
    log.close()
    return m, tk, dict(steps=step, steps_this_run=step - step0, seconds=time.time() - t0, tokens=tok_count, loss_ema=loss_ema,
                       params_text=n_text, params_vision=n_vis)


def save(path, m, opt, step, stream, cfg, tk, aux=None):
    pend = None
    if stream.pending is not None:
        pend = stream.i - 1       # the pending episode is the last one drawn: redraw it on resume
    torch.save(dict(model=m.state_dict(), opt=opt.state_dict(), step=step, stream_i=stream.i,
                    pending_seed=pend, torch_rng=torch.get_rng_state(),
                    text_config=dataclasses.asdict(m.tc), vision_config=dataclasses.asdict(m.vc),
                    cfg=cfg, tokenizer=tk.path, aux=None if aux is None else aux.state_dict()), path + ".tmp")
    os.replace(path + ".tmp", path)


# ----------------------------------------------------------------------------------------------
# quick greedy accuracy (no KV cache; the eval harness in eval/ is the real measurement)

@torch.no_grad()
def quick_accuracy(m: NanoModel, tk: Tokenizer, n: int = 20, seed0: int = 900_000_000, max_new: int = 80):
    m.eval()
    hits = 0
    rows = []
    k = 0
    s = seed0
    while k < n:
        smp = world.make_sample(s)
        s += 1
        if smp["kind"] not in ("plain",):
            continue
        k += 1
        text = world.expand_media(world.prompt_text(smp))
        ids = tk.encode(text)
        pix = torch.stack([preprocess(im, m.vc) for im in smp["images"]])
        st = [i for i, t in enumerate(ids) if t == tk.special["<|image_start|>"]]
        ip = torch.tensor([(0, a + 1, world.IMAGE_TOKENS) for a in st]).view(-1, 3)
        emb = m.embed(torch.tensor([ids]), ip, pix)
        out = []
        for _ in range(max_new):
            logits = m.text(embeds=emb)[0, -1]
            t = int(logits.argmax())
            out.append(t)
            if t == tk.eot:
                break
            emb = torch.cat([emb, m.text.token_embd(torch.tensor([[t]]))], 1)
        gen = tk.decode(out)
        ans = gen.split("to=user<|message|>")[-1].replace("<|eot|>", "").strip() if "to=user<|message|>" in gen else None
        hits += ans == smp["answer"]
        rows.append((smp["qtype"], smp["answer"], ans))
    m.train()
    return hits / max(1, n), rows


# ----------------------------------------------------------------------------------------------
# smoke: train tiny, export, parse, llama.cpp parity

def smoke(args):
    cfg = dict(CONFIGS["smoke"])
    if args.steps:
        cfg["steps"] = args.steps
    out_dir = args.out or os.path.join(HERE, "out", "smoke")
    t_start = time.time()
    m, tk, info = train(cfg, out_dir, log_every=25, threads=args.threads)
    print("train:", json.dumps(info))
    acc, rows = quick_accuracy(m, tk, n=5, max_new=60)
    print("quick accuracy (5 plain prompts, tiny model, not meaningful):", acc, rows)
    ok = export_and_check(m, tk, os.path.join(REPO, "models", "nano-smoke"))
    ok &= random_weights_parity(cfg, tk)
    print(f"smoke total {time.time() - t_start:.1f}s")
    return 0 if ok else 1


def parity_prompts(tk: Tokenizer) -> List[List[int]]:
    """Text-only world prompts: system block (+ tools) + user question (image removed) +
    generation prompt, and a mid-reasoning prefix longer than the smoke SWA window."""
    prompts = []
    for s in (11, 12, 13):
        smp = world.make_sample(s)
        msgs = [dict(mm) for mm in smp["messages"][:1]]
        msgs[0]["content"] = msgs[0]["content"].replace(world.MEDIA + "\n", "")
        prompts.append(tk.encode(world.render_chat(msgs, smp["tools"], smp["reasoning_strength"],
                                                   add_generation_prompt=True)))
    smp = world.make_sample(2)
    full = tk.encode(world.sample_text(smp).replace(world.MEDIA + "\n", ""))
    prompts.append(full[: len(full) - 12])
    smp = world.make_sample(3)                          # a zoom episode, cut inside the last reasoning
    full = tk.encode(world.sample_text(smp).replace(world.MEDIA + "\n", "").replace(world.MEDIA, ""))
    prompts.append(full[: len(full) - 24])
    # reasoning forced open, on a plain and on a tool (zoom) episode
    for s in (2, 3):
        smp = world.make_sample(s)
        msgs = [dict(mm) for mm in smp["messages"][:1]]
        msgs[0]["content"] = msgs[0]["content"].replace(world.MEDIA + "\n", "")
        prompts.append(tk.encode(world.render_chat(msgs, smp["tools"], "high", add_generation_prompt=True)
                                 + " to=self<|message|>"))
    return prompts


def export_and_check(m: NanoModel, tk: Tokenizer, base: str) -> bool:
    """Export the GGUF pair to base.gguf / base-mmproj.gguf, (a) parse both with gguf-py and check
    every tensor name + ggml shape, (b) llama.cpp greedy parity on text-only prompts."""
    import export
    import parity
    tpath, vpath = base + ".gguf", base + "-mmproj.gguf"
    export.export_text(m, tk, tpath)
    export.export_mmproj(m, vpath)
    export.check_gguf(tpath, export.text_tensors(m))
    export.check_gguf(vpath, export.vision_tensors(m))
    print(f"(a) gguf-py parses both files; tensor names/shapes OK: {tpath} ({os.path.getsize(tpath)} B), "
          f"{vpath} ({os.path.getsize(vpath)} B)")
    m.eval()
    export.load_text_weights_from_gguf(m, tpath)      # the torch reference uses the F16-rounded weights
    if not parity.ensure_peer():
        print("(b) SKIPPED: llama.cpp peer not installed (needs node/npm)")
        return True
    res = parity.compare(m.text, tpath, parity_prompts(tk), n=16, stop=(tk.eot, tk.eos))
    for r in res["results"]:
        print(json.dumps(r))
    print("(b) llama.cpp greedy parity:", "PASS" if res["ok"] else "FAIL")
    return res["ok"]


def random_weights_parity(cfg: Dict, tk: Tokenizer) -> bool:
    """(c) the same parity on the smoke architecture with large random weights (std 0.15, norm
    weights in [0.5, 1.5]): peaked, input-dependent logits, so 16-token continuations of long
    prompts (beyond the SWA window) exercise every part of the graph."""
    import tempfile
    import export
    import parity
    if not parity.ensure_peer():
        return True
    torch.manual_seed(cfg["seed"] + 1)
    m = build(cfg, tk)
    with torch.no_grad():
        for p in m.text.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15)
            else:
                p.uniform_(0.5, 1.5)
        m.text.output.weight.normal_(0, 0.6)          # peaked next-token distributions
    m.eval()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "random.gguf")
        export.export_text(m, tk, path)
        export.load_text_weights_from_gguf(m, path)
        pr = parity_prompts(tk)
        res = parity.compare(m.text, path, [pr[3], pr[4]], n=16, stop=(tk.eot, tk.eos))
    for r in res["results"]:
        print(json.dumps({k: r[k] for k in ("prompt_len", "llama", "torch", "same", "first_divergence",
                                             "near_tie_divergence", "max_top5_logprob_diff")}))
    print("(c) llama.cpp greedy parity, random weights:", "PASS" if res["ok"] else "FAIL")
    return res["ok"]


def check_ckpt(args):
    ck = torch.load(args.check, map_location="cpu", weights_only=False)
    m = NanoModel(TextConfig(**ck["text_config"]), VisionConfig(**ck["vision_config"]))
    m.load_state_dict(ck["model"])
    tk = Tokenizer()
    base = os.path.abspath(args.out) if args.out else os.path.join(REPO, "models", "nano-smoke")   # node runs in REPO
    return 0 if export_and_check(m, tk, base) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--check", metavar="CKPT", help="only export CKPT to --out (default models/nano-smoke) and run the checks")
    ap.add_argument("--config", default="full", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=0, help="override the number of steps")
    ap.add_argument("--out", default="")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bench", type=int, default=0, metavar="N",
                    help="time N training steps of --config and print steps/s, tokens/s and the --steps that fit --budget-min")
    ap.add_argument("--budget-min", type=float, default=110.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the real run uses 2)")
    ap.add_argument("--max-minutes", type=float, default=0)
    ap.add_argument("--aux", type=float, default=None, help="override the auxiliary perception loss weight")
    ap.add_argument("--tail-from", type=int, default=None, metavar="STEP",
                    help="continue a finished run from STEP to --steps with a cosine from --tail-lr to min_lr")
    ap.add_argument("--tail-lr", type=float, default=5e-4)
    ap.add_argument("--init-text", default="", metavar="CKPT", help="start from the text model of CKPT (fresh optimizer)")
    ap.add_argument("--init-vision", default="", metavar="CKPT",
                    help="start from the vision tower + auxiliary heads of CKPT (e.g. perception.py's)")
    ap.add_argument("--export", action="store_true", help="export models/muse-glimmer-nano*.gguf at the end")
    args = ap.parse_args()
    if args.check:
        sys.exit(check_ckpt(args))
    if args.smoke:
        sys.exit(smoke(args))
    if args.bench:
        cfg = dict(CONFIGS[args.config])
        cfg["steps"] = args.bench + 2
        cfg["warmup"] = 1
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            _, _, info = train(cfg, d, log_every=10 ** 9, threads=args.threads, save_every_min=1e9)
        sps = info["steps"] / info["seconds"]
        print(json.dumps(dict(config=args.config, threads=args.threads, steps_per_s=round(sps, 4),
                              tokens_per_s=round(info["tokens"] / info["seconds"], 1),
                              steps_for_budget=int(sps * args.budget_min * 60), budget_min=args.budget_min)))
        return
    cfg = dict(CONFIGS[args.config])
    if args.steps:
        cfg["steps"] = args.steps
    if args.aux is not None:
        cfg["aux"] = args.aux
    if args.tail_from is not None:
        cfg["tail_from"], cfg["tail_lr"] = args.tail_from, args.tail_lr
    out_dir = args.out or os.path.join(HERE, "out", args.config)
    m, tk, info = train(cfg, out_dir, resume=args.resume, max_minutes=args.max_minutes, threads=args.threads,
                        init_text=args.init_text, init_vision=args.init_vision)
    print("train:", json.dumps(info))
    if args.export and info["steps"] >= cfg["steps"]:
        import export
        base = os.path.join(REPO, "models", "muse-glimmer-nano")
        export.export_text(m, tk, base + ".gguf")
        export.export_mmproj(m, base + "-mmproj.gguf")
        print("exported", base + ".gguf", base + "-mmproj.gguf")


if __name__ == "__main__":
    main()
