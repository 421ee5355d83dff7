"""Load on muse-server: many streaming clients at once, against each request served alone.

    .venv/bin/python benchmarks/server_load.py [--build build] [--model build/bench-models/llama-0.5b-Q8_0.gguf]
        [--clients 32] [--requests 8] [--max-tokens 16] [--parallel 32] [--threads 2]

Starts muse-server on a free loopback port. Each request is a greedy /v1/completions stream of
a prompt of token ids (the bench models have no chat template), different for every request.
1. one client: the first --single requests one after another (the single-client tokens/s);
2. --clients clients at once, each sending --requests requests one after another: aggregate
   generated tokens/s, time to first token (p50/p99), errors;
3. every request of step 2 again, alone, one after another: its text must equal the text it
   got under load (continuous batching must not change a greedy answer).
Prints one JSON line of results, then a Markdown row.
"""
import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Server:
    def __init__(self, binary, args):
        self.proc = subprocess.Popen([str(binary), "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return
        self.proc.kill()
        raise RuntimeError("muse-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def stream_completion(port, prompt, max_tokens):
    """One greedy streamed completion: (text, completion tokens, seconds to first token, total s)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    text, ttft, tokens = [], None, None
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for ch in chunk.get("choices", []):
            if ch.get("text"):
                if ttft is None:
                    ttft = time.perf_counter() - t0
                text.append(ch["text"])
    c.close()
    return "".join(text), tokens or 0, ttft if ttft is not None else time.perf_counter() - t0, time.perf_counter() - t0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--single", type=int, default=8, help="requests in the single-client run")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    build = Path(args.build)
    model = args.model or str(build / "bench-models" / "llama-0.5b-Q8_0.gguf")
    rng = random.Random(7)
    prompts = [[rng.randrange(3, 30000) for _ in range(args.prompt_tokens)] for _ in range(args.clients * args.requests)]
    srv = Server(build / "examples" / "muse-server",
                 ["-m", model, "--parallel", str(args.parallel), "--threads", str(args.threads),
                  "--ctx", str(max(64, args.prompt_tokens + args.max_tokens + 8)), "--queue", str(4 * args.clients)])
    try:
        stream_completion(srv.port, prompts[0], 2)  # warm-up
        # 1. one client
        t0 = time.perf_counter()
        single_tokens = sum(stream_completion(srv.port, p, args.max_tokens)[1] for p in prompts[:args.single])
        single_tps = single_tokens / (time.perf_counter() - t0)
        # 2. all clients at once
        results, errors = {}, []

        def client(c):
            for k in range(args.requests):
                i = c * args.requests + k
                try:
                    results[i] = stream_completion(srv.port, prompts[i], args.max_tokens)
                except Exception as e:  # counted, reported
                    errors.append(f"request {i}: {e}")

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        load_tokens = sum(r[1] for r in results.values())
        load_tps = load_tokens / wall
        ttfts = [r[2] for r in results.values()]
        # 3. each request alone
        differ = []
        for i, (text, _, _, _) in sorted(results.items()):
            alone = stream_completion(srv.port, prompts[i], args.max_tokens)[0]
            if alone != text:
                differ.append(i)
    finally:
        srv.stop()
    out = {"clients": args.clients, "requests_each": args.requests, "max_tokens": args.max_tokens,
           "parallel": args.parallel, "threads": args.threads, "errors": len(errors),
           "completed": len(results), "differ_from_alone": len(differ),
           "single_client_tps": round(single_tps, 2), "aggregate_tps": round(load_tps, 2),
           "speedup": round(load_tps / single_tps, 2),
           "ttft_p50_ms": round(1000 * statistics.median(ttfts), 1) if ttfts else None,
           "ttft_p99_ms": round(1000 * pct(ttfts, 99), 1) if ttfts else None, "wall_s": round(wall, 1)}
    print(json.dumps(out))
    for e in errors[:5]:
        print(e, file=sys.stderr)
    print(f"| {args.clients} x {args.requests} | {out['completed']} | {out['errors']} | {out['differ_from_alone']} | "
          f"{out['single_client_tps']} | {out['aggregate_tps']} | {out['speedup']}x | {out['ttft_p50_ms']} | "
          f"{out['ttft_p99_ms']} |")
    return 1 if errors or differ else 0


if __name__ == "__main__":
    sys.exit(main())
