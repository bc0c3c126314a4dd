"""The prod stores against the S3 stand-in: every write new, encrypted, never an overwrite."""

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster_aws.s3 import S3Resource

from resources.dvc import DvcRepo, default_dvc_bin
from resources.s3 import ObjectStore, OverwriteRefusedError, S3Url
from resources.s3_stores import (
    S3AuditTrail,
    S3DatasetStore,
    S3MarketData,
    S3PredictionLogStore,
    S3ReportStore,
    dvc_key,
)
from resources.secrets import EnvSecrets
from tests.e2e.conftest import write_vendor_per_symbol
from tests.prod.conftest import BUCKETS, REGION
from tradeops_assets.core import promotion, sources
from tradeops_assets.core.errors import ConfigError, MarketDataError, SnapshotError
from tradeops_assets.core.prediction_log import LOG_SCHEMA
from tradeops_assets.core.promotion import GateCriteria, GateDecision
from tradeops_assets.core.summary import BacktestSummary, FoldResult
from tradeops_assets.core.synthetic import SyntheticSpec, generate
from tradeops_assets.core.windows import Window

pytestmark = pytest.mark.xdist_group("prod")


def s3_resource(world) -> S3Resource:
    return S3Resource(
        endpoint_url=world.moto.url,
        region_name=REGION,
        aws_access_key_id="standin",
        aws_secret_access_key="standin",
    )


def encryption(world, bucket: str, key: str, version: str | None = None) -> tuple[str, str]:
    extra = {"VersionId": version} if version else {}
    head = world.s3().head_object(Bucket=bucket, Key=key, **extra)
    return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")


