"""The front door as traders and attackers meet it: real processes on loopback, real sockets.

Most tests put the door in front of a small real HTTP server that can misbehave on
request (answer 500 without reading the body, drop a pooled connection, hold an
answer), which a healthy bento will not do on cue; the last one fronts a real bento.
"""

import asyncio
import copy
import gzip
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from resources.frontdoor import ADMIN_SOCKET, SPEC_FILE, STATUS_PATH
from resources.serving import free_port, stop_group
from tests.bentos.conftest import request_for
from tradeops_assets.core import scheduling
from tradeops_assets.core.prediction_log import read_log

UPSTREAM = textwrap.dedent(
    """
    import asyncio, json, os, sys

    MORTAL = sys.argv[2:] == ["mortal"]
    COUNTS = {"requests": 0, "dropped": 0, "poisoned": 0, "paths": []}
    RELEASE = asyncio.Event()


    def reply(writer, status, payload):
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 {status} X\\r\\ncontent-type: application/json\\r\\n"
        writer.write(f"{head}content-length: {len(body)}\\r\\n\\r\\n".encode() + body)


    async def handle(reader, writer):
        drop_next = poisoned = False
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                if poisoned:  # the unread body of the last request, then this one
                    COUNTS["poisoned"] += 1
                    return
                line, *lines = head.decode("latin-1").split("\\r\\n")
                method, path, _ = line.split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (x.partition(":") for x in lines if x)
                }
                if path == "/_count":
                    reply(writer, 200, COUNTS)
                    continue
                if path == "/_release":
                    RELEASE.set()
                    reply(writer, 200, {})
                    continue
                COUNTS["requests"] += 1
                COUNTS["paths"].append(path)
                if drop_next:  # a kept-alive connection this server has given up on
                    COUNTS["dropped"] += 1
                    return
                if headers.get("x-fail") == "500":  # fails before reading the body
                    reply(writer, 500, {"error": "boom"})
                    poisoned = True
                    continue
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if path == "/predict_many":  # not a bento: it speaks no coalesced frames
                    token = headers.get("authorization", "").removeprefix("Bearer ")
                    status = {"garbage": 200, "old": 404, "broken": 500}.get(token, 401)
                    reply(writer, status, {"error": f"as a {token} bento answers"})
                    continue
                if "x-hold" in headers:
                    await RELEASE.wait()
                if "x-garbage" in headers:
                    writer.write(b"NOT HTTP AT ALL\\r\\n\\r\\n")
                    continue
                if "x-half" in headers or ("x-dies" in headers and MORTAL):
                    writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-le")  # a status line, then
                    await writer.drain()
                    if MORTAL:  # the whole process is gone, as a SIGKILL mid-answer leaves it
                        os._exit(1)
                    return  # only the connection is
                if "x-silent" in headers:
                    await asyncio.sleep(3600)
                reply(writer, 200, {"path": path, "method": method, "bytes": len(body)})
                drop_next = "x-then-drop" in headers
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


    async def main(port):
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()


    asyncio.run(main(int(sys.argv[1])))
    """
)


class Upstream:
    """The misbehaving server, in a process of its own."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM, str(self.port), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def counts(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/_count", timeout=5).json()

    def release(self) -> None:
        """Lets every request sent with ``X-Hold`` be answered."""
        httpx.get(f"http://127.0.0.1:{self.port}/_release", timeout=5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Door:
    """``python -m resources.frontdoor`` in front of ``port``, with the given limits."""

    def __init__(self, state: Path, port: int, *limits: str) -> None:
        state.mkdir(parents=True, exist_ok=True)
        (state / "backend.json").write_text(json.dumps({"port": port}))
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state.parent / "frontdoor.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "resources.frontdoor"),
                    *("--port", str(self.port), "--state", str(state), *limits),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                self.status()
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def status(self) -> dict:
        transport = httpx.HTTPTransport(uds=str(self.state / ADMIN_SOCKET))
        with httpx.Client(transport=transport, base_url="http://door", timeout=5) as client:
            return client.get(STATUS_PATH).json()

    def reload(self) -> None:
        """SIGHUP, then until the door forwards to what ``backend.json`` now says."""
        wanted = json.loads((self.state / "backend.json").read_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while self.status()["backend"] != wanted:
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        stop_group(self.proc.pid, grace=10)


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture
def door_for(tmp_path):
    """A door that sends each request on its own unless ``coalesce``: the misbehaving
    server acts on each request's headers, which a coalesced exchange does not carry."""
    doors: list[Door] = []

    def start(port: int, *limits: str, coalesce: bool = False) -> Door:
        limits += () if coalesce else ("--coalesce-requests", "1")
        doors.append(Door(tmp_path / f"door{len(doors)}", port, *limits))
        return doors[-1]

    yield start
    for door in doors:
        door.stop()


