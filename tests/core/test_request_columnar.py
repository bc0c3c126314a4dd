"""The column layout of a request's bars, the batch fast path (``parse_many``) and the serving
features of long requests: the same decisions as the row layout and the exact path, and
every refusal named in the column layout's own terms."""

import copy
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import features, request, synthetic
from tradeops_assets.core.bundle import required_bars
from tradeops_assets.core.decision import decide, decide_one
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.request import Limits, parse_many, parse_request, request_for

from .conftest import SERVING_WINDOW as WINDOW

ORDER = "bars must be oldest first, one per timestamp"
CONSISTENT = "needs low <= open, close <= high"


def _bars(synthetic_bars, symbol: str = "SYN0000", n: int = 90) -> pl.DataFrame:
    return synthetic_bars.filter(pl.col("symbol") == symbol).head(n)


def _columns(synthetic_bars, n: int = 90, position: float = 0.25) -> dict:
    return request_for(_bars(synthetic_bars, n=n), position, columnar=True)


def test_request_for_writes_the_column_layout(synthetic_bars):
    bars = _bars(synthetic_bars, "SYN0001", 2)
    assert request_for(bars, 0.5, columnar=True) == {
        "symbol": "SYN0001",
        "position": 0.5,
        "bars": {
            "timestamp": [stamp.isoformat() for stamp in bars["timestamp"]],
            **{key: bars[key].to_list() for key in features.OHLCV},
        },
    }


@pytest.mark.parametrize(("length", "position"), [(80, 0.0), (81, -0.7), (150, 1.0), (398, 0.3)])
def test_columns_and_rows_give_identical_decisions(bundle, synthetic_bars, length, position):
    symbols = synthetic_bars["symbol"].unique().sort().to_list()
    parts = [_bars(synthetic_bars, symbol, length) for symbol in symbols]
    rows = decide(bundle, [request_for(p, position) for p in parts])
    columns = decide(bundle, [request_for(p, position, columnar=True) for p in parts])
    mixed = decide(
        bundle, [request_for(p, position, columnar=i % 2 == 0) for i, p in enumerate(parts)]
    )
    for other in (columns, mixed):
        np.testing.assert_array_equal(other.targets, rows.targets)
        np.testing.assert_array_equal(other.features, rows.features)
        np.testing.assert_array_equal(other.bar_timestamps_us, rows.bar_timestamps_us)
        assert other.symbols == rows.symbols == symbols
    one = decide_one(bundle, request_for(parts[0], position, columnar=True))
    assert one.targets[0] == decide_one(bundle, request_for(parts[0], position)).targets[0]


def test_columns_take_epoch_seconds_and_utc_offsets(bundle, synthetic_bars):
    base = _columns(synthetic_bars)
    expected = decide_one(bundle, base)
    moments = [datetime.fromisoformat(s) for s in base["bars"]["timestamp"]]
    zone = timezone(timedelta(hours=-5, minutes=-30))
    for stamps in (
        [m.timestamp() for m in moments],
        [int(m.timestamp()) for m in moments],
        [m.astimezone(zone).isoformat() for m in moments],
        [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments],
        [m.strftime("%Y-%m-%d %H:%M:%S") for m in moments],
    ):
        other = copy.deepcopy(base)
        other["bars"]["timestamp"] = stamps
        decided = decide_one(bundle, other)
        assert decided.bar_timestamps_us[0] == expected.bar_timestamps_us[0]
        assert decided.targets[0] == expected.targets[0]


def _set(key: str, i: int, value):
    def change(r: dict) -> dict:
        r["bars"][key][i] = value(r["bars"]) if callable(value) else value
        return r

    return change


def _drop(key: str):
    def change(r: dict) -> dict:
        del r["bars"][key]
        return r

    return change


def _with(key: str, value):
    def change(r: dict) -> dict:
        r["bars"][key] = value(r["bars"]) if callable(value) else value
        return r

    return change


