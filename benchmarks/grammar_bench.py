#!/usr/bin/env python3
"""Constrained decoding, muse vs llguidance, in one run on one thread.

    .venv/bin/python benchmarks/grammar_bench.py [--build build] [--limit N] [--json out.json]

Both engines get the same JSON schemas (../shared/jsonschema/bench-dev), the same
vocabulary (qwen2, ../shared/vocab; llguidance's tokenizer is built from the pieces
muse's trie holds, control tokens marked with a 0xFF prefix as llguidance expects)
and the same token sequences: the first valid instance of each schema that muse's
grammar accepts, serialized as Python's json.dumps and tokenized by muse's qwen2
tokenizer. Each walk starts from a freshly compiled grammar (cold: every state is
new) and computes the full mask before every token and after the last one.

Measured per engine: compile time per schema (muse: schema to GBNF to rules and the
initial state; llguidance: grammar_from_json_schema plus LLMatcher construction),
mask time per token (muse: C++ timer around Matcher::mask, which returns the cached
bitset; llguidance: Python timer around unsafe_compute_mask_ptr writing the bitset,
so it includes one Python-to-Rust call, about a microsecond), and MaskBench's pass
rule (a schema passes when it compiles and accepts exactly its valid instances;
llguidance checks instances through a byte-level tokenizer, as MaskBench does).
Mask statistics compare the walks both engines completed.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import llguidance
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MUSE_SHARED_DIR", os.path.join(ROOT, "..", "shared"))


# The qwen2 pre-tokenizer split (the GGUF names it by "tokenizer.ggml.pre").
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def hf_tokenizer_json(path):
    """A Hugging Face tokenizer.json for a qwen2 GGUF vocabulary (byte-level BPE:
    tokens, merges, control tokens as special added tokens). llguidance loads it
    into the tokenizers library, so where it tokenizes text itself (forced bytes)
    it tokenizes as the model's real tokenizer does, as it would in production."""
    import gguf

    r = gguf.GGUFReader(path)

    def arr(name):
        f = r.fields[name]
        return [f.parts[i] for i in f.data]

    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    if pre != "qwen2":
        sys.exit(f"{path}: pre-tokenizer {pre!r}; this driver knows qwen2's split only")
    toks = [bytes(x).decode() for x in arr("tokenizer.ggml.tokens")]
    types = [int(x[0]) for x in arr("tokenizer.ggml.token_type")]
    merges = [bytes(x).decode() for x in arr("tokenizer.ggml.merges")]
    special = {3, 4}  # control, user-defined
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(toks) if types[i] in special]
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False}, bl]},
        "post_processor": bl, "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(toks) if types[i] not in special}, "merges": merges}})


class _Tok:
    """What llguidance.TokenizerWrapper needs: token bytes, EOS, special ids, and a
    tokenize function (greedy longest match; used for the byte-level vocabulary of
    the pass checks, where it is exact)."""

    def __init__(self, tokens, eos, special):
        self.tokens = tokens
        self.eos_token_id = eos
        self.bos_token_id = None
        self.special_token_ids = special
        self._by_bytes = {}
        for i, t in enumerate(tokens):
            if i not in set(special) and t:
                self._by_bytes.setdefault(t, i)
        self._longest = max(len(t) for t in tokens)

    def __call__(self, s):
        if isinstance(s, str):
            s = s.encode()
        out, i = [], 0
        while i < len(s):
            for n in range(min(self._longest, len(s) - i), 0, -1):
                t = self._by_bytes.get(s[i:i + n])
                if t is not None:
                    out.append(t)
                    i += n
                    break
            else:
                raise ValueError("byte not in vocabulary")
        return out


