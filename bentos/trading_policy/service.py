"""The trading policy endpoint: a BentoML 1.4 service over ``core.request`` and ``core.decision``.

``/predict``, ``/predict_batch`` and ``/metadata`` are a small Starlette app
mounted in the bento rather than ``@bentoml.api`` methods: BentoML's typed
handlers cost about a millisecond a request (pydantic models built per bar),
which would cap a 2-core box far below the thousands of decisions a second the
traders need. The deployable is still a bento, and BentoML still provides
``/healthz``, ``/livez``, ``/readyz`` and ``/metrics``, which stay open; every
other path needs a bearer token of a named client (``core.tokens``).

In front of the handlers, ``Gate`` bounds every request before any work: the
client's token, a JSON content type with no content encoding (nothing is ever
decompressed), a declared size within the limit, and a cap on requests in flight,
beyond which a fast 503 with ``Retry-After`` sheds load rather than queueing it. A
request it lets through it hands to its handler itself (``_answer``), not down
the dozen ASGI layers of routing below it: 8-12% more requests a second.
BentoML's request metrics count only known routes of authenticated clients, so
neither random paths nor anonymous callers can grow ``/metrics``.

Start-up refuses (the process exits, ``/readyz`` never answers) when a setting is
missing or bad (``settings.py`` names the variable), when a private signing key is
in the environment, when the bento is not whole as signed (``release.py``), or
when this code's features no longer match the bundle's. Serving imports neither
torch nor stable-baselines3.
"""

import asyncio
import functools
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import orjson
import prometheus_client
from bentoml._internal.server.http import instruments, traffic
from pydantic_core import from_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http import httptools_impl

from bentos.trading_policy.release import bento_model_tag, verify_release
from bentos.trading_policy.settings import ServeSettings, workers_from_env
from tradeops_assets.core import coalesced, decision, features, request, request_arrow, tokens
from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import ConfigError, RequestError, TradeopsError
from tradeops_assets.core.prediction_log import LogBatch, PredictionLog, now_us

logger = logging.getLogger("tradeops.serving")

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
ARROW = request_arrow.MEDIA_TYPE.encode()
MEDIA_TYPES = {
    "/predict": (b"application/json",),
    "/predict_batch": (b"application/json", ARROW),
    coalesced.PATH: (coalesced.MEDIA_TYPE.encode(),),
}
TOKEN_RELOAD_SECONDS = 1.0
RETRY_AFTER_SECONDS = 1

REFUSED_REQUESTS = prometheus_client.Counter(
    "tradeops_refused_requests",
    "Requests turned away before any work, by reason (a fixed set: never a path or a client)",
    ["reason"],
)
LOG_WRITE_FAILURES = prometheus_client.Counter(
    "tradeops_prediction_log_write_failures",
    "Prediction log writes that failed; the rows are kept and retried",
)
TOKEN_RELOAD_FAILURES = prometheus_client.Counter(
    "tradeops_token_reload_failures",
    "Reads of the tokens file that failed; the previous tokens stay in force",
)

_state: "_Serving | None" = None

GC_THRESHOLDS = (10_000, 20, 10)
"""The worker's garbage-collection thresholds (CPython's are 700, 10, 10). A request in
rows parses into about a hundred dicts, so at 700 allocations the young generation was
collected every seven requests and the middle one, which then held every parsed body
still in flight, every seventy. Two builds alternated at 64 connections: 2,728 -> 2,832
requests/s, p99 34.4 -> 29.6 ms (unchanged at 256). Serving makes few reference
cycles, so the garbage that waits for a collection stays small."""

BODY_BUFFER_BYTES = 256 * 1024
"""How much of a body uvicorn buffers before it pauses reading the socket (64 KiB by
default): a 100-request Arrow batch (466 KB) arrives in 2 pieces, not 8, each a
pause, a resume and an event-loop round of its own (+3% decisions/s). It is also
the most a connection holds of a body nobody reads (a refused request's): the front
door, which reads whole bodies itself, at most ``max_uploads`` at once, is the bound
that matters."""
httptools_impl.HIGH_WATER_LIMIT = BODY_BUFFER_BYTES


