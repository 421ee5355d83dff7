"""The nano world: procedural images + multi-step questions rendered in Muse Glimmer's ATEM chat
format (the muse-glimmer.jinja template, rendered with jinja2 exactly as HF/llama.cpp would).

Scene: a 96x96 image divided into a 3x3 grid of 32 px cells ("top left" ... "bottom right").
2-8 cells hold one shape (circle/square/triangle/diamond, 6 colors, big or small) with some
jitter; optionally one more cell holds a *cluster* of 2-4 tiny shapes laid out on the same 3x3
pattern inside the cell, too small to read at full view. The `zoom` tool returns that cell
magnified 3x (a 96x96 image), which looks like an ordinary scene: same perception, new content.

Reasoning is short and regular: relevant objects are enumerated in reading order (row by row,
left to right) with a running count, e.g.
    "red shapes: 1 top left circle, 2 center square. Total 2."
so a tiny model can learn to count by scanning the image tokens in raster order, and a
truncated reasoning (thinking budget) has seen a prefix of the scan.

Everything is deterministic from the seed: `make_sample(seed)`.
"""
from __future__ import annotations

import datetime
import json
import os
import random
import re
from typing import Dict, List, Optional

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_PATH = os.environ.get(
    "MUSE_GLIMMER_TEMPLATE",
    os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "templates", "muse-glimmer.jinja")))

IMG = 96            # image side (pixels)
SCALE = 3           # render at 3x, downsample for the main view; zoom crops the 3x render
CELL = IMG // 3     # 32 px
COLORS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 225),
    "yellow": (235, 205, 30), "purple": (150, 60, 195), "orange": (245, 130, 20),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "diamond"]
SIZES = ["big", "small"]
ROWS = ["top", "middle", "bottom"]
COLS = ["left", "middle", "right"]


def cell_name(r: int, c: int) -> str:
    if r == 1 and c == 1:
        return "center"
    return f"{ROWS[r]} {COLS[c]}"


CELL_NAMES = [cell_name(r, c) for r in range(3) for c in range(3)]

SPECIAL_TOKENS = ["<|start|>", "<|message|>", "<|eom|>", "<|eot|>", "<|image_start|>",
                  "<|image_end|>", "<|patch|>", "<|video|>"]
MEDIA = "<__media__>"
IMAGE_TOKENS = 36   # (96/16)^2 merged tokens per image (patch 8, merge 2)

TOOLS = {
    "calculator": {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}},
    "zoom": {"type": "function", "function": {
        "name": "zoom", "description": "Look closer at one cell of the image.",
        "parameters": {"type": "object", "properties": {"region": {"type": "string", "enum": CELL_NAMES}},
                       "required": ["region"]}}},
}


# ----------------------------------------------------------------------------------------------
# scenes

class Obj:
    __slots__ = ("r", "c", "color", "shape", "size")

    def __init__(self, r, c, color, shape, size):
        self.r, self.c, self.color, self.shape, self.size = r, c, color, shape, size

    @property
    def pos(self):
        return cell_name(self.r, self.c)

    def desc(self, size=True):
        return f"{self.size} {self.color} {self.shape}" if size else f"{self.color} {self.shape}"


class Scene:
    def __init__(self, objs: List[Obj], cluster: Optional[tuple], bg, noise_seed: int, jit: Dict):
        self.objs = sorted(objs, key=lambda o: (o.r, o.c))   # reading order
        self.cluster = cluster          # (r, c, [Obj...] laid out on the sub-grid) or None
        self.bg = bg
        self.noise_seed = noise_seed
        self.jit = jit


def random_scene(rng: random.Random, n_min=2, n_max=8, cluster_p=0.3) -> Scene:
    cells = [(r, c) for r in range(3) for c in range(3)]
    rng.shuffle(cells)
    cluster = None
    if rng.random() < cluster_p:
        cr, cc = cells.pop()
        k = rng.randint(2, 4)
        sub = [(r, c) for r in range(3) for c in range(3)]
        rng.shuffle(sub)
        sub_objs = [Obj(r, c, rng.choice(COLOR_NAMES), rng.choice(SHAPES), "big") for r, c in sub[:k]]
        cluster = (cr, cc, sorted(sub_objs, key=lambda o: (o.r, o.c)))
    n = rng.randint(n_min, min(n_max, len(cells)))
    objs = [Obj(r, c, rng.choice(COLOR_NAMES), rng.choice(SHAPES), rng.choice(SIZES)) for r, c in cells[:n]]
    dark = rng.random() < 0.5
    base = rng.randint(25, 80) if dark else rng.randint(175, 240)
    bg = tuple(max(0, min(255, base + rng.randint(-15, 15))) for _ in range(3))
    jit = {}
    for o in objs:
        jit[(o.r, o.c)] = (rng.randint(-4, 4), rng.randint(-4, 4))
    return Scene(objs, cluster, bg, rng.randrange(1 << 30), jit)