def stats(xs):
    if not xs:
        return None
    a = np.sort(np.asarray(xs, dtype=np.float64))
    return {"n": len(a), "mean": float(a.mean()), "p50": float(a[len(a) // 2]),
            "p99": float(a[min(len(a) - 1, len(a) * 99 // 100)]), "max": float(a[-1])}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_muse(bench, vocab, schemas, limit, slices, tmp):
    dump = os.path.join(tmp, "vocab.json")
    subprocess.run([bench, "--vocab", vocab, "--dump-vocab", dump], check=True)
    cmd = [bench, "--vocab", vocab, "--schemas", schemas]
    if limit:
        cmd += ["--limit", str(limit)]
    if not slices:
        cmd.append("--no-slices")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    with open(dump) as f:
        v = json.load(f)
    return v, lines[0], {r["file"]: r for r in lines[1:]}


def run_llguidance(v, vocab, schemas, files, muse):
    tokens = [bytes.fromhex(h) for h in v["pieces"]]
    tok = llguidance.LLTokenizer(hf_tokenizer_json(vocab), eos_token=v["eog"])
    # Same vocabulary and same tokenization as muse, checked.
    special = set(v["special"])
    bad_pieces = sum(1 for i, t in enumerate(tokens) if i not in special and tok.decode_bytes([i]) != t)
    bad_tok = sum(1 for f in files if muse[f].get("tokens") is not None
                  and tok.tokenize_str(muse[f]["text"]) != muse[f]["tokens"])
    byte_tok = llguidance.LLTokenizer(
        llguidance.TokenizerWrapper(_Tok([bytes([i]) for i in range(256)] + [b"\xff<eos>"], 256, [256])))
    n_vocab = len(tokens)
    words = (n_vocab + 31) // 32
    mask = np.zeros(words, dtype=np.int32)
    ptr, size = mask.ctypes.data, mask.size * mask.itemsize
    eos = v["eos"]
    res = {}
    for name in files:
        with open(os.path.join(schemas, name)) as f:
            doc = json.load(f)
        r = {}
        t0 = time.perf_counter()
        try:
            grm = llguidance.LLMatcher.grammar_from_json_schema(doc["schema"],
                                                                defaults={"whitespace_flexible": True})
            m = llguidance.LLMatcher(tok, grm, log_level=0)
            err = m.get_error() if m.is_error() else ""
        except Exception as e:  # noqa: BLE001 - a schema llguidance cannot take
            grm, m, err = None, None, str(e) or type(e).__name__
        r["compile_us"] = (time.perf_counter() - t0) * 1e6
        r["compiled"] = not err
        if err:
            r["error"] = err[:200]
            res[name] = r
            continue
        mr = muse.get(name, {})
        if mr.get("tokens") is not None:
            times, ok = [], True
            ids = mr["tokens"]
            for i in range(len(ids) + 1):
                t = time.perf_counter_ns()
                m.unsafe_compute_mask_ptr(ptr, size)
                times.append((time.perf_counter_ns() - t) / 1000)
                if i == len(ids):
                    ok = ok and bool((int(mask[eos >> 5]) >> (eos & 31)) & 1)
                    break
                t_id = ids[i]
                if not (int(mask[t_id >> 5]) >> (t_id & 31)) & 1 or not m.consume_token(t_id):
                    ok = False
                    break
            r["mask_us"] = times
            r["walk_ok"] = ok
        passed = True
        for t in doc["tests"]:
            text = json.dumps(t["data"], ensure_ascii=False).encode()
            bm = llguidance.LLMatcher(byte_tok, grm, log_level=0)
            got = bm.consume_tokens(list(text)) and bm.is_accepting()
            if bool(got) != bool(t["valid"]):
                passed = False
                break
        r["passed"] = passed
        res[name] = r
    return res, bad_pieces, bad_tok


def fmt_row(label, a, b, unit=""):
    ratio = f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
    fa = f"{a:,.1f}{unit}" if isinstance(a, float) else f"{a}"
    fb = f"{b:,.1f}{unit}" if isinstance(b, float) else f"{b}"
    return f"| {label} | {fa} | {fb} | {ratio} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--schemas", default=os.path.join(SHARED, "jsonschema", "bench-dev"))
    ap.add_argument("--vocab", default=os.path.join(SHARED, "vocab", "ggml-vocab-qwen2.gguf"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N schemas (sorted by name)")
    ap.add_argument("--no-slices", action="store_true", help="muse without its token slices (whole-trie walks)")
    ap.add_argument("--json", help="write the raw per-schema results here")
    args = ap.parse_args()
    bench = os.path.join(args.build, "benchmarks", "grammar-bench")
    if not os.path.exists(bench):
        sys.exit(f"{bench} not built (cmake --build {args.build} --target grammar-bench)")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        v, head, muse = run_muse(bench, args.vocab, args.schemas, args.limit, not args.no_slices, tmp)
        t_muse = time.time() - t0
    files = sorted(muse)
    t0 = time.time()
    llg, bad_pieces, bad_tok = run_llguidance(v, args.vocab, args.schemas, files, muse)
    t_llg = time.time() - t0

    common = [f for f in files if muse[f].get("walk_ok") and llg[f].get("walk_ok")]
    mm = stats([x for f in common for x in muse[f]["mask_us"]])
    lm = stats([x for f in common for x in llg[f]["mask_us"]])
    mc = stats([muse[f]["compile_us"] / 1000 for f in files if muse[f]["compiled"]])
    lc = stats([llg[f]["compile_us"] / 1000 for f in files if llg[f]["compiled"]])
    both = [f for f in files if muse[f]["compiled"] and llg[f]["compiled"]]
    mcb = stats([muse[f]["compile_us"] / 1000 for f in both])
    lcb = stats([llg[f]["compile_us"] / 1000 for f in both])

    print(f"Constrained decoding, {datetime.date.today()}, {cpu_model()}, one thread; "
          f"vocabulary {os.path.basename(args.vocab)} ({len(v['pieces']):,} tokens); "
          f"muse trie {head['trie_nodes']:,} nodes built in {head['trie_ms']:.0f} ms; "
          f"llguidance {llguidance.get_version() if hasattr(llguidance, 'get_version') else ''}; "
          f"muse slices {'on' if head['slices'] else 'off'}")
    print(f"{len(files)} schemas; walks both engines completed: {len(common)} schemas, {mm['n'] if mm else 0:,} masks "
          f"each (muse walked {sum(1 for f in files if muse[f].get('walk_ok'))}, "
          f"llguidance {sum(1 for f in files if llg[f].get('walk_ok'))} of those)")
    print(f"vocabulary check: {bad_pieces} token pieces differ between the engines; {bad_tok} walk texts "
          f"tokenize differently (muse's tokenizer vs llguidance's tokenizers-library one)")
    print()
    print("| | muse | llguidance | muse / llguidance |")
    print("| --- | ---: | ---: | ---: |")
    print(fmt_row("schemas passing (MaskBench rule)", sum(1 for f in files if muse[f].get("passed")),
                  sum(1 for f in files if llg[f].get("passed"))))
    print(fmt_row("schemas compiled", sum(1 for f in files if muse[f]["compiled"]),
                  sum(1 for f in files if llg[f]["compiled"])))
    if mm and lm:
        for k in ("mean", "p50", "p99", "max"):
            print(fmt_row(f"mask time {k} (us)", mm[k], lm[k]))
    if mcb and lcb:
        for k in ("mean", "p50", "p99"):
            print(fmt_row(f"compile time {k} (ms, {len(both)} both compile)", mcb[k], lcb[k]))
    print()
    print(f"compile time over each engine's own compiled schemas: muse mean {mc['mean']:.2f} ms, p50 {mc['p50']:.2f}, "
          f"p99 {mc['p99']:.2f} ({mc['n']}); llguidance mean {lc['mean']:.2f} ms, p50 {lc['p50']:.2f}, "
          f"p99 {lc['p99']:.2f} ({lc['n']})")
    comp = sum(muse[f].get("masks_computed", 0) for f in common)
    sliced = sum(muse[f].get("masks_sliced", 0) for f in common)
    nodes = sum(muse[f].get("nodes_walked", 0) for f in common)
    print(f"muse masks computed (not cached) {comp:,}, of which by slice {sliced:,}; trie nodes stepped {nodes:,}")
    print(f"wall time: muse {t_muse:.0f} s (incl. the pass checks), llguidance {t_llg:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"muse": muse, "llguidance": llg, "common": common}, f)


if __name__ == "__main__":
    main()