def _json(payload: Any, status: int = 200) -> Response:
    """``payload`` as JSON; a str is taken as JSON text already (see ``_Serving.answer``)."""
    if type(payload) is str:
        body = payload.encode()
    else:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json")


@functools.lru_cache(maxsize=8)
def _answer_tail(version: str, bento_tag: str) -> str:
    """What follows the target in every answer of one policy, encoded once."""
    return (
        f',"policy_version":{json.dumps(version)},"bento_tag":{json.dumps(bento_tag)},'
        '"request_id":"'
    )


def _error(exc: RequestError) -> tuple[int, bytes]:
    """422 for content a trader must fix, 413 for a payload past a size limit."""
    status = 413 if exc.reason.startswith(("at most", "larger than")) else 422
    payload = {"error": "invalid_request", "field": exc.field, "reason": exc.reason}
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _reply(status: int, payload: bytes, *headers: tuple[bytes, bytes]):
    """A whole response as plain ASGI messages, for refusals made before any handler;
    ``headers`` name the content type (JSON if they do not)."""
    if not any(name == b"content-type" for name, _ in headers):
        headers = ((b"content-type", b"application/json"), *headers)
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(payload)).encode()), *headers],
    }
    return start, {"type": "http.response.body", "body": payload}


def _header(scope, name: bytes) -> bytes:
    return next((v for k, v in scope["headers"] if k == name), b"")


UNAUTHORIZED = (401, "unauthorized", "missing or wrong bearer token")


def _refusal(scope) -> tuple[int, str, str] | None:
    """Why a request is turned away at the gate, or None; cheap checks only, no body read."""
    path = scope["path"]
    if path in OPEN_PATHS:
        return None
    if path not in ROUTES:
        return 404, "not_found", "no such route"
    if _client(scope) is None:
        return UNAUTHORIZED
    method = ROUTES[path][0]
    if scope["method"] != method:
        return 405, "method_not_allowed", f"{path} takes {method}"
    if scope["method"] == "POST":
        encoding = _header(scope, b"content-encoding").strip().lower()
        if encoding not in (b"", b"identity"):
            return 415, "unsupported_encoding", "content-encoding is not accepted; send plain JSON"
        declared = _header(scope, b"content-length")
        size = int(declared) if declared.isdigit() else 0 if not declared else sys.maxsize
        return _content_refusal(path, _media_type(scope), size)
    return None


def _content_refusal(path: str, media_type: bytes, size: int) -> tuple[int, str, str] | None:
    if media_type not in MEDIA_TYPES[path]:
        accepted = " or ".join(t.decode() for t in MEDIA_TYPES[path])
        return 415, "unsupported_media_type", f"content-type must be {accepted}"
    limit = _state.settings.max_body_bytes if _state is not None else 0
    if size > limit:
        return 413, "too_large", f"body larger than {limit} bytes"
    return None


def _gate_answer(status: int, error: str, reason: str) -> coalesced.Answer:
    """A refusal made before any handler, counted by reason."""
    REFUSED_REQUESTS.labels(error).inc()
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tradeops"'))
    elif status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    return status, headers, json.dumps({"error": error, "reason": reason}).encode()


def _media_type(scope) -> bytes:
    return _media(_header(scope, b"content-type"))


def _media(content_type: bytes) -> bytes:
    return content_type.split(b";")[0].strip().lower()


def _client(scope) -> str | None:
    """The named client whose token the request carries (memoised on the scope)."""
    state = scope.setdefault("state", {})
    if "tradeops_client" not in state:
        state["tradeops_client"] = (
            _state.client(_header(scope, b"authorization")) if _state is not None else None
        )
    return state["tradeops_client"]


class Gate:
    """Plain ASGI in front of the handlers: a refused call costs a few microseconds."""

    def __init__(self, app) -> None:
        self.app = app
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        refused = _refusal(scope)
        if refused is None and _state is not None and self.in_flight >= _state.max_in_flight:
            refused = (503, "overloaded", "too many requests in flight; retry after 1 s")
        if refused is not None:
            status, headers, payload = _gate_answer(*refused)
            for message in _reply(status, payload, *headers):
                await send(message)
            return
        self.in_flight += 1
        try:
            await _answer(scope, receive, send)
        finally:
            self.in_flight -= 1


