"""The serving port's front door: traders keep one address while bentos are swapped behind it.

Two processes cannot listen on one port, and BentoML 1.4's HTTP server binds
without SO_REUSEPORT, so a zero-downtime swap needs something that owns the
port and forwards each request to the live bento. Forwarding is per request
(HTTP, not TCP): after a switch every new request goes to the new bento while
requests already in flight finish on the old one, and a trader's keep-alive
connection never breaks. ``SIGHUP`` re-reads the backend file.

The door is also where input is bounded, before any work: it is the one process
every request passes, and a bento worker busy decompressing, buffering or
waiting on a slow client serves nobody. So the door reads requests itself (an
asyncio protocol over httptools: aiohttp's and uvicorn's servers bound header
reading only by their keep-alive timer, if at all) and refuses, without reading
a body it will not use:

- a path or method the bento does not serve (404, 405), a compressed body (415):
  nothing is ever decompressed, so a small upload cannot inflate downstream;
- a body over ``max_body_bytes`` (413; a declared Content-Length is refused
  before reading, a chunked body as soon as it passes the limit);
- more bodies being read at once than ``max_uploads``, or more requests at the
  bento than ``max_in_flight`` (503 with ``Retry-After: 1``: overload sheds fast
  instead of queueing without bound);
- headers not complete ``header_timeout_s`` after their first byte, a body not
  complete ``body_timeout_s`` after its headers (408, then the connection closes:
  slow clients hold neither a socket for long nor a deploy's drain, since a
  request counts as in flight at a bento only once its body is read).

A connection to a bento is never reused after a 5xx or an error, so one
client's failure cannot reach another's request; a connection that fails before
any response byte (a pooled connection the bento had closed) is retried once on
a fresh one.

Single ``/predict`` requests that arrive in one event-loop turn go to the bento
together, as one ``/predict_many`` exchange (``core.coalesced``): each keeps its
own token, content type and body, and its client gets exactly the answer the
bento gives it alone (``FrontDoor.forward_soon``). The bento pays its HTTP cost
once a turn instead of once a request, so the door adds throughput instead of
costing it. A lone request is sent as it came; an exchange the bento refuses as a
whole is sent again one request at a time, and a failed one is retried, failed
over or refused per request, as a single request's failure is.

The status (backend, requests in flight per backend, refusals) is not on the
serving port: it is ``GET /_frontdoor`` on the Unix socket ``DIR/frontdoor.sock``,
owner-only (the socket 0600, DIR 0700), which is how the deployer knows the old
bento has drained.

With ``--supervise`` the door also starts the live bento again when it dies
(``Supervisor``): the deployer has long returned by then, and the door lives as
long as the serving port does.

Run: ``python -m resources.frontdoor --port 3000 --state DIR`` (DIR/backend.json).
"""

import argparse
import asyncio
import contextlib
import fcntl
import http
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httptools

from bentos.trading_policy.settings import scheduling_policy
from tradeops_assets.core import coalesced, scheduling
from tradeops_assets.core.errors import ConfigError

BACKEND_FILE = "backend.json"
ADMIN_SOCKET = "frontdoor.sock"
SPEC_FILE = "bento-spec.json"
"""How the deployer started the live bento (command with ``{port}``, environment, log), 0600."""
EVENTS_FILE = "events.jsonl"
SPARE_FILE = "spare.json"
"""The supervisor's spare bento (pid, start, port, tag): stopped with the deployment."""
DEPLOYMENT_FILE = "deployment.json"
LOCK_FILE = "deploy.lock"
STATUS_PATH = "/_frontdoor"
_GET, _POST = frozenset({b"GET"}), frozenset({b"POST"})
ROUTES: dict[bytes, frozenset[bytes]] = {
    b"/predict": _POST,
    b"/predict_batch": _POST,
    b"/metadata": _GET,
    b"/healthz": _GET,
    b"/livez": _GET,
    b"/readyz": _GET,
    b"/metrics": _GET,
}
"""What the bento serves (bentos/trading_policy/service.py and BentoML's probes); nothing else
is forwarded, so the bento's other pages (docs, schema) never face traders."""
ADMIN_ROUTES: dict[bytes, frozenset[bytes]] = {STATUS_PATH.encode(): _GET}
REQUEST_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
RESPONSE_HOP = REQUEST_HOP - {b"host", b"expect"}
IDENTITY = frozenset({b"", b"identity"})
SCREENED = frozenset({b"content-length", b"transfer-encoding", b"content-encoding", b"expect"})
"""The request headers the door itself reads, kept aside as they are parsed."""
LINGER_BYTES = 1024 * 1024
"""After refusing a body the door drops at most this much of it (for at most ``linger_s``)
before closing, so that the client reads the refusal instead of a connection reset."""
UNIX_PATH_MAX = 107

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


@dataclass(frozen=True)
class Limits:
    """What one client may cost the door; every one is a command-line option."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_uploads: int = 64
    max_in_flight: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    upstream_timeout_s: float = 60.0
    upstream_keepalive_s: float = 4.0
    """Under uvicorn's 5 s keep-alive, so the door rarely picks a connection the bento closes."""
    linger_s: float = 1.0
    failover_wait_s: float = 3.0
    """With a supervisor: how long a request whose bento cannot be reached waits for the door
    to switch to another (the spare takes well under a second) before a 502."""
    coalesce_requests: int = 64
    """The most single ``/predict`` requests of one event-loop turn sent to the bento as one
    exchange (``core.coalesced``); 1 sends each on its own."""
    coalesce_bytes: int = 2 * 1024 * 1024
    """The most request bytes in one coalesced exchange (the bento's body limit is higher)."""


def error_reply(status: int, error: str, reason: str, *extra: tuple[bytes, bytes]) -> Reply:
    body = json.dumps({"error": error, "reason": reason}, separators=(",", ":")).encode()
    return status, [(b"content-type", b"application/json"), *extra], body


