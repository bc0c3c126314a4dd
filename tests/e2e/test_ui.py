"""The Dagster UI an auditor opens: a real webserver on loopback, a real browser."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from tests.e2e.conftest import BIN, REPO
from tradeops_assets.cli import MODULE
from tradeops_assets.keys import AUDIT_TRAIL, CHAIN, FEATURE_DRIFT_CHECK, MONITORING

pytestmark = pytest.mark.slow

LINEAGE_QUERY = """
{ assetNodes {
    assetKey { path } groupName description
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
    assetMaterializations(limit: 1) { runId metadataEntries { label } }
} }
"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,900",
    "--virtual-time-budget=20000",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(server: subprocess.Popen, url: str, what: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            assert server.poll() is None, f"{what} exited during start-up"
            assert time.monotonic() < deadline, f"{what} did not come up"
            time.sleep(1)


@contextlib.contextmanager
def webserver(pipe):
    port = int(pipe.extra_env.get("TRADEOPS_UI_PORT") or free_port())
    server = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", MODULE, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=pipe.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/server_info", "dagster-webserver")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def mlflow_ui(pipe):
    """The MLflow UI on the port the pipeline's links name, over the pipeline's own store."""
    url = pipe.extra_env["TRADEOPS_MLFLOW_UI_URL"]
    port = url.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory() as scratch:
        server = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{pipe.home / 'mlflow' / 'mlflow.db'}",
                "--default-artifact-root",
                (pipe.home / "mlflow" / "artifacts").as_uri(),
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--workers",
                "1",
            ],
            cwd=scratch,
            env={**pipe.env, "MLFLOW_TRACKING_URI": ""},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(server, f"{url}/health", "mlflow server")
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def rendered_dom(url: str) -> str:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the UI checks (.ci/run does)")
        pytest.skip("chromium not installed here; .ci/run installs it")
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return out.stdout


@pytest.fixture(scope="module")
def demo_pipeline(tmp_path_factory):
    from tests.e2e.conftest import Pipeline, new_home

    pipe = Pipeline(
        new_home(tmp_path_factory.mktemp("ui")), "synthetic:symbols=2,bars=700,seed=4,reversal=0.5"
    )
    pipe.extra_env["TRADEOPS_MLFLOW_UI_URL"] = f"http://127.0.0.1:{free_port()}"
    pipe.extra_env["TRADEOPS_UI_PORT"] = str(free_port())  # the links MLflow runs carry back
    done = pipe.tradeops("demo")
    try:
        assert done.returncode == 0, done.stderr[-2000:]
        yield pipe
    finally:
        pipe.stop_serving()


