"""llama.cpp (node-llama-cpp, ../shared/peers/llamacpp) as a reference runner for tests.

Locating the peer: $MUSE_LLAMACPP_REF (path of ref.mjs) or <repo>/.peers/llamacpp/ref.mjs.
Install it once with  bash ../shared/peers/llamacpp/install.sh /work/main/.peers/llamacpp .

``greedy_batch(jobs)`` runs many models x prompts in ONE node process (llamacpp_batch.mjs next to
this file, importing node-llama-cpp from the peer folder), because each node start costs ~1 s.
``greedy_ref(model, tokens)`` runs the peer's own ref.mjs (one prompt per process).
Both return runs shaped like ref.mjs output: {prompt_tokens, tokens, top: [[[tok, logprob]]*k]}.

``compare_run(ref_model, run)`` scores one llama.cpp run against a decoder_reference model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = Path(__file__).resolve().with_name("llamacpp_batch.mjs")


def ref_script() -> Path | None:
    env = os.environ.get("MUSE_LLAMACPP_REF")
    p = Path(env) if env else ROOT / ".peers" / "llamacpp" / "ref.mjs"
    return p if p.is_file() else None


def skip_reason() -> str | None:
    """Why the peer cannot run here (None when it can)."""
    if shutil.which("node") is None:
        return "llama.cpp peer needs node (not on PATH)"
    ref = ref_script()
    if ref is None:
        return ("llama.cpp peer not installed: run `bash ../shared/peers/llamacpp/install.sh "
                f"{ROOT}/.peers/llamacpp` or set MUSE_LLAMACPP_REF to its ref.mjs")
    if not (ref.parent / "node_modules" / "node-llama-cpp").is_dir():
        return f"llama.cpp peer at {ref.parent} has no node_modules/node-llama-cpp (install.sh not run?)"
    return None


def _run_node(args: list[str], timeout: float) -> dict:
    proc = subprocess.run(["node", *args], capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"node {' '.join(args[:2])} failed (rc={proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}\nstdout: {proc.stdout[-1000:]}")
    return json.loads(lines[-1])


def greedy_batch(jobs: list[dict], timeout: float = 300) -> dict:
    """jobs: [{"model": path, "prompts": [[ids]], "n": 24, "top": 5, "ctx": 256, "threads": 1}].
    Returns {build_type, llama_cpp_release, results: [{model, runs: [...]}]} in job order.
    Every model must be loadable: a failed llama.cpp load ends the node process early."""
    ref = ref_script()
    assert ref is not None, skip_reason()
    jobs = [dict(j, model=str(j["model"]), prompts=[list(map(int, p)) for p in j["prompts"]])
            for j in jobs]
    for j in jobs:
        j.setdefault("threads", 1)   # 1 thread: much faster than 2 on a busy 2-core machine
        j.setdefault("ctx", 256)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(jobs, f)
        job_file = f.name
    try:
        out = _run_node([str(BATCH_SCRIPT), str(ref.parent), job_file], timeout)
    finally:
        os.unlink(job_file)
    if len(out.get("results", [])) != len(jobs):
        raise RuntimeError(f"llama.cpp batch returned {len(out.get('results', []))} of {len(jobs)} results")
    return out


def greedy_ref(model, tokens, n: int = 24, top: int = 5, ctx: int = 256, threads: int = 2,
               timeout: float = 120) -> dict:
    """One greedy run through the peer's own ref.mjs (for cross-checking the batch script)."""
    ref = ref_script()
    assert ref is not None, skip_reason()
    return _run_node([str(ref), "greedy", str(model), "--tokens", ",".join(map(str, tokens)),
                      "--n", str(n), "--top", str(top), "--ctx", str(ctx), "--threads", str(threads)],
                     timeout)


@dataclass
class RunComparison:
    n_steps: int = 0                 # steps llama.cpp produced
    free_compared: int = 0           # free-running greedy: steps compared (up to first peer near-tie)
    free_matched: int = 0            # ... of which identical (== compared unless a real mismatch)
    forced_compared: int = 0         # teacher-forced: steps with peer gap >= tie (argmax must agree)
    forced_matched: int = 0
    max_lp_diff: float = 0.0         # over every step (teacher-forced) and llama.cpp's top-k tokens
    max_lp_diff_top1: float = 0.0
    mismatches: list = field(default_factory=list)   # (step, peer_token, ref_token, peer_gap)


def compare_run(ref_model, run: dict, tie_gap: float = 0.02) -> RunComparison:
    """Score one llama.cpp greedy run against the float64 reference.

    * free-running: the reference's own greedy continuation must equal llama.cpp's up to the first
      step where llama.cpp's top-2 logprob gap is below ``tie_gap`` (free_compared steps, of which
      free_matched agree; they are equal unless there is a real mismatch);
    * teacher-forced: the reference evaluated on llama.cpp's tokens must pick llama.cpp's token at
      every step whose llama.cpp gap is >= tie_gap, and its logprobs of llama.cpp's top-k tokens
      are compared at every step (valid after a near-tie too, since the context is the same).
    """
    from decoder_reference import log_softmax

    prompt, toks, top = list(run["prompt_tokens"]), list(run["tokens"]), run["top"]
    c = RunComparison(n_steps=len(toks))
    if not toks:
        return c
    lp = log_softmax(ref_model.logits(prompt + toks[:-1]))[len(prompt) - 1:]
    gaps = [t[0][1] - t[1][1] if len(t) > 1 else np.inf for t in top]
    for s, tok in enumerate(toks):
        for t, peer_lp in top[s]:
            d = abs(peer_lp - lp[s, t])
            c.max_lp_diff = max(c.max_lp_diff, d)
            if t == top[s][0][0]:
                c.max_lp_diff_top1 = max(c.max_lp_diff_top1, d)
        if gaps[s] >= tie_gap:
            c.forced_compared += 1
            ref_tok = int(np.argmax(lp[s]))
            if ref_tok == tok:
                c.forced_matched += 1
            else:
                c.mismatches.append((s, tok, ref_tok, gaps[s]))
    # Free-running greedy needs no extra pass: while every earlier step matched, the reference's
    # own continuation has the same context as llama.cpp's, so its choice is argmax(lp[s]).
    for s, tok in enumerate(toks):
        if gaps[s] < tie_gap:
            break
        c.free_compared += 1
        if int(np.argmax(lp[s])) != tok:
            break
        c.free_matched += 1
    return c
