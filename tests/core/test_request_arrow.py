"""Batches as Arrow streams: the same decisions as JSON, the same rules, refusals named as
JSON would name them, and nothing a hostile stream can do but be refused."""

import random

import numpy as np
import pyarrow as pa
import pytest

from tradeops_assets.core import request_arrow
from tradeops_assets.core.decision import decide, decide_arrow
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.request import Limits, request_for

from .conftest import SERVING_WINDOW

SYMBOLS = ("SYN0000", "SYN0001", "SYN0002")


@pytest.fixture(scope="module")
def requests(synthetic_bars) -> list[dict]:
    """Requests of different lengths and positions, one symbol repeated."""
    out = []
    for i, (symbol, n) in enumerate(zip(SYMBOLS * 2, (90, 120, 81, 100, 95, 200), strict=True)):
        bars = synthetic_bars.filter(synthetic_bars["symbol"] == symbol).slice(i * 7, n)
        out.append(request_for(bars, round(0.3 * i - 0.8, 2), columnar=i % 2 == 0))
    return out


def table_of(requests: list[dict]) -> pa.Table:
    return pa.ipc.open_stream(request_arrow.encode(requests)).read_all()


def stream(table: pa.Table, schema: pa.Schema | None = None, **options) -> bytes:
    sink = pa.BufferOutputStream()
    write = pa.ipc.IpcWriteOptions(**options)
    with pa.ipc.new_stream(sink, schema or table.schema, options=write) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def refusal(bundle, body: bytes, limits: Limits | None = None) -> RequestError:
    with pytest.raises(RequestError) as caught:
        decide_arrow(bundle, body, limits)
    return caught.value


def test_arrow_decides_as_json_on_both_layouts(bundle, requests):
    arrow = decide_arrow(bundle, request_arrow.encode(requests))
    json = decide(bundle, requests)
    np.testing.assert_array_equal(arrow.targets, json.targets)
    np.testing.assert_array_equal(arrow.features, json.features)
    np.testing.assert_array_equal(arrow.bar_timestamps_us, json.bar_timestamps_us)
    assert arrow.symbols == json.symbols
    np.testing.assert_array_equal(arrow.positions, json.positions)


def test_a_stream_of_several_record_batches_reads_as_one(bundle, requests):
    table = table_of(requests)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=2):
            writer.write_batch(batch)
    several = decide_arrow(bundle, sink.getvalue().to_pybytes())
    np.testing.assert_array_equal(several.targets, decide(bundle, requests).targets)


def _symbols(*names: str):
    return lambda t: with_column(t, "symbol", [*names, *SYMBOLS * 2][:6])


def _positions(*values):
    return lambda t: with_column(t, "position", [*values, *[0.0] * 6][:6])


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (_symbols("SYN0000", "AAPL\n"), "requests[1].symbol", "must be 1-32 characters"),
        (_symbols("SYN0000", "SYN0001", "ZZZZ"), "requests[2].symbol", "is not one this policy"),
        (_positions(0.0, 0.0, 0.0, 1.5), "requests[3].position", "must be within [-1, 1]"),
        (_positions(0.0, float("nan")), "requests[1].position", "must be within [-1, 1]"),
        (_positions(0.0, None), "requests[1].position", "is missing"),
    ],
)
def test_request_fields_are_refused_by_name(bundle, requests, change, field, reason):
    error = refusal(bundle, stream(change(table_of(requests))))
    assert error.field == field
    assert reason in error.reason


def _bars_changed(table: pa.Table, key: str, request: int, bar: int, value) -> pa.Table:
    lists = table[key].to_pylist()
    lists[request][bar] = value
    return with_column(table, key, lists)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("close", float("nan"), "must be finite"),
        ("close", float("inf"), "must be finite"),
        ("open", -1.0, "must be > 0"),
        ("volume", -5.0, "must be >= 0"),
        ("high", 1e-9, "needs low <= open, close <= high"),
        ("close", None, "is missing"),
    ],
)
def test_bar_values_are_refused_naming_request_and_bar(bundle, requests, key, value, reason):
    error = refusal(bundle, stream(_bars_changed(table_of(requests), key, 4, 17, value)))
    assert error.field == f"requests[4].bars.{key}[17]"
    assert reason in error.reason


def test_order_within_a_request_is_checked_but_not_across_requests(bundle, requests):
    table = table_of(requests)
    stamps = table["timestamp"].to_pylist()
    assert stamps[3][0] < stamps[2][-1]  # requests restart in time: that is fine
    stamps[5][30] = stamps[5][29]
    error = refusal(bundle, stream(with_column(table, "timestamp", stamps)))
    assert error.field == "requests[5].bars.timestamp[30]"
    assert error.reason.startswith("duplicates requests[5].bars.timestamp[29]")
    stamps[5][30] = stamps[5][28]
    error = refusal(bundle, stream(with_column(table, "timestamp", stamps)))
    assert error.reason.startswith("is earlier than requests[5].bars.timestamp[29]")


