"""From a trader's request (recent bars and a position) to the policy's target position.

The endpoint, the tests and anything else that serves a policy go through
``decide``, so validation, features and the observation are defined once.

Features come from ``core.features``: its serving path (``tail_features``)
evaluates the same formulas in numpy for the last bars of many requests at once,
and ``feature_mismatch`` holds it to the polars definition; the service runs that
check at start-up and refuses to serve if they ever disagree.
"""

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tradeops_assets.core import features as F  # noqa: N812 (the formulas read like the module)
from tradeops_assets.core.env import EnvConfig, Normaliser
from tradeops_assets.core.errors import BundleError, RequestError
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

POLICY_FILE = "policy.npz"
NORMALISER_FILE = "normaliser.json"
CONFIG_FILE = "config.json"
LINEAGE_FILE = "lineage.json"
BUNDLE_FILES = (POLICY_FILE, NORMALISER_FILE, CONFIG_FILE, LINEAGE_FILE)
BUNDLE_FORMAT = 1
OHLCV = F.OHLCV
_NUMBER_TYPES = frozenset({int, float})
_OHLCV_GETTER = itemgetter(*OHLCV)
_TIMESTAMP_GETTER = itemgetter(TIMESTAMP)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_SECONDS_LIMIT = 1e11  # year 5138: a larger epoch is milliseconds sent as seconds


def required_bars(window: int) -> int:
    """Bars a request needs so the decision bar ends a full window of feature rows.

    ``compute_features`` drops a symbol's first ``WARMUP_BARS`` bars, so n bars yield
    n - WARMUP_BARS feature rows and the observation needs ``window`` of them.
    """
    return F.WARMUP_BARS + window


@dataclass(frozen=True)
class Limits:
    """Payload bounds: a request beyond them is refused before any parsing work."""

    max_bars: int = 4096
    max_batch: int = 1000

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(
            max_bars=int(os.environ.get("TRADEOPS_MAX_BARS", cls.max_bars)),
            max_batch=int(os.environ.get("TRADEOPS_MAX_BATCH", cls.max_batch)),
        )


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class PolicyBundle:
    """Everything a served decision depends on, read from one (signed) directory."""

    policy: NumpyPolicy
    normaliser: Normaliser
    env: EnvConfig
    config: dict[str, Any]
    lineage: dict[str, Any]
    symbols: frozenset[str]
    path: Path | None = None

    @property
    def window(self) -> int:
        return self.env.window

    @property
    def min_bars(self) -> int:
        return required_bars(self.env.window)

    @property
    def version(self) -> str:
        return str(self.lineage.get("model_version", "unversioned"))

    @classmethod
    def load(cls, directory: Path | str) -> "PolicyBundle":
        directory = Path(directory)
        missing = [name for name in BUNDLE_FILES if not (directory / name).is_file()]
        if missing:
            raise BundleError(f"policy bundle {directory} lacks {missing}")
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
            lineage = json.loads((directory / LINEAGE_FILE).read_text())
            normaliser = Normaliser.from_dict(json.loads((directory / NORMALISER_FILE).read_text()))
            policy = NumpyPolicy.load(directory / POLICY_FILE)
        except (OSError, ValueError, KeyError) as exc:
            raise BundleError(f"policy bundle {directory} cannot be read: {exc}") from exc
        env_fields = EnvConfig.__dataclass_fields__
        env = EnvConfig(**{k: v for k, v in config.get("env", {}).items() if k in env_fields})
        bundle = cls(
            policy=policy,
            normaliser=normaliser,
            env=env,
            config=config,
            lineage=lineage,
            symbols=frozenset(config.get("symbols", ())),
            path=directory,
        )
        bundle._check_fits_this_code(directory)
        return bundle

    def _check_fits_this_code(self, where: Path) -> None:
        columns = tuple(self.config.get("feature_columns", F.FEATURE_COLUMNS))
        if columns != F.FEATURE_COLUMNS:
            raise BundleError(
                f"policy bundle {where} was trained on features {list(columns)}, "
                f"this code computes {list(F.FEATURE_COLUMNS)}"
            )
        n = len(F.FEATURE_COLUMNS)
        if self.normaliser.mean.shape != (n,) or self.normaliser.std.shape != (n,):
            raise BundleError(
                f"policy bundle {where}: normaliser has {self.normaliser.mean.shape} "
                f"entries, features have {n}"
            )
        width = self.env.window * n + 1
        if self.policy.obs_width != width:
            raise BundleError(
                f"policy bundle {where}: policy takes observations of width "
                f"{self.policy.obs_width}, window {self.env.window} x {n} features + position "
                f"is {width}"
            )


