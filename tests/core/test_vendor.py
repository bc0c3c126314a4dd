from pathlib import Path

import polars as pl
import pytest

from tradeops_assets.core import vendor
from tradeops_assets.core.errors import MarketDataError, UnknownLayoutError
from tradeops_assets.core.schemas import BAR_COLUMNS, BAR_DTYPES


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_yahoo_style_per_symbol_file_is_adjusted_and_named_after_the_file(tmp_path):
    f = write(
        tmp_path / "aapl.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,100,110,90,100,50,1000\n"
        "2020-01-03,100,104,98,102,51,1200\n",
    )
    bars = vendor.read_vendor_file(f)
    assert bars.columns == list(BAR_COLUMNS)
    assert bars.schema == pl.Schema(BAR_DTYPES)
    assert bars["symbol"].to_list() == ["AAPL", "AAPL"]
    first = bars.row(0, named=True)
    # Adj Close / Close = 0.5 scales the whole bar, so OHLC stays consistent.
    assert (first["open"], first["high"], first["low"], first["close"]) == (50, 55, 45, 50)
    assert str(first["timestamp"]) == "2020-01-02 00:00:00+00:00"


def test_per_day_files_take_the_symbol_from_a_column_and_map_odd_headers(tmp_path):
    f = write(
        tmp_path / "2021-03-04.csv",
        'Ticker,trade_date,OPEN,HIGH,LOW,LAST,Vol\nMSFT,03/04/2021,1,2,0.5,1.5,"1,000"\n',
    )
    bars = vendor.read_vendor_file(f)
    row = bars.row(0, named=True)
    assert row["symbol"] == "MSFT"
    assert row["close"] == 1.5
    assert row["volume"] == 1000.0
    assert str(row["timestamp"]).startswith("2021-03-04")


def test_unknown_layout_names_the_file_the_columns_found_and_expected(tmp_path):
    f = write(tmp_path / "x.csv", "when,px,size\n2020-01-01,1,2\n")
    with pytest.raises(UnknownLayoutError) as err:
        vendor.read_vendor_file(f)
    message = str(err.value)
    assert str(f) in message
    assert "['when', 'px', 'size']" in message
    assert "missing: ['timestamp', 'open', 'high', 'low', 'close', 'volume']" in message


def test_per_day_file_without_symbol_column_is_refused(tmp_path):
    f = write(tmp_path / "20210304.csv", "Date,Open,High,Low,Close,Volume\n2021-03-04,1,1,1,1,1\n")
    with pytest.raises(UnknownLayoutError, match="no symbol column"):
        vendor.read_vendor_file(f)


def test_unparseable_timestamps_say_which_column_and_values(tmp_path):
    f = write(tmp_path / "ibm.csv", "Date,Open,High,Low,Close,Volume\nyesterday,1,1,1,1,1\n")
    with pytest.raises(MarketDataError, match=r"column 'Date'.*\['yesterday'\]"):
        vendor.read_vendor_file(f)


def test_dukascopy_timestamps_and_parquet_files(tmp_path):
    frame = pl.DataFrame(
        {
            "Time": ["01.01.2017 22:00:00.000"],
            "Open": [1.0],
            "High": [1.1],
            "Low": [0.9],
            "Close": [1.05],
            "Volume": [7.0],
        }
    )
    frame.write_parquet(tmp_path / "eurusd.parquet")
    bars = vendor.read_vendor_file(tmp_path / "eurusd.parquet")
    assert str(bars["timestamp"][0]) == "2017-01-01 22:00:00+00:00"
    assert bars["symbol"][0] == "EURUSD"


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(MarketDataError, match="holds no"):
        vendor.read_vendor_directory(tmp_path)
