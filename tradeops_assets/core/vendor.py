"""Reads market files as vendors drop them into the canonical bar layout.

Vendors disagree on headers, date formats and whether the symbol is a column or
the file name; this module is the one place that knows those conventions
(documented in docs/market-data.md). Anything it cannot map fails loudly with
the file, the columns found and the columns expected: guessing would poison
every asset downstream.
"""

import re
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from tradeops_assets.core.errors import MarketDataError, UnknownLayoutError
from tradeops_assets.core.schemas import BAR_COLUMNS, BAR_DTYPES, PRICE_COLUMNS, SYMBOL, TIMESTAMP

SUFFIXES = (".csv", ".parquet", ".pq", ".txt")

HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    TIMESTAMP: (
        "timestamp",
        "date",
        "datetime",
        "time",
        "ts",
        "day",
        "tradedate",
        "gmttime",
        "localtime",
        "dateutc",
        "timeutc",
        "bartime",
        "",
    ),
    SYMBOL: ("symbol", "ticker", "sym", "instrument", "code", "asset", "ric", "secid", "pair"),
    "open": ("open", "o", "openprice", "opening", "first"),
    "high": ("high", "h", "highprice", "max"),
    "low": ("low", "l", "lowprice", "min"),
    "close": ("close", "c", "closeprice", "last", "lastprice", "closing"),
    "adj_close": ("adjclose", "adjustedclose", "adjclosing", "closeadj"),
    "volume": ("volume", "vol", "v", "qty", "tickvolume", "tickvol", "volumetraded", "totalvolume"),
}
REQUIRED = (TIMESTAMP, "open", "high", "low", "close", "volume")

TIMESTAMP_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S%.f",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y%m%d",
    "%Y/%m/%d",
)


def normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.strip().lower())


def map_columns(columns: Iterable[str], where: str) -> dict[str, str]:
    """Maps a file's headers to canonical names; raises naming what was found and expected."""
    columns = list(columns)
    alias_to_canonical = {
        alias: canonical for canonical, aliases in HEADER_ALIASES.items() for alias in aliases
    }
    mapping: dict[str, str] = {}
    for original in columns:
        canonical = alias_to_canonical.get(normalise_header(original))
        if canonical is not None and canonical not in mapping.values():
            mapping[original] = canonical
    missing = [c for c in REQUIRED if c not in mapping.values()]
    if "close" in missing and "adj_close" in mapping.values():
        missing.remove("close")
    if missing:
        raise UnknownLayoutError(
            f"{where}: cannot map columns onto the bar layout. "
            f"Found {columns}; expected {list(BAR_COLUMNS)} (or a known vendor alias, see "
            f"docs/market-data.md); missing: {missing}."
        )
    return mapping


def parse_timestamps(values: pl.Series, where: str, label: str | None = None) -> pl.Series:
    if values.dtype == pl.Datetime:
        tz = values.dtype.time_zone  # type: ignore[attr-defined]
        values = values if tz else values.dt.replace_time_zone("UTC")
        return values.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if values.dtype == pl.Date:
        return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    text = values.cast(pl.String).str.strip_chars()
    present = text.drop_nulls()
    for fmt in TIMESTAMP_FORMATS:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        if parsed.drop_nulls().len() == present.len() and present.len() > 0:
            return parsed.dt.replace_time_zone("UTC")
    raise MarketDataError(
        f"{where}: column '{label or values.name}' holds timestamps in no known format "
        f"(first values: {present.head(3).to_list()}); known formats: {list(TIMESTAMP_FORMATS)}."
    )


def symbol_from_filename(path: Path) -> str:
    return path.stem.split(".")[0].upper()


def read_frame(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False, try_parse_dates=False)
    except Exception as exc:  # polars raises several unrelated types for unreadable files
        raise MarketDataError(f"{path}: unreadable as {path.suffix or 'CSV'}: {exc}") from exc


def to_canonical(raw: pl.DataFrame, *, where: str, symbol: str | None) -> pl.DataFrame:
    """Renames, parses and casts; adjusts OHLC by Adj Close / Close when both are given."""
    mapping = map_columns(raw.columns, where)
    frame = raw.select([pl.col(src).alias(dst) for src, dst in mapping.items()])
    source_of = {dst: src for src, dst in mapping.items()}
    if SYMBOL not in frame.columns:
        if symbol is None:
            raise UnknownLayoutError(
                f"{where}: no symbol column (looked for {list(HEADER_ALIASES[SYMBOL])}) and the "
                "file name does not name an instrument; add a 'symbol' column."
            )
        frame = frame.with_columns(pl.lit(symbol).alias(SYMBOL))
    numeric = [c for c in (*PRICE_COLUMNS, "adj_close", "volume") if c in frame.columns]
    frame = frame.with_columns(
        parse_timestamps(frame.get_column(TIMESTAMP), where, label=source_of[TIMESTAMP]),
        pl.col(SYMBOL).cast(pl.String).str.strip_chars(),
        *[_to_float(c) for c in numeric],
    )
    if "adj_close" in frame.columns:
        if "close" in frame.columns:
            factor = pl.col("adj_close") / pl.col("close")
            frame = frame.with_columns(
                *[(pl.col(c) * factor).alias(c) for c in ("open", "high", "low")],
                pl.col("adj_close").alias("close"),
            )
        else:
            frame = frame.with_columns(pl.col("adj_close").alias("close"))
    return frame.select([pl.col(c).cast(BAR_DTYPES[c]) for c in BAR_COLUMNS])


def _to_float(column: str) -> pl.Expr:
    raw = pl.col(column).cast(pl.String).str.strip_chars().str.replace_all(",", "")
    return raw.cast(pl.Float64, strict=False).alias(column)


def _looks_like_date(stem: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", stem))


def read_vendor_file(path: Path) -> pl.DataFrame:
    raw = read_frame(path)
    symbol = None if _looks_like_date(path.stem) else symbol_from_filename(path)
    return to_canonical(raw, where=str(path), symbol=symbol)


def list_vendor_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise MarketDataError(f"market data directory {directory} does not exist")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise MarketDataError(
            f"market data directory {directory} holds no {'/'.join(SUFFIXES)} files"
        )
    return files


def read_vendor_directory(directory: Path) -> pl.DataFrame:
    return pl.concat([read_vendor_file(p) for p in list_vendor_files(directory)], how="vertical")