def test_ui_serves_the_lineage_checks_and_metadata_auditors_read(demo_pipeline):
    with webserver(demo_pipeline) as base:
        nodes = graphql(base, LINEAGE_QUERY)["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert set(by_key) == set(CHAIN) | set(MONITORING) | {AUDIT_TRAIL}
    assert {by_key[k]["groupName"] for k in MONITORING} == {"monitoring"}
    assert by_key["champion_policy"]["dependencyKeys"] == [{"path": ["backtest_report"]}]
    (gate,) = by_key["backtest_report"]["assetChecksOrError"]["checks"]
    assert gate == {"name": "promotion_gate", "blocking": True}
    features = by_key["market_features"]
    assert features["dependencyKeys"] == [{"path": ["market_bars"]}]
    assert "causal" in features["description"].lower()
    checks = features["assetChecksOrError"]["checks"]
    assert {c["name"] for c in checks} == {
        "features_schema",
        "features_finite",
        "features_no_look_ahead",
    }
    assert all(c["blocking"] for c in checks)
    labels = {e["label"] for e in features["assetMaterializations"][0]["metadataEntries"]}
    assert {"dvc_md5", "git_commit", "upstream_versions", "library_versions"} <= labels
    assert len(by_key["market_bars"]["assetChecksOrError"]["checks"]) == 9


def test_browser_shows_every_bar_check_succeeded_for_the_latest_month(demo_pipeline):
    """Range runs once left every month's check 'Skipped' in the UI; auditors saw no verdict."""
    with webserver(demo_pipeline) as base:
        dom = rendered_dom(f"{base}/assets/market_bars?view=checks")
    for name in ("bars_schema", "bars_finite", "bars_no_gaps", "bars_no_jumps"):
        assert name in dom
    assert dom.count("Succeeded") == 9
    assert "Skipped" not in dom


def test_browser_shows_the_backtest_plots_and_the_gate_verdict(demo_pipeline):
    query = """{ assetOrError(assetKey: {path: ["backtest_report"]}) { ... on Asset {
        assetMaterializations(limit: 1) { metadataEntries {
            label ... on MarkdownMetadataEntry { mdStr } } } } } }"""
    with webserver(demo_pipeline) as base:
        report = rendered_dom(f"{base}/assets/backtest_report")
        checks = rendered_dom(f"{base}/assets/backtest_report?view=checks")
        data = graphql(base, query)["assetOrError"]["assetMaterializations"][0]
    markdown = {e["label"]: e.get("mdStr") for e in data["metadataEntries"]}
    # Equity vs baselines, drawdown and positions: inline PNGs the UI's markdown view shows.
    assert markdown["plots"].count("](data:image/png;base64,") == 3
    assert "| buy_and_hold |" in markdown["metrics"]
    assert "plots" in report
    assert "Show Markdown" in report
    assert "promotion_gate" in checks
    assert "Succeeded" in checks


def test_browser_shows_the_automations_and_the_feature_drift_plot(demo_pipeline):
    """The loop is visible where operators look: sensors and schedules, and the drift plot."""
    query = """{ assetOrError(assetKey: {path: ["feature_drift"]}) { ... on Asset {
        assetMaterializations(limit: 1) { partition metadataEntries {
            label ... on MarkdownMetadataEntry { mdStr } } } } } }"""
    with webserver(demo_pipeline) as base:
        automation = rendered_dom(f"{base}/automation")
        drift_page = rendered_dom(f"{base}/assets/feature_drift")
        checks = rendered_dom(f"{base}/assets/feature_drift?view=checks")
        (latest,) = graphql(base, query)["assetOrError"]["assetMaterializations"]
    for name in (
        "market_data_sensor",
        "automation_sensor",
        "drift_sensor",
        "run_failure_sensor",
        "nightly_monitoring_schedule",
        "nightly_retrain_schedule",
    ):
        assert name in automation, name
    assert "No automations" not in automation
    assert latest["partition"]
    markdown = {e["label"]: e.get("mdStr") for e in latest["metadataEntries"]}
    # PSI per feature and the worst feature's two distributions, inline PNGs.
    assert markdown["plots"].count("](data:image/png;base64,") >= 2
    assert markdown["market_drift"].startswith("| feature | PSI | KS | Wasserstein |")
    assert "plots" in drift_page
    assert FEATURE_DRIFT_CHECK in checks


def test_browser_walks_from_the_deployment_to_the_mlflow_run_and_reads_the_audit_trail(
    demo_pipeline,
):
    """An auditor's walk: the deployed asset's link into MLflow, the model version's source
    run, and back; and the audit trail where the assets are, with no CLI."""
    with webserver(demo_pipeline) as base:
        deployment = rendered_dom(f"{base}/assets/policy_deployment")
        trail = rendered_dom(f"{base}/assets/audit_trail")
    link = re.search(
        r'href="(http://127\.0\.0\.1:\d+/#/models/tradeops-policy/versions/1)"', deployment
    )
    assert link, "policy_deployment shows no link to its MLflow model version"
    assert "manual override" not in deployment
    assert "promotion_gate passed" in deployment  # the authority it went live on
    with mlflow_ui(demo_pipeline) as ui:
        version_page = rendered_dom(link[1])
        run = re.search(r'href="[^"]*(#/experiments/\d+/runs/[0-9a-f]{32})"', version_page)
        assert run, "the model version page links no source run"
        run_page = rendered_dom(f"{ui}/{run[1]}")
    assert "trained_policy v1 (user:" in run_page
    assert "dagster_run_url" in run_page
    assert f"{base}/runs/" in run_page  # the way back to the Dagster run that trained it
    assert "audit_trail" in trail
    for shown in ("latest_records", "chain", "intact", "deploy_requested", "promotion_gate"):
        assert shown in trail, shown
