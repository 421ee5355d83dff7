"""muse-server end to end: the official `openai` client, SSE framing byte for byte, the API
key, and hostile requests that must each get a 4xx while the server stays up.

One server (bundled nano model + mmproj, 4 sequences, an API key) serves the whole module;
it is started on a free loopback port and stopped with SIGTERM at the end, which must be a
clean exit (under ASan: no leaks either)."""
import base64
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import jsonschema
import pytest

openai = pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parents[2]
SERVER = os.environ.get("MUSE_SERVER", str(ROOT / "build" / "examples" / "muse-server"))
MODELS = Path(os.environ.get("MUSE_MODELS_DIR", ROOT / "models"))
IMAGES = Path(os.environ.get("MUSE_IMAGES_DIR", ROOT / "examples" / "images"))
KEY = "test-key-0123456789"
MODEL = "muse-glimmer-nano"
QUESTION = "How many purple shapes are there?"

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "London"]}},
                   "required": ["city"], "additionalProperties": False}}}


class Server:
    def __init__(self, *args):
        if not Path(SERVER).exists():
            pytest.skip(f"muse-server not built ({SERVER})")
        self.proc = subprocess.Popen(
            [SERVER, "-m", str(MODELS / "muse-glimmer-nano.gguf"), "--mmproj", str(MODELS / "muse-glimmer-nano-mmproj.gguf"),
             "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        self.log = []
        line = ""
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            self.proc.kill()
            raise RuntimeError("muse-server did not start: " + "".join(self.log))
        if not hasattr(self, "port"):
            raise RuntimeError("muse-server did not start: " + "".join(self.log))
        # Keep reading stderr so the server never blocks on a full pipe.
        self.reader = threading.Thread(target=lambda: self.log.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self.reader.start()

    def request(self, method, path, body=None, headers=None, key=KEY, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def alive(self):
        assert self.proc.poll() is None, "muse-server exited: " + "".join(self.log)
        status, _, body = self.request("GET", "/health", key=None)
        assert status == 200 and json.loads(body) == {"status": "ok"}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.reader.join(timeout=5)
        return rc


@pytest.fixture(scope="module")
def server():
    s = Server("--parallel", "4", "--api-key", KEY, "--max-messages", "256", "--queue", "16")
    yield s
    rc = s.stop()
    assert rc == 0, "muse-server did not exit cleanly (%d):\n%s" % (rc, "".join(s.log[-40:]))


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0, timeout=120)


def image_url(name="shapes-1.png"):
    return "data:image/png;base64," + base64.b64encode((IMAGES / name).read_bytes()).decode()


def extra(message, key):
    return (message.model_extra or {}).get(key)


def test_models_and_health(server, client):
    server.alive()
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL]


def test_chat_and_stream_agree(client):
    msgs = [{"role": "user", "content": "How many red shapes are there?"}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=48,
                                       extra_body={"thinking": "off"})
    text = r.choices[0].message.content
    assert isinstance(text, str) and text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    parts, finish, usage = [], None, None
    for chunk in client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=48, stream=True,
                                                stream_options={"include_usage": True}, extra_body={"thinking": "off"}):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == text  # greedy: the stream is the same response
    assert finish == r.choices[0].finish_reason
    assert usage.completion_tokens == r.usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens > 0  # the same prompt again: its prefix was kept


def test_reasoning_content_with_image(client):
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url()}},
                                         {"type": "text", "text": QUESTION}]}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=200,
                                       extra_body={"thinking": "on"})
    m = r.choices[0].message
    reasoning = extra(m, "reasoning_content")
    assert reasoning and "purple" in reasoning
    assert m.content.strip() == "3"  # the README's main job, through the server
    assert r.usage.completion_tokens_details.reasoning_tokens > 0

    streamed_reasoning, streamed = [], []
    for chunk in client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=200, stream=True,
                                                extra_body={"thinking": "on"}):
        for c in chunk.choices:
            streamed_reasoning.append(extra(c.delta, "reasoning_content") or "")
            streamed.append(c.delta.content or "")
    assert "".join(streamed_reasoning) == reasoning
    assert "".join(streamed) == m.content

    # A reasoning_content in the history is accepted (rendered by the template).
    msgs2 = msgs + [{"role": "assistant", "content": m.content, "reasoning_content": reasoning},
                    {"role": "user", "content": "How many red shapes are there?"}]
    r2 = client.chat.completions.create(model=MODEL, messages=msgs2, temperature=0, max_tokens=200,
                                        extra_body={"thinking": "off"})
    assert r2.choices[0].message.content


