"""The trading policy endpoint: a BentoML 1.4 service over ``core.request`` and ``core.decision``.

``/predict``, ``/predict_batch`` and ``/metadata`` are a small Starlette app
mounted in the bento rather than ``@bentoml.api`` methods: BentoML's typed
handlers cost about a millisecond a request (pydantic models built per bar),
which would cap a 2-core box far below the thousands of decisions a second the
traders need. The deployable is still a bento, and BentoML still provides
``/healthz``, ``/livez``, ``/readyz`` and ``/metrics``, which stay open; every
other path needs ``Authorization: Bearer $TRADEOPS_API_TOKEN``.

Start-up refuses (the process exits, ``/readyz`` never answers) when a setting is
missing or bad (``settings.py`` names the variable), when the policy bundle's
signature does not verify, or when this code's features no longer match the
bundle's. Serving imports neither torch nor stable-baselines3.
"""

import asyncio
import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bentos.trading_policy.settings import ServeSettings, workers_from_env
from tradeops_assets.core import decision, features, request, signing
from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import ConfigError, RequestError, TradeopsError
from tradeops_assets.core.prediction_log import LogBatch, PredictionLog, now_us

try:  # pydantic_core ships with BentoML and parses JSON ~3.5x faster than the stdlib
    from pydantic_core import from_json as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

logger = logging.getLogger("tradeops.serving")

DEFAULT_MODEL = "trading_policy:latest"
BUNDLE_DIR = "bundle"  # the signed bundle's folder inside the model-store entry
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})

_state: "_Serving | None" = None


def _json(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json")


def _error(exc: RequestError) -> Response:
    """422 for content a trader must fix, 413 for a payload past a size limit."""
    status = 413 if exc.reason.startswith(("at most", "larger than")) else 422
    return _json({"error": "invalid_request", "field": exc.field, "reason": exc.reason}, status)


class BearerAuth:
    """Plain ASGI, so the open probes pay nothing and a refused call never reaches a handler."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        expected = _state.expected_auth if _state is not None else None
        if expected is not None and hmac.compare_digest(given, expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized","reason":"missing or wrong bearer token"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="tradeops"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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
        self.expected_auth = f"Bearer {settings.api_token}".encode()
        self.limits = request.Limits(max_bars=settings.max_bars, max_batch=settings.max_batch)
        self._pending: list[tuple[request.ParsedRequest, asyncio.Future]] = []

    def decide_soon(self, parsed: request.ParsedRequest) -> asyncio.Future:
        """Coalesces the single requests that arrive in one event-loop turn into one batch.

        Nothing waits for company: the batch runs on the loop's next turn, so a lone
        request pays nothing and concurrent ones share one feature pass and one policy call.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((parsed, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            decisions = decision.decide_parsed(self.bundle, [p for p, _ in pending])
        except Exception as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, future) in enumerate(pending):
            if not future.done():
                future.set_result((decisions, i))

    def record(self, decisions: decision.Decisions, rows: list[int], started: float) -> list[str]:
        base = uuid.uuid4().hex
        ids = [f"{base}-{i}" for i in range(len(rows))] if len(rows) > 1 else [base]
        take = np.asarray(rows)
        self.log.append(
            LogBatch(
                request_ids=ids,
                predicted_at_us=now_us(),
                bar_timestamps_us=decisions.bar_timestamps_us[take],
                symbols=[decisions.symbols[i] for i in rows],
                positions=decisions.positions[take],
                targets=decisions.targets[take],
                features=decisions.features[take],
                policy_version=self.version,
                bento_tag=self.bento_tag,
                latency_ms=(time.perf_counter() - started) * 1e3,
            )
        )
        return ids

    def answer(self, target: float, request_id: str) -> dict[str, Any]:
        return {
            "target_position": float(target),
            "policy_version": self.version,
            "bento_tag": self.bento_tag,
            "request_id": request_id,
        }


def _serving() -> _Serving:
    if _state is None:  # pragma: no cover - routes are mounted only after __init__ ran
        raise RuntimeError("policy not loaded")
    return _state


async def _body(http: Request) -> Any:
    limit = _serving().settings.max_body_bytes
    if int(http.headers.get("content-length") or 0) > limit:
        raise RequestError("body", f"larger than {limit} bytes")
    raw = await http.body()
    if len(raw) > limit:
        raise RequestError("body", f"larger than {limit} bytes")
    try:
        return _loads(raw)
    except ValueError as exc:
        raise RequestError("body", f"is not valid JSON: {exc}") from None


async def predict(http: Request) -> Response:
    started = time.perf_counter()
    state = _serving()
    try:
        payload = await _body(http)
        parsed = request.parse_request(payload, state.bundle, state.limits)
    except RequestError as exc:
        return _error(exc)
    decisions, row = await state.decide_soon(parsed)
    (request_id,) = state.record(decisions, [row], started)
    return _json(state.answer(decisions.targets[row], request_id))


async def predict_batch(http: Request) -> Response:
    """Body: ``{"requests": [...]}`` or a bare list; one invalid request refuses the batch."""
    started = time.perf_counter()
    state = _serving()
    try:
        payload = await _body(http)
        if isinstance(payload, dict):
            if set(payload) != {"requests"}:
                raise RequestError("body", 'must be {"requests": [...]} or a list of requests')
            requests, path = payload["requests"], "requests"
        else:
            requests, path = payload, ""
        decisions = decision.decide(state.bundle, requests, state.limits, path=path)
    except RequestError as exc:
        return _error(exc)
    ids = state.record(decisions, list(range(len(decisions))), started)
    answers = [state.answer(t, i) for t, i in zip(decisions.targets.tolist(), ids, strict=True)]
    return _json(answers)


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
            "limits": {"max_bars": state.limits.max_bars, "max_batch": state.limits.max_batch},
        }
    )


api = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
    ]
)


def _model_tag(settings: ServeSettings) -> str:
    """The policy this bento was built with, not whatever model is newest in the store.

    BentoML serves a bento from its ``src`` folder and keeps models in the shared
    store, where ``trading_policy:latest`` moves with every build; the bento's own
    manifest names the one model it was built and signed with.
    """
    if settings.model_tag:
        return settings.model_tag
    manifest = Path.cwd().parent / "bento.yaml"
    if bentoml.server_context.bento_version not in (None, "not available") and manifest.exists():
        models = yaml.safe_load(manifest.read_text()).get("models") or []
        if len(models) == 1:
            return str(models[0]["tag"])
    return DEFAULT_MODEL


def _bento_tag() -> str:
    ctx = bentoml.server_context
    if ctx.bento_version and ctx.bento_version != "not available":
        return f"{ctx.bento_name}:{ctx.bento_version}"
    return f"{ctx.bento_name or 'trading_policy'}:source"


@bentoml.service(
    name="trading_policy",
    workers=workers_from_env(),
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(api, path="/")
class TradingPolicy:
    def __init__(self) -> None:
        global _state
        settings = ServeSettings.from_env()
        public_key = signing.load_public_key(settings.public_key)
        tag = _model_tag(settings)
        try:
            model = bentoml.models.get(tag)
        except bentoml.exceptions.NotFound as exc:
            raise ConfigError(f"policy model {tag!r} not in the BentoML store: {exc}") from exc
        bundle_dir = Path(model.path) / BUNDLE_DIR
        record = signing.verify_bundle(bundle_dir, public_key)
        bundle = PolicyBundle.load(bundle_dir)
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
        )
        _state = _Serving(bundle, _bento_tag(), self.log, settings)
        logger.info(
            "serving policy %s from %s (signed by key %s), bento %s, prediction log %s",
            bundle.version,
            model.tag,
            record["key_id"],
            _state.bento_tag,
            self.log.root,
        )

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.log.close()


TradingPolicy.add_asgi_middleware(BearerAuth)
