"""A trader's request, validated and bounded before any feature is computed.

Bars come in one of two layouts, with the same rules and the same decisions:

- rows: ``"bars": [{"timestamp": ..., "open": ..., "high": ..., "low": ..., "close": ...,
  "volume": ...}, ...]``, oldest first;
- columns: ``"bars": {"timestamp": [...], "open": [...], "high": [...], "low": [...],
  "close": [...], "volume": [...]}``, six lists of equal length, oldest first; about a
  third smaller and several times cheaper to parse and check.

Every refusal is a ``RequestError`` naming the JSON field (``bars[3].close`` in rows,
``bars.close[3]`` in columns), so the endpoint answers a 4xx a trader can act on and
never a prediction built from bad input.

``parse_request`` checks one request and names what is wrong. ``parse_many`` checks a
whole batch at once, in numpy over all its bars; it either returns exactly what
``parse_request`` would for each request or returns None, and the caller then asks
``parse_request`` which request is wrong and why.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain, repeat
from operator import getitem, itemgetter
from typing import Any

import numpy as np
import polars as pl

from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.features import OHLCV, WARMUP_BARS
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

_NUMBER_TYPES = frozenset({int, float})
_BAR_GETTER = itemgetter(TIMESTAMP, *OHLCV)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_SECONDS_LIMIT = 1e11  # year 5138: a larger epoch is milliseconds sent as seconds
REQUEST_FIELDS = ("symbol", "bars", "position")
BAR_FIELDS = frozenset({TIMESTAMP, *OHLCV})
COLUMNS = (TIMESTAMP, *OHLCV)
"""The keys of the column layout's ``bars`` object."""
SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}")

Field = Callable[[int, str | None], str]
"""Names bar ``i``'s ``key`` (or the whole bar, for None) in the request's layout."""


def _row_field(i: int, key: str | None) -> str:
    return f"bars[{i}]" if key is None else f"bars[{i}].{key}"


def _column_field(i: int, key: str | None) -> str:
    return f"bars.{key}[{i}]"


@dataclass(frozen=True)
class Limits:
    """Payload bounds: a request beyond them is refused before any parsing work."""

    max_bars: int = 4096
    max_batch: int = 1000
    max_batch_bars: int = 65_536


def request_for(
    bars: pl.DataFrame, position: float = 0.0, columnar: bool = False
) -> dict[str, Any]:
    """The JSON body a trader sends for one symbol's ``bars`` (oldest first), in rows or
    (``columnar``) in columns; both carry the same values and get the same decision."""
    if columnar:
        return {
            "symbol": bars[SYMBOL][0],
            "position": position,
            "bars": {
                TIMESTAMP: [stamp.isoformat() for stamp in bars[TIMESTAMP]],
                **{k: bars[k].to_list() for k in OHLCV},
            },
        }
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


@dataclass(frozen=True)
class ParsedBatch:
    """Checked requests with their bars one after another, as the features take them: a
    batch read whole (Arrow) never becomes one object per request."""

    symbols: list[str]
    positions: np.ndarray  # float64 [batch]
    ohlcv: np.ndarray  # float64 [5, bars]: every request's bars, in request order
    ends: np.ndarray  # int64 [batch]: where each request's bars end in ``ohlcv``
    last_timestamps_us: np.ndarray  # int64 [batch]

    @classmethod
    def of(cls, parsed: "Sequence[ParsedRequest]") -> "ParsedBatch":
        batch = len(parsed)
        return cls(
            symbols=[r.symbol for r in parsed],
            positions=np.fromiter((r.position for r in parsed), np.float64, batch),
            ohlcv=np.concatenate([r.ohlcv for r in parsed], axis=1),
            ends=np.cumsum([r.ohlcv.shape[1] for r in parsed]),
            last_timestamps_us=np.fromiter((r.last_timestamp_us for r in parsed), np.int64, batch),
        )

    def __len__(self) -> int:
        return len(self.symbols)


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


