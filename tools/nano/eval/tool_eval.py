"""The nano's tool episodes (zoom, calculator) run through muse's tool runtime, on the exported
GGUF pair, with the same held-out episodes as eval.py (world seeds 900_000_000 + i, the first
--n-tools episodes of kind zoom/calc).

eval.py executes the calls itself (it parses the model's ATEM call out of the generated text,
runs world.zoom / a digits-and-+-* evaluator and feeds the tool message back into the KV
cache). Here muse does all of that: `Session.chat(messages, tools=[zoom, calculator], ...)`
with the tools as host Python callables, so the runtime renders the declarations through the
model's chat template, constrains the call with its lazy call grammar, parses it, calls the
callable, appends the assistant's call and the tool message (an image part for zoom),
re-renders the conversation and continues the turn.

  zoom(region)           the nano world's zoom: the named cell of the scene's 3x render
                         (world.zoom, the 96x96 view the harness feeds), returned as muse.Image;
                         declared exactly as world.TOOLS["zoom"] (name, description, enum of
                         the 9 cell names)
  calculator(expression) the harness's evaluator (digits, + - * and spaces, else "error"),
                         declared exactly as world.TOOLS["calculator"]; --calculator builtin
                         uses muse's built-in "calculator" instead (its declaration's
                         description is longer than the one the nano was trained on)

Protocol as in eval.py's tool rows: greedy decoding, reasoning strength high with unlimited
thinking (thinking="on", no budget), the episode's own date in the prompt, at most 2 tool
rounds (eval.py executes at most 2 calls; here the response after the 2nd round runs with
tool_choice "none"), one call per response (parallel_tool_calls=False: eval.py runs the first
call it finds; --parallel-tool-calls measures muse's default), F16 KV cache. Scoring as eval.py: the answer text, stripped, equals the episode's
answer. Also counted: episodes with a call, calls run, failed calls (the runtime's `failed` or
the evaluator's "error"), calls parsed but never run, zoom calls naming the tiny-shape cell,
and whether the first prompt equals eval.py's (world.render_chat). Results: docs/NANO.md.

    PYTHONPATH=../../bindings/python MUSE_LIBRARY=../../build/src/libmuse.so \\
      ../../.venv/bin/python eval/tool_eval.py ../../models/muse-glimmer-nano.gguf \\
      ../../models/muse-glimmer-nano-mmproj.gguf --n-tools 40 --threads 1 --json /tmp/tool_eval.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from typing import Literal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import muse  # noqa: E402
import muse.tools  # noqa: E402
import world  # noqa: E402
from heldout import heldout  # noqa: E402

MAX_TOOL_ROUNDS = 2  # eval.py: `tool_rounds < 2`


def to_muse(img) -> "muse.Image":
    rgb = img.convert("RGB")
    return muse.Image.from_pixels(rgb.tobytes(), rgb.width, rgb.height, 3)


def harness_calc(expr: str) -> str:
    """eval.py's calc(): digits, + - * and spaces only; anything else reads "error"."""
    if not re.fullmatch(r"[0-9+\-* ]+", expr):
        return "error"
    try:
        return str(eval(expr, {"__builtins__": {}}, {}))  # digits and + - * only
    except Exception:
        return "error"


CellName = Literal[tuple(world.CELL_NAMES)]  # type: ignore[valid-type]


def make_tools(smp):
    """Host callables for one episode; their derived declarations equal world.TOOLS."""

    def zoom(region: CellName) -> "muse.Image":
        """Look closer at one cell of the image."""
        if region not in world.CELL_NAMES:
            return "error"  # as eval.py (the call grammar's enum should make this unreachable)
        return to_muse(world.zoom(smp["scene"], region))

    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return harness_calc(expression)

    return {"zoom": zoom, "calculator": calculator}


def episode_messages(smp):
    msgs = []
    for m in smp["messages"]:
        if m["role"] == "assistant":
            break
        msgs.append(m)
    return msgs, [to_muse(smp["images"][0])]


def check_declarations():
    fns = make_tools(None)
    for name, fn in fns.items():
        got = muse.tools.function_declaration(fn)
        if got != world.TOOLS[name]:
            raise SystemExit(f"declaration of {name} differs from world.TOOLS:\n{got}\n{world.TOOLS[name]}")


