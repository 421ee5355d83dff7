"""A seeded generator of random JSON Schemas (draft 2020-12) for the constrained-decoding tests.

random_schema(rng) covers: type, properties / required / additionalProperties: false, enum and
const, arrays with items / prefixItems / minItems / maxItems, strings with min/maxLength, an
anchored pattern or a format (date, time, date-time, uuid, ipv4), integers and numbers
with bounds (inclusive and exclusive), anyOf, nested objects, and $defs / $ref.

Every schema is bounded where a model could otherwise write forever: strings have a maxLength,
a bounded pattern, an enum or a format; arrays have a maxItems (or are closed tuples). Random
models would otherwise ramble inside an unbounded string until max_tokens. Only what muse
compiles exactly is generated (no pattern together with a length, integer number bounds).
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

_NAMES = ["id", "name", "age", "tags", "ok", "score", "kind", "items", "x", "y", "when", "meta", "note",
          "code", "level", "url_", "a", "b", "size", "mode"]
_WORDS = ["red", "green", "blue", "on", "off", "yes", "no", "alpha", "beta", "x-1", "é", "日本", ""]
_PATTERNS = [r"^[a-z]{1,5}$", r"^[A-Z][a-z]{0,4}$", r"^\d{3}-\d{2}$", r"^(foo|bar|baz)[0-9]?$",
             r"^[a-f0-9]{4,8}$", r"^v\d\.\d{1,2}$"]
# Not "email": its local part and domain are unbounded and a format cannot take a maxLength in
# muse, so a random model writes 175 tokens there at the median and over 1,000 at the tail
# (measured over 64 generations per model); email is checked with matches() instead.
_FORMATS = ["date", "time", "date-time", "uuid", "ipv4"]


class _Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.defs: Dict[str, Any] = {}

    def string(self) -> Dict[str, Any]:
        r = self.rng
        k = r.random()
        if k < 0.35:
            hi = r.randint(0, 8)
            s: Dict[str, Any] = {"type": "string", "maxLength": hi}
            if r.random() < 0.5:
                s["minLength"] = r.randint(0, hi)
            return s
        if k < 0.5:
            return {"type": "string", "enum": r.sample(_WORDS, r.randint(1, 4))}
        if k < 0.68:
            return {"type": "string", "pattern": r.choice(_PATTERNS)}
        return {"type": "string", "format": r.choice(_FORMATS)}

    def integer(self) -> Dict[str, Any]:
        r = self.rng
        s: Dict[str, Any] = {"type": "integer"}
        lo = r.randint(-1000, 1000)
        hi = lo + r.choice([0, 1, 9, 10, 99, 12345])
        k = r.random()
        if k < 0.45:
            s.update(minimum=lo, maximum=hi)
        elif k < 0.65:
            s.update(exclusiveMinimum=lo - 1, exclusiveMaximum=hi + 1)
        elif k < 0.8:
            s["minimum"] = lo
        elif k < 0.9:
            s["maximum"] = hi
        return s

    def number(self) -> Dict[str, Any]:
        r = self.rng
        s: Dict[str, Any] = {"type": "number"}
        if r.random() < 0.6:
            lo = r.randint(-50, 50)
            s.update(minimum=lo, maximum=lo + r.choice([1, 10, 1000]))
        return s

    def scalar(self) -> Dict[str, Any]:
        r = self.rng
        k = r.random()
        if k < 0.3:
            return self.string()
        if k < 0.5:
            return self.integer()
        if k < 0.62:
            return self.number()
        if k < 0.72:
            return {"type": "boolean"}
        if k < 0.77:
            return {"type": "null"}
        if k < 0.9:  # enum of mixed scalars
            pool = [1, 2.5, -3, True, False, None, "a", "zz", "é", 0]
            return {"enum": r.sample(pool, r.randint(1, 4))}
        return {"const": r.choice([7, "fixed", True, None, -0.5])}

    def array(self, depth: int) -> Dict[str, Any]:
        r = self.rng
        if r.random() < 0.25:  # a tuple
            prefix = [self.any(depth + 1) for _ in range(r.randint(1, 3))]
            s: Dict[str, Any] = {"type": "array", "prefixItems": prefix, "items": False}
            if r.random() < 0.5:
                s["minItems"] = len(prefix)
            return s
        hi = r.randint(0, 3)
        s = {"type": "array", "items": self.any(depth + 1), "maxItems": hi}
        if r.random() < 0.6:
            s["minItems"] = r.randint(0, hi)
        return s

    def object(self, depth: int) -> Dict[str, Any]:
        r = self.rng
        names = r.sample(_NAMES, r.randint(1, 4 if depth == 0 else 3))
        props = {n: self.any(depth + 1) for n in names}
        required = [n for n in names if r.random() < 0.7]
        s: Dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            s["required"] = required
        return s

    def ref(self, depth: int) -> Dict[str, Any]:
        name = f"d{len(self.defs)}"
        self.defs[name] = None  # reserved before recursing: nested refs get other names
        self.defs[name] = self.any(depth + 1)
        return {"$ref": f"#/$defs/{name}"}

    def any(self, depth: int) -> Dict[str, Any]:
        r = self.rng
        if depth >= 3:
            return self.scalar()
        k = r.random()
        if k < 0.45:
            return self.scalar()
        if k < 0.62:
            return self.array(depth)
        if k < 0.8:
            return self.object(depth)
        if k < 0.9:
            return {"anyOf": [self.any(depth + 1) for _ in range(2)]}
        return self.ref(depth)


def random_schema(rng: random.Random) -> Dict[str, Any]:
    """A random bounded schema; most are objects at the top, as response formats usually are."""
    g = _Gen(rng)
    top = g.object(0) if rng.random() < 0.75 else g.any(1)
    if g.defs:
        top = dict(top)
        top["$defs"] = g.defs
    return top


def random_schemas(n: int, seed: int = 0) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    return [random_schema(rng) for _ in range(n)]


def bounded(schema: Any, path: str = "#") -> Optional[str]:
    """The path of an unbounded string or array in schema, or None (a self-check of the
    generator: an unbounded one would let a random model write until max_tokens)."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if t == "string" and not any(k in schema for k in ("maxLength", "enum", "const", "pattern", "format")):
        return path
    if t == "array" and "maxItems" not in schema and schema.get("items") is not False:
        return path
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            p = bounded(sub, f"{path}/{key}/{name}")
            if p:
                return p
    for key in ("anyOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key) or []):
            p = bounded(sub, f"{path}/{key}/{i}")
            if p:
                return p
    return bounded(schema.get("items"), f"{path}/items") if isinstance(schema.get("items"), dict) else None


def keywords(schema: Any, out: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """How often each keyword (and "format:X", "type:X") occurs in schema, nested ones included."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for x in schema:
            keywords(x, out)
        return out
    if not isinstance(schema, dict):
        return out
    for k, v in schema.items():
        out[k] = out.get(k, 0) + 1
        if k in ("type", "format") and isinstance(v, str):
            out[f"{k}:{v}"] = out.get(f"{k}:{v}", 0) + 1
        if k in ("properties", "$defs"):
            for sub in v.values():
                keywords(sub, out)
        elif k in ("items", "anyOf", "prefixItems"):
            keywords(v, out)
    return out
