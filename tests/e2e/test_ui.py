"""The Dagster UI an auditor opens: a real webserver on loopback, queried like the UI does."""

import socket
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.conftest import BIN, MODULE, REPO

pytestmark = pytest.mark.slow

LINEAGE_QUERY = """
{ assetNodes {
    assetKey { path } groupName description
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
    assetMaterializations(limit: 1) { runId metadataEntries { label } }
} }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url: str, query: str) -> dict:
    import json

    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_ui_serves_the_lineage_checks_and_metadata_auditors_read(make_pipeline):
    pipe = make_pipeline("synthetic:symbols=2,bars=150,seed=4")
    assert pipe.tradeops("demo").returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", MODULE, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=pipe.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "dagster-webserver exited during start-up"
                assert time.monotonic() < deadline, "dagster-webserver did not come up"
                time.sleep(1)
        nodes = post_json(f"http://127.0.0.1:{port}/graphql", LINEAGE_QUERY)["data"]["assetNodes"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert set(by_key) == {"market_bars", "market_features"}
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