def versions(world, bucket: str, prefix: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for page in (
        world.s3().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    ):
        for item in page.get("Versions", []):
            found.setdefault(item["Key"], []).append(item["VersionId"])
    return found


def test_an_object_is_written_once_encrypted_and_never_replaced(world, prefix):
    store = ObjectStore(world.s3(), world.data_key)
    bucket, key = BUCKETS["artifacts"], f"{prefix}/thing.json"
    assert store.put_new(bucket, key, b"first") is True
    assert store.put_new(bucket, key, b"first") is False  # the same bytes: the same version
    with pytest.raises(OverwriteRefusedError, match="never overwritten"):
        store.put_new(bucket, key, b"second")
    assert store.get(bucket, key) == b"first"
    assert versions(world, bucket, prefix) == {key: [versions(world, bucket, prefix)[key][0]]}
    assert encryption(world, bucket, key) == ("aws:kms", world.data_key)
    with pytest.raises(ConfigError, match="KMS key"):
        ObjectStore(world.s3(), "")


def datasets(world, prefix: str, tmp_path: Path) -> S3DatasetStore:
    return S3DatasetStore(
        root=str(tmp_path / "scratch"),
        remote=f"s3://{BUCKETS['artifacts']}/{prefix}",
        raw=f"s3://{BUCKETS['raw']}/{prefix}",
        features=f"s3://{BUCKETS['features']}/{prefix}",
        kms_key_id=world.data_key,
        s3=s3_resource(world),
    )


def test_dataset_versions_are_kept_and_any_md5_restores_its_exact_bytes(world, prefix, tmp_path):
    store = datasets(world, prefix, tmp_path)
    bars = generate(SyntheticSpec(symbols=2, bars=60, seed=5))
    (first,) = store.write("market_bars", {"2015-01-01": bars.head(20)})
    again = store.write("market_bars", {"2015-01-01": bars.head(20), "2015-02-01": bars[20:40]})
    assert again[0].md5 == first.md5  # the same bytes are the same version
    (changed,) = store.write("market_bars", {"2015-01-01": bars.head(10)})
    assert changed.md5 != first.md5
    frame, md5s = store.read("market_bars")
    assert md5s == {"2015-01-01": changed.md5, "2015-02-01": again[1].md5}
    assert frame.height == 10 + 20
    assert store.partitions("market_bars") == ["2015-01-01", "2015-02-01"]
    with pytest.raises(SnapshotError, match="no stored partition"):
        store.read("market_features")

    found = versions(world, BUCKETS["raw"], prefix)
    assert all(len(ids) == 1 for ids in found.values()), found  # nothing overwritten
    data = [k for k in found if k.endswith(".parquet")]
    assert sorted(data) == sorted(
        f"{prefix}/datasets/market_bars/{p}/{m}.parquet"
        for p, m in [
            ("2015-01-01", first.md5),
            ("2015-01-01", changed.md5),
            ("2015-02-01", again[1].md5),
        ]
    )
    assert len([k for k in found if "/versions/" in k]) == 4  # one record per write
    remote = S3Url(BUCKETS["artifacts"], f"{prefix}/dvc")
    for key in [*found, dvc_key(remote, first.md5)]:
        bucket = BUCKETS["artifacts"] if key.startswith(f"{prefix}/dvc") else BUCKETS["raw"]
        assert encryption(world, bucket, key) == ("aws:kms", world.data_key), key

    # The first version, replaced since, comes back byte for byte from the DVC remote.
    out = store.restore(first.md5, tmp_path / "restored")
    assert out == tmp_path / "restored" / "market_bars" / "2015-01-01.parquet"
    assert hashlib.md5(out.read_bytes(), usedforsecurity=False).hexdigest() == first.md5
    assert pl.read_parquet(out).equals(bars.head(20))
    with pytest.raises(SnapshotError, match="no snapshot with md5 " + "0" * 32):
        store.restore("0" * 32, tmp_path / "nothing")


@pytest.mark.slow  # runs DVC from .venv-dvc
def test_the_s3_dvc_remote_is_one_dvc_itself_pulls_from(world, prefix, tmp_path):
    """DVC's own layout: a mirror of the remote's files/ is a folder remote dvc pulls from."""
    store = datasets(world, prefix, tmp_path)
    frame = generate(SyntheticSpec(symbols=1, bars=30, seed=2))
    (snap,) = store.write("market_features", {"full": frame})
    mirror = tmp_path / "mirror"
    s3 = world.s3()
    for item in s3.list_objects_v2(Bucket=BUCKETS["artifacts"], Prefix=f"{prefix}/dvc/files/")[
        "Contents"
    ]:
        local = mirror / item["Key"].removeprefix(f"{prefix}/dvc/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(
            s3.get_object(Bucket=BUCKETS["artifacts"], Key=item["Key"])["Body"].read()
        )
    repo = DvcRepo(tmp_path / "workspace", str(mirror), default_dvc_bin()).ensure()
    pulled = repo.restore(snap.md5, tmp_path / "pulled.parquet")
    assert pl.read_parquet(pulled).equals(frame)


def test_reports_and_every_gate_verdict_are_kept(world, prefix, tmp_path):
    store = S3ReportStore(
        root=str(tmp_path / "scratch"),
        location=f"s3://{BUCKETS['artifacts']}/{prefix}",
        kms_key_id=world.data_key,
        s3=s3_resource(world),
    )
    summary = _summary()
    ledger = pl.DataFrame({"bar": [1, 2], "pnl": [0.1, -0.2]})
    stored = store.write("run-1", summary, "<html>report</html>", ledger)
    assert stored.location.startswith(f"s3://{BUCKETS['artifacts']}/{prefix}/reports/run-1/")
    assert Path(stored.html).read_text() == "<html>report</html>"
    read, sha = store.read(stored.location)
    assert read == summary
    assert sha == stored.sha256
    assert store.read_gate(stored.location) is None
    refused, passed = _decision(summary, sha, 10.0), _decision(summary, sha, 0.1)
    assert not refused.passed
    assert passed.passed
    assert store.write_gate(stored.location, refused).name == "gate.json"
    assert store.write_gate(stored.location, passed).name == "gate.json"
    assert store.read_gate(stored.location).passed
    names = [p.name for p in store.files(stored.location)]
    assert names == ["report.json", "report.html", "gate.json", "ledger.parquet"]
    found = versions(world, BUCKETS["artifacts"], f"{prefix}/reports")
    assert len([k for k in found if "/gates/" in k]) == 2  # both verdicts, neither replaced
    assert all(len(v) == 1 for v in found.values())
    assert all(
        encryption(world, BUCKETS["artifacts"], k) == ("aws:kms", world.data_key) for k in found
    )
    with pytest.raises(dg.Failure, match="is missing"):
        store.read(stored.location.replace("run-1", "run-2"))


YEAR = Window(datetime(2020, 1, 2), datetime(2020, 12, 31))


def _summary() -> BacktestSummary:
    held_out = {
        name: {"sharpe": sharpe, "max_drawdown": 0.05, "turnover": 50.0}
        for name, sharpe in (
            ("challenger", 2.0),
            ("buy_and_hold", 0.9),
            ("flat", 0.0),
            ("momentum", 0.3),
        )
    }
    return BacktestSummary(
        challenger_version="1",
        champion_version=None,
        challenger_run_id="run",
        data_version="md5",
        held_out=YEAR,
        metrics=held_out,
        folds=(
            FoldResult(
                0,
                0,
                YEAR,
                YEAR,
                {"challenger": 2.0, "buy_and_hold": 0.5, "flat": 0.0, "momentum": 0.1},
                0.05,
            ),
        ),
    )


def _decision(summary: BacktestSummary, sha: str, margin: float) -> GateDecision:
    criteria = GateCriteria(baseline_margin=margin)
    return GateDecision(promotion.judge(summary, criteria), sha, "1", None, criteria)


def audit_trail(world, prefix: str) -> S3AuditTrail:
    return S3AuditTrail(
        location=f"s3://{BUCKETS['audit']}/{prefix}",
        kms_key_id=world.audit_key,
        s3=s3_resource(world),
    )


def test_the_audit_log_on_s3_is_chained_locked_and_catches_a_rewrite(world, prefix):
    trail = audit_trail(world, prefix)
    first = trail.append("promotion_gate", "user:alice", {"passed": True})
    second = trail.append("alias_move", "user:alice", {"to_version": "1"})
    assert second["prev"] == first["hash"]
    check = trail.verify()
    assert check.ok, check.problems
    assert (check.records, check.head) == (2, second["hash"])
    s3 = world.s3()
    record_key = f"{prefix}/records/000000000001.json"
    head = s3.head_object(Bucket=BUCKETS["audit"], Key=record_key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", world.audit_key)
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKETS["audit"], Key=record_key, VersionId=head["VersionId"])

    # Someone with write access puts a new version of record 1: caught, the first kept.
    tampered = {**second, "details": {"to_version": "2"}}
    s3.put_object(Bucket=BUCKETS["audit"], Key=record_key, Body=json.dumps(tampered).encode())
    check = trail.verify()
    assert not check.ok
    assert any("records:2: contents edited" in p for p in check.problems), check.problems
    assert any("rewritten" in p for p in check.problems), check.problems
    with pytest.raises(Exception, match="fails verification"):
        trail.append("deploy", "user:alice", {})


def test_concurrent_appends_never_share_a_sequence_number(world, prefix):
    trail = audit_trail(world, prefix)
    errors = []

    def append(n: int) -> None:
        try:
            trail.append("note", f"user:{n}", {"n": n})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    records = trail.records()
    assert [r["seq"] for r in records] == [0, 1, 2, 3]
    assert sorted(r["details"]["n"] for r in records) == [0, 1, 2, 3]
    assert trail.verify().ok


def test_the_prediction_log_is_read_from_the_parts_the_serving_tasks_ship(world, prefix, tmp_path):
    local = tmp_path / "log" / "date=2025-03-04"
    local.mkdir(parents=True)
    rows = prediction_rows(3, "2025-03-04")
    rows.write_parquet(local / "part-abc.parquet")
    store = S3PredictionLogStore(
        location=f"s3://{BUCKETS['predictions']}/{prefix}",
        kms_key_id=world.data_key,
        s3=s3_resource(world),
    )
    assert store.read().height == 0
    shipped = store.ship(tmp_path / "log")
    assert shipped == [f"{prefix}/predictions/date=2025-03-04/part-abc.parquet"]
    assert store.ship(tmp_path / "log") == []  # once
    log = store.read()
    assert log.height == 3
    assert set(log["policy_version"]) == {"1"}
    assert encryption(world, BUCKETS["predictions"], shipped[0]) == ("aws:kms", world.data_key)


def prediction_rows(n: int, day: str, version: str = "1") -> pl.DataFrame:
    """Served decisions as the serving path logs them (every column of the schema)."""
    at = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    values = {}
    for name, dtype in LOG_SCHEMA.items():
        values[name] = pl.Series(name, [None] * n, dtype=dtype)
    frame = pl.DataFrame(values).with_columns(
        pl.Series("request_id", [f"r{i}" for i in range(n)]),
        pl.Series("predicted_at", [at] * n, dtype=LOG_SCHEMA["predicted_at"]),
        pl.Series("bar_timestamp", [at] * n, dtype=LOG_SCHEMA["bar_timestamp"]),
        pl.Series("symbol", ["SYN0"] * n),
        pl.Series("target_position", [0.5] * n),
        pl.Series("policy_version", [version] * n),
        pl.Series("status", ["served"] * n),
        pl.Series("latency_ms", [1.0] * n),
    )
    return frame.select(list(LOG_SCHEMA))


def test_an_s3_market_source_reads_like_a_folder_of_vendor_files(world, prefix, tmp_path):
    folder = write_vendor_per_symbol(
        generate(SyntheticSpec(symbols=2, bars=50, seed=3)), tmp_path / "vendor"
    )
    s3 = world.s3()
    for path in sorted(folder.iterdir()):
        s3.put_object(
            Bucket=BUCKETS["landing"], Key=f"{prefix}/vendor/{path.name}", Body=path.read_bytes()
        )
    source = f"s3://{BUCKETS['landing']}/{prefix}/vendor"
    resource = S3MarketData(source=source, s3=s3_resource(world))
    with dg.build_resources({"market_data": resource}) as built:
        got = built.market_data.bars()
        expected = sources.load_bars(str(folder))
        assert got.sort("symbol", "timestamp").equals(expected.sort("symbol", "timestamp"))
        assert built.market_data.fingerprint() == sources.parse_source(str(folder)).fingerprint()
        # What market_data_sensor reads: each file by its URL, with size and mtime.
        files = sources.parse_source(source).files()
        assert sorted(files) == [f"{source}/{p.name}" for p in sorted(folder.iterdir())]
        assert all(size > 0 and mtime > 0 for size, mtime in files.values())
    s3.put_object(
        Bucket=BUCKETS["landing"], Key=f"{prefix}/bad/X.csv", Body=b"not,a\nvendor,file\n"
    )
    bad = S3MarketData(source=f"s3://{BUCKETS['landing']}/{prefix}/bad", s3=s3_resource(world))
    where = f"s3://{BUCKETS['landing']}/{prefix}/bad/X.csv"
    with (
        dg.build_resources({"market_data": bad}) as built,
        pytest.raises(MarketDataError) as caught,
    ):
        built.market_data.bars()
    assert where in str(caught.value)


def test_prod_secrets_come_from_the_environment_and_name_what_is_missing(monkeypatch):
    monkeypatch.setenv("TRADEOPS_SIGNING_PUBLIC_KEY", "cHVibGlj")
    monkeypatch.setenv("TRADEOPS_SIGNING_KEY", "")
    secrets = EnvSecrets(
        signing_key_pem=dg.EnvVar("TRADEOPS_SIGNING_KEY"),
        public_key_b64=dg.EnvVar("TRADEOPS_SIGNING_PUBLIC_KEY"),
    )
    with dg.build_resources({"secrets": secrets}) as built:
        assert built.secrets.public_key() == "cHVibGlj"
        with pytest.raises(ConfigError, match="TRADEOPS_SIGNING_KEY is empty"):
            built.secrets.signing_key()
        with pytest.raises(ConfigError, match="TRADEOPS_API_TOKEN"):
            built.secrets.api_token()
