"""From a trader's request (recent bars and a position) to the policy's target position.

The endpoint, the tests and anything else that serves a policy go through
``decide``, so validation, features and the observation are defined once.

Features: ``core.features`` is the definition. Its polars query costs ~2-8 ms a
call whatever the batch size, which alone would cap /predict at a few hundred
requests a second, so this module evaluates the same formulas in numpy, for the
last ``window`` bars of each request only and for many requests of one length
at a time. ``feature_mismatch`` compares the two on real and degenerate bars;
the parity tests and the service's start-up both run it, so an edit to
``core.features`` that is not mirrored here stops the endpoint from starting
instead of skewing its decisions.
"""

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from tradeops_assets.core import features as F  # noqa: N812 (the formulas read like the module)
from tradeops_assets.core.env import EnvConfig, Normaliser
from tradeops_assets.core.errors import BundleError, RequestError
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.schemas import BAR_DTYPES, SYMBOL, TIMESTAMP

POLICY_FILE = "policy.npz"
NORMALISER_FILE = "normaliser.json"
CONFIG_FILE = "config.json"
LINEAGE_FILE = "lineage.json"
BUNDLE_FILES = (POLICY_FILE, NORMALISER_FILE, CONFIG_FILE, LINEAGE_FILE)
BUNDLE_FORMAT = 1
OHLCV = ("open", "high", "low", "close", "volume")
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


# --------------------------------------------------------------------------- features


def _ewm(x: np.ndarray, alpha: float) -> np.ndarray:
    """polars' ``ewm_mean(adjust=False)`` along axis 1: y0 = x0, y = (1-a) y + a x."""
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=1, zi=(1.0 - alpha) * x[:, :1])
    return y


@lru_cache(maxsize=64)
def _window_index(n: int, width: int, rows: int) -> np.ndarray:
    """[rows, width] positions of the ``width``-bar windows ending on each of the last ``rows``."""
    ends = np.arange(n - rows, n)
    return ends[:, None] + np.arange(1 - width, 1)[None, :]


