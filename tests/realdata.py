"""Real vendor files for tests (tests/data/README.md): decades of daily history and real
hourly FX, written where a test wants a vendor folder."""

import gzip
import shutil
from pathlib import Path

import polars as pl

from tradeops_assets.core import sample
from tradeops_assets.core.vendor import read_vendor_file

DATA = Path(__file__).parent / "data"


def msft_csv(folder: Path, name: str = "MSFT.csv") -> Path:
    """The MSFT daily file exactly as the vendor ships it, under ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(DATA / "MSFT.csv.gz", "rb") as raw, (folder / name).open("wb") as out:
        shutil.copyfileobj(raw, out)
    return folder / name


def msft_bars(tmp: Path) -> pl.DataFrame:
    return read_vendor_file(msft_csv(tmp))


def eurusd_hourly_csv(folder: Path) -> Path:
    """EUR/USD hourly ask bars for 2017 (Dukascopy layout), weekends and holidays as traded."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "EURUSD.csv"
    shutil.copyfile(sample.data_dir() / sample.FILES["EURUSD"], target)
    return target