def test_implausible_times_are_refused(bundle, requests):
    table = table_of(requests)
    stamps = [[int(s.timestamp() * 1e6) for s in row] for row in table["timestamp"].to_pylist()]
    stamps[0][-1] = 2**62
    changed = table.set_column(
        2, table.schema.field(2), pa.array(stamps, pa.list_(request_arrow.STAMP_TYPE))
    )
    error = refusal(bundle, stream(changed))
    assert error.field == "requests[0].bars.timestamp[89]"
    assert "not a plausible time" in error.reason


def test_lengths_and_limits(bundle, requests):
    table = table_of(requests)
    closes = table["close"].to_pylist()
    closes[2] = closes[2][:-1]
    error = refusal(bundle, stream(with_column(table, "close", closes)))
    assert error.field == "requests[2].bars.close"
    assert error.reason == "has 80 values; bars.timestamp has 81"
    short = table_of([request_for_n(requests[0], 40), *requests[1:]])
    error = refusal(bundle, stream(short))
    assert error.field == "requests[0].bars"
    assert f"window {SERVING_WINDOW}" in error.reason
    body = request_arrow.encode(requests)
    assert "at most 5 requests" in refusal(bundle, body, Limits(max_batch=5)).reason
    error = refusal(bundle, body, Limits(max_batch_bars=300))
    assert error.reason == "at most 300 bars across a batch, got more by [3]"
    assert refusal(bundle, stream(table.slice(0, 0))).reason == "needs at least one request"


def request_for_n(raw: dict, n: int) -> dict:
    return {**raw, "bars": {key: values[:n] for key, values in raw["bars"].items()}}


def _field_set(i: int, name: str, kind: pa.DataType):
    return lambda s: s.set(i, pa.field(name, kind))


@pytest.mark.parametrize(
    ("schema_change", "field", "reason"),
    [
        (lambda s: s.remove(0).insert(1, s.field(0)), "requests", "must be symbol, position"),
        (lambda s: s.append(pa.field("note", pa.string())), "requests", "unknown: note"),
        (
            _field_set(3, "open", pa.list_(pa.float32())),
            "requests.open",
            "must be Arrow list<item: double>",
        ),
        (
            _field_set(2, "timestamp", pa.list_(pa.timestamp("us"))),
            "requests.timestamp",
            "must be Arrow list<item: timestamp[us, tz=UTC]>",
        ),
        (
            _field_set(0, "symbol", pa.dictionary(pa.int8(), pa.string())),
            "requests.symbol",
            "must be Arrow string",
        ),
    ],
)
def test_other_schemas_are_refused(bundle, requests, schema_change, field, reason):
    table = table_of(requests)
    schema = schema_change(table.schema)
    arrays = [
        table[name].cast(schema.field(name).type)
        if name in table.column_names
        else pa.nulls(table.num_rows, schema.field(name).type)
        for name in schema.names
    ]
    error = refusal(bundle, stream(pa.Table.from_arrays(arrays, schema=schema)))
    assert error.field == field
    assert reason in error.reason


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_buffers_are_refused_before_they_inflate(bundle, codec):
    # 40 MB of zeros compress to a few KB: the bomb a compressed body could carry
    zeros = pa.array([np.zeros(5_000_000).tolist()], pa.list_(pa.float64()))
    bomb = pa.table({"symbol": ["SYN0000"], "position": [0.0],
                     "timestamp": pa.array([[0]], pa.list_(request_arrow.STAMP_TYPE)),
                     **{key: zeros for key in ("open", "high", "low", "close", "volume")}},
                    schema=request_arrow.SCHEMA)  # fmt: skip
    body = stream(bomb, compression=codec)
    assert len(body) < 1_000_000
    error = refusal(bundle, body)
    assert "compressed Arrow buffers are not accepted" in error.reason


def test_json_or_garbage_is_not_an_arrow_stream(bundle, requests):
    for body in (b"", b'{"requests": []}', b"\xff" * 64, request_arrow.encode(requests)[:-200]):
        error = refusal(bundle, body)
        assert error.field == "requests"


def test_corrupt_streams_are_refused_never_crash(bundle, requests):
    """Byte flips anywhere (offsets, lengths, metadata): a clean refusal or a batch that
    passes every rule; nothing else, and never a read outside the body."""
    body = bytearray(request_arrow.encode(requests[:3]))
    rng = random.Random(7)
    refused = []
    for _ in range(400):
        broken = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(broken))
            broken[at] = rng.choice((0, 0xFF, rng.randrange(256), broken[at] ^ 0x80))
        try:
            decisions = decide_arrow(bundle, bytes(broken))
        except RequestError as exc:
            refused.append(exc.field)
        else:
            assert np.isfinite(decisions.targets).all()
    assert len(refused) > 50
    assert all(field.startswith("requests") for field in refused), set(refused)