def overloaded(reason: str) -> Reply:
    return error_reply(503, "overloaded", reason, (b"retry-after", b"1"))


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing what the door refused."""


class _NotSentError(Exception):
    """A request ``forward_soon`` took but did not send: ``forward`` sends it afresh."""


class _Request:
    __slots__ = (
        "body",
        "header_bytes",
        "headers",
        "keep_alive",
        "method",
        "refusal",
        "screened",
        "target",
        "uploading",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.screened: list[tuple[bytes, bytes]] = []  # the SCREENED ones, also in headers
        self.header_bytes = 0
        self.method = b""
        self.target = b""
        self.body = bytearray()
        self.uploading = False
        self.refusal: Reply | None = None
        self.keep_alive = True


class UpstreamError(Exception):
    """A bento connection failed; ``answered``: whether any response byte had come;
    ``unreadable``: whether what came was not HTTP (rather than cut off)."""

    def __init__(self, reason: str, answered: bool, unreadable: bool = False) -> None:
        super().__init__(reason)
        self.answered = answered
        self.unreadable = unreadable


class Deadline:
    """A callback at a deadline that moves on every request and rarely fires. The
    event-loop timer behind it is moved only when it would fire too late: it fires at
    most ``horizon`` ahead, and then waits on for a later deadline, so moving the
    deadline (each phase of a request, each exchange on a kept-alive connection) costs
    no timer of its own."""

    def __init__(self, horizon: float = float("inf")) -> None:
        self.loop = asyncio.get_running_loop()
        self.horizon = horizon
        self.at = 0.0
        self.callback = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def arm(self, delay: float, callback) -> None:
        """``callback`` after ``delay`` unless disarmed or armed again first."""
        self.at = self.loop.time() + delay
        self.callback = callback
        if self.timer is not None and self.timer_at <= self.at:
            return
        if self.timer is not None:
            self.timer.cancel()
        self._schedule()

    def disarm(self) -> None:
        self.callback = None

    def cancel(self) -> None:
        """Disarmed for good: the connection is gone."""
        self.callback = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self) -> None:
        self.timer_at = min(self.at, self.loop.time() + self.horizon)
        self.timer = self.loop.call_at(self.timer_at, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if self.callback is None:
            return
        if self.loop.time() < self.at:
            self._schedule()
            return
        callback, self.callback = self.callback, None
        callback()


class Upstream(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a bento: a request out, its response back.

    The door's own client: aiohttp's cost about 300 µs of the door's core a request,
    more than the rest of the door together; this one parses with httptools as the
    door's server side does.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done = None
        """Called once with (answer, None) or (None, the error) for the exchange in flight."""
        self.closed = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.deadline = Deadline()  # one timer serves the exchanges of a kept-alive connection
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(f"connection closed{f' ({exc!r})' if exc else ''}")
        self.deadline.cancel()

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"unreadable response: {exc}", unreadable=True)
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        """Keeps what the client's reply carries: the hop-by-hop headers are the door's own."""
        if name.lower() not in RESPONSE_HOP:
            self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self._finish(
            (self.parser.get_status_code(), self.headers, body, self.parser.should_keep_alive()),
            None,
        )

    def _finish(self, answer: tuple | None, error: Exception | None) -> None:
        done, self.done = self.done, None
        if done is not None:
            self.deadline.disarm()
            done(answer, error)

    def _fail(self, reason: str, unreadable: bool = False) -> None:
        self._finish(None, UpstreamError(reason, self.got_bytes, unreadable))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, head: bytes, body: bytes | bytearray, timeout_s: float, done) -> None:
        """Sends a request; ``done(answer, None)`` with (status, headers, body, keep-alive), or
        ``done(None, error)``: an ``UpstreamError``, or TimeoutError after ``timeout_s`` of
        silence. Raises ``UpstreamError`` (and never calls ``done``) if the connection is
        already closed."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise UpstreamError("connection closed before the request", answered=False)
        self._reset()
        self.done = done
        self.deadline.arm(timeout_s, self._silent)
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)

    async def exchange(
        self, head: bytes, body: bytes, timeout_s: float
    ) -> tuple[int, list, bytes, bool]:
        """``send``, awaited: the answer, or its error raised."""
        answer = asyncio.get_running_loop().create_future()

        def done(result: tuple | None, error: Exception | None) -> None:
            if not answer.done():
                answer.set_result(result) if error is None else answer.set_exception(error)

        self.send(head, body, timeout_s, done)
        return await answer

    def _silent(self) -> None:
        if not self.closed:
            self._finish(None, TimeoutError())