def _draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, rad: float, color):
    if shape == "circle":
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=color)
    elif shape == "square":
        s = rad * 0.9
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=color)
    elif shape == "triangle":
        d.polygon([(cx, cy - rad), (cx + rad, cy + rad * 0.85), (cx - rad, cy + rad * 0.85)], fill=color)
    elif shape == "diamond":
        d.polygon([(cx, cy - rad * 1.1), (cx + rad * 0.85, cy), (cx, cy + rad * 1.1), (cx - rad * 0.85, cy)],
                  fill=color)


def render_big(scene: Scene) -> Image.Image:
    """The scene at 3x resolution (288 x 288)."""
    S = IMG * SCALE
    im = Image.new("RGB", (S, S), scene.bg)
    # mild background texture: a few faint blobs (deterministic)
    trng = random.Random(scene.noise_seed)
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y, r = trng.randint(0, S), trng.randint(0, S), trng.randint(20, 70)
        delta = trng.randint(-12, 12)
        col = tuple(max(0, min(255, v + delta)) for v in scene.bg)
        d.ellipse([x - r, y - r, x + r, y + r], fill=col)
    C = CELL * SCALE
    for o in scene.objs:
        jx, jy = scene.jit[(o.r, o.c)]
        cx = o.c * C + C / 2 + jx * SCALE
        cy = o.r * C + C / 2 + jy * SCALE
        rad = (11 if o.size == "big" else 5.5) * SCALE
        _draw_shape(d, o.shape, cx, cy, rad, COLORS[o.color])
    if scene.cluster:
        cr, cc, sub = scene.cluster
        sc = C / 3
        for o in sub:
            cx = cc * C + o.c * sc + sc / 2
            cy = cr * C + o.r * sc + sc / 2
            _draw_shape(d, o.shape, cx, cy, 3.4 * SCALE, COLORS[o.color])
    return im


def render(scene: Scene) -> Image.Image:
    return render_big(scene).resize((IMG, IMG), Image.LANCZOS)


def zoom(scene: Scene, region: str) -> Image.Image:
    """The zoom tool: the named cell of the 3x render (96 x 96 = the cell magnified 3x)."""
    i = CELL_NAMES.index(region)
    r, c = divmod(i, 3)
    C = CELL * SCALE
    return render_big(scene).crop((c * C, r * C, (c + 1) * C, (r + 1) * C))


def cell_labels(scene: Scene, zoom_region: Optional[str] = None) -> List[List[int]]:
    """Per-cell (reading order) [color, shape, size] class ids of a view, for the auxiliary
    perception loss of train.py: color 0 empty, 1..6 COLOR_NAMES, 7 cluster of tiny shapes;
    shape 0 empty, 1..4 SHAPES, 5 cluster; size 0 empty, 1 big, 2 small, 3 cluster.
    zoom_region: labels of the zoomed view of that cell (the cluster's sub-grid)."""
    lab = [[0, 0, 0] for _ in range(9)]
    if zoom_region is not None:
        r, c = divmod(CELL_NAMES.index(zoom_region), 3)
        if scene.cluster and (scene.cluster[0], scene.cluster[1]) == (r, c):
            for o in scene.cluster[2]:
                lab[o.r * 3 + o.c] = [1 + COLOR_NAMES.index(o.color), 1 + SHAPES.index(o.shape), 1]
        else:
            lab = [[-100, -100, -100] for _ in range(9)]   # not a cluster cell: no labels
        return lab
    for o in scene.objs:
        lab[o.r * 3 + o.c] = [1 + COLOR_NAMES.index(o.color), 1 + SHAPES.index(o.shape), 1 + SIZES.index(o.size)]
    if scene.cluster:
        lab[scene.cluster[0] * 3 + scene.cluster[1]] = [7, 5, 3]
    return lab


