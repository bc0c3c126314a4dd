"""A batch of requests as an Arrow IPC stream: the layout for desks that send thousands.

One row per request, the column layout of ``core.request`` as Arrow lists::

    symbol: string, position: double,
    timestamp: list<timestamp[us, tz=UTC]>, open, high, low, close, volume: list<double>

JSON costs about 70 µs a request of 96 bars to parse and convert; this layout is read
in place from the body, so a batch is checked in numpy over all its bars at once and
the features and the policy are most of the work. The rules are ``core.request``'s,
and refusals name the request and bar as JSON would (``requests[3].bars.close[12]``).

Nothing is inflated: a stream whose record batches ask for LZ4 or ZSTD decompression is
refused, as a compressed HTTP body is, so no body grows past its size limit. Dictionary
batches are refused too (the schema has no dictionary type). Offsets are validated
before any value is read.
"""

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa

from tradeops_assets.core.bundle import PolicyBundle
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.features import OHLCV
from tradeops_assets.core.request import (
    _EPOCH_SECONDS_LIMIT,
    COLUMNS,
    SYMBOL_PATTERN,
    Limits,
    ParsedBatch,
    _check_length,
    _check_order,
    _check_position,
    _check_symbol,
    _check_values,
    _timestamps_us,
)
from tradeops_assets.core.schemas import TIMESTAMP

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
STAMP_TYPE = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("position", pa.float64(), nullable=False),
        pa.field(TIMESTAMP, pa.list_(STAMP_TYPE), nullable=False),
        *(pa.field(key, pa.list_(pa.float64()), nullable=False) for key in OHLCV),
    ]
)
_RECORD_BATCH_COMPRESSION = 3  # field index of ``compression`` in Arrow's RecordBatch table


def encode(requests: Sequence[dict]) -> bytes:
    """Requests in either JSON layout as one Arrow stream (for clients, tests, the bench)."""
    stamps, columns = [], {key: [] for key in OHLCV}
    for raw in requests:
        bars = raw["bars"]
        if isinstance(bars, list):
            bars = {key: [bar[key] for bar in bars] for key in COLUMNS}
        stamps.append(_timestamps_us(bars[TIMESTAMP]).tolist())
        for key in OHLCV:
            columns[key].append([float(v) for v in bars[key]])
    table = pa.table(
        {
            "symbol": [raw["symbol"] for raw in requests],
            "position": [float(raw["position"]) for raw in requests],
            TIMESTAMP: pa.array(stamps, pa.list_(STAMP_TYPE)),
            **{key: pa.array(values, pa.list_(pa.float64())) for key, values in columns.items()},
        },
        schema=SCHEMA,
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _u32(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 4], "little")


def _field_at(buf: memoryview, table: int, index: int) -> int | None:
    """Where a flatbuffer table's field ``index`` is, or None when it is absent."""
    vtable = table - int.from_bytes(buf[table : table + 4], "little", signed=True)
    slot = 4 + 2 * index
    if slot >= int.from_bytes(buf[vtable : vtable + 2], "little"):
        return None
    offset = int.from_bytes(buf[vtable + slot : vtable + slot + 2], "little")
    return table + offset if offset else None


def _compressed(message: pa.ipc.Message) -> bool:
    """Whether a record batch message carries Arrow's ``BodyCompression``."""
    buf = memoryview(message.metadata)
    root = _u32(buf, 0)
    header = _field_at(buf, root, 2)  # Message.header: the RecordBatch table
    if header is None:
        return False
    batch = header + _u32(buf, header)
    return _field_at(buf, batch, _RECORD_BATCH_COMPRESSION) is not None


def _read(body: bytes, path: str) -> pa.Table:
    """The stream's table, after the checks that keep decoding within the body."""
    try:
        reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(body))
        schema_message = reader.read_next_message()
        if schema_message.type != "schema":
            raise RequestError(path, "an Arrow stream must open with its schema")
        schema = pa.ipc.read_schema(schema_message)
        _check_schema(schema, path)
        batches = []
        for message in reader:
            if message.type != "record batch":
                raise RequestError(path, f"Arrow {message.type} messages are not accepted")
            if _compressed(message):
                raise RequestError(
                    path, "compressed Arrow buffers are not accepted; send them uncompressed"
                )
            batches.append(pa.ipc.read_record_batch(message, schema))
        table = pa.Table.from_batches(batches, SCHEMA)
        table.validate(full=True)
    except (pa.ArrowException, OSError, EOFError, StopIteration, IndexError, ValueError) as exc:
        raise RequestError(path, f"is not a readable Arrow stream: {str(exc)[:200]}") from None
    return table


def _check_schema(schema: pa.Schema, path: str) -> None:
    if schema.names != SCHEMA.names:
        extra = [name for name in schema.names if name not in SCHEMA.names]
        missing = [name for name in SCHEMA.names if name not in schema.names]
        raise RequestError(
            path,
            f"Arrow columns must be {', '.join(SCHEMA.names)} in that order; "
            f"unknown: {', '.join(extra) or 'none'}, missing: {', '.join(missing) or 'none'}",
        )
    for want, got in zip(SCHEMA, schema, strict=True):
        if got.type != want.type:
            raise RequestError(f"{path}.{want.name}", f"must be Arrow {want.type}, got {got.type}")