class UpstreamPool:
    """Idle bento connections by port; one is reused only after a whole answer under 500,
    and none idle longer than ``keepalive_s`` (under uvicorn's 5 s, so the door rarely
    picks a connection the bento is closing)."""

    def __init__(self, keepalive_s: float) -> None:
        self.keepalive_s = keepalive_s
        self.idle: dict[int, list[Upstream]] = {}

    def reuse(self, port: int) -> Upstream | None:
        """An idle connection to ``port`` still fit to use, if any: no await on this path."""
        idle = self.idle.get(port)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def connect(self, port: int) -> Upstream:
        """A new connection to ``port``."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(Upstream, "127.0.0.1", port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect: {exc!r}", answered=False) from None
        return conn

    def release(self, port: int, conn: Upstream) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self.idle.setdefault(port, []).append(conn)
        if len(self.idle) > 1:  # after a swap: a swapped-out or dead bento's port goes
            gone = [p for p, conns in self.idle.items() if all(c.closed for c in conns)]
            for old in gone:
                del self.idle[old]

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


class FrontDoor:
    """The backend, the counters and the connections to the bentos, shared by all connections."""

    def __init__(self, state: Path, limits: Limits | None = None) -> None:
        self.state = state
        self.limits = limits or Limits()
        self.backend: dict = {}
        self.in_flight: Counter[int] = Counter()
        self.served: Counter[int] = Counter()
        self.refused: Counter[str] = Counter()
        self.retried = 0
        self.coalesced: Counter[str] = Counter()
        self.coalescing: list[tuple[_Request, object]] = []
        self.coalesce_authorization = b""
        """A token the bento took for a coalesced exchange: each request still carries its own."""
        self.single_only: set[int] = set()
        """Ports of bentos built before ``/predict_many`` (a rollback): each request goes alone."""
        self.uploads = 0
        self.forwarding = 0
        self.connections = 0
        self.fresh: aiohttp.ClientSession | None = None
        self.pool = UpstreamPool(self.limits.upstream_keepalive_s)
        self.supervised = False
        self.backend_down: asyncio.Event | None = None
        """Set when a request finds the bento unreachable: the supervisor looks at once."""

    def reload(self) -> None:
        path = self.state / BACKEND_FILE
        try:
            backend = json.loads(path.read_text())
            int(backend["port"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not self.backend:
                raise SystemExit(f"front door: no usable backend in {path}: {exc!r}") from None
            print(f"front door: kept {self.backend}; {path} is unusable: {exc!r}", flush=True)
            return
        self.backend = backend
        print(f"front door: forwarding to {backend}", flush=True)

    async def start(self) -> None:
        def session(**connector) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, **connector),
                timeout=aiohttp.ClientTimeout(total=self.limits.upstream_timeout_s),
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )

        self.fresh = session(force_close=True)  # the supervisor's /readyz probes
        self.pool = UpstreamPool(self.limits.upstream_keepalive_s)
        self.backend_down = asyncio.Event()

    async def close(self) -> None:
        self.pool.close()
        if self.fresh is not None:
            await self.fresh.close()

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "backend": self.backend,
            "in_flight": {str(k): v for k, v in self.in_flight.items() if v},
            "served": {str(k): v for k, v in self.served.items()},
            "refused": dict(self.refused),
            "retried": self.retried,
            "coalesced": dict(self.coalesced),
            "single_only": sorted(self.single_only),
            "uploads": self.uploads,
            "forwarding": self.forwarding,
            "connections": self.connections,
            "limits": asdict(self.limits),
        }

    def admin(self, request: _Request) -> Reply:
        body = json.dumps(self.status()).encode()
        return 200, [(b"content-type", b"application/json")], body

    def forward_soon(self, request: _Request, answered) -> bool:
        """The common case with no task: the request sent on a pooled connection to the live
        bento and ``answered(reply, None)`` called with the answer. A failure comes back as
        ``answered(None, error)``, for ``forward(request, first=error)`` to handle as its
        first try's. False, with nothing sent, when the case is not the common one.

        A single ``/predict`` waits for the end of the event-loop turn: those that came in
        it go to the bento as one exchange (``core.coalesced``), each answered as if alone.
        The bento then pays its per-request HTTP cost once a turn, not once a request."""
        if self.forwarding >= self.limits.max_in_flight:
            return False
        if (
            request.target == b"/predict"
            and self.limits.coalesce_requests > 1
            and len(request.body) <= self.limits.coalesce_bytes
        ):
            if not self.coalescing:
                asyncio.get_running_loop().call_soon(self._send_coalesced)
            self.coalescing.append((request, answered))
            self.forwarding += 1
            return True
        return self._send_alone(request, answered, int(self.backend["port"]))

    def _send_alone(self, request: _Request, answered, port: int) -> bool:
        conn = self.pool.reuse(port)
        if conn is None:
            return False

        def done(answer: tuple | None, error: Exception | None) -> None:
            self.forwarding -= 1
            self.in_flight[port] -= 1
            if error is None:
                answered(self._answered(port, conn, answer), None)
            else:
                conn.close()
                answered(None, error)

        body = request.body  # copied once, into the message
        try:
            conn.send(
                self._head(request, port, len(body)), body, self.limits.upstream_timeout_s, done
            )
        except UpstreamError:
            conn.close()
            return False
        self.forwarding += 1
        self.in_flight[port] += 1
        return True

    def _send_coalesced(self) -> None:
        waiting, self.coalescing = self.coalescing, []
        self.forwarding -= len(waiting)  # counted again as each exchange is sent
        port = int(self.backend["port"])
        most = min(self.limits.coalesce_requests, coalesced.MAX_ITEMS)
        batch, size = [], 0
        for request, answered in waiting:
            if batch and (
                len(batch) == most or size + len(request.body) > self.limits.coalesce_bytes
            ):
                self._send_batch(batch, port)
                batch, size = [], 0
            batch.append((request, answered))
            size += len(request.body)
        self._send_batch(batch, port)

    def _send_batch(self, batch: list, port: int) -> None:
        coalescing = len(batch) > 1 and port not in self.single_only
        conn = self.pool.reuse(port) if coalescing else None
        if conn is None:
            self._send_each_alone(batch, port)
            return
        items = [_item(request) for request, _ in batch]
        authorization = self.coalesce_authorization or items[0][0]
        body = coalesced.write_requests(items)
        head = b"POST %s HTTP/1.1\r\ncontent-type: %s\r\nauthorization: %s\r\n" % (
            coalesced.PATH.encode(),
            coalesced.MEDIA_TYPE.encode(),
            authorization,
        )
        head += b"content-length: %d\r\nhost: 127.0.0.1:%d\r\n\r\n" % (len(body), port)
        n = len(batch)

        def done(answer: tuple | None, error: Exception | None) -> None:
            self.forwarding -= n
            self.in_flight[port] -= n
            replies = None
            if error is None:
                try:
                    replies = self._unframed(port, answer, n)
                except UpstreamError as exc:
                    error = exc
            if error is None and answer[0] < 500 and answer[3] and not conn.closed:
                self.pool.release(port, conn)
            else:
                conn.close()
            if error is not None or replies is None:
                for _, answered in batch:
                    answered(None, error or _NotSentError())
                return
            if answer[0] == 200:
                self.coalesce_authorization = authorization
            self.served[port] += n
            for (_, answered), reply in zip(batch, replies, strict=True):
                answered(reply, None)

        try:
            conn.send(head, body, self.limits.upstream_timeout_s, done)
        except UpstreamError:
            conn.close()
            self._send_each_alone(batch, port)
            return
        self.coalesced["exchanges"] += 1
        self.coalesced["requests"] += n
        self.forwarding += n
        self.in_flight[port] += n

    def _send_each_alone(self, batch: list, port: int) -> None:
        """No exchange: each request on a pooled connection, or to ``forward`` if none is left."""
        for request, answered in batch:
            if not self._send_alone(request, answered, port):
                answered(None, _NotSentError())

    def _unframed(self, port: int, answer: tuple, n: int) -> list[Reply] | None:
        """Each request's reply from a coalesced exchange's answer; None when the bento
        refused the exchange before any work, so that each is sent again on its own."""
        status, headers, payload, _ = answer
        if status == 200:
            framed = (b"content-type", coalesced.MEDIA_TYPE.encode())
            if framed not in [(k.lower(), v) for k, v in headers]:
                raise UpstreamError("coalesced answer without frames", True, unreadable=True)
            try:
                frames = coalesced.read_answers(payload, n)
            except ValueError as exc:
                raise UpstreamError(f"coalesced answer: {exc}", True, unreadable=True) from None
            shared = [h for h in headers if h[0].lower() != b"content-type"]
            return [(code, shared + own, body) for code, own, body in frames]
        if status < 500 or status == 503:
            self.coalesced["declined"] += 1
            if status in (404, 405, 415):
                self.single_only.add(port)
            elif status == 401:
                self.coalesce_authorization = b""
            return None
        return [(status, headers, payload)] * n  # it failed once at work: as each would alone

    async def forward(self, request: _Request, first: Exception | None = None) -> Reply:
        """The bento's answer. A connection is reused only after an answer under 500; one that
        fails before any answer byte (the bento had closed it) is tried once more on a fresh
        connection, whatever the method: a decision is a function of its request, so a retry
        costs at most a second prediction-log row for a request the bento never answered.
        If the fresh connection fails too, the bento itself is gone: under a supervisor the
        request waits (``failover_wait_s``) for the switch to another and is sent there.
        An answer begun is never asked again of the bento that began it: cut off by that
        bento's death (its process gone), it is asked of the bento switched to; unreadable,
        or cut off by a bento still running, it is a 502. ``first``: how ``forward_soon``'s
        try on a pooled connection failed, handled as this one's first."""
        if isinstance(first, _NotSentError):
            first = None
        if self.forwarding >= self.limits.max_in_flight:
            self.refused["overloaded"] += 1
            return overloaded(
                f"{self.forwarding} requests in flight to the bento, the most allowed"
            )
        port = int(self.backend["port"])
        body = bytes(request.body)
        self.forwarding += 1
        self.in_flight[port] += 1
        fresh, waited = False, False
        try:
            while True:
                conn = None
                try:
                    if first is not None:
                        failure, first = first, None
                        raise failure
                    conn = (None if fresh else self.pool.reuse(port)) or await self.pool.connect(
                        port
                    )
                    answer = await conn.exchange(
                        self._head(request, port, len(body)), body, self.limits.upstream_timeout_s
                    )
                except UpstreamError as exc:
                    if conn is not None:
                        conn.close()
                    if exc.answered and (waited or exc.unreadable or await self._live_at(port)):
                        return self._failed(port, exc)
                    if fresh or exc.answered:
                        switched = None if waited else await self._switched_from(port)
                        if switched is None:
                            return self._failed(port, exc)
                        self.in_flight[port] -= 1
                        port, waited = switched, True
                        self.in_flight[port] += 1
                    fresh = True
                    self.retried += 1
                    continue
                except TimeoutError:
                    if conn is not None:
                        conn.close()
                    self.refused["upstream_timeout"] += 1
                    return error_reply(
                        504,
                        "gateway_timeout",
                        f"bento on port {port} silent for {self.limits.upstream_timeout_s} s",
                    )
                return self._answered(port, conn, answer)
        finally:
            self.forwarding -= 1
            self.in_flight[port] -= 1

    @staticmethod
    def _head(request: _Request, port: int, length: int) -> bytes:
        head = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
        for name, value in request.headers:
            if name not in REQUEST_HOP:
                head += (name, b": ", value, b"\r\n")
        head.append(b"content-length: %d\r\nhost: 127.0.0.1:%d\r\n\r\n" % (length, port))
        return b"".join(head)

    def _answered(self, port: int, conn: Upstream, answer: tuple) -> Reply:
        """The client's reply; the connection goes back to the pool only after a whole answer
        under 500, so one client's failure cannot reach another's request."""
        status, headers, payload, keep = answer
        if status < 500 and keep and not conn.closed:
            self.pool.release(port, conn)
        else:
            conn.close()
        self.served[port] += 1
        return status, headers, payload

    async def _live_at(self, port: int) -> bool:
        """Whether the bento on ``port`` is still the door's and its process still runs, a
        moment after it cut an answer off (a dying process closes its sockets before /proc
        shows it dead)."""
        await asyncio.sleep(0.05)
        backend = self.backend
        if int(backend["port"]) != port:
            return False
        return not backend.get("pid") or _running(backend["pid"], backend.get("start"))

    async def _switched_from(self, port: int) -> int | None:
        """The port the door forwards to once it no longer is ``port``; None if there is no
        supervisor to switch it or it did not within ``failover_wait_s``."""
        if not self.supervised or self.backend_down is None:
            return None
        self.backend_down.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.failover_wait_s
        while loop.time() < deadline:
            now = int(self.backend["port"])
            if now != port:
                return now
            await asyncio.sleep(0.02)
        return None

    def _failed(self, port: int, exc: Exception) -> Reply:
        self.refused["bad_gateway"] += 1
        return error_reply(502, "bad_gateway", f"bento on port {port}: {exc!r}")