# ----------------------------------------------------------------------------------------------
# questions + reasoning

def plural(shape: str) -> str:
    return shape + "s"


# Reasoning = a *scan*: the cells are visited in the fixed reading order and each one is read
# out ("top left red", "top middle none", ...), matching objects get a running number. Every
# reasoning token is then a local operation -- a lookup of the named cell in the image rows, a
# comparison with the question, an increment -- instead of a search for "the next red shape"
# over the image, which a tiny model trained for ~2 CPU hours did not learn (first session).
# A truncated scan (thinking budget) has read a prefix of the cells.

def _grid(objs: List[Obj]) -> Dict:
    return {(o.r, o.c): o for o in objs}


def _read(o: Optional[Obj], attrs, cluster: bool) -> str:
    if o is None:
        return "tiny" if cluster else "none"
    return " ".join(getattr(o, a) for a in attrs)


def scan_block(label: str, objs: List[Obj], pred, attrs, cluster_rc=None, cells=None) -> (str, int):
    """'label: top left red 1, top middle none, ... . Total k.' over `cells` (default all 9)."""
    g = _grid(objs)
    parts, k = [], 0
    for (r, c) in (cells if cells is not None else [(r, c) for r in range(3) for c in range(3)]):
        o = g.get((r, c))
        w = f"{cell_name(r, c)} {_read(o, attrs, (r, c) == cluster_rc)}"
        if o is not None and pred(o):
            k += 1
            w += f" {k}"
        parts.append(w)
    return f"{label}: {', '.join(parts)}. Total {k}.", k


def find_scan(label: str, objs: List[Obj], pred, attrs, cluster_rc=None) -> (str, Optional[tuple]):
    """Scan in reading order until the first cell that satisfies pred(obj or None, (r, c))."""
    g = _grid(objs)
    parts = []
    for r in range(3):
        for c in range(3):
            o = g.get((r, c))
            parts.append(f"{cell_name(r, c)} {_read(o, attrs, (r, c) == cluster_rc)}")
            if pred(o, (r, c)):
                return f"{label}: {', '.join(parts)}.", (r, c)
    return f"{label}: {', '.join(parts)}.", None


def _crc(sc: Scene):
    return (sc.cluster[0], sc.cluster[1]) if sc.cluster else None


def count_block(label: str, sc: Scene, pred, attrs) -> (str, int):
    return scan_block(label, sc.objs, pred, attrs, _crc(sc))


def q_count(rng, sc: Scene):
    objs = sc.objs
    kind = rng.choice(["color", "shape", "all", "color_shape", "size"])
    if kind == "color":
        col = rng.choice(sorted({o.color for o in objs})) if rng.random() < 0.75 else rng.choice(COLOR_NAMES)
        q = f"How many {col} shapes are there?"
        r, n = count_block(f"{col} shapes", sc, lambda o: o.color == col, ("color",))
    elif kind == "shape":
        sh = rng.choice(SHAPES)
        q = f"How many {plural(sh)} are there?"
        r, n = count_block(plural(sh), sc, lambda o: o.shape == sh, ("shape",))
    elif kind == "all":
        q = "How many shapes are there?"
        r, n = count_block("shapes", sc, lambda o: True, ("color", "shape"))
    elif kind == "size":
        sz = rng.choice(SIZES)
        q = f"How many {sz} shapes are there?"
        r, n = count_block(f"{sz} shapes", sc, lambda o: o.size == sz, ("size",))
    else:
        o0 = rng.choice(objs)
        col, sh = (o0.color, o0.shape) if rng.random() < 0.8 else (rng.choice(COLOR_NAMES), rng.choice(SHAPES))
        q = f"How many {col} {plural(sh)} are there?"
        r, n = count_block(f"{col} {plural(sh)}", sc, lambda o: o.color == col and o.shape == sh,
                           ("color", "shape"))
    return "count", q, r, str(n)