def _locate_column_problem(columns: list[list]) -> RequestError:
    """Slow, exact: the first value of the OHLCV columns that is not a float-sized number."""
    for key, values in zip(OHLCV, columns, strict=True):
        for i, value in enumerate(values):
            try:
                _number(value, _column_field(i, key))
            except RequestError as exc:
                return exc
    return RequestError("bars", "malformed")


def _floats(groups: list, count: int) -> np.ndarray | None:
    """The ``count`` numbers of ``groups`` (lists or tuples of them) as float64, or None if
    any is not a JSON number a float can hold (``_locate_*`` then names it).

    One pass of ``sum`` rejects strings, null and containers (and integers past float
    range) at C speed, a third of what checking each value's type costs; of the other
    JSON values only true and false pass it, as 1.0 and 0.0, so those are looked at.
    """
    try:
        sum(chain.from_iterable(groups), 0.0)
        values = np.fromiter(chain.from_iterable(groups), np.float64, count)
    except (TypeError, ValueError, OverflowError):
        return None
    maybe_bool = (values == 0.0) | (values == 1.0)
    if maybe_bool.any():
        flat = list(chain.from_iterable(groups))
        if bool in {type(flat[i]) for i in np.flatnonzero(maybe_bool).tolist()}:
            return None
    return values


# ISO 8601 stamps as trading systems write them, all of one shape: the fast path reads
# their digits in numpy instead of handing each string to a parser (9,600 stamps of a
# batch in ~0.3 ms instead of ~3 ms). Anything else, or any digit out of range, goes
# down the exact path, which accepts or names it; so the fast path never decides.
_ISO_SEPARATOR = "|"  # joins the stamps; no stamp of the fast shape can contain it
_ISO_FIRST_YEAR, _ISO_YEARS = 1900, 300  # the fast path's calendar: 1900-2199
_ISO_DATE_TIME = 10  # where T (or a space) separates the date from the time
_ISO_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])  # YYYYMMDDHHMMSS
# The digits, weighted, give: year * 20 + month (a calendar row), day, hour, second of day
_ISO_WEIGHTS = np.array(
    [
        [20_000, 2_000, 200, 20, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 10, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 36_000, 3_600, 600, 60, 10, 1],
    ],
    dtype=np.float64,
).T


def _iso_calendar() -> tuple[np.ndarray, np.ndarray]:
    """Per year * 20 + month (months 0 and 13-19 are no month): days from 1970-01-01 to its
    first day, and its length in days (0 where there is no such month)."""
    months = np.arange(_ISO_FIRST_YEAR * 12, (_ISO_FIRST_YEAR + _ISO_YEARS) * 12 + 1) - 1970 * 12
    firsts = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    first = np.zeros((_ISO_YEARS, 20), np.int64)
    length = np.zeros((_ISO_YEARS, 20), np.int64)
    first[:, 1:13] = firsts[:-1].reshape(_ISO_YEARS, 12)
    length[:, 1:13] = np.diff(firsts).reshape(_ISO_YEARS, 12)
    return first.reshape(-1), length.reshape(-1)


_ISO_MONTH_FIRST_DAY, _ISO_MONTH_DAYS = _iso_calendar()
_ISO_UTC_SUFFIXES = ("Z", "+00:00", "")
_ISO_FAST_FROM = 256  # stamps; below it numpy's own parser costs less than the set-up


