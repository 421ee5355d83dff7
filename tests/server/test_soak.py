"""muse-server soak: 2,000 requests of every kind (chat and completions, streamed and not,
tools, json_schema, n=2, two contemplating agents, streams cancelled mid-way) from several
client threads against one server on the bundled nano model. The server's RSS after a
warm-up of 1,000 requests and after the next 1,000 must differ by less than 5%: a per-request leak
or unbounded cache shows up as growth long before 2,000 requests.

Under a sanitizer build (MUSE_SANITIZE set by tests/server.cmake) RSS says nothing (ASan's
quarantine holds freed memory on purpose) and every request is several times slower, so a
short run checks only that every request is answered and the server exits cleanly (leaks are
LeakSanitizer's to report at that exit)."""
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server import KEY, MODEL, WEATHER_TOOL, Server  # noqa: E402

SANITIZED = bool(os.environ.get("MUSE_SANITIZE"))
# The warm-up is the first 1,000 requests: glibc's per-thread arenas (the handler pool has
# --parallel + --queue + 4 threads) keep reaching new peaks up to about the 1,000th request, by
# shrinking steps (measured: +830, +390, +740, +500, +140, +140, +90, +110, +30 KiB per 200
# requests on a 79 MiB server), and how far they get depends on how the threads interleave:
# with the suite's other tests running beside it, growth measured after a 400-request warm-up
# read +1.8% to +11% on the same build. A per-request leak grows linearly and still shows over
# the second 1,000.
TOTAL, WARMUP = (240, 40) if SANITIZED else (2000, 1000)
THREADS = 8

SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"],
          "additionalProperties": False}
MSGS = [{"role": "user", "content": "How many red shapes are there?"}]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def body_of(i):
    """Request i of the mix: (path, body, kind) with kind one of plain, stream, cancel."""
    k = i % 10
    chat = {"model": MODEL, "messages": MSGS, "max_tokens": 6, "temperature": 0.7, "seed": i,
            "thinking": "off"}
    if k == 0:
        return "/v1/chat/completions", chat, "plain"
    if k == 1:
        return "/v1/chat/completions", dict(chat, stream=True, stream_options={"include_usage": True}), "stream"
    if k == 2:
        return "/v1/completions", {"prompt": "purple shapes: top left", "max_tokens": 6, "seed": i}, "plain"
    if k == 3:
        return "/v1/completions", {"prompt": "three red circles", "max_tokens": 6, "stream": True}, "stream"
    if k == 4:
        return "/v1/chat/completions", dict(chat, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=24), "plain"
    if k == 5:
        return "/v1/chat/completions", dict(chat, response_format={
            "type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA, "strict": True}}, max_tokens=12), "plain"
    if k == 6:
        return "/v1/chat/completions", dict(chat, n=2), "plain"
    if k == 7:
        return "/v1/chat/completions", dict(chat, agents=2, aggregate="vote"), "plain"
    if k == 8:  # read the first bytes of a long stream, then hang up: the server cancels it
        return "/v1/completions", {"prompt": "purple shapes:", "max_tokens": 200, "stream": True,
                                   "temperature": 1.0, "seed": i}, "cancel"
    # a different prompt each time: the prefix cache keeps turning over
    return "/v1/chat/completions", dict(chat, messages=[{"role": "user", "content": f"Count to {i}."}]), "plain"


def run_one(port, i):
    path, body, kind = body_of(i)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + KEY}
    if kind == "cancel":
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        head = s.recv(256)
        s.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        return
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, body=data, headers=headers)
    r = c.getresponse()
    out = r.read()
    c.close()
    assert r.status == 200, (i, r.status, out[:300])
    if kind == "stream":
        assert out.endswith(b"data: [DONE]\n\n"), (i, out[-200:])
    else:
        j = json.loads(out)
        assert j["choices"] and j["usage"]["completion_tokens"] > 0, (i, j)


def quiet(server):
    """Waits until nothing runs or waits (cancelled streams have ended), then settles."""
    deadline = time.time() + 30
    while time.time() < deadline:
        m = server.request("GET", "/metrics")[2].decode()
        if re.search(r"^muse_requests_running 0$", m, re.M) and re.search(r"^muse_requests_waiting 0$", m, re.M):
            break
        time.sleep(0.05)
    time.sleep(0.3)


def run_batch(port, ids):
    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(run_one, port, i) for i in ids]:
            f.result()


def test_soak_rss_flat():
    s = Server("--parallel", "4", "--api-key", KEY, "--queue", "64", "--ctx", "1024", "--max-tokens", "256")
    try:
        t0 = time.time()
        run_batch(s.port, range(WARMUP))
        quiet(s)
        before = rss_kib(s.proc.pid)
        t1 = time.time()
        run_batch(s.port, range(WARMUP, TOTAL))
        quiet(s)
        after = rss_kib(s.proc.pid)
        t2 = time.time()
        growth = (after - before) / before
        print(f"\nsoak: {TOTAL} requests ({THREADS} threads), warm-up {WARMUP} in {t1 - t0:.1f} s, rest in "
              f"{t2 - t1:.1f} s; RSS {before} KiB after warm-up, {after} KiB at the end ({growth * 100:+.2f}%)")
        s.alive()
        m = s.request("GET", "/metrics")[2].decode()
        ok = int(re.search(r'^muse_requests_total\{outcome="ok"\} (\d+)', m, re.M).group(1))
        failed = int(re.search(r'^muse_requests_total\{outcome="error"\} (\d+)', m, re.M).group(1))
        assert failed == 0, m
        assert ok >= TOTAL - TOTAL // 10, m  # every request but the hung-up streams ends ok
        if SANITIZED:
            print("soak: RSS growth not asserted under a sanitizer build (its quarantine holds freed memory)")
        else:
            assert growth < 0.05, f"RSS grew {growth * 100:.2f}% ({before} -> {after} KiB)"
    finally:
        rc = s.stop()
    assert rc == 0, "".join(s.log[-40:])