POST = b"POST /predict HTTP/1.1\r\nHost: x\r\n"


def raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def post_at_once(door: Door, requests: list[bytes], rounds: int = 5) -> list[list[bytes]]:
    """Each request on a connection of its own, all written while the door is stopped, so
    that it reads them in one event-loop turn; ``rounds`` times, until it has coalesced
    some, with every round's answers."""
    answers = []
    for _ in range(rounds):
        socks = [socket.create_connection(("127.0.0.1", door.port), timeout=30) for _ in requests]
        time.sleep(0.2)  # accepted
        os.kill(door.proc.pid, signal.SIGSTOP)
        try:
            for sock, request in zip(socks, requests, strict=True):
                sock.sendall(request)
        finally:
            os.kill(door.proc.pid, signal.SIGCONT)
        answers.append([read_all(sock) for sock in socks])
        for sock in socks:
            sock.close()
        if door.status()["coalesced"].get("exchanges"):
            break
    return answers


def one_shot(body: bytes, *headers: str) -> bytes:
    head = "".join(
        f"{h}\r\n" for h in (*headers, f"Content-Length: {len(body)}", "Connection: close")
    )
    return POST + head.encode() + b"\r\n" + body


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


def test_only_the_bentos_routes_and_methods_are_forwarded(upstream, door_for):
    door = door_for(upstream.port)
    with httpx.Client(base_url=door.url, timeout=10) as client:
        assert client.post("/predict", content=b"{}").json()["path"] == "/predict"
        assert client.get("/metadata?x=1").json()["path"] == "/metadata?x=1"
        for path in ("/docs.json", "/", "/predict/", "//predict", "/predict%2F", "/_count"):
            assert client.get(path).status_code == 404, path
        wrong = client.get("/predict")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        assert client.delete("/metadata").status_code == 405
    assert upstream.counts()["paths"] == ["/predict", "/metadata?x=1"]


def test_the_status_is_on_an_owner_only_socket_not_the_serving_port(upstream, door_for):
    door = door_for(upstream.port)
    assert httpx.get(f"{door.url}{STATUS_PATH}").status_code == 404
    assert door.status()["backend"] == {"port": upstream.port}
    assert stat.S_IMODE((door.state / ADMIN_SOCKET).stat().st_mode) == 0o600
    assert stat.S_IMODE(door.state.stat().st_mode) == 0o700
    assert upstream.counts()["requests"] == 0


def test_a_compressed_body_is_refused_and_never_inflated(upstream, door_for):
    door = door_for(upstream.port)
    bomb = gzip.compress(b"0" * 10_000_000)  # 10 MB of zeros in ~10 KB
    answer = httpx.post(
        f"{door.url}/predict", content=bomb, headers={"Content-Encoding": "gzip"}, timeout=10
    )
    assert answer.status_code == 415
    assert answer.json()["error"] == "unsupported_media_type"
    plain = httpx.post(
        f"{door.url}/predict", content=b"{}", headers={"Content-Encoding": "identity"}
    )
    assert plain.status_code == 200
    assert upstream.counts()["requests"] == 1
    assert door.status()["refused"] == {"compressed": 1}