def test_tool_loop(client):
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    for rnd in range(2):  # two rounds of calls, then an answer
        stream = rnd == 1  # the second round's call comes as streamed, indexed deltas
        if stream:
            calls = {}
            finish = None
            for chunk in client.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER_TOOL],
                                                        tool_choice="required", temperature=0, max_tokens=300,
                                                        stream=True, extra_body={"thinking": "off"}):
                for c in chunk.choices:
                    finish = c.finish_reason or finish
                    for d in c.delta.tool_calls or []:
                        e = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                        e["id"] += d.id or ""
                        e["name"] += d.function.name or ""
                        e["arguments"] += d.function.arguments or ""
            assert finish == "tool_calls" and list(calls) == [0]
            call = calls[0]
            tool_calls = [{"id": call["id"], "type": "function",
                           "function": {"name": call["name"], "arguments": call["arguments"]}}]
            msgs.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        else:
            r = client.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER_TOOL], tool_choice="required",
                                               temperature=0, max_tokens=300, extra_body={"thinking": "off"})
            ch = r.choices[0]
            assert ch.finish_reason == "tool_calls", ch
            call = {"id": ch.message.tool_calls[0].id, "name": ch.message.tool_calls[0].function.name,
                    "arguments": ch.message.tool_calls[0].function.arguments}
            msgs.append(ch.message.model_dump(exclude_none=True))
        assert call["name"] == "get_weather" and call["id"]
        args = json.loads(call["arguments"])
        assert args["city"] in ("Paris", "London")
        msgs.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"temp_c": 21 + rnd})})
    r = client.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER_TOOL], tool_choice="none",
                                       temperature=0, max_tokens=100, extra_body={"thinking": "off"})
    assert r.choices[0].finish_reason in ("stop", "length")
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].message.content


def test_response_format_json_schema(client):
    schema = {"type": "object", "properties": {"color": {"type": "string", "enum": ["red", "blue", "purple"]},
                                               "count": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["color", "count"], "additionalProperties": False}
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "How many red shapes are there? Answer as JSON."}],
        temperature=0, max_tokens=200,
        response_format={"type": "json_schema", "json_schema": {"name": "count", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "A shape as JSON"}],
                                       temperature=0, max_tokens=200, response_format={"type": "json_object"},
                                       extra_body={"thinking": "off"})
    assert r.choices[0].finish_reason != "stop" or isinstance(json.loads(r.choices[0].message.content), dict)


def test_n3_and_logprobs(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}], n=3,
                                       temperature=0.9, seed=7, max_tokens=32, logprobs=True, top_logprobs=2,
                                       extra_body={"thinking": "off"})
    assert [c.index for c in r.choices] == [0, 1, 2]
    for c in r.choices:
        assert c.finish_reason in ("stop", "length")
        for e in c.logprobs.content:
            assert e.logprob <= 0 and len(e.top_logprobs) <= 2
    # Same seed, same choices.
    r2 = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}], n=3,
                                        temperature=0.9, seed=7, max_tokens=32, extra_body={"thinking": "off"})
    assert [c.message.content for c in r2.choices] == [c.message.content for c in r.choices]