def parse(
    body: bytes, bundle: PolicyBundle, limits: Limits | None = None, path: str = "requests"
) -> ParsedBatch:
    """Every request of the stream, checked as ``parse_request`` checks one, or the first
    refusal, naming ``requests[i]`` and the bar. The bars stay one array: no object is
    made per request."""
    limits = limits or Limits()
    table = _read(body, path).combine_chunks()
    n = table.num_rows
    if not n:
        raise RequestError(path, "needs at least one request")
    if n > limits.max_batch:
        raise RequestError(path, f"at most {limits.max_batch} requests per batch, got {n}")
    for name in ("symbol", "position"):
        if table[name].null_count:
            i = table[name].is_null().index(True).as_py()
            raise RequestError(f"{path}[{i}].{name}", "is missing")
    symbols = table["symbol"].to_pylist()
    positions = table["position"].to_numpy()
    lists = [table[key].chunk(0) for key in COLUMNS]
    for key, column in zip(COLUMNS, lists, strict=True):
        if column.null_count:
            i = column.is_null().index(True).as_py()
            raise RequestError(f"{path}[{i}].bars.{key}", "is missing")
    offsets = np.stack([np.asarray(column.offsets) for column in lists])
    counts = np.diff(offsets, axis=1)  # [column, request]: values of each list
    unequal = counts != counts[0]
    if unequal.any():
        column = int(np.argmax(unequal.any(axis=1)))
        i = int(np.argmax(unequal[column]))
        raise RequestError(
            f"{path}[{i}].bars.{COLUMNS[column]}",
            f"has {counts[column, i]} values; bars.{TIMESTAMP} has {counts[0, i]}",
        )
    lengths = counts[0]
    ends = np.cumsum(lengths)
    fits = (lengths >= bundle.min_bars) & (lengths <= limits.max_bars)
    in_range = (positions >= -1.0) & (positions <= 1.0)  # a NaN is neither
    if not (
        fits.all()
        and in_range.all()
        and ends[-1] <= limits.max_batch_bars
        and _symbols_served(symbols, bundle)
    ):
        _refuse_first(path, symbols, positions, lengths, ends, bundle, limits)
    # each list's values in place (a list array's own slice of its child): no copy
    values = [
        column.values.slice(first, last - first)
        for column, first, last in zip(
            lists, offsets[:, 0].tolist(), offsets[:, -1].tolist(), strict=True
        )
    ]
    field = _namer(path, lengths)
    for key, flat in zip(COLUMNS, values, strict=True):
        if flat.null_count:
            raise RequestError(field(flat.is_null().index(True).as_py(), key), "is missing")
    ohlcv = np.stack([flat.to_numpy() for flat in values[1:]])
    _check_values(ohlcv, field)
    stamps_us = values[0].view(pa.int64()).to_numpy()
    implausible = np.abs(stamps_us) >= _EPOCH_SECONDS_LIMIT * 1e6
    if implausible.any():
        bar = int(np.argmax(implausible))
        raise RequestError(field(bar, TIMESTAMP), f"{stamps_us[bar]} µs is not a plausible time")
    _check_order(stamps_us, field, ends)
    return ParsedBatch(symbols, positions, ohlcv, ends, stamps_us[ends - 1])


@lru_cache(maxsize=8)
def _well_formed(symbols: frozenset[str]) -> frozenset[str]:
    """Those of a bundle's symbols a request may name: each checked once per bundle."""
    return frozenset(s for s in symbols if SYMBOL_PATTERN.fullmatch(s))


def _symbols_served(symbols: list[str], bundle: PolicyBundle) -> bool:
    """Whether every symbol (a string: the schema says so) is well formed and one the policy
    serves; ``_refuse_first`` names the first that is not, as ``_check_symbol`` words it."""
    named = set(symbols)
    if bundle.symbols:
        return named <= _well_formed(bundle.symbols)
    return all(SYMBOL_PATTERN.fullmatch(symbol) for symbol in named)


def _refuse_first(path, symbols, positions, lengths, ends, bundle, limits) -> None:
    """The first request refused, named and worded as the JSON path words it."""
    for i, symbol in enumerate(symbols):
        try:
            _check_symbol(symbol, bundle)
            _check_position(float(positions[i]))
            _check_length(int(lengths[i]), bundle, limits)
        except RequestError as exc:
            raise exc.within(f"{path}[{i}]") from None
        if ends[i] > limits.max_batch_bars:
            raise RequestError(
                path, f"at most {limits.max_batch_bars} bars across a batch, got more by [{i}]"
            )


def _namer(path: str, lengths: np.ndarray):
    """Names bar ``bar`` of the whole batch as JSON would: ``requests[i].bars.close[j]``."""
    ends = np.cumsum(lengths)

    def field(bar: int, key: str | None) -> str:
        i = int(np.searchsorted(ends, bar, side="right"))
        return f"{path}[{i}].bars.{key}[{bar - int(ends[i] - lengths[i])}]"

    return field