def _item(request: _Request) -> coalesced.Item:
    """What the bento reads of a single request: its token, its content type and its body."""
    authorization = content_type = None
    for name, value in request.headers:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    return authorization or b"", content_type or b"", request.body


class Connection(asyncio.Protocol):
    """One client connection: parses, bounds and answers its requests one after another.

    One deadline runs at a time: idle (between requests on a kept-alive connection;
    a new connection gets the header timeout), headers (from a request's first
    byte), body (from the end of its headers). Reading pauses while a request is
    answered, so a pipelining client cannot queue work in the door.
    """

    def __init__(self, door: FrontDoor, routes: dict[bytes, frozenset[bytes]], public: bool):
        self.door = door
        self.limits = door.limits
        self.routes = routes
        self.public = public
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: _Request | None = None
        self.queue: deque[_Request] = deque()
        self.worker: asyncio.Task | None = None
        self.exchanging = False  # the head of the queue is at the bento via forward_soon
        self.deadline = Deadline(horizon=self.limits.header_timeout_s)
        self.discarding = False  # a refusal ends this connection: parse nothing more
        self.lingering = False
        self.eof = False
        self.dropped = 0
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.door.connections += 1
        # a new connection owes a request
        self.deadline.arm(self.limits.header_timeout_s, self._close)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.door.connections -= 1
        self.deadline.cancel()
        if self.current is not None:
            self._end_upload(self.current)
        if self.worker is not None:
            self.worker.cancel()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def eof_received(self) -> bool:
        self.eof = True
        # Half-closed: still answer the requests it completed; one it had not can never complete.
        return (
            not self.lingering
            and self.current is None
            and bool(self.queue or self.worker or self.exchanging)
        )

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            self.dropped += len(data)
            if self.lingering and self.dropped > LINGER_BYTES:
                self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if not self.discarding:  # pragma: no cover - a bug in a callback
                raise
        except httptools.HttpParserUpgrade:
            self.door.refused["bad_request"] += 1
            self._refuse(error_reply(400, "bad_request", "protocol upgrades are not served"))
        except httptools.HttpParserError as exc:
            self.door.refused["bad_request"] += 1
            self._refuse(error_reply(400, "bad_request", f"malformed HTTP: {exc}"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.current = _Request()
        self.deadline.arm(self.limits.header_timeout_s, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        self.current.url += url
        self._count_header(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.current
        name = name.lower()
        request.headers.append((name, value))
        if name in SCREENED:
            request.screened.append((name, value))
        self._count_header(len(name) + len(value) + 4)
        if len(request.headers) > self.limits.max_headers:
            self.door.refused["headers_too_large"] += 1
            self._refuse(
                error_reply(
                    431, "headers_too_large", f"more than {self.limits.max_headers} header fields"
                )
            )
            raise _RefusedError

    def on_headers_complete(self) -> None:
        self.deadline.disarm()
        request = self.current
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        refusal, has_body = self._screen(request)
        if refusal is not None:
            if has_body:  # leave the body unread: refuse and close
                self._refuse(refusal)
                raise _RefusedError
            request.refusal = refusal
            return
        if has_body:
            request.uploading = True
            self.door.uploads += 1
            self.deadline.arm(self.limits.body_timeout_s, self._body_too_slow)
            if self._header(request, b"expect").lower() == b"100-continue" and not self._answering:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        request = self.current
        request.body += chunk
        if len(request.body) > self.limits.max_body_bytes:
            self._end_upload(request)
            self._refuse(self._too_large())
            raise _RefusedError

    def on_message_complete(self) -> None:
        self.deadline.disarm()
        request, self.current = self.current, None
        self._end_upload(request)
        self.queue.append(request)
        self.transport.pause_reading()
        if self._answering:
            return
        if self.public and request.refusal is None and len(self.queue) == 1:
            self.exchanging = self.door.forward_soon(request, self._answered)
        if not self.exchanging:
            self.worker = self.loop.create_task(self._serve())

    @property
    def _answering(self) -> bool:
        return self.worker is not None or self.exchanging

    def _answered(self, reply: Reply | None, error: Exception | None) -> None:
        """``forward_soon``'s answer to the head of the queue: written with no task, unless
        it failed (``forward`` takes over) or more is queued or the client is not reading."""
        self.exchanging = False
        if self.closed:  # the client is gone: nobody to answer or to retry for
            return
        if error is not None:
            self.worker = self.loop.create_task(self._serve(first=error))
            return
        request = self.queue.popleft()
        close = not request.keep_alive
        self._send(reply, close)
        if close:
            self._linger()
        elif self.queue or not self.writable.is_set():
            self.worker = self.loop.create_task(self._serve())
        else:
            self._served()

    # screening and refusing

    def _screen(self, request: _Request) -> tuple[Reply | None, bool]:
        """The refusal a request gets from its headers alone, if any, and whether it has a body."""
        length = self._header(request, b"content-length")
        chunked = any(k == b"transfer-encoding" for k, _ in request.screened)
        has_body = chunked or (length not in (b"", b"0"))
        methods = self.routes.get(request.url)  # a route exactly: no query to split off
        if methods is not None:
            request.target = request.url
        else:
            url = httptools.parse_url(request.url) if request.url.startswith(b"/") else None
            methods = self.routes.get(url.path) if url is not None else None
            if methods is None:
                self.door.refused["not_found"] += 1
                return error_reply(404, "not_found", "no such endpoint"), has_body
            request.target = url.path + (b"?" + url.query if url.query else b"")
        if request.method not in methods:
            self.door.refused["method_not_allowed"] += 1
            allow = (b"allow", b", ".join(sorted(methods)))
            reason = f"{request.method.decode()} is not served here"
            return error_reply(405, "method_not_allowed", reason, allow), has_body
        encodings = [v.strip().lower() for k, v in request.screened if k == b"content-encoding"]
        if any(e not in IDENTITY for e in encodings):
            self.door.refused["compressed"] += 1
            return error_reply(
                415,
                "unsupported_media_type",
                "request bodies are not decompressed here; send them uncompressed",
                (b"accept-encoding", b"identity"),
            ), has_body
        if has_body and not self.public:
            return error_reply(400, "bad_request", "this socket takes no request body"), True
        if length and int(length) > self.limits.max_body_bytes:
            return self._too_large(), True
        if has_body and self.door.uploads >= self.limits.max_uploads:
            self.door.refused["uploads"] += 1
            return overloaded(
                f"{self.door.uploads} request bodies being read, the most allowed"
            ), True
        if self.public and self.door.forwarding >= self.limits.max_in_flight:
            self.door.refused["overloaded"] += 1
            return overloaded(f"{self.door.forwarding} requests in flight to the bento"), has_body
        return None, has_body

    def _too_large(self) -> Reply:
        self.door.refused["too_large"] += 1
        return error_reply(
            413, "payload_too_large", f"request body larger than {self.limits.max_body_bytes} bytes"
        )

    @staticmethod
    def _header(request: _Request, name: bytes) -> bytes:
        """The first value of one of the SCREENED headers."""
        return next((v.strip() for k, v in request.screened if k == name), b"")

    def _count_header(self, n: int) -> None:
        self.current.header_bytes += n
        if self.current.header_bytes > self.limits.max_header_bytes:
            self.door.refused["headers_too_large"] += 1
            self._refuse(
                error_reply(
                    431,
                    "headers_too_large",
                    f"request line and headers over {self.limits.max_header_bytes} bytes",
                )
            )
            raise _RefusedError

    def _refuse(self, reply: Reply) -> None:
        """Answers ``reply`` after whatever is queued, then closes; nothing more is parsed."""
        self.deadline.disarm()
        if self.current is not None:
            self._end_upload(self.current)
        self.discarding = True
        refused = self.current or _Request()
        self.current = None
        refused.refusal, refused.keep_alive = reply, False
        self.queue.append(refused)
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()
        if not self._answering and not self.closed:
            self.worker = self.loop.create_task(self._serve())

    def _headers_too_slow(self) -> None:
        self.door.refused["header_timeout"] += 1
        self._refuse(
            error_reply(
                408,
                "request_timeout",
                f"headers not complete within {self.limits.header_timeout_s} s",
            )
        )

    def _body_too_slow(self) -> None:
        self.door.refused["body_timeout"] += 1
        self._refuse(
            error_reply(
                408, "request_timeout", f"body not complete within {self.limits.body_timeout_s} s"
            )
        )

    def _end_upload(self, request: _Request) -> None:
        if request.uploading:
            request.uploading = False
            self.door.uploads -= 1

    # answering

    async def _serve(self, first: Exception | None = None) -> None:
        """Answers the queue in order; ``first``: how ``forward_soon`` failed its head."""
        try:
            await self.writable.wait()
            while self.queue:
                request = self.queue.popleft()
                if request.refusal is not None:
                    reply = request.refusal
                elif self.public:
                    reply = await self.door.forward(request, first)
                    first = None
                else:
                    reply = self.door.admin(request)
                close = not request.keep_alive
                self._send(reply, close)
                if close:
                    self._linger()
                    return
                await self.writable.wait()
            self._served()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # pragma: no cover - a bug here must not hang the client
            print(f"front door: {exc!r}", file=sys.stderr, flush=True)
            self._close()

    def _served(self) -> None:
        """The queue is answered: read the next request, or close a half-closed connection."""
        self.worker = None
        if self.eof:
            self._close()
        elif not self.closed:
            self.transport.resume_reading()
            if self.current is None:
                self.deadline.arm(self.limits.idle_timeout_s, self._close)

    def _send(self, reply: Reply, close: bool) -> None:
        status, headers, body = reply
        phrase = _PHRASES.get(status, b"")
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if close:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        if not self.closed:
            self.transport.write(b"".join(parts))

    def _linger(self) -> None:
        """Half-closes, then drops what the client still sends for a moment before closing."""
        if self.closed:
            return
        self.discarding = self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.deadline.arm(self.limits.linger_s, self._close)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


_PHRASES = {s.value: s.phrase.encode() for s in http.HTTPStatus}


def proc_stat(pid: int) -> list[bytes] | None:
    """``/proc/<pid>/stat`` after the command name, which may hold spaces: field n is at
    index n - 3. None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """State, session and start time of ``pid`` (``/proc/<pid>/stat`` fields 3, 6 and 22)."""
    fields_ = proc_stat(pid)
    return None if fields_ is None else (fields_[0].decode(), int(fields_[3]), int(fields_[19]))


def _running(pid: int, start: int | None) -> bool:
    stat_ = _proc_stat(pid)
    return stat_ is not None and stat_[0] not in ("Z", "X") and start in (None, stat_[2])


def _locked(state: Path) -> bool:
    """Whether a deploy (or a restart) holds ``deploy.lock`` now."""
    try:
        fd = os.open(state / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if this took it
    return False


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


class Supervisor:
    """Brings the live bento back when it dies, as the deployer started it.

    It watches the PID and start time in ``backend.json``. With ``spare``, it keeps a
    second bento of the live tag started and ready beside it (``SPARE_FILE``), so a
    dead bento is replaced by switching to the spare, in under a second, instead of
    the five to ten a cold start takes; a new spare is then started. Without one (or
    while the spare is still starting) the dead bento is started again from
    ``SPEC_FILE`` on a fresh port, waited for on /readyz and switched to. Either
    way what is left of the dead one's session gets SIGTERM, ``deployment.json``
    gets the new PID and ``events.jsonl`` a ``bento_restarted`` line, read by
    ``serving_health``. A deploy holding ``deploy.lock`` is left to switch the door
    itself, and a bento that will not come back is retried with backoff.
    """

    def __init__(
        self,
        door: FrontDoor,
        every_s: float = 0.5,
        ready_timeout_s: float = 120.0,
        spare: bool = False,
    ):
        self.door = door
        self.every_s = every_s
        self.ready_timeout_s = ready_timeout_s
        self.keep_spare = spare
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.failures = 0
        self.spare: dict | None = None
        """The spare bento: pid, start, port, bento_tag; ``ready`` once /readyz answered."""
        self.spare_task: asyncio.Task | None = None
        self.spare_retry_at = 0.0

    async def run(self) -> None:
        try:
            while True:
                await self._pause()
                backend = self.door.backend
                if not backend.get("pid"):
                    continue
                if _running(backend["pid"], backend.get("start")):
                    self.failures = 0
                    if self.keep_spare:
                        self._tend_spare(backend)
                    continue
                try:
                    await self.restart(backend)
                    self.failures = 0
                except Exception as exc:
                    self.failures += 1
                    self.event(
                        "bento_restart_failed",
                        bento_tag=backend.get("bento_tag"),
                        pid=backend["pid"],
                        reason=str(exc),
                    )
        finally:  # the door is stopping: so does its spare, and stop_deployment waits for it
            self.stop_spare(keep_record=True)

    async def _pause(self) -> None:
        """``every_s``, cut short when a request finds the bento unreachable; backing off
        (and deaf to requests) while restarts fail."""
        delay = min(60.0, self.every_s * 4**self.failures)
        down = self.door.backend_down
        if self.failures or down is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(down.wait(), delay)
        down.clear()

    def event(self, kind: str, **detail) -> None:
        line = {"time": datetime.now(UTC).isoformat(), "event": kind, **detail}
        with (self.door.state / EVENTS_FILE).open("a") as out:
            out.write(json.dumps(line) + "\n")
        print(f"front door: {line}", flush=True)

    def _spec(self) -> dict:
        return json.loads((self.door.state / SPEC_FILE).read_text())

    async def _spawn(self, spec: dict) -> tuple[asyncio.subprocess.Process, int, int | None]:
        """A bento started from the deploy's spec on a fresh port: (process, port, start)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with open(spec["log"], "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *(arg.replace("{port}", str(port)) for arg in spec["command"]),
                cwd=spec["cwd"],
                env=spec["env"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children[proc.pid] = proc
        return proc, port, (_proc_stat(proc.pid) or ("", 0, None))[2]

    def _tend_spare(self, live: dict) -> None:
        """Keeps one ready spare of the live tag: a stale or dead one is stopped and replaced."""
        if self.spare_task is not None and not self.spare_task.done():
            return
        spare = self.spare
        if spare is not None and (
            spare["bento_tag"] != live.get("bento_tag")
            or not _running(spare["pid"], spare["start"])
        ):
            self.stop_spare()
        if self.spare is not None or asyncio.get_running_loop().time() < self.spare_retry_at:
            return
        try:
            spec = self._spec()
        except (OSError, ValueError):
            return
        if spec.get("bento_tag") != live.get("bento_tag") or _locked(self.door.state):
            return  # a deploy is under way: its new tag gets the spare
        self.spare_task = asyncio.create_task(self._start_spare(spec))

    async def _start_spare(self, spec: dict) -> None:
        """Never raises: a spare that cannot start is an event and a retry in 30 s."""
        try:
            proc, port, began = await self._spawn(spec)
            spare = {"pid": proc.pid, "start": began, "port": port, "bento_tag": spec["bento_tag"]}
            self.spare = spare
            _write_json(self.door.state / SPARE_FILE, spare)  # found by stop_deployment
            if await self._ready(proc, port):
                spare["ready"] = True
                _write_json(self.door.state / SPARE_FILE, spare)
                return
            reason = f"not ready within {self.ready_timeout_s:.0f} s; see {spec['log']}"
        except (OSError, KeyError) as exc:
            reason = str(exc)
        self.stop_spare()
        self.spare_retry_at = asyncio.get_running_loop().time() + 30
        self.event("spare_failed", bento_tag=spec.get("bento_tag"), reason=reason)

    def stop_spare(self, keep_record: bool = False) -> None:
        if self.spare_task is not None and not self.spare_task.done():
            self.spare_task.cancel()
        spare, self.spare = self.spare, None
        if spare is not None and _running(spare["pid"], spare["start"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(spare["pid"], signal.SIGTERM)
        if not keep_record:
            with contextlib.suppress(FileNotFoundError):
                (self.door.state / SPARE_FILE).unlink()

    async def _take_spare(self, tag: str) -> dict | None:
        """The spare, ready, for the dead bento's tag; one still starting is waited for."""
        if self.spare_task is not None and not self.spare_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.spare_task)  # a cold start would take longer
        spare = self.spare
        if spare is None or not spare.get("ready") or spare["bento_tag"] != tag:
            return None
        if not _running(spare["pid"], spare["start"]):
            return None
        self.spare = None
        with contextlib.suppress(FileNotFoundError):
            (self.door.state / SPARE_FILE).unlink()
        return spare

    async def restart(self, dead: dict) -> None:
        state = self.door.state
        fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.door.reload()
            if self.door.backend.get("pid") != dead["pid"]:
                return  # a deploy switched the door meanwhile
            child = self.children.pop(dead["pid"], None)
            exit_code = None if child is None else await child.wait()
            spec = self._spec()
            if spec.get("bento_tag") != dead.get("bento_tag"):
                raise RuntimeError(
                    f"{state / SPEC_FILE} starts {spec.get('bento_tag')}, not the live "
                    f"{dead.get('bento_tag')}; the next deploy will write one"
                )
            spare = await self._take_spare(spec["bento_tag"])
            if spare is not None:
                pid, port, began, how = spare["pid"], spare["port"], spare["start"], "spare"
            else:
                proc, port, began = await self._spawn(spec)
                pid, how = proc.pid, "cold start"
                if not await self._ready(proc, port):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    raise RuntimeError(
                        f"the restarted bento (pid {proc.pid}, port {port}) did not get ready "
                        f"within {self.ready_timeout_s:.0f} s; see {spec['log']}"
                    )
            backend = {**dead, "port": port, "pid": pid, "start": began}
            _write_json(state / BACKEND_FILE, backend)
            self.door.backend = backend
            recorded = self._record(dead, backend)
            self._stop_leftovers(dead, recorded)
            self.event(
                "bento_restarted",
                bento_tag=dead.get("bento_tag"),
                pid=dead["pid"],
                exit_code=exit_code,
                restart={"pid": pid, "port": port},
                how=how,
            )
        finally:
            os.close(fd)

    async def _ready(self, proc: asyncio.subprocess.Process, port: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        assert self.door.fresh is not None
        while loop.time() < deadline and proc.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.door.fresh.get(
                    f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                ) as answer:
                    if answer.status == 200:
                        return True
            await asyncio.sleep(0.2)
        return False

    def _record(self, dead: dict, backend: dict) -> list:
        """Puts the new bento in ``deployment.json``; the processes it had recorded for the dead."""
        path = self.door.state / DEPLOYMENT_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        if record.get("bento_pid") != dead["pid"]:
            return []
        recorded = record.get("bento_processes", [])
        record.update(
            bento_pid=backend["pid"],
            bento_start=backend["start"],
            bento_port=backend["port"],
            bento_processes=[[backend["pid"], backend["start"]]],
            restarts=record.get("restarts", 0) + 1,
            restarted_at=datetime.now(UTC).isoformat(),
        )
        _write_json(path, record)
        return recorded

    def _stop_leftovers(self, dead: dict, recorded: list) -> None:
        """Workers of the dead bento that outlived it: its session, and what the deploy recorded."""
        since = dead.get("start") or 0
        leftovers = {
            (int(entry.name), stat_[2])
            for entry in os.scandir("/proc")
            if entry.name.isdigit()
            and (stat_ := _proc_stat(int(entry.name)))
            and stat_[1] == dead["pid"]
            and stat_[2] >= since
        }
        leftovers |= {(int(p), int(s)) for p, s in recorded}
        for pid, began in leftovers:
            if _running(pid, began):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def private_state(state: Path) -> None:
    """The state folder holds the admin socket: owner-only, or the door does not start."""
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    info = state.stat()
    if info.st_uid != os.getuid():
        raise SystemExit(f"front door: {state} belongs to uid {info.st_uid}, not this user")


def admin_socket(state: Path) -> Path:
    path = state / ADMIN_SOCKET
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise SystemExit(
            f"front door: {path} is longer than a Unix socket path may be "
            f"({UNIX_PATH_MAX} bytes); use a shorter --state folder"
        )
    return path


async def serve(
    host: str,
    port: int,
    state: Path,
    limits: Limits,
    supervise: bool = False,
    spare: bool = False,
) -> None:
    private_state(state)
    door = FrontDoor(state, limits)
    door.reload()
    await door.start()
    loop = asyncio.get_running_loop()
    public = await loop.create_server(lambda: Connection(door, ROUTES, True), host, port)
    sock = admin_socket(state)
    if sock.exists() and stat.S_ISSOCK(sock.lstat().st_mode):
        sock.unlink()  # a stale socket: the port bind above proves no other door is running
    old_umask = os.umask(0o177)
    try:
        admin = await loop.create_unix_server(
            lambda: Connection(door, ADMIN_ROUTES, False), str(sock)
        )
    finally:
        os.umask(old_umask)
    os.chmod(sock, 0o600)
    door.supervised = supervise
    supervisor = asyncio.create_task(Supervisor(door, spare=spare).run()) if supervise else None
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, door.reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"front door on {host}:{port}, status on {sock}", flush=True)
    try:
        await stop.wait()
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor  # stops its spare
        public.close()
        admin.close()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        await door.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", type=Path, required=True, help="folder with backend.json")
    for limit in fields(Limits):
        parser.add_argument(
            f"--{limit.name.removesuffix('_s').replace('_', '-')}",
            dest=limit.name,
            type=limit.type,
            default=limit.default,
            help=f"default {limit.default}",
        )
    parser.add_argument(
        "--supervise",
        action="store_true",
        help=f"start the bento in backend.json again if it dies, from {SPEC_FILE}",
    )
    parser.add_argument(
        "--spare",
        action="store_true",
        help="with --supervise: keep a second bento ready, switched to if the live one dies",
    )
    args = parser.parse_args(argv)
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    try:
        # before any thread; the bentos it supervises inherit it
        scheduling.apply(scheduling_policy(os.environ))
    except ConfigError as exc:
        raise SystemExit(f"front door: {exc}") from None
    factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port, args.state, limits, args.supervise, args.spare))


if __name__ == "__main__":
    main()
