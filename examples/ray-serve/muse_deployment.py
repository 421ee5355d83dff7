"""muse under Ray Serve: every replica loads one muse model through the Python binding and
serves an OpenAI-compatible subset (chat completions with and without SSE streaming, models).

    cd examples/ray-serve && serve run config.yaml          # README.md: the local cluster

Each response carries the replica that answered in the `x-muse-replica` header, so a client
(and tests/ray/test_ray_serve.py) can see the load spread over the replicas. The replica runs
one muse session with one sequence, one request at a time (a lock); Ray Serve's router sends
a request to a replica with fewer requests in flight, and the autoscaler adds replicas (up to
max_replicas) when the requests per replica pass target_ongoing_requests. For batching inside
a replica, run muse-server (continuous batching) per replica instead: docs/SCALING.md.
"""

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

api = FastAPI()

# Request fields this deployment implements; any other is refused (400) rather than ignored.
_FIELDS = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
           "top_p", "seed", "stop", "thinking", "thinking_budget", "reasoning_effort", "n", "user"}
_EFFORT = {"minimal": ("off", None), "low": ("on", "low"), "medium": ("on", "medium"), "high": ("on", "high")}


class BadRequest(Exception):
    pass


def _error(status: int, message: str, param: Optional[str] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": None}}, status_code=status)


def _replica_id() -> str:
    ctx = serve.get_replica_context()
    rid = getattr(ctx, "replica_id", None)  # Ray >= 2.10: a ReplicaID; older: replica_tag
    return str(getattr(rid, "unique_id", None) or getattr(ctx, "replica_tag", None) or os.getpid())


def _finish(reason: str) -> str:
    return {"eog": "stop", "stop": "stop", "length": "length", "max_tokens": "length"}.get(reason, reason or "stop")


def _usage(u: Dict[str, Any]) -> Dict[str, int]:
    prompt = int(u.get("prompt_tokens", 0))
    completion = int(u.get("completion_tokens", u.get("reasoning_tokens", 0) + u.get("answer_tokens", 0)))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": int(u.get("reasoning_tokens", 0))}}


@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=4,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2})
@serve.ingress(api)
class MuseDeployment:
    def __init__(self, model: str, alias: Optional[str] = None, threads: int = 1, ctx: int = 2048,
                 max_tokens_limit: int = 1024):
        import muse  # in the replica's process: each replica holds its own model
        self.model = muse.Model(model, threads=threads)
        self.session = self.model.session(n_ctx=ctx)
        self.alias = alias or Path(model).stem
        self.max_tokens_limit = max_tokens_limit
        self.lock = threading.Lock()  # one session, one sequence: one request at a time
        self.replica = _replica_id()

    def _headers(self) -> Dict[str, str]:
        return {"x-muse-replica": self.replica}

    @api.get("/health")
    def health(self):
        return JSONResponse({"status": "ok"}, headers=self._headers())

    @api.get("/v1/models")
    def models(self):
        return JSONResponse({"object": "list", "data": [{"id": self.alias, "object": "model", "created": 0,
                                                         "owned_by": "muse", "meta": {"arch": self.model.arch}}]},
                            headers=self._headers())

    def _options(self, body: Dict[str, Any]) -> Dict[str, Any]:
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise BadRequest(f"unsupported field: {unknown[0]}")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise BadRequest("messages: a non-empty array is required")
        if int(body.get("n") or 1) != 1:
            raise BadRequest("n: only 1 is supported by this deployment")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or 256
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= self.max_tokens_limit:
            raise BadRequest(f"max_tokens: 1..{self.max_tokens_limit}")
        stop = body.get("stop") or ()
        opts: Dict[str, Any] = {"max_tokens": max_tokens, "stop": [stop] if isinstance(stop, str) else list(stop),
                                "temperature": float(body.get("temperature", 1.0)),
                                "top_p": float(body.get("top_p", 1.0)), "reuse_prefix": False}
        if body.get("seed") is not None:
            opts["seed"] = int(body["seed"])
        thinking = body.get("thinking", "auto")
        if body.get("reasoning_effort") is not None:
            if body["reasoning_effort"] not in _EFFORT:
                raise BadRequest("reasoning_effort: minimal, low, medium or high")
            thinking, effort = _EFFORT[body["reasoning_effort"]]
            if effort:
                opts["effort"] = effort
        if thinking not in ("auto", "on", "off"):
            raise BadRequest("thinking: auto, on or off")
        opts["thinking"] = thinking
        if body.get("thinking_budget") is not None:
            opts["thinking_budget"] = int(body["thinking_budget"])
        return opts

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request):
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            opts = self._options(body)
        except (BadRequest, ValueError, TypeError) as e:
            return _error(400, str(e))
        messages = body["messages"]
        rid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(messages, opts, rid, created, usage),
                                     media_type="text/event-stream", headers=self._headers())
        # FastAPI runs a plain (sync) call on the event loop; the turn goes to a worker thread.
        import anyio
        r = await anyio.to_thread.run_sync(self._turn, messages, opts)
        message = {"role": "assistant", "content": r.answer}
        if r.reasoning:
            message["reasoning_content"] = r.reasoning
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": self.alias,
                             "choices": [{"index": 0, "message": message,
                                          "finish_reason": _finish(r.finish_reason)}],
                             "usage": _usage(r.usage)}, headers=self._headers())

    def _turn(self, messages, opts):
        with self.lock:
            return self.session.chat(messages, **opts)

    def _stream(self, messages, opts, rid, created, include_usage) -> Iterator[str]:
        # A sync generator: Starlette iterates it in a worker thread, holding the lock for the
        # whole turn; a client that goes away closes the generator, which ends the turn.
        def chunk(delta, finish=None, usage=None):
            d = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.alias,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage is not None:
                d["choices"], d["usage"] = [], usage
            return "data: " + json.dumps(d) + "\n\n"

        with self.lock:
            yield chunk({"role": "assistant", "content": ""})
            for channel, text in self.session.chat_stream(messages, **opts):
                if channel == "answer":
                    yield chunk({"content": text})
                elif channel == "reasoning":
                    yield chunk({"reasoning_content": text})
            r = self.session.last_response
        yield chunk({}, _finish(r.finish_reason))
        if include_usage:
            yield chunk({}, usage=_usage(r.usage))
        yield "data: [DONE]\n\n"


def build_app(args: Dict[str, Any]):
    """Application builder for `serve run config.yaml` (the YAML's `args`): model (a path,
    relative to the directory serve run starts in; $MUSE_MODEL overrides it), alias, threads, ctx.
    The YAML's `deployments` entry sets the replicas, autoscaling and CPUs."""
    return bind(args)


def bind(args: Dict[str, Any], **options):
    """build_app with deployment options (num_replicas, autoscaling_config, ray_actor_options,
    ...) given in Python rather than in the config."""
    model = os.environ.get("MUSE_MODEL") or args.get("model")
    if not model:
        raise ValueError("muse: no model (set args.model in the config or MUSE_MODEL)")
    model = str(Path(model).expanduser().resolve())  # replicas may start in another directory
    if not Path(model).is_file():
        raise FileNotFoundError(f"muse: model not found: {model}")
    return MuseDeployment.options(**options).bind(model, alias=args.get("alias"), threads=int(args.get("threads", 1)),
                                                  ctx=int(args.get("ctx", 2048)))