def _metered_only_when_known(middleware_call):
    """BentoML labels its request metrics with the raw path, before any auth: 3,000
    random paths grew ``/metrics`` to 24 MB. Only open probes and authenticated calls
    to known routes are labelled; the rest count in ``tradeops_refused_requests``."""

    async def call(self, scope, receive, send):
        path = scope.get("path")
        if (
            scope["type"] == "http"
            and path not in OPEN_PATHS
            and (path not in ROUTES or _client(scope) is None)
        ):
            await self.app(scope, receive, send)
            return
        await middleware_call(self, scope, receive, send)

    return call


instruments.RunnerTrafficMetricsMiddleware.__call__ = _metered_only_when_known(
    instruments.RunnerTrafficMetricsMiddleware.__call__
)


async def _timeout_with_cancelled_timer(self, scope, receive, send) -> None:
    """BentoML's TimeoutMiddleware never cancels its per-request timer, so every request
    stays referenced for the whole timeout (30 s): thousands of objects a second for the
    garbage collector, whose full passes then stalled every request for 200-450 ms. The
    same behaviour, with the timer cancelled when the request ends."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    task = asyncio.ensure_future(self.app(scope, receive, _send))
    try:
        try:
            await waiter
        except TimeoutError:
            if task.cancel():
                payload = json.dumps(
                    {"error": f"Not able to process the request in {self.timeout} seconds"}
                ).encode()
                for message in _reply(504, payload):
                    await send(message)
            return
        await task
    finally:
        timer.cancel()


traffic.TimeoutMiddleware.__call__ = _timeout_with_cancelled_timer


@dataclass
class _Turn:
    """Single requests answered from one batch of decisions, logged together."""

    decisions: decision.Decisions
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)


class _Serving:
    """What the handlers need, built once per worker by the service's ``__init__``."""

    def __init__(
        self, bundle: PolicyBundle, bento_tag: str, log: PredictionLog, settings: ServeSettings
    ):
        self.bundle = bundle
        self.bento_tag = bento_tag
        self.version = bundle.version
        self.log = log
        self.settings = settings
        self.max_in_flight = settings.max_in_flight
        self.limits = request.Limits(
            max_bars=settings.max_bars,
            max_batch=settings.max_batch,
            max_batch_bars=settings.max_batch_bars,
        )
        self._pending: list[tuple[request.ParsedRequest, asyncio.Future]] = []
        self._turn: dict[int, _Turn] = {}  # by id() of the decisions, which _Turn holds
        self._tokens_mtime: int | None = None
        self._tokens_refused_mtime: int | None = None
        self.tokens = self._read_tokens()

    def _read_tokens(self) -> tokens.TokenSet:
        """The env's token (client ``default``) and the tokens file's named clients."""
        named, mtime = {}, None
        if self.settings.tokens_file is not None:
            mtime = self.settings.tokens_file.stat().st_mtime_ns
            named = tokens.read_tokens(self.settings.tokens_file)
        if self.settings.api_token:
            if tokens.DEFAULT_CLIENT in named:
                raise ConfigError(
                    f"client {tokens.DEFAULT_CLIENT!r} is both in TRADEOPS_API_TOKEN and in "
                    f"{self.settings.tokens_file}"
                )
            named[tokens.DEFAULT_CLIENT] = self.settings.api_token
        found = tokens.TokenSet.of(named, str(self.settings.tokens_file or "TRADEOPS_API_TOKEN"))
        if not len(found):
            raise ConfigError(f"{self.settings.tokens_file} names no client: nobody could call")
        self._tokens_mtime = mtime  # only once read whole: a half-written edit is read again
        return found

    def watch_tokens(self) -> None:
        """Re-reads the tokens file about once a second in every worker, busy or idle: a
        revoked client is out within ~1 s with no redeploy, and a worker that saw no traffic
        still holds the last good file, not an older one, when a bad edit lands."""

        def watch() -> None:
            while True:
                time.sleep(TOKEN_RELOAD_SECONDS)
                self.reload_tokens()

        if self.settings.tokens_file is not None:
            threading.Thread(target=watch, name="tradeops-tokens", daemon=True).start()

    def reload_tokens(self) -> None:
        """A bad new file keeps the previous tokens in force and counts a failure."""
        try:
            mtime = self.settings.tokens_file.stat().st_mtime_ns
            if mtime in (self._tokens_mtime, self._tokens_refused_mtime):
                return
            self.tokens = self._read_tokens()
            logger.info("tokens reloaded: %d clients", len(self.tokens))
        except (OSError, TradeopsError) as exc:
            self._tokens_refused_mtime = mtime if isinstance(exc, TradeopsError) else None
            TOKEN_RELOAD_FAILURES.inc()
            logger.error("tokens file not reloaded, previous tokens stay: %s", exc)

    def client(self, authorization: bytes) -> str | None:
        return self.tokens.client(authorization)

    def decide_soon(self, payload: Any) -> asyncio.Future:
        """Coalesces the single requests that arrive in one event-loop turn into one batch.

        Nothing waits for company: the batch runs on the loop's next turn, so a lone
        request pays nothing and concurrent ones share one validation pass over all their
        bars, one feature pass and one policy call. The future gives (decisions, row), or
        raises the request's own ``RequestError``.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((payload, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            # one request's bars are bounded by max_bars; together they are no batch
            limits = request.Limits(self.limits.max_bars, len(pending), sys.maxsize)
            try:
                parsed = request.parse_many([p for p, _ in pending], self.bundle, limits)
            except Exception:  # a payload the batch path did not foresee: each on its own
                logger.exception("coalesced validation failed; validating one by one")
                parsed = None
            if parsed is None:  # some are refused: each is checked alone, and says why
                parsed, kept = [], []
                for payload, future in pending:
                    try:
                        parsed.append(request.parse_request(payload, self.bundle, self.limits))
                    except Exception as exc:  # its own refusal (or failure), no one else's
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        kept.append((payload, future))
                pending = kept
            decisions = decision.decide_parsed(self.bundle, parsed) if pending else None
        except Exception as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, future) in enumerate(pending):
            if not future.done():
                future.set_result((decisions, i))

    def record(self, decisions: decision.Decisions, started: float, client: str) -> list[str]:
        """Logs a batch request's decisions, all of them: one queue item."""
        n = len(decisions)
        base = uuid.uuid4().hex
        ids = [f"{base}-{i}" for i in range(n)] if n > 1 else [base]
        latency_ms = (time.perf_counter() - started) * 1e3
        self.log.append(self._served(decisions, None, ids, latency_ms, client))
        return ids

    def record_one(
        self, decisions: decision.Decisions, row: int, started: float, client: str
    ) -> str:
        """Logs a single request's decision with the others decided in the same batch, as
        one queue item at the end of the event-loop turn. One item a request cost the
        writer thread 15 ms of GIL a second at 2,000 requests/s, framed in one block; at
        about 7 rows an item, a third of that."""
        request_id = uuid.uuid4().hex
        latency_ms = (time.perf_counter() - started) * 1e3
        turn = self._turn.get(id(decisions))
        if turn is None:
            if not self._turn:
                asyncio.get_running_loop().call_soon(self.log_turn)
            turn = self._turn[id(decisions)] = _Turn(decisions)
        turn.rows.append(row)
        turn.ids.append(request_id)
        turn.latencies_ms.append(latency_ms)
        turn.clients.append(client)
        return request_id

    def log_turn(self) -> None:
        """Hands the turn's single decisions to the log (also called before a shutdown)."""
        turns, self._turn = self._turn, {}
        for turn in turns.values():
            try:
                batch = self._served(
                    turn.decisions, turn.rows, turn.ids, turn.latencies_ms, turn.clients
                )
            except Exception as exc:  # answered already: say so, never drop it silently
                _log_write_failed(f"framing {len(turn.ids)} decisions {turn.ids[:3]}: {exc}")
            else:
                self.log.append(batch)

    def _served(
        self,
        decisions: decision.Decisions,
        rows: list[int] | None,
        ids: list[str],
        latency_ms: float | list[float],
        client: str | list[str],
    ) -> LogBatch:
        """``rows``: which decisions were answered; None for all (a batch, taken uncopied)."""
        take = slice(None) if rows is None else np.asarray(rows)
        return LogBatch(
            request_ids=ids,
            predicted_at_us=now_us(),
            bar_timestamps_us=decisions.bar_timestamps_us[take],
            symbols=decisions.symbols if rows is None else [decisions.symbols[i] for i in rows],
            positions=decisions.positions[take],
            targets=decisions.targets[take],
            features=decisions.features[take],
            policy_version=self.version,
            bento_tag=self.bento_tag,
            latency_ms=latency_ms,
            client=client,
        )

    def refused(
        self, client: str, status: int, reason: str, started: float, symbol: str | None = None
    ) -> str:
        """What a known client got instead of a decision goes in the log as well."""
        request_id = uuid.uuid4().hex
        self.log.append(
            LogBatch.refused(
                request_id=request_id,
                client=client,
                symbol=symbol,
                http_status=status,
                reason=reason[:500],
                policy_version=self.version,
                bento_tag=self.bento_tag,
                latency_ms=(time.perf_counter() - started) * 1e3,
                predicted_at_us=now_us(),
            )
        )
        return request_id

    def answers(self, targets: np.ndarray, request_ids: list[str]) -> list[str]:
        """``{"target_position", "policy_version", "bento_tag", "request_id"}`` as JSON text
        for each decision: a float's repr is its JSON, and the rest is the same for all."""
        if not np.isfinite(targets).all():  # refused before this; never served
            raise ValueError(f"a non-finite target position in {targets} cannot be served")
        tail = _answer_tail(self.version, self.bento_tag)
        return [
            f'{{"target_position":{target!r}{tail}{request_id}"}}'
            for target, request_id in zip(targets.tolist(), request_ids, strict=True)
        ]


