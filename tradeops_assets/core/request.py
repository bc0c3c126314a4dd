"""A trader's request, validated and bounded before any feature is computed.

Every refusal is a ``RequestError`` naming the JSON field (``bars[3].close``),
so the endpoint answers a 4xx a trader can act on and never a prediction built
from bad input.
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl

from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.features import OHLCV, WARMUP_BARS
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

_NUMBER_TYPES = frozenset({int, float})
_OHLCV_GETTER = itemgetter(*OHLCV)
_TIMESTAMP_GETTER = itemgetter(TIMESTAMP)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_SECONDS_LIMIT = 1e11  # year 5138: a larger epoch is milliseconds sent as seconds
REQUEST_FIELDS = ("symbol", "bars", "position")
BAR_FIELDS = frozenset({TIMESTAMP, *OHLCV})
SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}")


@dataclass(frozen=True)
class Limits:
    """Payload bounds: a request beyond them is refused before any parsing work."""

    max_bars: int = 4096
    max_batch: int = 1000
    max_batch_bars: int = 65_536


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
    try:
        number = float(value)
    except OverflowError:
        bits = value.bit_length()  # formatting the number itself would overflow again
        raise RequestError(
            where, f"must be a number a float can hold, got a {bits}-bit integer"
        ) from None
    if not math.isfinite(number):
        raise RequestError(where, f"must be finite, got {number}")
    return number


def _locate_bar_problem(bars: list) -> RequestError:
    """Slow, exact: the first bar that is not an object with numeric OHLCV and a timestamp."""
    for i, bar in enumerate(bars):
        if not isinstance(bar, dict):
            return RequestError(f"bars[{i}]", f"must be an object, got {type(bar).__name__}")
        for key in (TIMESTAMP, *OHLCV):
            if key not in bar:
                return RequestError(f"bars[{i}].{key}", "is missing")
        for key in bar:
            if key not in BAR_FIELDS:
                return RequestError(f"bars[{i}].{str(key)[:64]}", _unknown(BAR_FIELDS))
        for key in OHLCV:
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
        if not all(text[:1].isdigit() for text in stamps):  # numpy reads "now" and "today"
            i = next(i for i, text in enumerate(stamps) if not text[:1].isdigit())
            raise RequestError(
                f"{where}[{i}].timestamp", f"{stamps[i][:40]!r} is not an ISO 8601 timestamp"
            )
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
    first = _kind(stamps[0])  # neither all numbers nor all strings: name the first misfit
    i = next(i for i, stamp in enumerate(stamps) if first is None or _kind(stamp) != first)
    raise RequestError(
        f"{where}[{i}].timestamp",
        "must be an ISO 8601 string or epoch seconds, the same kind for every bar; "
        f"got {type(stamps[i]).__name__}",
    )


def _kind(stamp: Any) -> str | None:
    return "number" if type(stamp) in _NUMBER_TYPES else "string" if type(stamp) is str else None


def _unknown(known) -> str:
    return f"is not a field here; expected only {', '.join(sorted(known))}"


def parse_request(raw: Any, bundle: PolicyBundle, limits: Limits | None = None) -> ParsedRequest:
    """Validates one request; the error's ``field`` is relative to the request object."""
    limits = limits or Limits()
    if not isinstance(raw, dict):
        raise RequestError("", f"a request must be an object, got {type(raw).__name__}")
    for key in REQUEST_FIELDS:
        if key not in raw:
            raise RequestError(key, "is missing")
    if len(raw) != len(REQUEST_FIELDS):
        extra = next(str(key) for key in raw if key not in REQUEST_FIELDS)
        raise RequestError(extra[:64], _unknown(REQUEST_FIELDS))
    symbol = raw["symbol"]
    if type(symbol) is not str or not SYMBOL_PATTERN.fullmatch(symbol):
        raise RequestError(
            "symbol",
            "must be 1-32 characters: letters, digits and . _ : / ^ = -, starting with a "
            "letter or digit",
        )
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
            f"needs at least {bundle.min_bars} bars ({WARMUP_BARS} warm-up + "
            f"window {bundle.window}), got {n}",
        )
    if n > limits.max_bars:
        raise RequestError("bars", f"at most {limits.max_bars} bars per request, got {n}")
    try:
        rows = list(map(_OHLCV_GETTER, bars))
        stamps = list(map(_TIMESTAMP_GETTER, bars))
    except (KeyError, TypeError):
        raise _locate_bar_problem(bars) from None
    if set(map(len, bars)) != {len(BAR_FIELDS)}:
        raise _locate_bar_problem(bars)
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