def q_attribute(rng, sc: Scene):
    objs = sc.objs
    o = rng.choice(objs)
    kind = rng.choice(["color_at", "shape_at", "size_at", "where"])
    if kind == "where" and sum(1 for p in objs if p.color == o.color and p.shape == o.shape) != 1:
        kind = "color_at"
    if kind == "where":
        q = f"Where is the {o.color} {o.shape}?"
        r, _ = find_scan(f"{o.color} {o.shape}", objs, lambda p, rc: p is o, ("color", "shape"), _crc(sc))
        a = o.pos
        return "attribute", q, r + f" Answer: {a}.", a
    if kind == "color_at":
        q = f"What color is the shape at {o.pos}?"
        a = o.color
    elif kind == "shape_at":
        q = f"What shape is at {o.pos}?"
        a = o.shape
    else:
        q = f"Is the shape at {o.pos} big or small?"
        a = o.size
    r = f"At {o.pos}: {o.desc()}. Answer: {a}."
    return "attribute", q, r, a


def q_compare(rng, sc: Scene):
    objs = sc.objs
    cols = rng.sample(COLOR_NAMES, 2)
    present = sorted({o.color for o in objs})
    if len(present) >= 2 and rng.random() < 0.7:
        cols = rng.sample(present, 2)
    ra, na = count_block(f"{cols[0]} shapes", sc, lambda o: o.color == cols[0], ("color",))
    rb, nb = count_block(f"{cols[1]} shapes", sc, lambda o: o.color == cols[1], ("color",))
    kind = rng.choice(["more", "fewer"])
    rel = "more than" if na > nb else ("equal to" if na == nb else "less than")
    if kind == "more":
        q = f"Are there more {cols[0]} shapes than {cols[1]} shapes?"
        ans = "yes" if na > nb else "no"
    else:
        q = f"Are there fewer {cols[0]} shapes than {cols[1]} shapes?"
        ans = "yes" if na < nb else "no"
    return "compare", q, f"{ra} {rb} {na} is {rel} {nb}.", ans


def _unique_obj(rng, objs):
    cands = [o for o in objs if sum(1 for p in objs if p.color == o.color and p.shape == o.shape) == 1]
    return rng.choice(cands) if cands else None


def relation_cells(rel: str, r0: int, c0: int):
    """The cells (reading order) that are `rel` of cell (r0, c0)."""
    test = {"left of": lambda r, c: c < c0, "right of": lambda r, c: c > c0,
            "above": lambda r, c: r < r0, "below": lambda r, c: r > r0}[rel]
    return [(r, c) for r in range(3) for c in range(3) if test(r, c)]


def q_spatial(rng, sc: Scene):
    objs = sc.objs
    o = _unique_obj(rng, objs)
    if o is None:
        return q_count(rng, sc)
    rel = rng.choice(["left of", "right of", "above", "below"])
    q = f"How many shapes are {rel} the {o.color} {o.shape}?"
    r1, _ = find_scan(f"{o.color} {o.shape}", objs, lambda p, rc: p is o, ("color", "shape"), _crc(sc))
    cells = relation_cells(rel, o.r, o.c)
    if cells:
        r2, n = scan_block(f"shapes {rel} it", objs, lambda p: True, ("color",), _crc(sc), cells)
    else:
        r2, n = f"shapes {rel} it: none. Total 0.", 0
    return "spatial", q, f"{r1} It is at {o.pos}. {r2}", str(n)


ARITH_OPS = {"plus": ("+", lambda a, b: a + b), "times": ("*", lambda a, b: a * b),
             "minus": ("-", lambda a, b: a - b)}


def _arith_parts(rng, sc: Scene):
    objs = sc.objs
    col = rng.choice(sorted({o.color for o in objs}))
    sh = rng.choice(sorted({o.shape for o in objs}))
    op = rng.choice(list(ARITH_OPS))
    ra, na = count_block(f"{col} shapes", sc, lambda o: o.color == col, ("color",))
    rb, nb = count_block(plural(sh), sc, lambda o: o.shape == sh, ("shape",))
    if op == "minus" and na < nb:
        op = "plus"
    sym, fn = ARITH_OPS[op]
    q = f"What is the number of {col} shapes {op} the number of {plural(sh)}?"
    return q, f"{ra} {rb}", f"{na}{sym}{nb}", fn(na, nb)


def q_arith(rng, sc: Scene):
    q, r, expr, val = _arith_parts(rng, sc)
    return "arith", q, r + f" {expr} = {val}.", str(val)