def _serving() -> _Serving:
    if _state is None:  # pragma: no cover - routes are mounted only after __init__ ran
        raise RuntimeError("policy not loaded")
    return _state


async def _bytes(http: Request) -> bytes:
    """Reads at most the limit, whatever the headers claimed (chunked bodies declare none)."""
    limit = _serving().settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in http.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError("body", f"larger than {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _loads(body: bytes) -> Any:
    """orjson reads a 96-bar request in two thirds of pydantic_core's time. What it refuses,
    pydantic_core reads if it can: NaN and Infinity literals and integers past float range,
    which validation then refuses naming the field at fault, not the body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return from_json(body)


def _json_body(body: bytes) -> Any:
    try:
        return _loads(body)
    except ValueError as exc:
        raise RequestError("body", f"is not valid JSON: {exc}") from None


async def _body(http: Request) -> Any:
    return _json_body(await _bytes(http))


def _symbol_of(payload: Any) -> str | None:
    symbol = payload.get("symbol") if isinstance(payload, dict) else None
    return symbol if isinstance(symbol, str) and request.SYMBOL_PATTERN.fullmatch(symbol) else None


async def predict(http: Request) -> Response:
    started = time.perf_counter()
    state = _serving()
    client = http.scope["state"]["tradeops_client"]
    payload = None
    try:
        payload = await _body(http)
        decided = state.decide_soon(payload)
    except RequestError as exc:
        return _refuse(state, client, exc, started, _symbol_of(payload))
    status, answer = await _answer_one(state, client, payload, decided, started)
    return Response(answer, status_code=status, media_type="application/json")


async def _answer_one(
    state: _Serving, client: str, payload: Any, decided: asyncio.Future, started: float
) -> tuple[int, bytes]:
    """A single request's status and JSON once its batch is decided, logged either way."""
    try:
        decisions, row = await decided
    except RequestError as exc:
        return _refused(state, client, exc, started, _symbol_of(payload))
    if refused := decisions.refusal(row):
        return _refused(state, client, refused, started, decisions.symbols[row])
    request_id = state.record_one(decisions, row, started, client)
    return 200, state.answers(decisions.targets[row : row + 1], [request_id])[0].encode()


async def predict_many(http: Request) -> Response:
    """The front door's coalesced single requests (``core.coalesced``): each is screened as
    the gate screens a ``/predict`` (its own token, content type and size), decided with
    the others in one batch, logged under its own client, and answered on its own."""
    started = time.perf_counter()
    state = _serving()
    try:
        items = coalesced.read_requests(await _bytes(http))
    except RequestError as exc:
        return _refuse(state, http.scope["state"]["tradeops_client"], exc, started)
    json_type = [(b"content-type", b"application/json")]
    answers: list[coalesced.Answer | None] = []
    waiting = []
    for authorization, content_type, body in items:
        client = state.client(authorization)
        if client is None:
            refused = UNAUTHORIZED
        else:
            refused = _content_refusal("/predict", _media(content_type), len(body))
        if refused is not None:
            answers.append(_gate_answer(*refused))
            continue
        payload = None
        try:
            payload = _json_body(body)
            waiting.append((len(answers), client, payload, state.decide_soon(payload)))
            answers.append(None)  # all are asked before any is awaited: one batch
        except RequestError as exc:
            status, text = _refused(state, client, exc, started, _symbol_of(payload))
            answers.append((status, json_type, text))
    for i, client, payload, decided in waiting:
        status, text = await _answer_one(state, client, payload, decided, started)
        answers[i] = (status, json_type, text)
    return Response(coalesced.write_answers(answers), media_type=coalesced.MEDIA_TYPE)


def _refuse(
    state: _Serving, client: str, exc: RequestError, started: float, symbol: str | None = None
) -> Response:
    status, payload = _refused(state, client, exc, started, symbol)
    return Response(payload, status_code=status, media_type="application/json")


def _refused(
    state: _Serving, client: str, exc: RequestError, started: float, symbol: str | None = None
) -> tuple[int, bytes]:
    status, payload = _error(exc)
    state.refused(client, status, f"{exc.field}: {exc.reason}", started, symbol)
    return status, payload


async def predict_batch(http: Request) -> Response:
    """Body: ``{"requests": [...]}``, a bare list, or an Arrow stream of requests
    (``core.request_arrow``); one invalid request refuses the batch."""
    started = time.perf_counter()
    state = _serving()
    client = http.scope["state"]["tradeops_client"]
    try:
        if _media_type(http.scope) == ARROW:
            decisions = decision.decide_arrow(state.bundle, await _bytes(http), state.limits)
            return _answers(state, decisions, started, client)
        payload = await _body(http)
        if isinstance(payload, dict):
            if set(payload) != {"requests"}:
                raise RequestError("body", 'must be {"requests": [...]} or a list of requests')
            requests, path = payload["requests"], "requests"
        else:
            requests, path = payload, ""
        decisions = decision.decide(state.bundle, requests, state.limits, path=path)
    except RequestError as exc:
        return _refuse(state, client, exc, started)
    return _answers(state, decisions, started, client)


def _answers(state: _Serving, decisions: decision.Decisions, started: float, client: str):
    ids = state.record(decisions, started, client)
    answers = state.answers(decisions.targets, ids)
    return _json(f"[{','.join(answers)}]")


async def metadata(_: Request) -> Response:
    state = _serving()
    bundle = state.bundle
    return _json(
        {
            "policy_version": state.version,
            "bento_tag": state.bento_tag,
            "lineage": bundle.lineage,
            "recipe": bundle.recipe.to_dict(),
            "env": bundle.env.to_dict(),
            "symbols": sorted(bundle.symbols),
            "feature_columns": list(bundle.recipe.feature_columns),
            "min_bars": bundle.min_bars,
            "limits": {
                "max_bars": state.limits.max_bars,
                "max_batch": state.limits.max_batch,
                "max_batch_bars": state.limits.max_batch_bars,
                "max_body_bytes": state.settings.max_body_bytes,
            },
        }
    )


ROUTES = {
    "/predict": ("POST", predict),
    "/predict_batch": ("POST", predict_batch),
    coalesced.PATH: ("POST", predict_many),
    "/metadata": ("GET", metadata),
}
"""Path -> (method, handler): what the gate checks a request against and hands it to."""


async def _answer(scope, receive, send) -> None:
    """A request the gate let through, answered right there: below the gate, BentoML's
    context middleware, its router, the mount and this app's router and two exception
    layers are a dozen ASGI wrappers around every message, and none of them is needed
    once the gate has checked the route, the method and the client."""
    handler = ROUTES[scope["path"]][1]
    try:
        response = await handler(Request(scope, receive))
    except Exception:
        logger.exception("%s failed", scope["path"])
        response = _json({"error": "internal_error"}, 500)
    await response(scope, receive, send)


api = Starlette(  # what BentoML mounts; the gate answers these routes before they are reached
    routes=[Route(path, handler, methods=[method]) for path, (method, handler) in ROUTES.items()]
)


def _bento_dir() -> Path:
    """BentoML serves a bento from its ``src`` folder; source trees are never served."""
    ctx = bentoml.server_context
    if ctx.bento_version in (None, "not available"):
        raise ConfigError(
            "serving from a source tree: only a signed bento serves traders "
            "(python -m bentos.trading_policy.package builds and signs one)"
        )
    return Path.cwd().parent


def _bento_tag() -> str:
    ctx = bentoml.server_context
    return f"{ctx.bento_name}:{ctx.bento_version}"


@bentoml.service(
    name="trading_policy",
    workers=workers_from_env(),
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    # OpenTelemetry spans cost a quarter of a /predict and no exporter is set; every
    # decision is in the prediction log under its request_id instead
    tracing={"excluded_urls": ["/predict", "/predict_batch", coalesced.PATH]},
)
@bentoml.asgi_app(api, path="/")
class TradingPolicy:
    def __init__(self) -> None:
        try:
            self._load()
        except Exception:
            # BentoML respawns a dead worker (so a killed one is replaced), but a refusal
            # is final: stop `bentoml serve` rather than refuse again forever.
            logger.exception("refusing to serve; stopping bentoml serve (pid %d)", os.getppid())
            os.kill(os.getppid(), signal.SIGTERM)
            raise

    def _load(self) -> None:
        global _state
        settings = ServeSettings.from_env()
        bento_dir = _bento_dir()
        tag = bento_model_tag(bento_dir)
        try:
            model = bentoml.models.get(tag)
        except bentoml.exceptions.NotFound as exc:
            raise ConfigError(f"policy model {tag!r} not in the BentoML store: {exc}") from exc
        release = verify_release(bento_dir, model.path, settings.public_key, settings.model_tag)
        bundle = PolicyBundle.load(release.bundle_dir)
        mismatch = features.feature_mismatch(features.self_check_bars())
        if mismatch > 1e-9:
            raise TradeopsError(
                f"serving features differ from core.features by {mismatch:.3g}: "
                "tail_features in core/features.py must mirror compute_features"
            )
        self.log = PredictionLog(
            settings.prediction_log,
            flush_rows=settings.log_flush_rows,
            flush_seconds=settings.log_flush_seconds,
            on_failure=_log_write_failed,
        )
        _state = _Serving(bundle, _bento_tag(), self.log, settings)
        _state.watch_tokens()
        logger.info(
            "serving policy %s from %s (bento digest %s, signed by key %s), bento %s, "
            "prediction log %s, %d clients",
            bundle.version,
            model.tag,
            release.digest[:16],
            release.bento_signature["key_id"],
            _state.bento_tag,
            self.log.root,
            len(_state.tokens),
        )
        gc.collect()
        gc.freeze()  # start-up's objects never need scanning again: shorter full collections
        gc.set_threshold(*GC_THRESHOLDS)

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        if _state is not None:
            _state.log_turn()
        self.log.close()


def _log_write_failed(message: str) -> None:
    LOG_WRITE_FAILURES.inc()
    logger.error("prediction log write failed (rows kept, retried): %s", message)


TradingPolicy.add_asgi_middleware(Gate)
