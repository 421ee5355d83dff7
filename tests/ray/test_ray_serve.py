"""examples/ray-serve on a local Ray cluster started (and stopped) by this test: the deployment
from config.yaml (its autoscaling bounds and per-replica options) with 2 replicas of the nano
model, each loaded through the Python binding. Concurrent requests must be answered by both
replicas (the x-muse-replica header); the official openai client must stream the same greedy
answer the non-streaming route gives. Ray runs without its dashboard and listens on loopback
only (but for the one socket Ray Serve binds to all interfaces in its own code, see
test_ray_listens_on_loopback_only), and every process it started is gone at the end.

Environment: MUSE_LIBRARY (the library the replicas load), PYTHONPATH with bindings/python.
"""
import concurrent.futures
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ray-serve"
NANO = ROOT / "models" / "muse-glimmer-nano.gguf"
QUESTION = "How many red shapes are there?"

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]', tests/requirements.txt)")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'ray[serve]')")
openai = pytest.importorskip("openai")
yaml = pytest.importorskip("yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes(temp_dir: str):
    """{pid: start time} of the processes this test's Ray started: descendants of this process
    (Ray workers retitle themselves, so their command line does not tell) and any process whose
    command line names the cluster's private temp dir."""
    stats = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            if fields[0] != "Z":
                stats[int(p.name)] = (int(fields[1]), fields[19], temp_dir in cmdline)  # ppid, starttime
    found, frontier = {}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start, _) in stats.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    found.update({pid: start for pid, (_, start, named) in stats.items() if named and pid != os.getpid()})
    return found


def still_running(procs):
    """The processes of `procs` ({pid: start time}) that have not exited (a reused pid does not count)."""
    left = []
    for pid, start in procs.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and fields[19] == start:
            left.append(pid)
    return left


def listening_ports_of(pids):
    """(address hex, port, address width, pid) of the TCP sockets the given processes listen on,
    from /proc."""
    inodes = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            pass
    out = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                addr, port = f[1].split(":")
                out.append((addr, int(port, 16), width, inodes[f[9]]))
    return out


