"""Where backtest reports and the gate's verdicts live: a folder per Dagster run locally.

A report is its summary (``report.json``, the record the gate judges and binds to
by SHA-256), a standalone HTML page and the ledger. Assets hold a report's
location, never a path they built; an S3 implementation replaces this one in prod.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from tradeops_assets.core.promotion import GateDecision
from tradeops_assets.core.summary import BacktestSummary

REPORT_JSON, REPORT_HTML, GATE_JSON, LEDGER = (
    "report.json",
    "report.html",
    "gate.json",
    "ledger.parquet",
)


@dataclass(frozen=True)
class StoredReport:
    location: str
    """Where the summary is: what the gate, the champion and the bento read back."""
    html: str
    sha256: str


class ReportStore(dg.ConfigurableResource):
    root: str

    def write(
        self, run_id: str, summary: BacktestSummary, html: str, ledger: pl.DataFrame
    ) -> StoredReport:
        folder = Path(self.root) / run_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REPORT_JSON).write_text(summary.to_json())
        (folder / REPORT_HTML).write_text(html)
        ledger.write_parquet(folder / LEDGER)
        return StoredReport(
            str(folder / REPORT_JSON), str(folder / REPORT_HTML), _sha256(folder / REPORT_JSON)
        )

    def read(self, location: str) -> tuple[BacktestSummary, str]:
        """The summary and the SHA-256 of its bytes as stored now."""
        path = Path(location)
        if not path.is_file():
            raise dg.Failure(f"backtest report {location} is missing: run backtest_report")
        return BacktestSummary.from_json(path.read_text()), _sha256(path)

    def files(self, location: str) -> list[Path]:
        """The report's files, for the MLflow run that keeps a copy."""
        folder = Path(location).parent
        return [
            folder / name
            for name in (REPORT_JSON, REPORT_HTML, GATE_JSON, LEDGER)
            if (folder / name).exists()
        ]

    def write_gate(self, location: str, decision: GateDecision) -> Path:
        target = Path(location).with_name(GATE_JSON)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(decision.to_dict(), indent=2, sort_keys=True))
        tmp.replace(target)
        return target

    def read_gate(self, location: str) -> GateDecision | None:
        path = Path(location).with_name(GATE_JSON)
        return GateDecision.from_dict(json.loads(path.read_text())) if path.exists() else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
