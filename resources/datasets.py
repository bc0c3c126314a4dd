"""Where datasets live, and how every written version stays recoverable.

Each asset partition is one Parquet file in a DVC workspace; writing it adds the
file to DVC and pushes it to the remote, so the md5 recorded in Dagster metadata
is a key that ``tradeops data restore`` turns back into the exact bytes, even
after the partition was overwritten by a later run.
"""

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from resources.dvc import DvcRepo, default_dvc_bin
from tradeops_assets.core.errors import SnapshotError

INDEX = "snapshots.jsonl"
UNPARTITIONED = "full"


@dataclass(frozen=True)
class Snapshot:
    asset: str
    partition: str
    md5: str
    rows: int
    path: str
    written_at: str


class DatasetStore(dg.ConfigurableResource):
    """Parquet datasets versioned with DVC: ``root`` is the workspace, ``remote`` the DVC remote."""

    root: str
    remote: str
    dvc_bin: str = ""

    def _repo(self) -> DvcRepo:
        return DvcRepo(Path(self.root), self.remote, self.dvc_bin or default_dvc_bin()).ensure()

    def path(self, asset: str, partition: str = UNPARTITIONED) -> Path:
        return Path(self.root) / asset / f"{partition}.parquet"

    def write(self, asset: str, frames: dict[str, pl.DataFrame]) -> list[Snapshot]:
        repo = self._repo()
        paths = {}
        for partition, frame in frames.items():
            target = self.path(asset, partition)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".parquet.tmp")
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            os.replace(tmp, target)
            paths[partition] = target
        md5s = repo.add_and_push(list(paths.values()))
        now = datetime.now(UTC).isoformat()
        snapshots = [
            Snapshot(
                asset,
                partition,
                md5s[path],
                frames[partition].height,
                str(path.relative_to(self.root)),
                now,
            )
            for partition, path in paths.items()
        ]
        with (Path(self.root) / INDEX).open("a") as index:
            for snap in snapshots:
                index.write(json.dumps(asdict(snap)) + "\n")
        return snapshots

    def partitions(self, asset: str) -> list[str]:
        folder = Path(self.root) / asset
        return sorted(p.name.removesuffix(".parquet") for p in folder.glob("*.parquet"))

    def read(
        self, asset: str, partitions: list[str] | None = None
    ) -> tuple[pl.DataFrame, dict[str, str]]:
        """The frames concatenated in partition order, and each partition's md5."""
        keys = self.partitions(asset) if partitions is None else partitions
        missing = [k for k in keys if not self.path(asset, k).exists()]
        if missing or not keys:
            raise SnapshotError(
                f"dataset {asset} has no stored partition(s) {missing or keys} under {self.root}; "
                "materialise it first"
            )
        repo = self._repo()
        md5s = {k: repo.recorded_md5(self.path(asset, k)) for k in keys}
        frame = pl.concat([pl.read_parquet(self.path(asset, k)) for k in keys], how="vertical")
        return frame, md5s

    def find(self, md5: str) -> Snapshot | None:
        index = Path(self.root) / INDEX
        if not index.exists():
            return None
        for line in index.read_text().splitlines():
            snap = Snapshot(**json.loads(line))
            if snap.md5 == md5:
                return snap
        return None

    def restore(self, md5: str, out_dir: Path) -> Path:
        snap = self.find(md5)
        name = Path(snap.path) if snap else Path(f"{md5}.parquet")
        return self._repo().restore(md5, out_dir / name)
