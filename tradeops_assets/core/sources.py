"""Which market data a deployment reads, from one spec string.

``TRADEOPS_MARKET_SOURCE`` is ``sample``, ``synthetic`` (optionally
``synthetic:symbols=100,bars=100000,freq=1m,seed=3``), a directory of vendor
files, or ``s3://bucket/prefix`` holding the same files. Every source answers the
same two questions: what span of history it holds (which fixes the partitions) and
the bars inside a time window.

An object-store source reads through an ``ObjectReader`` the resources layer
registers for its scheme (``register_object_reader``): core knows the files'
layout, never the client that fetches them.
"""

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import polars as pl

from tradeops_assets.core import sample, synthetic, vendor
from tradeops_assets.core.errors import ConfigError, MarketDataError
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

# The demo's market: synthetic, with a planted next-bar reversal a policy can learn.
# The real sample (GOOGL, EUR/USD daily) carries no edge a short PPO run finds, so an
# honest promotion gate refuses every policy trained on it (docs/decisions/0005).
DEFAULT_SOURCE = "synthetic:symbols=4,bars=2520,seed=7,reversal=0.5"


@dataclass(frozen=True)
class Span:
    first: datetime
    last: datetime


class MarketSource(Protocol):
    name: str

    def bars(self) -> pl.DataFrame: ...

    def files(self) -> dict[str, tuple[int, int]]:
        """The files it reads, each with (size, mtime in ns): what tells new data arrived."""
        ...

    def fingerprint(self) -> dict[str, str]:
        """What identifies the input bytes, recorded as market_bars' upstream version."""
        ...


def file_md5s(paths: list[Path], root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()
        for p in paths
    }


def span_of(bars: pl.DataFrame) -> Span:
    stamps = bars.get_column(TIMESTAMP).drop_nulls()
    if stamps.len() == 0:
        raise ConfigError("market source holds no bars with a timestamp")
    return Span(stamps.min(), stamps.max())  # type: ignore[arg-type]


