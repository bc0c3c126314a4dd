"""From validated requests to target positions: features, scaling and the policy, batched.

The endpoint, the tests and anything else that serves a policy go through
``decide``, so features and the observation are defined once. Features come from
``core.features``' compiled serving path (``tail_features``), which
``feature_mismatch`` holds to the polars definition training used.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradeops_assets.core import features as F  # noqa: N812 (the formulas read like the module)
from tradeops_assets.core import request_arrow
from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.request import (
    Limits,
    ParsedBatch,
    ParsedRequest,
    parse_many,
    parse_request,
)


@dataclass(frozen=True)
class Decisions:
    """Target positions and what the prediction log keeps about each decision."""

    targets: np.ndarray  # float64 [batch], in [-max_position, max_position]
    features: np.ndarray  # float64 [batch, n_features]: raw features of the decision bar
    symbols: list[str]
    positions: np.ndarray  # float64 [batch]: the position each request reported
    bar_timestamps_us: np.ndarray  # int64 [batch]: the decision bar's timestamp
    finite: np.ndarray | None = None
    """bool [batch]: False where a request's features or decision left float range; its
    target is NaN and must be refused, never served (see ``refusal``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.symbols)

    def refusal(self, row: int, path: str = "") -> RequestError | None:
        """Why request ``row`` gets no decision, or None: extreme prices that validate one
        by one can still overflow a feature (a squared return, a volume ratio)."""
        if self.finite is None or self.finite[row]:
            return None
        return RequestError(
            f"{path}bars",
            "give features or a decision beyond float range (prices or volumes too extreme)",
        )


def decide_parsed(bundle: PolicyBundle, parsed: Sequence[ParsedRequest] | ParsedBatch) -> Decisions:
    """One feature pass over every request's bars, then one policy call for the batch."""
    if not isinstance(parsed, ParsedBatch):
        parsed = ParsedBatch.of(parsed)
    window, batch = bundle.window, len(parsed)
    n_features = len(F.FEATURE_COLUMNS)
    raw = F.tail_features(parsed.ohlcv, parsed.ends, window)
    obs = np.empty((batch, window * n_features + 1), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        obs[:, :-1] = bundle.normaliser.apply(raw).reshape(batch, -1)
    obs[:, -1] = parsed.positions
    finite = np.isfinite(obs).all(axis=1)
    obs[~finite] = 0.0  # the other requests of the batch still get their decisions
    targets = bundle.policy.act(obs) * bundle.env.max_position
    finite &= np.isfinite(targets)
    targets[~finite] = np.nan
    return Decisions(
        targets=targets,
        features=raw[:, -1, :],
        symbols=parsed.symbols,
        positions=parsed.positions,
        bar_timestamps_us=parsed.last_timestamps_us,
        finite=finite,
    )


def decide(
    bundle: PolicyBundle, requests: Any, limits: Limits | None = None, path: str = ""
) -> Decisions:
    """Decisions for a batch; any invalid request refuses the whole batch, naming its field.

    ``path`` is where the list sits in the caller's document (``"requests"``), so the
    error's ``field`` reads ``requests[2].bars[3].close``.
    """
    limits = limits or Limits()
    if type(requests) is not list:
        raise RequestError(path, f"must be a list of requests, got {type(requests).__name__}")
    if not requests:
        raise RequestError(path, "needs at least one request")
    if len(requests) > limits.max_batch:
        raise RequestError(
            path, f"at most {limits.max_batch} requests per batch, got {len(requests)}"
        )
    parsed = parse_many(requests, bundle, limits)
    if parsed is None:  # some request is refused: the exact path says which and why
        parsed = _parse_each(bundle, requests, limits, path)
    return _all_or_none(decide_parsed(bundle, parsed), path)


def decide_arrow(
    bundle: PolicyBundle, body: bytes, limits: Limits | None = None, path: str = "requests"
) -> Decisions:
    """Decisions for a batch sent as an Arrow stream (``core.request_arrow``), refused
    whole as ``decide`` refuses a JSON batch."""
    return _all_or_none(
        decide_parsed(bundle, request_arrow.parse(body, bundle, limits, path)), path
    )


def _all_or_none(decisions: Decisions, path: str) -> Decisions:
    if not decisions.finite.all():
        i = int(np.argmin(decisions.finite))
        raise decisions.refusal(i, f"{path}[{i}].")
    return decisions


def _parse_each(bundle: PolicyBundle, requests: list, limits: Limits, path: str) -> list:
    parsed = []
    bars = 0
    for i, raw in enumerate(requests):
        try:
            parsed.append(parse_request(raw, bundle, limits))
        except RequestError as exc:
            raise exc.within(f"{path}[{i}]") from None
        bars += parsed[-1].ohlcv.shape[1]
        if bars > limits.max_batch_bars:
            raise RequestError(
                path, f"at most {limits.max_batch_bars} bars across a batch, got more by [{i}]"
            )
    return parsed


def decide_one(bundle: PolicyBundle, request: Any, limits: Limits | None = None) -> Decisions:
    decisions = decide_parsed(bundle, [parse_request(request, bundle, limits)])
    if refused := decisions.refusal(0):
        raise refused
    return decisions