def run_episode(session, smp, calculator: str, max_tokens: int, parallel: bool):
    msgs, images = episode_messages(smp)
    fns = make_tools(smp)
    name = smp["tools"][0]["function"]["name"]
    kw = dict(thinking="on", max_tokens=max_tokens, reuse_prefix=False, tool_choice="auto",
              max_tool_rounds=MAX_TOOL_ROUNDS, parallel_tool_calls=parallel, variables={"current_date": smp["date"].isoformat()})
    if name == "calculator" and calculator == "builtin":
        kw["builtin_tools"] = ["calculator"]
    else:
        kw["tools"] = [fns[name]]
    session.seq_remove(0)
    return session.chat(msgs, images=images, **kw)


CALL_RE = re.compile(r"<\|start\|>assistant to=(\w+)<\|message\|>.*?<atem:parameter name=\"\w+\">(.*?)</atem:parameter>", re.S)
ANSWER_HDR = "<|eom|><|start|>assistant to=user<|message|>"


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def harness_episode(session, model, smp):
    """--protocol harness: eval.py's run_episode (setting "unlimited") line for line, on muse's
    engine (Session.eval_prompt / eval, greedy argmax), so that the runtime's result can be told
    apart from the engine's: the harness forces ' to=self<|message|>' after every
    '<|start|>assistant', caps reasoning at 256 tokens in all, lets the model write its next
    message up to <|eot|> (200 tokens), runs the first call it finds in that text (at most 2)
    and feeds the tool message as raw text after whatever the model wrote."""
    ids = lambda t: model.tokenize(t, parse_special=True)
    eom, eot, eos = ids("<|eom|>")[0], ids("<|eot|>")[0], ids("</s>")[0]
    argmax = lambda lg: max(range(len(lg)), key=lg.__getitem__)

    def gen(logits, max_new, stop):
        out = []
        for _ in range(max_new):
            t = argmax(logits)
            out.append(t)
            if t in stop:
                break
            logits = session.eval([t])
        return logits, out

    detok = lambda out: model.detokenize(out, render_special=True)
    msgs, images = episode_messages(smp)
    session.seq_remove(0)
    prompt = world.render_chat(msgs, smp["tools"], "high", add_generation_prompt=True, date=smp["date"])
    logits = session.eval_prompt(prompt, images, add_bos=False)
    transcript, results = [], []
    n_reason, tool_rounds = 0, 0
    while True:
        logits = session.eval(ids(" to=self<|message|>"))
        transcript.append(" to=self<|message|>")
        reason = []
        while n_reason < 256:
            t = argmax(logits)
            if t == eom:
                break
            reason.append(t)
            n_reason += 1
            logits = session.eval([t])
        transcript.append(detok(reason))
        if n_reason >= 256 or argmax(logits) != eom:
            logits = session.eval(ids(ANSWER_HDR))
            transcript.append(ANSWER_HDR)
            logits, out = gen(logits, 12, (eot, eom, eos))
            transcript.append(detok(out))
            break
        logits, out = gen(logits, 200, (eot, eos))
        txt = detok(out)
        transcript.append(txt)
        mcall = CALL_RE.search(txt)
        if mcall and tool_rounds < MAX_TOOL_ROUNDS and smp["tools"]:
            tool_rounds += 1
            name, arg = mcall.group(1), mcall.group(2)
            if name == "zoom" and arg in world.CELL_NAMES:
                content, imgs = world.MEDIA, [to_muse(world.zoom(smp["scene"], arg))]
            elif name == "calculator":
                content, imgs = harness_calc(arg), []
            else:
                content, imgs = "error", []
            results.append(dict(name=name, arguments={"region" if name == "zoom" else "expression": arg},
                                content="" if imgs else content, failed=False))
            tool_txt = (f"<|start|>tool {name}<|message|><tool_output name=\"{name}\">\n{content}\n"
                        f"</tool_output><|eot|><|start|>assistant")
            logits = session.eval_prompt(tool_txt, imgs, add_bos=False) if imgs else session.eval(ids(tool_txt))
            transcript.append(tool_txt)
            continue
        break
    full = "".join(transcript)
    answer = full.split("to=user<|message|>")[-1] if "to=user<|message|>" in full else ""
    answer = answer.replace("<|eot|>", "").replace("<|eom|>", "")
    return _Obj(answer=answer, reasoning=full, tool_results=results, tool_calls=[], finish_reason="",
                usage=dict(reasoning_tokens=n_reason), malformed=False)