QUESTION_KINDS = {"count": q_count, "attribute": q_attribute, "compare": q_compare,
                  "spatial": q_spatial, "arith": q_arith}


# ----------------------------------------------------------------------------------------------
# samples (messages in HF chat form) and rendering

def _user(q: str) -> Dict:
    return {"role": "user", "content": f"{MEDIA}\n{q}"}


def sample_date(seed: int) -> datetime.date:
    """The episode's "current date" (2024-01-01 .. 2028-12-31), from its own generator so that
    the episode's content does not depend on it."""
    return datetime.date(2024, 1, 1) + datetime.timedelta(days=random.Random(seed ^ 0xDA7E).randrange(1827))


def make_sample(seed: int, mix: Optional[Dict[str, float]] = None) -> Dict:
    """One deterministic episode. Returns a dict with messages/tools/reasoning_strength/images/
    answer/kind/qtype/date/scene/cell_labels."""
    smp = _make_sample(seed, mix)
    smp["date"] = sample_date(seed)
    return smp


def _make_sample(seed: int, mix: Optional[Dict[str, float]]) -> Dict:
    rng = random.Random(seed * 7919 + 17)
    mix = mix or {"plain": 0.66, "off": 0.2, "calc": 0.05, "zoom": 0.09}
    u = rng.random()
    acc = 0.0
    mode = "plain"
    for k, p in mix.items():
        acc += p
        if u < acc:
            mode = k
            break
    if mode == "zoom":
        return _zoom_sample(rng)
    sc = random_scene(rng)
    images = [render(sc)]
    if mode == "calc":
        q, r, expr, val = _arith_parts(rng, sc)
        msgs = [_user(q),
                {"role": "assistant", "reasoning_content": r + " I will use the calculator.",
                 "tool_calls": [{"id": "call_0", "type": "function",
                                 "function": {"name": "calculator", "arguments": {"expression": expr}}}]},
                {"role": "tool", "tool_call_id": "call_0", "name": "calculator", "content": str(val)},
                {"role": "assistant", "reasoning_content": f"The calculator says {val}.", "content": str(val)}]
        return dict(messages=msgs, tools=[TOOLS["calculator"]], reasoning_strength="high", images=images,
                    answer=str(val), kind="calc", qtype="arith", reasoning=r, scene=sc,
                    cell_labels=[cell_labels(sc)])
    qtype = rng.choices(list(QUESTION_KINDS), weights=[0.4, 0.2, 0.13, 0.13, 0.14])[0]
    qtype, q, r, a = QUESTION_KINDS[qtype](rng, sc)
    if mode == "off":
        msgs = [_user(q), {"role": "assistant", "content": a}]
        strength = "none"
    else:
        msgs = [_user(q), {"role": "assistant", "reasoning_content": r, "content": a}]
        strength = "high"
    return dict(messages=msgs, tools=None, reasoning_strength=strength, images=images, answer=a,
                kind=mode, qtype=qtype, reasoning=r, scene=sc, cell_labels=[cell_labels(sc)])


def _zoom_sample(rng) -> Dict:
    sc = random_scene(rng, n_min=1, n_max=6, cluster_p=1.0)
    cr, cc, sub = sc.cluster
    region = cell_name(cr, cc)
    kind = rng.choice(["all", "color", "shape"])
    if kind == "all":
        q = "How many tiny shapes are there?"
        r2, n = scan_block("tiny shapes", sub, lambda o: True, ("color", "shape"))
    elif kind == "color":
        col = rng.choice([o.color for o in sub] + [rng.choice(COLOR_NAMES)])
        q = f"How many tiny {col} shapes are there?"
        r2, n = scan_block(f"tiny {col} shapes", sub, lambda o: o.color == col, ("color",))
    else:
        sh = rng.choice([o.shape for o in sub] + [rng.choice(SHAPES)])
        q = f"How many tiny {plural(sh)} are there?"
        r2, n = scan_block(f"tiny {plural(sh)}", sub, lambda o: o.shape == sh, ("shape",))
    a = str(n)
    r0, _ = find_scan("tiny shapes", sc.objs, lambda p, rc: rc == (cr, cc), ("shape",), (cr, cc))
    r1 = f"{r0} I need a closer look at {region}."
    msgs = [_user(q),
            {"role": "assistant", "reasoning_content": r1,
             "tool_calls": [{"id": "call_0", "type": "function",
                             "function": {"name": "zoom", "arguments": {"region": region}}}]},
            {"role": "tool", "tool_call_id": "call_0", "name": "zoom", "content": MEDIA},
            {"role": "assistant", "reasoning_content": "Zoomed in. " + r2, "content": a}]
    return dict(messages=msgs, tools=[TOOLS["zoom"]], reasoning_strength="high",
                images=[render(sc), zoom(sc, region)], answer=a, kind="zoom", qtype="zoom",
                reasoning=r1 + " " + r2, scene=sc, cell_labels=[cell_labels(sc), cell_labels(sc, region)])


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                              sort_keys=sort_keys)

        def raise_exception(msg):
            raise ValueError(msg)
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        with open(TEMPLATE_PATH, encoding="utf-8") as f:
            _ENV = (env, env.from_string(f.read()))
    return _ENV


