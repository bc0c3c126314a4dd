"""The canonical bar layout every source is normalised into, as pandera models.

One definition serves ingestion (casting), validation (the blocking checks) and
serving (request bars), so a column cannot mean two things in two places.
"""

import pandera.polars as pa
import polars as pl

TIMESTAMP = "timestamp"
SYMBOL = "symbol"
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (TIMESTAMP, SYMBOL, *PRICE_COLUMNS, "volume")

BAR_DTYPES: dict[str, pl.DataType] = {
    TIMESTAMP: pl.Datetime("us", "UTC"),
    SYMBOL: pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}


BAR_SCHEMA = pa.DataFrameSchema(
    {
        name: pa.Column(dtype, nullable=name not in (TIMESTAMP, SYMBOL))
        for name, dtype in BAR_DTYPES.items()
    },
    strict=True,
    ordered=True,
    coerce=False,
    description="Columns and dtypes only: value rules live in core.validation, one per check.",
)


class PositivePrices(pa.DataFrameModel):
    open: pl.Float64 = pa.Field(gt=0, nullable=True)
    high: pl.Float64 = pa.Field(gt=0, nullable=True)
    low: pl.Float64 = pa.Field(gt=0, nullable=True)
    close: pl.Float64 = pa.Field(gt=0, nullable=True)


class NonNegativeVolume(pa.DataFrameModel):
    volume: pl.Float64 = pa.Field(ge=0, nullable=True)