def prompt_matches(model, smp, calculator: str) -> bool:
    """Is the first prompt muse renders the harness's prompt (world.render_chat, jinja2)?"""
    msgs, images = episode_messages(smp)
    name = smp["tools"][0]["function"]["name"]
    if name == "calculator" and calculator == "builtin":
        return None, "", ""
    # chat_prompt renders declaration dicts only (callables are dropped there); the callables'
    # declarations equal world.TOOLS (check_declarations), so this is the prompt chat() renders
    mine = model.chat_prompt(msgs, thinking="on", tools=[world.TOOLS[name]],
                             variables={"current_date": smp["date"].isoformat()})
    ref = world.render_chat(msgs, smp["tools"], "high", add_generation_prompt=True, date=smp["date"])
    return mine.replace(world.MEDIA, "<|patch|>") == ref.replace(world.MEDIA, "<|patch|>"), mine, ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("mmproj")
    ap.add_argument("--n-tools", type=int, default=40, help="held-out tool episodes (eval.py's --n-tools)")
    ap.add_argument("--calculator", choices=("host", "builtin"), default="host")
    ap.add_argument("--protocol", choices=("runtime", "harness"), default="runtime",
                    help="runtime: Session.chat with tools (this script's point); harness: eval.py's own "
                         "tool loop ported onto muse's engine (reference for the comparison)")
    ap.add_argument("--parallel-tool-calls", action="store_true",
                    help="muse's default (several calls per response); off by default: eval.py runs the "
                         "first call of a response")
    ap.add_argument("--max-tokens", type=int, default=400, help="per response (round)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-batch", type=int, default=512, help="rows per forward pass (the library's default)")
    ap.add_argument("--json", default="", help="write the summary here")
    ap.add_argument("--dump", default="", help="write every episode's transcript here (jsonl)")
    a = ap.parse_args()
    check_declarations()
    m = muse.Model(a.model, mmproj=a.mmproj, threads=a.threads)
    s = m.session(n_ctx=2048, n_seq_max=2, n_batch=a.n_batch)
    eps = heldout(a.n_tools, kinds=("zoom", "calc"))
    per = defaultdict(lambda: dict(hits=0, n=0, called=0, calls=0, failed=0, right_region=0,
                                   unrun_calls=0, malformed=0, prompt_same=0, wall_s=0.0))
    dump = open(a.dump, "w") if a.dump else None
    t0 = time.time()
    for i, smp in enumerate(eps):
        k = smp["kind"]
        st = per[k]
        same, mine, ref = prompt_matches(m, smp, a.calculator)
        st["prompt_same"] += bool(same)
        t1 = time.time()
        if a.protocol == "harness":
            r = harness_episode(s, m, smp)
        else:
            r = run_episode(s, smp, a.calculator, a.max_tokens, a.parallel_tool_calls)
        dt = time.time() - t1
        ok = r.answer.strip() == smp["answer"]
        res = r.tool_results
        failed = [x for x in res if x.get("failed") or str(x.get("content", "")).strip() == "error"]
        st["hits"] += ok
        st["n"] += 1
        st["called"] += bool(res or r.tool_calls)
        st["calls"] += len(res)
        st["failed"] += len(failed)
        st["unrun_calls"] += len(r.tool_calls)
        st["malformed"] += bool(r.malformed)
        st["wall_s"] += dt
        if k == "zoom":
            want = smp["messages"][1]["tool_calls"][0]["function"]["arguments"]["region"]
            st["right_region"] += any(x.get("name") == "zoom" and (x.get("arguments") or {}).get("region") == want
                                      for x in res)
        print(f"{i:3d} {k:4s} ok={int(ok)} answer={r.answer.strip()[:40]!r} want={smp['answer']!r} "
              f"calls={[(x['name'], x.get('arguments'), x.get('content', '')[:24], x.get('failed')) for x in res]} "
              f"unrun={r.tool_calls} finish={r.finish_reason} prompt_same={same} [{dt:.1f}s]", flush=True)
        if dump:
            dump.write(json.dumps(dict(i=i, kind=k, answer=r.answer, want=smp["answer"], ok=ok,
                                       reasoning=r.reasoning, tool_results=res, tool_calls=r.tool_calls,
                                       finish_reason=r.finish_reason, usage=r.usage, malformed=r.malformed,
                                       prompt_same=same, prompt_diff=None if same else [mine, ref]),
                                  default=str) + "\n")
    summary = {k: dict(v, acc=round(v["hits"] / v["n"], 4), wall_s=round(v["wall_s"], 1)) for k, v in per.items()}
    summary["total_wall_s"] = round(time.time() - t0, 1)
    summary["protocol"] = a.protocol
    summary["calculator"] = a.calculator
    summary["parallel_tool_calls"] = a.parallel_tool_calls
    print("tools", json.dumps(summary), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