def comm(pid: int) -> str:
    """A process's title (Ray workers set theirs, e.g. ray::ServeReplica:muse:MuseDeployment)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def is_loopback(addr_hex: str, width: int) -> bool:
    if width == 8:
        return bytes.fromhex(addr_hex)[::-1][0] == 127
    return addr_hex in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.fixture(scope="module")
def cluster():
    if not NANO.is_file():
        pytest.skip(f"the bundled model is missing ({NANO})")
    # Replicas are processes Ray starts: they inherit this environment (the binding and the
    # library to load, the example module); nothing is uploaded, no usage stats are sent.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(EXAMPLE), str(ROOT / "bindings" / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    sys.path[:0] = [str(EXAMPLE), str(ROOT / "bindings" / "python")]
    # A short private temp dir: Ray's unix sockets live there (path length limit), and every
    # Ray process names it, which is how the teardown finds stragglers.
    temp_dir = tempfile.mkdtemp(prefix="muse-ray-", dir="/tmp")
    # Ray turns a node address of 127.0.0.1 into the machine's routable address (so that other
    # nodes could join), and its gRPC servers then listen on every interface. This one-machine
    # cluster needs no other node: keeping 127.0.0.1 makes every Ray server listen on loopback.
    import ray._private.services as ray_services
    if hasattr(ray_services, "resolve_ip_for_localhost"):
        ray_services.resolve_ip_for_localhost = lambda host: host
    t0 = time.monotonic()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=temp_dir, log_to_driver=False, logging_level="warning")
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
        yield {"port": port, "temp_dir": temp_dir, "t0": t0}
    finally:
        started = ray_processes(temp_dir)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
        assert started, "found no Ray processes to stop"
        deadline = time.monotonic() + 30
        left = still_running(started) + list(ray_processes(temp_dir))
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = still_running(started) + list(ray_processes(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)
        print(f"\nRay cluster up and down in {time.monotonic() - t0:.1f} s")
        assert not left, f"Ray processes left after shutdown: {left}"


@pytest.fixture(scope="module")
def app(cluster):
    import muse_deployment
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    spec = config["applications"][0]
    dep = spec["deployments"][0]
    auto = dep["autoscaling_config"]
    assert auto["min_replicas"] == 2 and auto["max_replicas"] >= auto["min_replicas"]
    assert spec["import_path"] == "muse_deployment:build_app"
    # The config's own options, with room for two replicas on a 2-core machine.
    options = {"name": dep["name"], "max_ongoing_requests": dep["max_ongoing_requests"],
               "autoscaling_config": dict(auto, max_replicas=2),
               "ray_actor_options": dict(dep["ray_actor_options"], num_cpus=0.5)}
    args = dict(spec["args"], model=str(NANO), alias="muse-glimmer-nano", threads=1)
    application = muse_deployment.bind(args, **options)
    t0 = time.monotonic()
    serve.run(application, name="muse", route_prefix="/")
    # min_replicas: both replicas are started before any request arrives.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = serve.status().applications["muse"].deployments[dep["name"]].replica_states
        if states.get("RUNNING", 0) == 2:
            break
        time.sleep(0.5)
    assert states.get("RUNNING", 0) == 2, states
    print(f"\n2 replicas running {time.monotonic() - t0:.1f} s after serve.run")
    return f"http://127.0.0.1:{cluster['port']}"


def post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers["x-muse-replica"], json.loads(r.read())


GREEDY = {"model": "muse-glimmer-nano", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12,
          "temperature": 0, "thinking": "off"}


def test_both_replicas_serve(app):
    replicas, answers = set(), set()
    # Each replica serves one request at a time, so requests in flight together spread over both.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            for replica, r in pool.map(lambda _: post(app, GREEDY), range(8)):
                replicas.add(replica)
                answers.add(r["choices"][0]["message"]["content"])
                assert r["object"] == "chat.completion" and r["usage"]["completion_tokens"] > 0
            if len(replicas) == 2:
                break
    assert len(replicas) == 2, replicas
    # Same model, same greedy request: every replica gives the same answer.
    assert len(answers) == 1 and next(iter(answers)).strip(), answers


def test_openai_client_streams(app):
    client = openai.OpenAI(base_url=app + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["muse-glimmer-nano"]
    whole = client.chat.completions.create(model="muse-glimmer-nano", messages=GREEDY["messages"], max_tokens=12,
                                           temperature=0, extra_body={"thinking": "off"})
    pieces, finish, chunks = [], None, 0
    stream = client.chat.completions.create(model="muse-glimmer-nano", messages=GREEDY["messages"], max_tokens=12,
                                            temperature=0, stream=True, extra_body={"thinking": "off"})
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert chunks > 2 and finish in ("stop", "length")
    assert "".join(pieces) == whole.choices[0].message.content and whole.choices[0].message.content.strip()
    # Reasoning streams on its own channel (thinking on).
    reasoning = []
    for chunk in client.chat.completions.create(model="muse-glimmer-nano", messages=GREEDY["messages"], max_tokens=24,
                                                temperature=0, stream=True, extra_body={"thinking": "on"}):
        if chunk.choices:
            reasoning.append((chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or "")
    assert "".join(reasoning).strip()


def test_bad_request_is_refused(app):
    body = dict(GREEDY, frobnicate=1)
    req = urllib.request.Request(app + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 400 and "frobnicate" in json.loads(e.value.read())["error"]["message"]


def test_ray_listens_on_loopback_only(cluster, app):
    pids = list(ray_processes(cluster["temp_dir"])) + [os.getpid()]
    assert len(pids) >= 5, pids  # gcs_server, raylet, the Serve controller, proxy and 2 replicas at least
    ports = listening_ports_of(pids)
    assert len(ports) >= 3, f"found too few listening sockets of the Ray processes: {ports}"
    public = [(a, port, pid) for a, port, w, pid in ports if not is_loopback(a, w)]
    # The one exception Ray has no setting for: each Serve replica's inter-deployment gRPC server
    # is bound to [::]:0 in Ray Serve's own code (ray/serve/_private/replica.py). Everything else
    # (GCS, raylet, object manager, workers, controller, HTTP proxy) must be on loopback.
    replica_grpc = [(a, port, pid) for a, port, pid in public if comm(pid).startswith("ray::ServeReplica")]
    assert len(replica_grpc) <= 2, replica_grpc
    assert not set(public) - set(replica_grpc), f"Ray listens beyond loopback: {set(public) - set(replica_grpc)}"
