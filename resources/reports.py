"""Where backtest reports live: a folder per Dagster run locally (S3 in prod)."""

import hashlib
import json
from pathlib import Path

import dagster as dg


class ReportStore(dg.ConfigurableResource):
    root: str

    def folder(self, run_id: str) -> Path:
        path = Path(self.root) / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def digest(path: Path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    @staticmethod
    def read_json(path: Path) -> dict:
        return json.loads(Path(path).read_text())