@lru_cache(maxsize=32)
def _iso_shape(width: int, suffix: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """'YYYY-MM-DDTHH:MM:SS[.f]<suffix>|' as bytes ``low`` and ``span``: a stamp of this
    shape has every byte b with 0 <= b - low <= span (the largest digit there, 0 for a
    fixed character), and the digits after the decimal point (0-6)."""
    fraction = width - len(suffix) - 20
    if fraction not in range(1, 7):
        if width != 19 + len(suffix):
            return None
        fraction = 0
    text = "0000-00-00 00:00:00" + ("." + "0" * fraction if fraction else "") + suffix
    low = np.frombuffer((text + _ISO_SEPARATOR).encode(), np.uint8)
    span = np.where(low == ord("0"), 9, 0).astype(np.uint8)
    span[[5, 8, 11, 14, 17]] = 1, 3, 2, 5, 5  # the tens of month, day, hour, minute, second
    span[_ISO_DATE_TIME] = ord("T") - ord(" ")  # any of " " .. "T", then only the two
    return low, span, fraction


def _iso_utc_us(stamps: Sequence[str]) -> np.ndarray | None:
    """Epoch microseconds of UTC (``Z``, ``+00:00`` or naive) ISO stamps of one shape in
    1900-2199, or None when any stamp is of another shape or no date (the exact path then
    decides: this one only ever agrees with it, faster)."""
    first = stamps[0]
    shape = _iso_shape(len(first), next(s for s in _ISO_UTC_SUFFIXES if first.endswith(s)))
    if shape is None:
        return None
    low, span, fraction = shape
    try:
        text = (_ISO_SEPARATOR.join(stamps) + _ISO_SEPARATOR).encode("ascii")
    except (TypeError, UnicodeEncodeError):  # a stamp that is no string, or not ASCII
        return None
    if len(text) != len(low) * len(stamps):
        return None
    # With every separator of the joined text in the last column, every stamp has the shape.
    offsets = np.frombuffer(text, np.uint8).reshape(len(stamps), len(low)) - low
    between = offsets[:, _ISO_DATE_TIME]
    if not ((offsets <= span).all() and ((between == 0) | (between == span[_ISO_DATE_TIME])).all()):
        return None
    month, day, hour, second = (offsets[:, _ISO_DIGITS] @ _ISO_WEIGHTS).astype(np.int64).T
    month -= _ISO_FIRST_YEAR * 20
    if not ((month >= 0).all() and (month < _ISO_YEARS * 20).all() and (hour < 24).all()):
        return None
    if not ((day >= 1) & (day <= _ISO_MONTH_DAYS[month])).all():
        return None
    us = (_ISO_MONTH_FIRST_DAY[month] + day - 1) * 86_400 + second
    us *= 1_000_000
    if fraction:
        us += offsets[:, 20 : 20 + fraction].astype(np.int64) @ 10 ** np.arange(5, 5 - fraction, -1)
    return us


def _timestamps_us(stamps: Sequence, where: str = "bars", field: Field | None = None) -> np.ndarray:
    """Epoch seconds or ISO 8601 (naive = UTC) to int64 microseconds."""
    name = field or (lambda i, key: f"{where}[{i}].{key}")
    if len(stamps) >= _ISO_FAST_FROM and type(stamps[0]) is str:
        fast = _iso_utc_us(stamps)
        if fast is not None:
            return fast
    kinds = set(map(type, stamps))
    if kinds <= _NUMBER_TYPES:
        try:
            seconds = np.asarray(stamps, dtype=np.float64)
        except OverflowError:  # an integer past float range
            i = next(i for i, stamp in enumerate(stamps) if abs(stamp) > 2**1023)
            raise RequestError(
                name(i, TIMESTAMP),
                f"epoch timestamps are seconds; a {stamps[i].bit_length()}-bit integer is not "
                "a plausible one",
            ) from None
        bad = ~np.isfinite(seconds) | (np.abs(seconds) >= _EPOCH_SECONDS_LIMIT)
        if bad.any():
            i = int(np.argmax(bad))
            raise RequestError(
                name(i, TIMESTAMP),
                f"epoch timestamps are seconds; {stamps[i]!r} is not a plausible one",
            )
        return np.round(seconds * 1e6).astype(np.int64)
    if kinds == {str}:
        firsts = "".join(map(getitem, stamps, repeat(slice(0, 1))))
        if len(firsts) != len(stamps) or not firsts.isdigit():  # numpy reads "now" and "today"
            i = next(i for i, text in enumerate(stamps) if not text[:1].isdigit())
            raise RequestError(
                name(i, TIMESTAMP), f"{stamps[i][:40]!r} is not an ISO 8601 timestamp"
            )
        if all(map(str.endswith, stamps, repeat("Z"))):
            naive: list[str] | None = list(map(getitem, stamps, repeat(slice(None, -1))))
        elif all(map(str.endswith, stamps, repeat("+00:00"))):
            naive = list(map(getitem, stamps, repeat(slice(None, -6))))
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
                    name(i, TIMESTAMP), f"{text!r} is not an ISO 8601 timestamp"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            out[i] = (moment - _EPOCH) // _MICROSECOND
        return out
    first = _kind(stamps[0])  # neither all numbers nor all strings: name the first misfit
    i = next(i for i, stamp in enumerate(stamps) if first is None or _kind(stamp) != first)
    raise RequestError(
        name(i, TIMESTAMP),
        "must be an ISO 8601 string or epoch seconds, the same kind for every bar; "
        f"got {type(stamps[i]).__name__}",
    )


def _kind(stamp: Any) -> str | None:
    return "number" if type(stamp) in _NUMBER_TYPES else "string" if type(stamp) is str else None


def _unknown(known) -> str:
    return f"is not a field here; expected only {', '.join(sorted(known))}"


_least, _most = np.minimum.reduce, np.maximum.reduce


def _check_values(ohlcv: np.ndarray, field: Field) -> None:
    """Finite, prices > 0, volume >= 0 and low <= open, close <= high, over [5, n] at once."""
    # A few passes with no copy of the bars (a NaN fails each comparison); low > 0 with
    # low <= open, close <= high has every price > 0. Only a refusal looks closer.
    o, h, lo, c, v = ohlcv
    if (
        _most(ohlcv, axis=None) < math.inf
        and _least(lo) > 0
        and _least(v) >= 0
        and (lo <= np.minimum(o, c)).all()
        and (np.maximum(o, c) <= h).all()
    ):
        return
    finite = np.isfinite(ohlcv)
    if not finite.all():
        row, i = np.unravel_index(np.argmin(finite), finite.shape)
        raise RequestError(field(i, OHLCV[row]), f"must be finite, got {ohlcv[row, i]}")
    prices = ohlcv[:4]
    if not (prices > 0).all():
        row, i = np.unravel_index(np.argmin(prices > 0), prices.shape)
        raise RequestError(field(i, OHLCV[row]), f"must be > 0, got {prices[row, i]}")
    if not (ohlcv[4] >= 0).all():
        i = int(np.argmin(ohlcv[4] >= 0))
        raise RequestError(field(i, "volume"), f"must be >= 0, got {ohlcv[4, i]}")
    o, h, lo, c = prices
    body_low = np.minimum(o, c)
    consistent = (lo <= body_low) & (np.maximum(o, c) <= h)
    if not consistent.all():
        i = int(np.argmin(consistent))
        # rows name the bar; columns name the column that breaks the order
        key = None if field is _row_field else "low" if lo[i] > body_low[i] else "high"
        raise RequestError(
            field(i, key),
            f"needs low <= open, close <= high; got open={o[i]} high={h[i]} "
            f"low={lo[i]} close={c[i]}",
        )


def _check_order(stamps_us: np.ndarray, field: Field, ends: np.ndarray | None = None) -> None:
    """``ends``: where each request of a batch ends, for stamps of several requests."""
    steps = stamps_us[1:] - stamps_us[:-1]
    if ends is not None:
        steps[ends[:-1] - 1] = 1  # from one request's last bar to the next one's first
    if not (steps > 0).all():
        i = int(np.argmin(steps > 0)) + 1
        how = "duplicates" if steps[i - 1] == 0 else "is earlier than"
        raise RequestError(
            field(i, TIMESTAMP),
            f"{how} {field(i - 1, TIMESTAMP)}: bars must be oldest first, one per timestamp",
        )


def _envelope(raw: Any, bundle: PolicyBundle) -> tuple[str, float, Any]:
    if not isinstance(raw, dict):
        raise RequestError("", f"a request must be an object, got {type(raw).__name__}")
    for key in REQUEST_FIELDS:
        if key not in raw:
            raise RequestError(key, "is missing")
    if len(raw) != len(REQUEST_FIELDS):
        extra = next(str(key) for key in raw if key not in REQUEST_FIELDS)
        raise RequestError(extra[:64], _unknown(REQUEST_FIELDS))
    symbol = raw["symbol"]
    _check_symbol(symbol, bundle)
    position = _number(raw["position"], "position")
    _check_position(position)
    return symbol, position, raw["bars"]


def _check_symbol(symbol: Any, bundle: PolicyBundle) -> None:
    if type(symbol) is not str or not SYMBOL_PATTERN.fullmatch(symbol):
        raise RequestError(
            "symbol",
            "must be 1-32 characters: letters, digits and . _ : / ^ = -, starting with a "
            "letter or digit",
        )
    if bundle.symbols and symbol not in bundle.symbols:
        raise RequestError("symbol", f"{symbol!r} is not one this policy was trained for")


def _check_position(position: float) -> None:
    if not -1.0 <= position <= 1.0:
        raise RequestError("position", f"must be within [-1, 1], got {position}")


def _check_length(n: int, bundle: PolicyBundle, limits: Limits) -> None:
    if n < bundle.min_bars:
        raise RequestError(
            "bars",
            f"needs at least {bundle.min_bars} bars ({WARMUP_BARS} warm-up + "
            f"window {bundle.window}), got {n}",
        )
    if n > limits.max_bars:
        raise RequestError("bars", f"at most {limits.max_bars} bars per request, got {n}")


def _rows(bars: list, bundle: PolicyBundle, limits: Limits) -> tuple[np.ndarray, list]:
    _check_length(len(bars), bundle, limits)
    try:  # one pass over the bars (their dicts are the costly part of this layout)
        stamps, *columns = zip(*map(_BAR_GETTER, bars), strict=True)
    except (KeyError, TypeError):
        raise _locate_bar_problem(bars) from None
    if set(map(len, bars)) != {len(BAR_FIELDS)}:
        raise _locate_bar_problem(bars)
    values = _floats(columns, len(OHLCV) * len(bars))
    if values is None:
        raise _locate_bar_problem(bars)
    return values.reshape(len(OHLCV), len(bars)), stamps


def _columns(bars: dict, bundle: PolicyBundle, limits: Limits) -> tuple[np.ndarray, list]:
    missing = [key for key in COLUMNS if key not in bars]
    if len(missing) == len(COLUMNS):
        raise RequestError("bars", f"must be a list of bars, got {type(bars).__name__}")
    if missing:
        raise RequestError(
            "bars",
            f"as columns needs all of {', '.join(COLUMNS)}; missing {', '.join(missing)}",
        )
    if len(bars) != len(COLUMNS):
        extra = next(str(key) for key in bars if key not in BAR_FIELDS)
        raise RequestError(f"bars.{extra[:64]}", _unknown(BAR_FIELDS))
    columns = [bars[key] for key in COLUMNS]
    for key, values in zip(COLUMNS, columns, strict=True):
        if type(values) is not list:
            raise RequestError(f"bars.{key}", f"must be a list, got {type(values).__name__}")
        if len(values) > limits.max_bars:
            _check_length(len(values), bundle, limits)
    n = len(columns[0])
    for key, values in zip(COLUMNS[1:], columns[1:], strict=True):
        if len(values) != n:
            raise RequestError(f"bars.{key}", f"has {len(values)} values; bars.{TIMESTAMP} has {n}")
    _check_length(n, bundle, limits)
    numbers = columns[1:]
    values = _floats(numbers, len(OHLCV) * n)
    if values is None:
        raise _locate_column_problem(numbers)
    return values.reshape(len(OHLCV), n), columns[0]


def parse_request(raw: Any, bundle: PolicyBundle, limits: Limits | None = None) -> ParsedRequest:
    """Validates one request; the error's ``field`` is relative to the request object."""
    limits = limits or Limits()
    symbol, position, bars = _envelope(raw, bundle)
    if type(bars) is list:
        ohlcv, stamps = _rows(bars, bundle, limits)
        field: Field = _row_field
    elif type(bars) is dict:
        ohlcv, stamps = _columns(bars, bundle, limits)
        field = _column_field
    else:
        raise RequestError("bars", f"must be a list of bars, got {type(bars).__name__}")
    _check_values(ohlcv, field)
    stamps_us = _timestamps_us(stamps, field=field)
    _check_order(stamps_us, field)
    return ParsedRequest(symbol, position, ohlcv, int(stamps_us[-1]))


def _quiet(check: Callable[..., Any], *args: Any) -> bool:
    """Whether ``check`` passes; its error's wording is left to ``parse_request``."""
    try:
        check(*args)
    except RequestError:
        return False
    return True


def _anonymous(i: int, key: str | None) -> str:
    return ""


def _timestamps_of_many(stamps: list[Sequence]) -> np.ndarray | None:
    try:
        return _timestamps_us(list(chain.from_iterable(stamps)), field=_anonymous)
    except RequestError:
        pass
    try:  # requests of different kinds: each its own
        return np.concatenate([_timestamps_us(s, field=_anonymous) for s in stamps])
    except RequestError:
        return None


def parse_many(
    raws: list, bundle: PolicyBundle, limits: Limits | None = None
) -> list[ParsedRequest] | None:
    """Every request of ``raws`` parsed as ``parse_request`` would, checked in numpy over all
    their bars at once; or None if any request (or the batch's bar count) is refused,
    for ``parse_request`` to say which and why."""
    limits = limits or Limits()
    symbols, positions, stamps, lengths, numbers = [], [], [], [], []
    total, fewest = 0, bundle.min_bars
    for raw in raws:
        if type(raw) is not dict or len(raw) != len(REQUEST_FIELDS):
            return None
        try:
            symbol, position, bars = raw["symbol"], float(raw["position"]), raw["bars"]
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if type(raw["position"]) not in _NUMBER_TYPES or not -1.0 <= position <= 1.0:
            return None
        if type(symbol) is not str or not SYMBOL_PATTERN.fullmatch(symbol):
            return None
        if bundle.symbols and symbol not in bundle.symbols:
            return None
        if type(bars) is dict:
            if len(bars) != len(COLUMNS):
                return None
            try:
                columns = [bars[key] for key in COLUMNS]
            except KeyError:
                return None
            if set(map(type, columns)) != {list} or len(set(map(len, columns))) != 1:
                return None
            numbers.append(columns[1:])
            stamps.append(columns[0])
        elif type(bars) is list:
            if not fewest <= len(bars) <= limits.max_bars:
                return None
            try:
                first, *columns = zip(*map(_BAR_GETTER, bars), strict=True)
            except (KeyError, TypeError):
                return None
            if set(map(len, bars)) != {len(BAR_FIELDS)}:
                return None
            numbers.append(columns)
            stamps.append(first)
        else:
            return None
        n = len(stamps[-1])
        if not fewest <= n <= limits.max_bars:
            return None
        total += n
        if total > limits.max_batch_bars:
            return None
        symbols.append(symbol)
        positions.append(position)
        lengths.append(n)
    if not symbols:
        return None
    # the open column of every request, then the high columns, ...: [5, all bars]
    ordered = [columns[key] for key in range(len(OHLCV)) for columns in numbers]
    flat = _floats(ordered, len(OHLCV) * total)
    if flat is None:
        return None
    ohlcv = flat.reshape(len(OHLCV), total)
    if not _quiet(_check_values, ohlcv, _anonymous):
        return None
    stamps_us = _timestamps_of_many(stamps)
    if stamps_us is None:
        return None
    ends = np.cumsum(lengths)
    if not _quiet(_check_order, stamps_us, _anonymous, ends):
        return None
    starts = ends - lengths
    return [
        ParsedRequest(symbol, position, ohlcv[:, start:end], int(stamps_us[end - 1]))
        for symbol, position, start, end in zip(
            symbols, positions, starts.tolist(), ends.tolist(), strict=True
        )
    ]