COLUMN_REFUSALS = [
    (
        _drop("close"),
        "bars",
        "as columns needs all of timestamp, open, high, low, close, volume; missing close",
    ),
    (
        lambda r: r | {"bars": {"open": [1.0]}},
        "bars",
        "as columns needs all of timestamp, open, high, low, close, volume; missing timestamp, "
        "high, low, close, volume",
    ),
    (lambda r: r | {"bars": {"0": 1}}, "bars", "must be a list of bars, got dict"),
    (
        _with("vwap", lambda b: b["close"]),
        "bars.vwap",
        "is not a field here; expected only close, high, low, open, timestamp, volume",
    ),
    (_with("close", "all of them"), "bars.close", "must be a list, got str"),
    (_with("timestamp", None), "bars.timestamp", "must be a list, got NoneType"),
    (
        _with("close", lambda b: b["close"][:-1]),
        "bars.close",
        "has 89 values; bars.timestamp has 90",
    ),
    (
        lambda r: {**r, "bars": {k: v[:3] for k, v in r["bars"].items()}},
        "bars",
        f"needs at least {required_bars(WINDOW)} bars ({features.WARMUP_BARS} warm-up + "
        f"window {WINDOW}), got 3",
    ),
    (_set("close", 12, float("nan")), "bars.close[12]", "must be finite, got nan"),
    (_set("volume", 9, float("inf")), "bars.volume[9]", "must be finite, got inf"),
    (_set("volume", 8, "1000"), "bars.volume[8]", "must be a number, got str"),
    (_set("open", 3, True), "bars.open[3]", "must be a number, got bool"),
    (_set("volume", 4, False), "bars.volume[4]", "must be a number, got bool"),
    (_set("high", 2, None), "bars.high[2]", "must be a number, got NoneType"),
    (_set("high", 6, [1.0]), "bars.high[6]", "must be a number, got list"),
    (
        _set("low", 9, 10**400),
        "bars.low[9]",
        "must be a number a float can hold, got a 1329-bit integer",
    ),
    (_set("open", 2, 0.0), "bars.open[2]", "must be > 0, got 0.0"),
    (_set("close", 5, -1.0), "bars.close[5]", "must be > 0, got -1.0"),
    (_set("volume", 9, -3.0), "bars.volume[9]", "must be >= 0, got -3.0"),
    (_set("high", 7, lambda b: b["low"][7] * 0.99), "bars.high[7]", CONSISTENT),
    (_set("low", 5, lambda b: b["close"][5] * 1.01), "bars.low[5]", CONSISTENT),
    (
        _set("timestamp", 6, lambda b: b["timestamp"][5]),
        "bars.timestamp[6]",
        f"duplicates bars.timestamp[5]: {ORDER}",
    ),
    (
        _set("timestamp", 6, lambda b: b["timestamp"][4]),
        "bars.timestamp[6]",
        f"is earlier than bars.timestamp[5]: {ORDER}",
    ),
    (_set("timestamp", 4, "now"), "bars.timestamp[4]", "'now' is not an ISO 8601 timestamp"),
    (_set("timestamp", 0, "today"), "bars.timestamp[0]", "'today' is not an ISO 8601 timestamp"),
    (
        _set("timestamp", 4, "2015-02-30T00:00:00"),
        "bars.timestamp[4]",
        "'2015-02-30T00:00:00' is not an ISO 8601 timestamp",
    ),
    (
        _set("timestamp", 3, 1_420_000_000),
        "bars.timestamp[3]",
        "must be an ISO 8601 string or epoch seconds, the same kind for every bar; got int",
    ),
    (
        _with("timestamp", lambda b: [10**400 if i == 7 else 1.7e9 + i for i in range(90)]),
        "bars.timestamp[7]",
        "epoch timestamps are seconds; a 1329-bit integer is not a plausible one",
    ),
    (
        _with("timestamp", lambda b: [1.7e12 + i for i in range(len(b["timestamp"]))]),
        "bars.timestamp[0]",
        "epoch timestamps are seconds; 1700000000000.0 is not a plausible one",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "reason"), COLUMN_REFUSALS, ids=[c[1] for c in COLUMN_REFUSALS]
)
def test_every_column_refusal_names_its_field_and_reason(
    bundle, synthetic_bars, change, field, reason
):
    good = _columns(synthetic_bars)
    bad = change(copy.deepcopy(good))
    with pytest.raises(RequestError) as err:
        decide_one(bundle, bad)
    assert err.value.field == field
    assert err.value.reason.startswith(reason)
    with pytest.raises(RequestError) as err:
        decide(bundle, [good, bad], path="requests")
    assert err.value.field == f"requests[1].{field}"
    assert err.value.reason.startswith(reason)
    assert parse_many([good, bad], bundle) is None


def test_columns_are_bounded_before_their_values_are_read(bundle, synthetic_bars):
    request = _columns(synthetic_bars)
    request["bars"]["volume"] = ["not even a number"] * 91
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request, Limits(max_bars=90))
    assert (err.value.field, err.value.reason) == ("bars", "at most 90 bars per request, got 91")
    request = _columns(synthetic_bars)
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request, Limits(max_bars=89))
    assert (err.value.field, err.value.reason) == ("bars", "at most 89 bars per request, got 90")
    decide_one(bundle, request, Limits(max_bars=90))


def test_a_column_layout_refusal_names_the_first_bad_value_of_a_column_in_order(
    bundle, synthetic_bars
):
    request = _columns(synthetic_bars)
    request["bars"]["close"][20] = "x"
    request["bars"]["open"][30] = None
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert err.value.field == "bars.open[30]"  # open is checked before close