def test_concurrent_requests_match_alone(client):
    prompts = ["How many red shapes are there?", "What color is the shape at top left?",
               "How many shapes are there?", "Is there a blue square?"]

    def ask(p):
        return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}], temperature=0,
                                              max_tokens=40, extra_body={"thinking": "off"}).choices[0].message.content

    alone = [ask(p) for p in prompts]
    together = [None] * len(prompts)
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(prompts[i]))) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_completions(client):
    r = client.completions.create(model=MODEL, prompt="purple shapes: top left", max_tokens=12, temperature=0)
    assert r.choices[0].text and r.usage.completion_tokens > 0
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="purple shapes: top left", max_tokens=12, temperature=0, stream=True))
    assert text == r.choices[0].text


def test_sse_framing_bytes(server):
    """The raw stream: exactly `data: <json>\\n\\n` events, the role chunk first, the finish chunk
    last, then `data: [DONE]\\n\\n` and nothing else."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "How many red shapes are there?"}],
            "temperature": 0, "max_tokens": 16, "stream": True, "thinking": "off"}
    status, headers, data = server.request("POST", "/v1/chat/completions", body)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert data.endswith(b"\n\ndata: [DONE]\n\n")
    events = data.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    chunks = []
    for ev in events[:-2]:
        assert ev.startswith(b"data: {") and b"\n" not in ev and b"\r" not in ev, ev
        chunks.append(json.loads(ev[len(b"data: "):]))
    rebuilt = b"".join(b"data: " + ev[len(b"data: "):] + b"\n\n" for ev in events[:-2]) + b"data: [DONE]\n\n"
    assert rebuilt == data
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_api_key(server):
    for key in (None, "wrong", KEY + "x", KEY[:-1]):
        status, headers, body = server.request("GET", "/v1/models", key=key)
        assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
        status, _, _ = server.request("POST", "/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}, key=key)
        assert status == 401
    status, _, _ = server.request("GET", "/v1/models", key=KEY)
    assert status == 200
    assert server.request("GET", "/health", key=None)[0] == 200


def test_tokenize_detokenize(server):
    status, _, body = server.request("POST", "/tokenize", {"content": "How many red shapes?"})
    assert status == 200
    ids = json.loads(body)["tokens"]
    assert ids and all(isinstance(i, int) for i in ids)
    status, _, body = server.request("POST", "/detokenize", {"tokens": ids})
    assert status == 200 and json.loads(body)["content"] == "How many red shapes?"


def huge_png_header(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def chat(**kw):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    body.update(kw)
    return body


def image_msg(url):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]}]


HOSTILE = [
    ("malformed json", "/v1/chat/completions", b'{"messages": [', 400),
    ("not an object", "/v1/chat/completions", b"[1, 2, 3]", 400),
    ("empty body", "/v1/chat/completions", b"", 400),
    ("invalid utf-8", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\xff\xfe\xc0"}]}', 400),
    ("messages not an array", "/v1/chat/completions", chat(messages="hi"), 400),
    ("empty messages", "/v1/chat/completions", chat(messages=[]), 400),
    ("message not an object", "/v1/chat/completions", chat(messages=[42]), 400),
    ("unknown role", "/v1/chat/completions", chat(messages=[{"role": "wizard", "content": "hi"}]), 400),
    ("content wrong type", "/v1/chat/completions", chat(messages=[{"role": "user", "content": 5}]), 400),
    ("10,000 messages", "/v1/chat/completions", chat(messages=[{"role": "user", "content": "hi"}] * 10000), 400),
    ("max_tokens string", "/v1/chat/completions", chat(max_tokens="10"), 400),
    ("max_tokens negative", "/v1/chat/completions", chat(max_tokens=-5), 400),
    ("max_tokens zero", "/v1/chat/completions", chat(max_tokens=0), 400),
    ("max_tokens huge", "/v1/chat/completions", chat(max_tokens=10 ** 12), 400),
    ("max_tokens beyond int64", "/v1/chat/completions", chat(max_tokens=2 ** 70), 400),
    ("max_tokens float", "/v1/chat/completions", chat(max_tokens=3.5), 400),
    ("temperature string", "/v1/chat/completions", chat(temperature="hot"), 400),
    ("temperature negative", "/v1/chat/completions", chat(temperature=-1), 400),
    ("top_p too big", "/v1/chat/completions", chat(top_p=7), 400),
    ("n zero", "/v1/chat/completions", chat(n=0), 400),
    ("n too many", "/v1/chat/completions", chat(n=100), 400),
    ("stream not bool", "/v1/chat/completions", chat(stream="yes"), 400),
    ("stop wrong type", "/v1/chat/completions", chat(stop=[1, 2]), 400),
    ("too many stops", "/v1/chat/completions", chat(stop=["a", "b", "c", "d", "e"]), 400),
    ("seed string", "/v1/chat/completions", chat(seed="x"), 400),
    ("top_logprobs too many", "/v1/chat/completions", chat(logprobs=True, top_logprobs=50), 400),
    ("unknown field", "/v1/chat/completions", chat(frobnicate=True), 400),
    ("unknown message field", "/v1/chat/completions", chat(messages=[{"role": "user", "content": "hi", "x": 1}]), 400),
    ("tools not an array", "/v1/chat/completions", chat(tools={"a": 1}), 400),
    ("tool_choice unknown function", "/v1/chat/completions",
     chat(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}), 400),
    ("tool call arguments not json", "/v1/chat/completions", chat(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "x"}], tools=[WEATHER_TOOL]), 400),
    ("response_format bad type", "/v1/chat/completions", chat(response_format={"type": "xml"}), 400),
    ("response_format no schema", "/v1/chat/completions", chat(response_format={"type": "json_schema", "json_schema": {}}), 400),
    ("logit_bias bad token", "/v1/chat/completions", chat(logit_bias={"99999999": 1}), 400),
    ("http image url", "/v1/chat/completions", chat(messages=image_msg("http://example.com/a.png")), 400),
    ("file image url", "/v1/chat/completions", chat(messages=image_msg("file:///etc/passwd")), 400),
    ("path traversal image url", "/v1/chat/completions", chat(messages=image_msg("../../../../etc/passwd")), 400),
    ("data url not base64", "/v1/chat/completions", chat(messages=image_msg("data:image/png;base64,!!!!")), 400),
    ("data url not an image", "/v1/chat/completions",
     chat(messages=image_msg("data:image/png;base64," + base64.b64encode(b"hello world").decode())), 400),
    ("data url text type", "/v1/chat/completions", chat(messages=image_msg("data:text/plain;base64,aGk=")), 400),
    ("image pixel bomb", "/v1/chat/completions",
     chat(messages=image_msg("data:image/png;base64," + base64.b64encode(huge_png_header(60000, 60000)).decode())), 400),
    ("completions prompt wrong type", "/v1/completions", {"prompt": {"a": 1}, "max_tokens": 4}, 400),
    ("completions bad token id", "/v1/completions", {"prompt": [10 ** 9], "max_tokens": 4}, 400),
    ("completions echo", "/v1/completions", {"prompt": "a", "echo": True}, 400),
    ("tokenize wrong type", "/tokenize", {"content": 5}, 400),
    ("detokenize bad ids", "/detokenize", {"tokens": [-1, 10 ** 9]}, 400),
    ("deep nesting", "/v1/chat/completions", b'{"messages": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400),
    ("unknown route", "/v1/nothing", {}, 404),
    ("agents zero", "/v1/chat/completions", chat(agents=0), 400),
    ("agents beyond --parallel", "/v1/chat/completions", chat(agents=5), 400),
    ("agents string", "/v1/chat/completions", chat(agents="3"), 400),
    ("agents fractional", "/v1/chat/completions", chat(agents=2.5), 400),
    ("aggregate unknown", "/v1/chat/completions", chat(agents=2, aggregate="majority"), 400),
    ("aggregate not a string", "/v1/chat/completions", chat(agents=2, aggregate=3), 400),
    ("aggregate without agents", "/v1/chat/completions", chat(aggregate="vote"), 400),
    ("agents with n", "/v1/chat/completions", chat(agents=2, n=2), 400),
    ("agents with tools", "/v1/chat/completions", chat(agents=2, tools=[WEATHER_TOOL]), 400),
    ("agents with logprobs", "/v1/chat/completions", chat(agents=2, logprobs=True), 400),
    ("agents and synthesis beyond --parallel", "/v1/chat/completions", chat(agents=4, aggregate="synthesize"), 400),
    ("agents on completions", "/v1/completions", {"prompt": "a", "max_tokens": 4, "agents": 2}, 400),
]

# The field each contemplation refusal must name (OpenAI's error.param).
AGENT_PARAMS = {"agents zero": "agents", "agents beyond --parallel": "agents", "agents string": "agents",
                "agents fractional": "agents", "aggregate unknown": "aggregate", "aggregate not a string": "aggregate",
                "aggregate without agents": "aggregate", "agents with n": "n", "agents with tools": "tools",
                "agents with logprobs": "logprobs", "agents and synthesis beyond --parallel": "agents",
                "agents on completions": "agents"}


@pytest.mark.parametrize("name,path,body,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile(server, name, path, body, status):
    got, _, data = server.request("POST", path, body)
    assert got == status, (name, got, data[:300])
    err = json.loads(data)["error"]
    assert err["message"] and err["type"]
    if name in AGENT_PARAMS:
        assert err["param"] == AGENT_PARAMS[name], err
    server.alive()


def test_huge_body(server):
    # 17 MB, over the 16 MiB default: refused before it is parsed.
    got, _, data = server.request("POST", "/v1/chat/completions", b'{"messages": "' + b"a" * (17 << 20) + b'"}')
    assert got == 413 and json.loads(data)["error"]["message"]
    server.alive()


def control_token_ids():
    import gguf
    r = gguf.GGUFReader(str(MODELS / "muse-glimmer-nano.gguf"))
    types = r.fields["tokenizer.ggml.token_type"]
    return [i for i in range(len(types.data)) if types.parts[types.data[i]][0] == 3]


def cancelled_count(server):
    m = server.request("GET", "/metrics")[2].decode()
    return int(re.search(r'^muse_requests_total\{outcome="cancelled"\} (\d+)', m, re.M).group(1)), m


def test_disconnect_cancels(server):
    # Control tokens banned: the generation runs its whole 900 tokens (seconds) unless cancelled.
    bias = {str(i): -100 for i in control_token_ids()}
    body = json.dumps({"model": MODEL, "prompt": "purple shapes: top left", "max_tokens": 900, "temperature": 1.0,
                       "stream": True, "logit_bias": bias}).encode()
    before, _ = cancelled_count(server)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.close()
    # The next write fails and the generation is cancelled: its sequence is free again.
    deadline = time.time() + 20
    while time.time() < deadline:
        after, m = cancelled_count(server)
        if after > before and re.search(r"^muse_requests_running 0$", m, re.M):
            break
        time.sleep(0.05)
    assert after == before + 1, m
    assert re.search(r"^muse_requests_running 0$", m, re.M), m
    server.alive()


def test_metrics(server):
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    m = body.decode()
    for name in ("muse_requests_waiting", "muse_requests_running", "muse_kv_cache_usage_ratio",
                 "muse_prompt_tokens_total", "muse_generation_tokens_total", "muse_time_to_first_token_seconds_count"):
        assert re.search(rf"^{name} ", m, re.M), name
    assert float(re.search(r"^muse_generation_tokens_total (\S+)", m, re.M).group(1)) > 0
    assert float(re.search(r"^muse_time_to_first_token_seconds_count (\S+)", m, re.M).group(1)) > 0
    assert 0 <= float(re.search(r"^muse_kv_cache_usage_ratio (\S+)", m, re.M).group(1)) <= 1


def long_completion(port, key=None):
    """A streaming completion that runs its whole 900 tokens (control tokens banned)."""
    body = json.dumps({"prompt": "purple shapes: top left", "max_tokens": 900, "temperature": 1.0, "stream": True,
                       "logit_bias": {str(i): -100 for i in control_token_ids()}}).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    c.request("POST", "/v1/completions", body=body, headers=headers)
    return c


def test_queue_full_and_graceful_shutdown():
    """One sequence, one queue place: a third request gets 503 + Retry-After. SIGTERM while
    two run/wait: both streams end properly ([DONE]) and the process exits 0."""
    s = Server("--parallel", "1", "--queue", "1")
    try:
        running = long_completion(s.port)
        r1 = running.getresponse()  # headers come once it has started: it holds the sequence
        assert r1.status == 200
        waiting = long_completion(s.port)
        deadline = time.time() + 10
        while time.time() < deadline:
            if re.search(r"^muse_requests_waiting 1$", s.request("GET", "/metrics", key=None)[2].decode(), re.M):
                break
            time.sleep(0.02)
        status, headers, body = s.request("POST", "/v1/completions", {"prompt": "a", "max_tokens": 2}, key=None)
        assert status == 503 and headers.get("Retry-After") == "1", body
        assert json.loads(body)["error"]["code"] == "queue_full"
        s.proc.send_signal(signal.SIGTERM)
        data = r1.read()
        assert data.endswith(b"data: [DONE]\n\n")
        finish = json.loads(data.split(b"\n\n")[-3][len(b"data: "):])["choices"][0]["finish_reason"]
        assert finish in ("length", "cancelled")
        r2 = waiting.getresponse()  # it had not started: refused, or run to its end within the grace period
        assert r2.status in (200, 503)
        r2.read()
        assert s.proc.wait(timeout=60) == 0, "".join(s.log[-20:])
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def agents_of(obj):
    return (obj.model_extra or {}).get("contemplation")


def test_contemplation(client):
    """agents=3: one choice, the agents' merged answer; usage counts every agent's tokens."""
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=40,
                                       temperature=0.8, seed=7, extra_body={"agents": 3, "aggregate": "vote"})
    assert len(r.choices) == 1 and isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    k = agents_of(r)
    assert k["aggregate"]["method"] == "vote" and len(k["agents"]) == 3
    assert r.choices[0].message.content in [a["answer"] for a in k["agents"]]
    per_agent = [a["usage"]["completion_tokens"] for a in k["agents"]]
    assert all(n > 0 for n in per_agent)
    assert r.usage.completion_tokens == sum(per_agent)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens_details.reasoning_tokens == sum(a["usage"]["reasoning_tokens"] for a in k["agents"])

    # Streamed: only the merged answer comes as deltas; the agents are in the last chunk.
    parts, usage, last = [], None, None
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                                                max_tokens=40, temperature=0.8, seed=7, stream=True,
                                                stream_options={"include_usage": True},
                                                extra_body={"agents": 3, "aggregate": "vote"}):
        usage = chunk.usage or usage
        for c in chunk.choices:
            assert c.index == 0
            parts.append(c.delta.content or "")
            if c.finish_reason:
                last = chunk
    assert last is not None and len(agents_of(last)["agents"]) == 3
    assert "".join(parts) == r.choices[0].message.content  # same seed: the same agents, the same vote
    assert usage.completion_tokens == r.usage.completion_tokens


def test_contemplation_synthesize_beside_other_requests(client):
    """Two agents and a synthesis pass (three sequences) run in the same batched steps as a
    plain greedy request on the fourth sequence, which answers as it does alone."""
    plain = dict(model=MODEL, messages=[{"role": "user", "content": "How many blue shapes are there?"}], temperature=0,
                 max_tokens=32, extra_body={"thinking": "off"})
    alone = client.chat.completions.create(**plain).choices[0].message.content
    out = {}

    def contemplate():
        out["k"] = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                                                  max_tokens=32, temperature=0.7, seed=3,
                                                  extra_body={"agents": 2, "aggregate": "synthesize"})
    t = threading.Thread(target=contemplate)
    t.start()
    beside = client.chat.completions.create(**plain).choices[0].message.content
    t.join(timeout=120)
    assert beside == alone
    k = out["k"]
    assert agents_of(k)["aggregate"]["method"] == "synthesize" and len(agents_of(k)["agents"]) == 2
    assert k.usage.completion_tokens >= sum(a["usage"]["completion_tokens"] for a in agents_of(k)["agents"])


def raw_post_head(body):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")


def closed_within(sock, seconds):
    """Reads until the server closes the connection; returns (seconds taken, what came)."""
    sock.settimeout(seconds)
    t0, got = time.time(), b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    return time.time() - t0, got


@pytest.fixture(scope="module")
def impatient():
    """A server with 1 s read and write timeouts (the defaults are 30 s)."""
    s = Server("--parallel", "8", "--read-timeout", "1", "--write-timeout", "1", "--max-tokens", "1000")
    yield s
    assert s.stop() == 0, "".join(s.log[-40:])


def test_slow_sender_is_dropped(impatient):
    """Slowloris: a client that sends part of its headers, or part of its body, and then stalls
    is dropped after --read-timeout (closed, or a 408), and meanwhile other requests are served."""
    body = json.dumps(chat(max_tokens=4)).encode()
    stalled_head = socket.create_connection(("127.0.0.1", impatient.port))
    stalled_head.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
    stalled_body = socket.create_connection(("127.0.0.1", impatient.port))
    stalled_body.sendall(raw_post_head(body) + body[:10])
    t0 = time.time()
    status, _, data = impatient.request("POST", "/v1/chat/completions", chat(max_tokens=4), key=None)
    assert status == 200 and json.loads(data)["choices"], data
    assert time.time() - t0 < 5
    for sock in (stalled_head, stalled_body):
        took, got = closed_within(sock, 10)
        assert took < 5, took
        assert got == b"" or got.startswith(b"HTTP/1.1 408") or got.startswith(b"HTTP/1.1 400"), got[:200]
        sock.close()
    # A client that trickles its request a byte at a time (each byte within the timeout) is served.
    trickle = socket.create_connection(("127.0.0.1", impatient.port))
    for b in raw_post_head(body)[:40]:
        trickle.sendall(bytes([b]))
        time.sleep(0.01)
    trickle.sendall(raw_post_head(body)[40:] + body)
    trickle.settimeout(30)
    got = trickle.recv(65536)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    trickle.close()
    impatient.alive()


@pytest.mark.skipif(bool(os.environ.get("MUSE_SANITIZE")),
                    reason="a sanitizer build generates the 13 MB this needs ten times slower (~40 s); "
                           "the timeouts are socket code, tested in the Release run")
def test_client_that_stops_reading(impatient):
    """A streaming client that stops reading: once the socket buffers are full the server's
    write waits --write-timeout, fails, and the server hangs up (cancelling whatever still
    generates), so it holds at most the request's own max_tokens events; it stays up."""
    bias = {str(i): -100 for i in control_token_ids()}
    # 8 x 900 tokens with 20 top logprobs each: some 13 MB of SSE, well over what loopback
    # buffers take (the sender's autotunes up to tcp_wmem's 4 MB; 2 MB reached the reader).
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}], "n": 8,
                       "max_tokens": 900, "temperature": 1.0, "stream": True, "logprobs": True, "top_logprobs": 20,
                       "logit_bias": bias, "thinking": "off"}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", impatient.port))
    s.sendall(raw_post_head(body) + body)
    t0 = time.time()
    deadline = t0 + 30
    time.sleep(0.5)
    while time.time() < deadline:  # not reading: the request must end by itself
        m = impatient.request("GET", "/metrics")[2].decode()
        if re.search(r"^muse_requests_running 0$", m, re.M):
            break
        time.sleep(0.1)
    ended = time.time() - t0
    took, got = closed_within(s, 10)  # what the buffers held, then the server's close
    s.close()
    print(f"\nnon-reading client: request ended after {ended:.1f} s, {len(got)} bytes reached it")
    assert re.search(r"^muse_requests_running 0$", m, re.M), m
    assert got.startswith(b"HTTP/1.1 200") and b"data: [DONE]" not in got, got[-200:]
    assert took < 5, took
    impatient.alive()