def write_bundle(
    directory: Path | str,
    policy: NumpyPolicy,
    normaliser: Normaliser,
    env: EnvConfig | Mapping[str, Any],
    lineage: Mapping[str, Any],
    symbols: Iterable[str] = (),
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a loadable bundle; ``symbols`` empty means the policy serves any symbol."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env_dict = dict(env) if isinstance(env, Mapping) else dict(env.__dict__)
    config = {
        **dict(extra_config or {}),
        "format": BUNDLE_FORMAT,
        "env": env_dict,
        "symbols": sorted(set(symbols)),
        "feature_columns": list(F.FEATURE_COLUMNS),
        "warmup_bars": F.WARMUP_BARS,
    }
    policy.save(directory / POLICY_FILE)
    (directory / NORMALISER_FILE).write_text(json.dumps(normaliser.to_dict()))
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    (directory / LINEAGE_FILE).write_text(
        json.dumps(dict(lineage), indent=2, sort_keys=True, default=str)
    )
    PolicyBundle.load(directory)
    return directory


# --------------------------------------------------------------------------- requests


def request_for(bars: pl.DataFrame, position: float = 0.0) -> dict[str, Any]:
    """The JSON body a trader sends for one symbol's ``bars`` (oldest first)."""
    return {
        "symbol": bars[SYMBOL][0],
        "position": position,
        "bars": [
            {TIMESTAMP: row[TIMESTAMP].isoformat(), **{k: row[k] for k in OHLCV}}
            for row in bars.iter_rows(named=True)
        ],
    }


@dataclass(frozen=True)
class ParsedRequest:
    symbol: str
    position: float
    ohlcv: np.ndarray  # float64 [5, n]
    last_timestamp_us: int


def _number(value: Any, where: str) -> float:
    if type(value) not in _NUMBER_TYPES:
        raise RequestError(where, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise RequestError(where, f"must be finite, got {number}")
    return number


def _locate_bar_problem(bars: list, column: str | None = None) -> RequestError:
    """Slow, exact: the first bar that is not an object with numeric OHLCV and a timestamp."""
    for i, bar in enumerate(bars):
        if not isinstance(bar, dict):
            return RequestError(f"bars[{i}]", f"must be an object, got {type(bar).__name__}")
        for key in (TIMESTAMP, *OHLCV):
            if key not in bar:
                return RequestError(f"bars[{i}].{key}", "is missing")
        for key in (column,) if column else OHLCV:
            try:
                _number(bar[key], f"bars[{i}].{key}")
            except RequestError as exc:
                return exc
    return RequestError("bars", "malformed")


def _timestamps_us(stamps: list, where: str = "bars") -> np.ndarray:
    """Epoch seconds or ISO 8601 (naive = UTC) to int64 microseconds."""
    kinds = set(map(type, stamps))
    if kinds <= _NUMBER_TYPES:
        seconds = np.asarray(stamps, dtype=np.float64)
        bad = ~np.isfinite(seconds) | (np.abs(seconds) >= _EPOCH_SECONDS_LIMIT)
        if bad.any():
            i = int(np.argmax(bad))
            raise RequestError(
                f"{where}[{i}].timestamp",
                f"epoch timestamps are seconds; {stamps[i]!r} is not a plausible one",
            )
        return np.round(seconds * 1e6).astype(np.int64)
    if kinds == {str}:
        if all(text.endswith("Z") for text in stamps):
            naive: list[str] | None = [text[:-1] for text in stamps]
        elif all(text.endswith("+00:00") for text in stamps):
            naive = [text[:-6] for text in stamps]
        elif any("+" in text or text.rfind("-") > 9 for text in stamps):
            naive = None  # UTC offsets: numpy has no time zones, datetime does
        else:
            naive = stamps
        if naive is not None:
            try:
                parsed = np.array(naive, dtype="datetime64[us]")
                if not np.isnat(parsed).any():
                    return parsed.astype(np.int64)
            except ValueError:
                pass  # let datetime name the bar it cannot read
        out = np.empty(len(stamps), np.int64)
        for i, text in enumerate(stamps):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise RequestError(
                    f"{where}[{i}].timestamp", f"{text!r} is not an ISO 8601 timestamp"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            out[i] = (moment - _EPOCH) // _MICROSECOND
        return out
    for i, stamp in enumerate(stamps):
        if type(stamp) not in (*_NUMBER_TYPES, str) or type(stamp) is not type(stamps[0]):
            raise RequestError(
                f"{where}[{i}].timestamp",
                "must be an ISO 8601 string or epoch seconds, the same kind for every bar; "
                f"got {type(stamp).__name__}",
            )
    raise RequestError(f"{where}", "timestamps must all be strings or all numbers")


def parse_request(raw: Any, bundle: PolicyBundle, limits: Limits | None = None) -> ParsedRequest:
    """Validates one request; the error's ``field`` is relative to the request object."""
    limits = limits or Limits()
    if not isinstance(raw, dict):
        raise RequestError("", f"a request must be an object, got {type(raw).__name__}")
    for key in ("symbol", "bars", "position"):
        if key not in raw:
            raise RequestError(key, "is missing")
    symbol = raw["symbol"]
    if type(symbol) is not str or not symbol:
        raise RequestError("symbol", "must be a non-empty string")
    if bundle.symbols and symbol not in bundle.symbols:
        raise RequestError("symbol", f"{symbol!r} is not one this policy was trained for")
    position = _number(raw["position"], "position")
    if not -1.0 <= position <= 1.0:
        raise RequestError("position", f"must be within [-1, 1], got {position}")
    bars = raw["bars"]
    if type(bars) is not list:
        raise RequestError("bars", f"must be a list of bars, got {type(bars).__name__}")
    n = len(bars)
    if n < bundle.min_bars:
        raise RequestError(
            "bars",
            f"needs at least {bundle.min_bars} bars ({F.WARMUP_BARS} warm-up + "
            f"window {bundle.window}), got {n}",
        )
    if n > limits.max_bars:
        raise RequestError("bars", f"at most {limits.max_bars} bars per request, got {n}")
    try:
        rows = list(map(_OHLCV_GETTER, bars))
        stamps = list(map(_TIMESTAMP_GETTER, bars))
    except (KeyError, TypeError):
        raise _locate_bar_problem(bars) from None
    if not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
        raise _locate_bar_problem(bars)
    try:
        ohlcv = np.array(rows, dtype=np.float64).T
    except OverflowError:
        raise _locate_bar_problem(bars) from None
    finite = np.isfinite(ohlcv)
    if not finite.all():
        row, i = np.unravel_index(np.argmin(finite), finite.shape)
        raise RequestError(f"bars[{i}].{OHLCV[row]}", f"must be finite, got {ohlcv[row, i]}")
    prices = ohlcv[:4]
    if not (prices > 0).all():
        row, i = np.unravel_index(np.argmin(prices > 0), prices.shape)
        raise RequestError(f"bars[{i}].{OHLCV[row]}", f"must be > 0, got {prices[row, i]}")
    if not (ohlcv[4] >= 0).all():
        i = int(np.argmin(ohlcv[4] >= 0))
        raise RequestError(f"bars[{i}].volume", f"must be >= 0, got {ohlcv[4, i]}")
    o, h, lo, c = prices
    consistent = (lo <= o) & (o <= h) & (lo <= c) & (c <= h)
    if not consistent.all():
        i = int(np.argmin(consistent))
        raise RequestError(
            f"bars[{i}]",
            f"needs low <= open, close <= high; got open={o[i]} high={h[i]} "
            f"low={lo[i]} close={c[i]}",
        )
    stamps_us = _timestamps_us(stamps)
    steps = np.diff(stamps_us)
    if not (steps > 0).all():
        i = int(np.argmin(steps > 0)) + 1
        how = "duplicates" if steps[i - 1] == 0 else "is earlier than"
        raise RequestError(
            f"bars[{i}].timestamp",
            f"{how} bars[{i - 1}].timestamp: bars must be oldest first, one per timestamp",
        )
    return ParsedRequest(symbol, position, ohlcv, int(stamps_us[-1]))


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decisions:
    """Target positions and what the prediction log keeps about each decision."""

    targets: np.ndarray  # float64 [batch], in [-max_position, max_position]
    features: np.ndarray  # float64 [batch, n_features]: raw features of the decision bar
    symbols: list[str]
    positions: np.ndarray  # float64 [batch]: the position each request reported
    bar_timestamps_us: np.ndarray  # int64 [batch]: the decision bar's timestamp
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.symbols)


def decide_parsed(bundle: PolicyBundle, parsed: Sequence[ParsedRequest]) -> Decisions:
    """One feature pass per distinct request length, then one policy call for the batch."""
    window, batch = bundle.window, len(parsed)
    n_features = len(F.FEATURE_COLUMNS)
    raw = np.empty((batch, window, n_features))
    by_length: dict[int, list[int]] = {}
    for i, request in enumerate(parsed):
        by_length.setdefault(request.ohlcv.shape[1], []).append(i)
    for indices in by_length.values():
        stacked = np.stack([parsed[i].ohlcv for i in indices], axis=1)
        raw[indices] = F.tail_features(stacked, window)
    positions = np.fromiter((r.position for r in parsed), np.float64, batch)
    obs = np.empty((batch, window * n_features + 1), np.float32)
    obs[:, :-1] = bundle.normaliser.apply(raw).reshape(batch, -1)
    obs[:, -1] = positions
    targets = bundle.policy.act(obs) * bundle.env.max_position
    return Decisions(
        targets=targets,
        features=raw[:, -1, :],
        symbols=[r.symbol for r in parsed],
        positions=positions,
        bar_timestamps_us=np.fromiter((r.last_timestamp_us for r in parsed), np.int64, batch),
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
    parsed = []
    for i, raw in enumerate(requests):
        try:
            parsed.append(parse_request(raw, bundle, limits))
        except RequestError as exc:
            raise exc.within(f"{path}[{i}]") from None
    return decide_parsed(bundle, parsed)


def decide_one(bundle: PolicyBundle, request: Any, limits: Limits | None = None) -> Decisions:
    return decide_parsed(bundle, [parse_request(request, bundle, limits)])