def window(bars: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Bars with start <= timestamp < end, in the order delivered (validation judges order)."""
    return bars.filter((pl.col(TIMESTAMP) >= start) & (pl.col(TIMESTAMP) < end))


@dataclass(frozen=True)
class SampleSource:
    name: str = "sample"

    def bars(self) -> pl.DataFrame:
        return sample.load_sample()

    def files(self) -> dict[str, tuple[int, int]]:
        root = sample.data_dir()
        return stat_of([root / name for name in sample.FILES.values()])

    def fingerprint(self) -> dict[str, str]:
        root = sample.data_dir()
        return file_md5s([root / name for name in sample.FILES.values()], root)


@dataclass(frozen=True)
class SyntheticSource:
    spec: synthetic.SyntheticSpec
    name: str = "synthetic"

    def bars(self) -> pl.DataFrame:
        return synthetic.generate(self.spec)

    def files(self) -> dict[str, tuple[int, int]]:
        return {}

    def fingerprint(self) -> dict[str, str]:
        return {"synthetic": repr(self.spec)}


@dataclass(frozen=True)
class DirectorySource:
    path: Path
    name: str = "directory"

    def bars(self) -> pl.DataFrame:
        return vendor.read_vendor_directory(self.path)

    def files(self) -> dict[str, tuple[int, int]]:
        return stat_of(vendor.list_vendor_files(self.path))

    def fingerprint(self) -> dict[str, str]:
        return file_md5s(vendor.list_vendor_files(self.path), self.path)


class ObjectReader(Protocol):
    """What an object-store source needs from its client (resources provide one)."""

    def objects(self, bucket: str, prefix: str) -> dict[str, tuple[int, int]]:
        """Each key under ``prefix`` with (size, modification time in ns)."""
        ...

    def fetch(self, bucket: str, key: str) -> bytes: ...


_READERS: dict[str, Callable[[], ObjectReader]] = {}


def register_object_reader(scheme: str, opener: Callable[[], ObjectReader]) -> None:
    """How ``scheme://`` sources are read in this process, from now on."""
    _READERS[scheme] = opener


@dataclass(frozen=True)
class ObjectStoreSource:
    """Vendor files under ``scheme://bucket/prefix``, read as a directory source reads them."""

    url: str
    reader: ObjectReader = field(repr=False, compare=False)
    name: str = "object-store"

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].partition("/")[0]

    @property
    def prefix(self) -> str:
        rest = self.url.split("://", 1)[1].partition("/")[2].strip("/")
        return f"{rest}/" if rest else ""

    def _keys(self) -> dict[str, tuple[int, int]]:
        found = self.reader.objects(self.bucket, self.prefix)
        return {k: v for k, v in found.items() if Path(k).suffix.lower() in vendor.SUFFIXES}

    def _url(self, key: str) -> str:
        return f"{self.url.split('://', 1)[0]}://{self.bucket}/{key}"

    def bars(self) -> pl.DataFrame:
        keys = sorted(self._keys())
        if not keys:
            raise MarketDataError(
                f"market data location {self.url} holds no {'/'.join(vendor.SUFFIXES)} files"
            )
        with tempfile.TemporaryDirectory(prefix="tradeops-source-") as tmp:
            frames = []
            for key in keys:
                local = Path(tmp) / key[len(self.prefix) :]
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(self.reader.fetch(self.bucket, key))
                try:
                    frames.append(vendor.read_vendor_file(local))
                except MarketDataError as exc:  # named by its key, not the scratch copy
                    raise type(exc)(str(exc).replace(str(local), self._url(key))) from exc
        return pl.concat(frames, how="vertical")

    def files(self) -> dict[str, tuple[int, int]]:
        return {self._url(k): stat for k, stat in self._keys().items()}

    def fingerprint(self) -> dict[str, str]:
        return {
            k[len(self.prefix) :]: hashlib.md5(
                self.reader.fetch(self.bucket, k), usedforsecurity=False
            ).hexdigest()
            for k in sorted(self._keys())
        }


def parse_source(spec: str, reader: ObjectReader | None = None) -> MarketSource:
    spec = spec.strip()
    if spec in ("", "sample"):
        return SampleSource()
    if spec == "synthetic" or spec.startswith("synthetic:"):
        return SyntheticSource(synthetic.SyntheticSpec.parse(spec.partition(":")[2]))
    if spec.startswith("s3://"):
        if not spec.removeprefix("s3://").partition("/")[0]:
            raise ConfigError(f"TRADEOPS_MARKET_SOURCE={spec!r} names no bucket")
        opener = _READERS.get("s3")
        if reader is None and opener is None:
            raise ConfigError(
                f"TRADEOPS_MARKET_SOURCE={spec}: an s3:// source is read through the prod "
                "deployment's market_data resource (TRADEOPS_ENV=prod), which has none here"
            )
        return ObjectStoreSource(spec.rstrip("/"), reader or opener())  # type: ignore[misc]
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"TRADEOPS_MARKET_SOURCE={spec!r} is neither 'sample', 'synthetic[:k=v,...]' "
            "nor an existing directory of CSV/Parquet files"
        )
    return DirectorySource(path.resolve())


def stat_of(paths: list[Path]) -> dict[str, tuple[int, int]]:
    stats = {str(p): p.stat() for p in paths}
    return {p: (st.st_size, st.st_mtime_ns) for p, st in stats.items()}


def load_bars(spec: str) -> pl.DataFrame:
    """The source's bars, read once per process until one of its files changes.

    A long-lived process (the sensor's code server) sees a dropped file at its next read.
    """
    source = parse_source(spec)
    return _read(spec, tuple(sorted(source.files().items())))


@lru_cache(maxsize=2)
def _read(spec: str, files: tuple) -> pl.DataFrame:
    return parse_source(spec).bars()


def symbols_of(bars: pl.DataFrame) -> list[str]:
    return sorted(bars.get_column(SYMBOL).drop_nulls().unique().to_list())