BOS = "<s>"


def render_chat(messages, tools=None, reasoning_strength="high", add_generation_prompt=False,
                date: Optional[datetime.date] = None) -> str:
    """Render with muse-glimmer.jinja (bos_token '<s>'); media markers stay as <__media__>.
    date: what the template's strftime_now() returns (the "Current date: ..." line that every
    real engine prints); None leaves strftime_now undefined, so the line is absent."""
    env, tpl = _env()
    kw = dict(messages=messages, bos_token=BOS, add_generation_prompt=add_generation_prompt,
              reasoning_strength=reasoning_strength)
    if date is not None:
        kw["strftime_now"] = date.strftime
    if tools:
        kw["tools"] = tools
    return tpl.render(**kw)


def expand_media(text: str, n_tokens: int = IMAGE_TOKENS) -> str:
    """§2.5: each media marker -> <|image_start|> + n image rows (placeholder <|patch|>) + <|image_end|>."""
    return text.replace(MEDIA, "<|image_start|>" + "<|patch|>" * n_tokens + "<|image_end|>")


def train_spans(text: str, truncated_at: Optional[int] = None):
    """Character spans (start, end) whose tokens carry loss: every assistant turn from right after
    the generation prompt '<|start|>assistant' through its closing '<|eot|>'."""
    spans = []
    gp = "<|start|>assistant"
    i = 0
    while True:
        j = text.find(gp, i)
        if j < 0:
            break
        # a turn starts at a generation prompt that follows an <|eot|> (or the system block)
        if text.endswith("<|eot|>", 0, j):
            s = j + len(gp)
            e = text.find("<|eot|>", s)
            e = len(text) if e < 0 else e + len("<|eot|>")
            spans.append((s, e))
            i = e
        else:
            i = j + len(gp)
    return spans


def sample_text(sample: Dict) -> str:
    return render_chat(sample["messages"], sample["tools"], sample["reasoning_strength"], date=sample.get("date"))


def prompt_text(sample: Dict) -> str:
    """The eval prompt: conversation up to (excluding) the first assistant message + generation prompt."""
    msgs = []
    for m in sample["messages"]:
        if m["role"] == "assistant":
            break
        msgs.append(m)
    return render_chat(msgs, sample["tools"], sample["reasoning_strength"], add_generation_prompt=True,
                       date=sample.get("date"))


def corpus_text(n: int, seed0: int = 1_000_000) -> List[str]:
    """Plain text (media markers removed) for tokenizer training. Rendered without the date
    line, as when tokenizer/nano.model was trained, so tok.py still reproduces it."""
    out = []
    for s in range(seed0, seed0 + n):
        smp = make_sample(s)
        t = render_chat(smp["messages"], smp["tools"], smp["reasoning_strength"]).replace(MEDIA, "")
        out.append(t)
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="print / dump world samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--dump", help="directory to write PNGs + text")
    args = ap.parse_args()
    for s in range(args.seed, args.seed + args.n):
        smp = make_sample(s)
        print(f"=== seed {s} kind={smp['kind']} qtype={smp['qtype']} answer={smp['answer']}")
        print(sample_text(smp))
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            for k, im in enumerate(smp["images"]):
                im.save(os.path.join(args.dump, f"{s}_{k}.png"))