def _assert_same(fast: list, exact: list) -> None:
    assert len(fast) == len(exact)
    for a, b in zip(fast, exact, strict=True):
        assert (a.symbol, a.position, a.last_timestamp_us) == (
            b.symbol,
            b.position,
            b.last_timestamp_us,
        )
        assert a.ohlcv.dtype == np.float64
        np.testing.assert_array_equal(a.ohlcv, b.ohlcv)


def test_parse_many_is_parse_request_over_a_whole_batch(bundle, synthetic_bars):
    symbols = synthetic_bars["symbol"].unique().sort().to_list()
    parts = [_bars(synthetic_bars, s, 80 + 7 * i) for i, s in enumerate(symbols)]
    zone = timezone(timedelta(hours=2))
    epoch = request_for(parts[1], -1.0, columnar=True)
    epoch["bars"]["timestamp"] = [
        datetime.fromisoformat(s).timestamp() for s in epoch["bars"]["timestamp"]
    ]
    offset = request_for(parts[2], 1)
    for bar in offset["bars"]:
        bar["timestamp"] = datetime.fromisoformat(bar["timestamp"]).astimezone(zone).isoformat()
    integers = request_for(parts[0], 0, columnar=True)
    integers["bars"]["volume"] = [int(v) + 1 for v in integers["bars"]["volume"]]
    batches = [
        [request_for(p, 0.5) for p in parts],
        [request_for(p, 0.5, columnar=True) for p in parts],
        [request_for(parts[0], 0.1), epoch, offset, integers],
        # the same bars twice: one request's first bar may precede the last one's last
        [request_for(parts[0], 0.0, columnar=True)] * 3,
    ]
    for batch in batches:
        fast = parse_many(batch, bundle)
        assert fast is not None
        _assert_same(fast, [parse_request(r, bundle) for r in batch])
    assert fast[0].ohlcv.base is fast[2].ohlcv.base  # one array for the whole batch


def test_parse_many_leaves_every_refusal_to_the_exact_path(bundle, synthetic_bars):
    good = request_for(_bars(synthetic_bars), 0.0)
    assert parse_many([good], bundle) is not None
    refused = [
        "not a request",
        {**good, "leverage": 2},
        {k: v for k, v in good.items() if k != "symbol"} | {"Symbol": "SYN0000"},
        good | {"symbol": "NOPE"},
        good | {"symbol": "-X"},
        good | {"position": 1.5},
        good | {"position": "0.5"},
        good | {"position": True},
        good | {"position": float("nan")},
        good | {"position": 10**400},
        good | {"bars": "bars"},
        good | {"bars": good["bars"][:10]},
        good | {"bars": [*good["bars"][:5], [1, 2, 3], *good["bars"][6:]]},
        good | {"bars": [*good["bars"][:5], {**good["bars"][5], "vwap": 1.0}, *good["bars"][6:]]},
    ]
    no_close = copy.deepcopy(good)
    del no_close["bars"][7]["close"]
    bool_volume = copy.deepcopy(good)
    bool_volume["bars"][3]["volume"] = True
    refused += [no_close, bool_volume]
    for bad in refused:
        assert parse_many([good, bad], bundle) is None, bad if not isinstance(bad, dict) else ""
        with pytest.raises(RequestError):
            decide(bundle, [good, bad])
    assert parse_many([], bundle) is None
    assert parse_many([good, good], bundle, Limits(max_batch_bars=179)) is None
    assert parse_many([good, good], bundle, Limits(max_batch_bars=180)) is not None


def test_a_zero_volume_or_unit_price_is_a_number_not_a_bool(bundle, synthetic_bars):
    request = _columns(synthetic_bars)
    request["bars"]["volume"][3] = 0
    request["bars"]["volume"][4] = 1.0
    request["bars"]["low"][5] = 1.0
    request["bars"]["open"][5] = 1.0
    assert parse_many([request], bundle) is not None
    decide_one(bundle, request)


def _stamps(n: int, unit: str, suffix: str, separator: str = "T") -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(n)
    first = np.datetime64("1900-01-01T00:00:00", "us").astype(np.int64)
    last = np.datetime64("2199-12-31T23:59:59", "us").astype(np.int64)
    moments = np.sort(rng.integers(first, last, n)).astype("datetime64[us]")
    moments = moments.astype(f"datetime64[{unit}]")
    text = [str(s).replace("T", separator) + suffix for s in moments]
    return text, moments.astype("datetime64[us]").astype(np.int64)