def test_a_body_over_the_limit_is_refused_before_it_is_read(upstream, door_for):
    door = door_for(upstream.port, "--max-body-bytes", "4096")
    # Declared too large: refused on the headers alone, with not one body byte sent.
    declared = raw(
        door.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
    )
    assert status_line(read_all(declared)) == "HTTP/1.1 413 Request Entity Too Large"
    # Chunked: refused once it passes the limit, though the client has not finished.
    chunked = raw(
        door.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunked.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n" + b"10\r\n" + b"y" * 16 + b"\r\n")
    assert status_line(read_all(chunked)) == "HTTP/1.1 413 Request Entity Too Large"
    at_limit = httpx.post(f"{door.url}/predict", content=b"z" * 4096)
    assert at_limit.json()["bytes"] == 4096
    too_big = httpx.post(f"{door.url}/predict", content=b"z" * 4097)
    assert too_big.status_code == 413
    assert upstream.counts()["requests"] == 1
    assert door.status()["refused"] == {"too_large": 3}


def test_uploads_over_the_cap_get_a_fast_503(upstream, door_for):
    door = door_for(upstream.port, "--max-uploads", "2")
    head = POST + b"Content-Length: 1000\r\n\r\n"
    held = [raw(door.port, head + b"x" * 10) for _ in range(2)]  # bodies still coming
    while door.status()["uploads"] < 2:
        time.sleep(0.02)
    shed = httpx.post(f"{door.url}/predict", content=b"{}")
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert httpx.get(f"{door.url}/healthz").status_code == 200  # no body: not an upload
    for sock in held:
        sock.close()
    while door.status()["uploads"]:
        time.sleep(0.02)
    assert httpx.post(f"{door.url}/predict", content=b"{}").status_code == 200
    assert upstream.counts()["paths"] == ["/healthz", "/predict"]


async def _trickle(port: int, request: bytes, every: float) -> tuple[bytes, float, int]:
    """Sends ``request`` a byte at a time; what came back, after how long, and bytes sent."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began, sent = loop.time(), 0

    async def send() -> None:
        nonlocal sent
        for i in range(len(request)):
            writer.write(request[i : i + 1])
            sent += 1
            await asyncio.sleep(every)

    sender = asyncio.create_task(send())
    answer = await reader.read()  # until the server closes
    closed = loop.time() - began
    sender.cancel()
    writer.close()
    return answer, closed, sent


def test_slow_headers_are_cut_off_while_a_normal_client_is_served(upstream, door_for):
    """Slowloris: 400 connections sending headers byte by byte, each to take a minute."""
    door = door_for(upstream.port, "--header-timeout", "2")
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"

    async def attack() -> tuple[list, list]:
        slow = [asyncio.create_task(_trickle(door.port, request, every=0.25)) for _ in range(400)]
        await asyncio.sleep(1)
        normal = [
            await asyncio.to_thread(httpx.post, f"{door.url}/predict", content=b"{}")
            for _ in range(5)
        ]
        return await asyncio.gather(*slow), normal

    slow, normal = asyncio.run(attack())
    assert [r.status_code for r in normal] == [200] * 5
    assert {status_line(answer) for answer, _, _ in slow} == {"HTTP/1.1 408 Request Timeout"}
    assert max(sent for _, _, sent in slow) < len(request)  # none got to finish its headers
    closed = sorted(t for _, t, _ in slow)
    print(f"400 slow connections closed after {closed[0]:.2f}..{closed[-1]:.2f} s")
    assert door.status()["refused"] == {"header_timeout": 400}
    assert upstream.counts()["requests"] == 5


def test_a_slow_body_is_cut_off_and_never_holds_a_drain(upstream, door_for):
    door = door_for(upstream.port, "--body-timeout", "2")
    sock = raw(door.port, POST + b"Content-Length: 100\r\n\r\n1234")
    while (status := door.status())["uploads"] < 1 and not status["refused"]:
        time.sleep(0.02)
    assert status["in_flight"] == {}  # a deploy's drain does not wait for it
    assert status_line(read_all(sock)) == "HTTP/1.1 408 Request Timeout"
    status = door.status()
    assert status["uploads"] == 0
    assert status["refused"] == {"body_timeout": 1}
    assert upstream.counts()["requests"] == 0


def test_a_500_does_not_poison_the_next_clients_request(upstream, door_for):
    """The bento answers 500 without reading the body, leaving that connection unusable;
    the door must not hand it to the next trader."""
    door = door_for(upstream.port)
    failed = []
    for _ in range(10):
        with httpx.Client(base_url=door.url, timeout=10) as first:
            crash = first.post("/predict", content=b"x" * 65536, headers={"X-Fail": "500"})
        assert crash.status_code == 500
        with httpx.Client(base_url=door.url, timeout=10) as second:
            answer = second.post("/predict", content=b"{}")
        if answer.status_code != 200:
            failed.append(answer.status_code)
    assert failed == []
    counts = upstream.counts()
    assert counts["poisoned"] == 0
    assert counts["requests"] == 20


def test_a_pooled_connection_the_bento_dropped_is_retried_once(upstream, door_for):
    door = door_for(upstream.port)
    first = httpx.post(f"{door.url}/predict", content=b"{}", headers={"X-Then-Drop": "1"})
    assert first.status_code == 200
    second = httpx.post(f"{door.url}/predict", content=b"{}")
    assert second.status_code == 200
    assert upstream.counts()["dropped"] == 1
    assert door.status()["retried"] == 1


@pytest.mark.parametrize("pooled", [False, True], ids=["fresh", "pooled"])
def test_a_broken_or_silent_answer_is_a_502_or_a_504_and_is_not_sent_twice(
    upstream, door_for, pooled
):
    """On a fresh connection (``forward``) and on a pooled one (``forward_soon``, the
    common case, which hands a failure to ``forward``) alike."""
    door = door_for(upstream.port, "--upstream-timeout", "1")
    answers = {}
    for kind in ("garbage", "half", "silent"):
        if pooled:  # a whole answer leaves its connection in the pool for the next
            assert httpx.post(f"{door.url}/predict", content=b"{}").status_code == 200
        answers[kind] = httpx.post(
            f"{door.url}/predict", content=b"{}", headers={f"X-{kind}": "1"}, timeout=30
        )
    assert answers["garbage"].status_code == 502
    assert answers["half"].status_code == 502
    assert answers["silent"].status_code == 504
    assert answers["silent"].json()["error"] == "gateway_timeout"
    # an answer begun is never sent again
    assert upstream.counts()["requests"] == (6 if pooled else 3)
    assert door.status()["retried"] == 0
    assert httpx.post(f"{door.url}/predict", content=b"{}").status_code == 200


def test_pipelined_requests_are_answered_in_order_one_at_a_time(upstream, door_for):
    """Requests sent back to back on one connection, a refusal between them: each answer
    in its request's place, the next forwarded only after the last is answered."""
    door = door_for(upstream.port)
    assert httpx.post(f"{door.url}/predict", content=b"{}").status_code == 200  # one pooled
    requests = (
        POST
        + b"Content-Length: 2\r\n\r\n{}"
        + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        + POST
        + b"Content-Length: 5\r\nConnection: close\r\n\r\n[1,2]"
    )
    answers = read_all(raw(door.port, requests)).split(b"HTTP/1.1 ")[1:]
    assert [int(a[:3]) for a in answers] == [200, 404, 200]
    assert json.loads(answers[0].rsplit(b"\r\n\r\n", 1)[1])["bytes"] == 2
    assert json.loads(answers[2].rsplit(b"\r\n\r\n", 1)[1])["bytes"] == 5
    assert upstream.counts()["paths"] == ["/predict"] * 3


def test_an_answer_cut_off_by_the_bentos_death_is_asked_of_the_bento_switched_to(
    tmp_path, door_for
):
    """The bento dies after the status line: the door waits for its supervisor to start
    another and asks that one, once; the trader gets a whole answer, not a 502."""
    mortal = Upstream("mortal")
    try:
        door = door_for(mortal.port, "--supervise")
        with (tmp_path / "upstream.log").open("w"):
            pass
        (door.state / SPEC_FILE).write_text(
            json.dumps(
                {
                    "bento_tag": "fake:1",
                    "command": [sys.executable, "-c", UPSTREAM, "{port}"],
                    "cwd": str(tmp_path),
                    "env": {"PATH": "/usr/bin:/bin"},
                    "log": str(tmp_path / "upstream.log"),
                }
            )
        )
        (door.state / "backend.json").write_text(
            json.dumps({"port": mortal.port, "pid": mortal.proc.pid, "bento_tag": "fake:1"})
        )
        door.reload()
        answer = httpx.post(f"{door.url}/predict", content=b"{}", headers={"X-Dies": "1"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"path": "/predict", "method": "POST", "bytes": 2}
        assert mortal.proc.wait(10) == 1
        status = door.status()
        replacement = status["backend"]
        assert replacement["port"] != mortal.port
        assert status["retried"] == 1
        try:
            url = f"http://127.0.0.1:{replacement['port']}/_count"
            assert httpx.get(url, timeout=5).json()["paths"].count("/predict") == 1
        finally:
            stop_group(replacement["pid"], grace=10)
    finally:
        mortal.stop()


def test_overload_is_shed_at_once_not_queued(upstream, door_for):
    door = door_for(upstream.port, "--max-in-flight", "2")
    slow = [
        threading.Thread(
            target=httpx.post,
            args=(f"{door.url}/predict",),
            kwargs={"content": b"{}", "headers": {"X-Hold": "1"}, "timeout": 60},
        )
        for _ in range(2)
    ]
    for thread in slow:
        thread.start()
    while door.status()["forwarding"] < 2:
        time.sleep(0.02)
    shed = httpx.post(f"{door.url}/predict", content=b"{}")
    assert door.status()["forwarding"] == 2  # answered while both were still at the bento
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    upstream.release()
    for thread in slow:
        thread.join(30)
    assert httpx.post(f"{door.url}/predict", content=b"{}").status_code == 200
    assert upstream.counts()["requests"] == 3


@pytest.mark.slow
@pytest.mark.xdist_group("bento")
def test_a_real_bento_behind_the_door_serves_its_routes_and_nothing_else(served, door_for):
    bento_port = int(served.url.rsplit(":", 1)[1])
    door = door_for(bento_port, "--max-body-bytes", "100000")
    body = request_for(served.bars, "SYN0001", 100)
    with served.client() as direct, httpx.Client(base_url=door.url, timeout=30) as client:
        auth = dict(direct.headers)
        assert client.post("/predict", json=body, headers=auth).json()["policy_version"] == "7"
        assert client.post("/predict_batch", json=[body], headers=auth).status_code == 200
        assert client.get("/metadata", headers=auth).json()["policy_version"] == "7"
        for probe in ("/healthz", "/livez", "/readyz", "/metrics"):
            assert client.get(probe).status_code == 200, probe
        assert client.post("/predict", json=body).status_code == 401  # the bento's own answer
        assert client.get("/docs.json").status_code == 404  # answered by the door: see below
        zipped = gzip.compress(json.dumps(body).encode())
        headers = auth | {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        assert client.post("/predict", content=zipped, headers=headers).status_code == 415
        big = {**body, "bars": body["bars"] * 10}
        refused = client.post("/predict", json=big, headers=auth)
        assert refused.status_code == 413
        assert refused.json()["error"] == "payload_too_large"  # the door's, not the bento's
    assert door.status()["refused"] == {"not_found": 1, "compressed": 1, "too_large": 1}
    # neither preempts the other on every forwarded request (core/scheduling.py)
    pids = [pid for pid, _ in served.server.processes()] + [door.proc.pid]
    assert len(pids) >= 3  # the door, bentoml serve, a worker
    assert {pid: scheduling.policy_of(pid) for pid in pids} == dict.fromkeys(pids, "batch")


def test_a_moved_deadline_fires_once_at_its_last_position_and_never_when_disarmed():
    from resources.frontdoor import Deadline

    async def run() -> list[str]:
        fired: list[str] = []
        deadline = Deadline(horizon=0.05)  # the timer wakes early and waits on
        deadline.arm(0.05, lambda: fired.append("first"))
        deadline.arm(0.3, lambda: fired.append("moved"))
        await asyncio.sleep(0.15)
        assert fired == []  # the first position passed, not the deadline
        await asyncio.sleep(0.4)
        deadline.arm(0.05, lambda: fired.append("disarmed"))
        deadline.disarm()
        await asyncio.sleep(0.15)
        deadline.arm(0.05, lambda: fired.append("cancelled"))
        deadline.cancel()
        await asyncio.sleep(0.15)
        return fired

    assert asyncio.run(run()) == ["moved"]


@pytest.mark.parametrize("bento", ["refusing", "old", "garbage", "broken"])
def test_a_coalesced_exchange_the_bento_cannot_answer_is_answered_request_by_request(
    upstream, door_for, bento
):
    """Refused before any work (a 401 for the exchange's token; a 404 from a bento built
    before ``/predict_many``, which then gets each request alone), each request is sent
    again on its own and answered as it would have been. An answer that is not frames is
    a 502 for each and a failure at work (500) is each one's answer, as it would be for a
    request sent alone; neither is asked again."""
    door = door_for(upstream.port, coalesce=True)
    token = f"Authorization: Bearer {bento}"
    requests = [one_shot(b"[%d]" % k, token) for k in range(8)]
    rounds = post_at_once(door, requests)
    status, paths = door.status(), upstream.counts()["paths"]
    exchanges, sent_together = status["coalesced"]["exchanges"], status["coalesced"]["requests"]
    assert exchanges >= 1
    assert paths.count("/predict_many") == exchanges
    codes = [status_line(r) for r in rounds[-1]]
    if bento in ("refusing", "old"):
        assert status["coalesced"]["declined"] == exchanges
        assert set(codes) == {"HTTP/1.1 200 OK"}
        sizes = [json.loads(r.split(b"\r\n\r\n", 1)[1])["bytes"] for r in rounds[-1]]
        assert sizes == [3] * 8
        assert paths.count("/predict") == 8 * len(rounds)  # each once on its own
        assert status["single_only"] == ([upstream.port] if bento == "old" else [])
    else:
        failed = "502 Bad Gateway" if bento == "garbage" else "500 Internal Server Error"
        assert codes.count(f"HTTP/1.1 {failed}") == sent_together
        assert status["refused"].get("bad_gateway", 0) == (sent_together * (bento == "garbage"))
        assert paths.count("/predict") == 8 * len(rounds) - sent_together  # none again
    if bento == "old":  # no more exchanges for that bento
        again = post_at_once(door, requests, rounds=3)
        assert door.status()["coalesced"]["exchanges"] == exchanges
        assert {status_line(r) for replies in again for r in replies} == {"HTTP/1.1 200 OK"}


@pytest.mark.slow
@pytest.mark.xdist_group("bento")
def test_single_requests_coalesced_by_the_door_are_each_answered_as_if_alone(served, door_for):
    """Requests that reach the door together go to the bento as one exchange: each is
    authenticated, screened, decided, logged under its own client and answered exactly as
    the bento answers it alone, a bad one beside good ones included."""
    from tests.bentos.conftest import DESK_TOKEN

    door = door_for(int(served.url.rsplit(":", 1)[1]), coalesce=True)
    good = [request_for(served.bars, f"SYN{k % 3:04d}", 100, position=0.1 * k) for k in range(6)]
    bad_bar = copy.deepcopy(good[0])
    bad_bar["bars"][5]["high"] = -1.0
    calls = [
        *((json.dumps(body).encode(), served.token, "application/json") for body in good[:4]),
        *((json.dumps(body).encode(), DESK_TOKEN, "application/json") for body in good[4:]),
        (json.dumps(good[0]).encode(), "x" * 40, "application/json"),
        (b"{not json", served.token, "application/json"),
        (json.dumps(bad_bar).encode(), served.token, "application/json"),
        (json.dumps(good[0]).encode(), served.token, "text/plain"),
    ]
    alone = []
    for body, token, media in calls:
        answer = httpx.post(
            f"{served.url}/predict",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": media},
        )
        alone.append((answer.status_code, _without_id(answer.json(), approx=True)))
    assert [status for status, _ in alone] == [200] * 6 + [401, 422, 422, 415]

    requests = [
        one_shot(body, f"Authorization: Bearer {token}", f"Content-Type: {media}")
        for body, token, media in calls
    ]
    rounds = post_at_once(door, requests)
    coalesced = door.status()["coalesced"]
    assert coalesced["exchanges"] >= 1
    assert coalesced["requests"] > coalesced["exchanges"]
    ids = {}
    for replies in rounds:
        together = []
        for k, reply in enumerate(replies):
            head, body = reply.split(b"\r\n\r\n", 1)
            together.append((int(status_line(reply).split()[1]), _without_id(json.loads(body))))
            if k == 6:
                assert b"www-authenticate: bearer" in head.lower()
            if k < 6:
                ids[json.loads(body)["request_id"]] = "desk-a" if k >= 4 else "default"
        assert together == alone
    logged = read_log(served.log_dir).filter(pl.col("request_id").is_in(list(ids)))
    deadline = time.monotonic() + 15
    while logged.height < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
        logged = read_log(served.log_dir).filter(pl.col("request_id").is_in(list(ids)))
    assert dict(zip(logged["request_id"], logged["client"], strict=True)) == ids


def _without_id(answer: dict, approx: bool = False) -> dict:
    """All but the request id; ``approx``: the target as float32 resolves it, batched or not."""
    kept = {k: v for k, v in answer.items() if k != "request_id"}
    if approx and "target_position" in kept:
        kept["target_position"] = pytest.approx(kept["target_position"], abs=1e-6)
    return kept