def _mean_std(x: np.ndarray, width: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std; a flat window gives its value and exactly 0, as polars does.

    Without that, a constant window's mean can be off by one ulp and its std a tiny
    positive number, which flips the ``den > 0`` branches of the ratios.
    """
    win = x[..., _window_index(x.shape[-1], width, rows)]
    mean = win.sum(axis=-1) / width
    dev = win - mean[..., None]
    std = np.sqrt((dev * dev).sum(axis=-1) / (width - 1))
    flat = (win == win[..., -1:]).all(axis=-1)
    if flat.any():
        mean = np.where(flat, win[..., -1], mean)
        std = np.where(flat, 0.0, std)
    return mean, std


def _safe_div(num: np.ndarray, den: np.ndarray, fallback: float) -> np.ndarray:
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), fallback)


def tail_features(ohlcv: np.ndarray, rows: int) -> np.ndarray:
    """``core.features`` for the last ``rows`` bars of equal-length series.

    ``ohlcv``: float64 [5, B, n] (open, high, low, close, volume), n >= WARMUP_BARS + rows.
    Returns float64 [B, rows, len(FEATURE_COLUMNS)] in FEATURE_COLUMNS order.
    """
    o, h, lo, c, v = ohlcv
    n = c.shape[1]
    if n < F.WARMUP_BARS + rows:
        raise ValueError(f"{n} bars give no {rows} feature rows after {F.WARMUP_BARS} warm-up")
    tail = slice(n - rows, n)
    log_c = np.log(c)
    prev_c = c[:, :-1]
    change = np.zeros_like(c)
    change[:, 1:] = c[:, 1:] - prev_c
    true_range = h - lo
    true_range[:, 1:] = np.maximum(
        true_range[:, 1:],
        np.maximum(np.abs(h[:, 1:] - prev_c), np.abs(lo[:, 1:] - prev_c)),
    )
    ret1 = np.empty_like(log_c)  # ret1[:, t]: the log return into bar t
    ret1[:, 0] = np.nan
    ret1[:, 1:] = log_c[:, 1:] - log_c[:, :-1]
    log_v = np.log1p(v)
    batch = c.shape[0]
    # One rolling pass per window width over every series that uses it.
    if not F.BOLLINGER_WINDOW == F.VOLUME_WINDOW == F.VOL_WINDOWS[0]:  # pragma: no cover
        raise NotImplementedError("20-bar windows differ: give each width its own pass")
    mean20, std20 = _mean_std(np.stack([c, log_v, ret1]), F.BOLLINGER_WINDOW, rows)
    bb_mid, bb_std, vol_mean, vol_std = mean20[0], std20[0], mean20[1], std20[1]
    _, vol60 = _mean_std(ret1, F.VOL_WINDOWS[1], rows)
    trend_mean, _ = _mean_std(c, F.TREND_WINDOW, rows)

    out: dict[str, np.ndarray] = {}
    ct, ht, lt, lct = c[:, tail], h[:, tail], lo[:, tail], log_c[:, tail]
    for horizon in F.RETURN_HORIZONS:
        out[f"ret_{horizon}"] = lct - log_c[:, n - rows - horizon : n - horizon]
    out[f"vol_{F.VOL_WINDOWS[0]}"] = std20[2]
    out[f"vol_{F.VOL_WINDOWS[1]}"] = vol60

    wilder = 1.0 / F.RSI_PERIOD
    if F.ATR_PERIOD != F.RSI_PERIOD:  # pragma: no cover - constants agree today
        raise NotImplementedError("RSI and ATR periods differ: smooth them separately")
    smoothed = _ewm(
        np.concatenate([np.maximum(change, 0.0), np.maximum(-change, 0.0), true_range]), wilder
    )[:, tail]
    gain, loss, atr = smoothed[:batch], smoothed[batch : 2 * batch], smoothed[2 * batch :]
    out["rsi_14"] = _safe_div(100.0 * gain, gain + loss, 50.0)

    fast = _ewm(c, 2.0 / (F.MACD_FAST + 1.0))
    slow = _ewm(c, 2.0 / (F.MACD_SLOW + 1.0))
    macd = (fast - slow) / c
    signal = _ewm(macd, 2.0 / (F.MACD_SIGNAL + 1.0))[:, tail]
    out["macd"] = macd[:, tail]
    out["macd_signal"] = signal
    out["macd_hist"] = out["macd"] - signal

    bb_band = F.BOLLINGER_K * bb_std
    out["bb_pctb"] = _safe_div(ct - (bb_mid - bb_band), 2.0 * bb_band, 0.5)
    out["atr_14"] = atr / ct
    out["volume_z"] = _safe_div(log_v[:, tail] - vol_mean, vol_std, 0.0)
    out["hl_range"] = np.log(ht / lt)
    out["close_location"] = _safe_div(ct - lt, ht - lt, 0.5)
    out["overnight_gap"] = np.log(o[:, tail] / c[:, n - rows - 1 : n - 1])
    out[f"trend_{F.TREND_WINDOW}"] = np.log(ct / trend_mean)
    return np.stack([out[name] for name in F.FEATURE_COLUMNS], axis=2)


def feature_mismatch(bars: pl.DataFrame, rows: int = 32) -> float:
    """Largest |numpy - core.features| over the last ``rows`` bars of every symbol in ``bars``.

    Scaled per feature by (1 + |value|), so it reads as a relative error for large
    values and an absolute one near zero.
    """
    reference = F.compute_features(bars)
    worst = 0.0
    for _, group in bars.group_by(SYMBOL, maintain_order=True):
        symbol = group[SYMBOL][0]
        take = min(rows, group.height - F.WARMUP_BARS)
        ohlcv = group.select(OHLCV).to_numpy().T[:, None, :]
        mine = tail_features(np.ascontiguousarray(ohlcv), take)[0]
        theirs = (
            reference.filter(pl.col(SYMBOL) == symbol).tail(take).select(F.FEATURE_COLUMNS)
        ).to_numpy()
        err = np.abs(mine - theirs) / (1.0 + np.abs(theirs))
        worst = max(worst, float(np.nanmax(err)) if err.size else 0.0)
        if np.isnan(mine).any() != np.isnan(theirs).any():
            return math.inf
    return worst


def self_check_bars(seed: int = 5) -> pl.DataFrame:
    """Bars that exercise every branch of the features: trending, flat and zero-volume."""
    from tradeops_assets.core.synthetic import SyntheticSpec, generate

    bars = generate(SyntheticSpec(symbols=2, bars=F.WARMUP_BARS + 96, seed=seed))
    n = F.WARMUP_BARS + 48
    start = datetime(2020, 1, 1, tzinfo=UTC)
    stamps = pl.datetime_range(start, start.replace(year=2021), "1d", eager=True).head(n)
    step = np.r_[np.full(n // 2, 100.0), np.full(n - n // 2, 100.1)]
    flat = pl.DataFrame(
        {
            TIMESTAMP: stamps,
            SYMBOL: ["~FLAT"] * n,
            "open": step,
            "high": step,
            "low": step,
            "close": step,
            "volume": np.zeros(n),
        }
    )
    return pl.concat([bars, flat.cast(BAR_DTYPES)]).sort(SYMBOL, TIMESTAMP)


# --------------------------------------------------------------------------- requests


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
        raw[indices] = tail_features(stacked, window)
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