@pytest.mark.parametrize("suffix", ["Z", "+00:00", ""])
@pytest.mark.parametrize(("unit", "separator"), [("s", "T"), ("ms", " "), ("us", "T")])
def test_the_iso_fast_path_reads_what_the_exact_path_reads(suffix, unit, separator):
    text, expected = _stamps(2000, unit, suffix, separator)
    fast = request._iso_utc_us(text)
    assert fast is not None
    np.testing.assert_array_equal(fast, expected)
    assert fast.dtype == np.int64
    exact = [
        (datetime.fromisoformat(s).replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
        // timedelta(microseconds=1)
        for s in text[:50]
    ]
    assert fast[:50].tolist() == exact
    np.testing.assert_array_equal(request._timestamps_us(text), expected)


@pytest.mark.parametrize(
    "stamp",
    [
        "2019-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2021-04-31T00:00:00Z",
        "2021-13-01T00:00:00Z",
        "2021-00-10T00:00:00Z",
        "2021-01-00T00:00:00Z",
        "2021-01-32T00:00:00Z",
        "2021-01-01T24:00:00Z",
        "2021-01-01T23:60:00Z",
        "2021-01-01T23:59:60Z",
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2021-01-01t00:00:00Z",
        "2021-01-01_00:00:00Z",
        "2021/01/01T00:00:00Z",
        "2021-01-01T00:00:00z",
        "\uff12021-01-01T00:00:00Z",
        "2021-01-01T00:00:0aZ",
        "2021-01-01T00:00:00|Z",
        "2021-01-01T00:00:00+01:00",
        "2021-01-01T00:00:00.1234567Z",
        "now",
        "",
    ],
)
def test_the_iso_fast_path_hands_anything_else_to_the_exact_path(stamp):
    good = "2021-06-01T00:00:00Z"
    assert request._iso_utc_us([stamp]) is None
    assert request._iso_utc_us([good, stamp] if len(stamp) == len(good) else [stamp, good]) is None
    assert request._iso_utc_us([good] * 300 + [stamp]) is None


def test_the_iso_fast_path_needs_every_stamp_of_one_length():
    good = "2021-06-01T00:00:00Z"
    # as many characters as three stamps, but not three stamps
    assert request._iso_utc_us([good, good + good, ""]) is None
    assert request._iso_utc_us([good, good + "|" + good[:-1], "Z"]) is None
    assert request._iso_utc_us([good, 1_622_505_600]) is None
    leap = request._iso_utc_us(["2000-02-29T00:00:00Z", "2024-02-29T23:59:59Z"])
    assert leap is not None
    assert leap.tolist() == [951_782_400_000_000, 1_709_251_199_000_000]


def test_a_long_request_counts_every_bar_as_polars_does():
    bars = synthetic.generate(synthetic.SyntheticSpec(symbols=2, bars=4200, seed=3))
    assert features.feature_mismatch(bars, rows=64) < 1e-9
    # movement, then 2000 exactly flat bars: RSI's gain and loss decay towards 0 but stay
    # positive over the whole history, which a shortened history would flatten to 50
    one = bars.filter(pl.col("symbol") == bars["symbol"][0]).head(4096)
    flat = pl.int_range(pl.len()) >= 2000
    level = one["close"][2000]
    one = one.with_columns(
        *(pl.when(flat).then(level).otherwise(pl.col(k)).alias(k) for k in ("open", "close")),
        pl.when(flat).then(level).otherwise(pl.max_horizontal("high", "close")).alias("high"),
        pl.when(flat).then(level).otherwise(pl.min_horizontal("low", "close")).alias("low"),
    )
    assert features.feature_mismatch(one, rows=64) < 1e-9
    rsi = features.tail_features(one.select(features.OHLCV).to_numpy().T, [one.height], 4)[0, :, 6]
    assert features.FEATURE_COLUMNS[6] == "rsi_14"
    assert (rsi != 50.0).all()
    # prices that span a factor of 1e7 within the request
    wild = bars.filter(pl.col("symbol") == bars["symbol"][1]).with_columns(
        *(
            (pl.col(k) * pl.when(pl.int_range(pl.len()) < 100).then(1e-7).otherwise(1.0)).alias(k)
            for k in ("open", "high", "low", "close")
        )
    )
    assert features.feature_mismatch(wild, rows=64) < 1e-9


def test_an_epoch_timestamp_past_float_range_is_refused_not_a_crash(bundle, synthetic_bars):
    request = request_for(_bars(synthetic_bars), 0.0)
    for i, bar in enumerate(request["bars"]):
        bar["timestamp"] = 1_700_000_000 + i
    request["bars"][3]["timestamp"] = -(10**400)
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert (err.value.field, err.value.reason) == (
        "bars[3].timestamp",
        "epoch timestamps are seconds; a 1329-bit integer is not a plausible one",
    )
    assert parse_many([request], bundle) is None
