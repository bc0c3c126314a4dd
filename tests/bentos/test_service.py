"""The served bento end to end: real ``bentoml serve``, real HTTP, real prediction log."""

import copy
import json
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from resources.serving import DeployError
from tradeops_assets.core import signing
from tradeops_assets.core.prediction_log import read_log

from .conftest import Server, package, request_for, server_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bento")]
SYMBOL = "SYN0001"


@pytest.fixture
def good(served) -> dict:
    return request_for(served.bars, SYMBOL, 100, position=0.5)


def logged_ids(served, wait_for: set[str] = frozenset(), timeout: float = 15) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = set(read_log(served.log_dir)["request_id"].to_list())
        if wait_for <= ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


def test_predict_answers_a_target_position_with_its_provenance(served, good):
    with served.client() as client:
        response = client.post("/predict", json=good)
    assert response.status_code == 200, response.text
    body = response.json()
    assert -1.0 <= body["target_position"] <= 1.0
    assert body["policy_version"] == "7"
    assert body["bento_tag"] == served.bento_tag
    logged = read_log(served.log_dir)
    ids = logged_ids(served, {body["request_id"]})
    assert body["request_id"] in ids
    row = read_log(served.log_dir).filter(pl.col("request_id") == body["request_id"])
    assert row["symbol"].item() == SYMBOL
    assert row["target_position"].item() == pytest.approx(body["target_position"])
    assert row["position"].item() == 0.5
    assert row["latency_ms"].item() > 0
    assert logged.columns[:9] == [
        "request_id",
        "predicted_at",
        "bar_timestamp",
        "symbol",
        "position",
        "target_position",
        "policy_version",
        "bento_tag",
        "latency_ms",
    ]


def test_predict_batch_of_100_matches_single_predictions(served):
    requests = [
        request_for(served.bars, f"SYN000{i % 3}", 80 + i % 7, position=(i % 5) / 5 - 0.4)
        for i in range(100)
    ]
    with served.client() as client:
        batch = client.post("/predict_batch", json={"requests": requests})
        bare = client.post("/predict_batch", json=requests[:3])
        singles = [client.post("/predict", json=r).json() for r in requests[:5]]
    assert batch.status_code == 200, batch.text
    answers = batch.json()
    assert len(answers) == 100
    assert len({a["request_id"] for a in answers}) == 100
    for single, answer in zip(singles, answers, strict=False):
        assert answer["target_position"] == pytest.approx(single["target_position"], abs=1e-6)
    assert [a["target_position"] for a in bare.json()] == pytest.approx(
        [a["target_position"] for a in answers[:3]], abs=1e-6
    )
    ids = {a["request_id"] for a in answers}
    assert ids <= logged_ids(served, ids)


def test_metadata_tells_the_lineage(served):
    with served.client() as client:
        meta = client.get("/metadata").json()
    assert meta["policy_version"] == "7"
    assert meta["lineage"]["data_version"] == "md5:test"
    assert meta["bento_tag"] == served.bento_tag
    assert meta["min_bars"] == 80
    assert meta["env"]["window"] == 16


def _mutate(request: dict, path: str, value) -> dict:
    bad = copy.deepcopy(request)
    target, *keys = path.split(".")
    node = bad
    parts = [target, *keys]
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return bad


_DELETE = object()
BAD_INPUTS = [
    ("bars.3.close", float("nan"), "bars[3].close"),
    ("bars.5.volume", float("inf"), "bars[5].volume"),
    ("bars.7.low", 0.0, "bars[7].low"),
    ("bars.9.open", -3.0, "bars[9].open"),
    ("bars.11.high", 1e-3, "bars[11]"),
    ("bars.12.close", "101.5", "bars[12].close"),
    ("bars.13.volume", None, "bars[13].volume"),
    ("bars.14.open", True, "bars[14].open"),
    ("bars.15.close", _DELETE, "bars[15].close"),
    ("bars.16", [1, 2, 3], "bars[16]"),
    ("bars.20.timestamp", "2015-01-02T00:00:00", "bars[20].timestamp"),
    ("bars.30.timestamp", "yesterday", "bars[30].timestamp"),
    ("bars.31.timestamp", 1.7e12, "bars[31].timestamp"),
    ("position", 1.5, "position"),
    ("position", "long", "position"),
    ("position", _DELETE, "position"),
    ("symbol", "NOPE", "symbol"),
    ("symbol", 42, "symbol"),
    ("bars", {"open": 1}, "bars"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_invalid_input_gets_4xx_naming_the_field_and_no_prediction(
    served, good, path, value, field
):
    bad = _mutate(good, path, value)
    body = json.dumps(bad)  # NaN and Infinity as the literals many clients send
    with served.client() as client:
        single = client.post("/predict", content=body, headers={"content-type": "application/json"})
        batch = client.post(
            "/predict_batch",
            content=json.dumps({"requests": [good, bad]}),
            headers={"content-type": "application/json"},
        )
    assert single.status_code == 422, single.text
    assert single.json()["field"] == field
    assert single.json()["error"] == "invalid_request"
    assert "target_position" not in single.text
    assert batch.status_code == 422, batch.text
    assert batch.json()["field"] == f"requests[1].{field}"


def test_size_and_shape_limits(served, good):
    short = _mutate(good, "bars", good["bars"][:79])
    with served.client() as client:
        too_short = client.post("/predict", json=short)
        not_json = client.post("/predict", content=b"{oops")
        huge = client.post("/predict", json=_mutate(good, "bars", good["bars"] * 50))
        big_batch = client.post("/predict_batch", json={"requests": [{}] * 1001})
        empty = client.post("/predict_batch", json={"requests": []})
        wrong_root = client.post("/predict_batch", json={"reqs": [good]})
    assert too_short.status_code == 422
    assert too_short.json()["field"] == "bars"
    assert "80" in too_short.json()["reason"]
    assert not_json.status_code == 422
    assert not_json.json()["field"] == "body"
    assert huge.status_code == 413
    assert huge.json()["field"] == "bars"
    assert big_batch.status_code == 413
    assert big_batch.json()["field"] == "requests"
    assert empty.status_code == 422
    assert wrong_root.status_code == 422


def test_invalid_requests_are_never_logged(served, good):
    """Refused requests carry a position no valid request sends; none of it may be logged."""
    marked = {**good, "position": -0.123456}
    with served.client() as client:
        for path in ("bars.3.close", "bars.4.high", "bars.5.volume"):
            refused = client.post("/predict", json=_mutate(marked, path, -1.0))
            assert refused.status_code == 422
        ok = client.post("/predict", json={**good, "position": 0.654321}).json()["request_id"]
    assert ok in logged_ids(served, {ok})  # the log has caught up with the valid request
    logged = read_log(served.log_dir)
    assert logged.filter(pl.col("position") == -0.123456).height == 0
    assert logged.filter(pl.col("request_id") == ok)["position"].to_list() == [0.654321]
    assert logged.filter(pl.col("target_position").is_null()).height == 0


def test_auth_is_required_except_for_probes(served, good):
    import httpx

    with httpx.Client(base_url=served.url) as anonymous, served.client("wrong") as wrong:
        for client in (anonymous, wrong):
            for method, path in (("POST", "/predict"), ("POST", "/predict_batch")):
                response = client.request(method, path, json=good)
                assert response.status_code == 401
                assert response.json()["error"] == "unauthorized"
            assert client.get("/metadata").status_code == 401
        for probe in ("/healthz", "/livez", "/readyz", "/metrics"):
            assert anonymous.get(probe).status_code == 200, probe


def _refuses(server: Server, reason: str) -> None:
    try:
        ready = server.wait_ready(timeout=90)
        code = server.wait_exit(timeout=60) if not ready else None
        text = server.log_text()
        assert not ready, text[-3000:]
        assert code not in (None, 0), text[-3000:]
        assert reason in text, text[-3000:]
    finally:
        server.stop()


def copy_of_model(packaged: dict, bento_home: Path, keypair, log: Path, name: str):
    """A copy of the packaged model under a new version, and the env that serves it."""
    model_dir = bento_home / "models" / "trading_policy"
    version = packaged["model_tag"].split(":")[1]
    copy = model_dir / name
    shutil.copytree(model_dir / version, copy)
    (copy / "model.yaml").write_text((copy / "model.yaml").read_text().replace(version, name))
    env = server_env(
        bento_home, keypair.public_b64, log, TRADEOPS_POLICY_MODEL=f"trading_policy:{name}"
    )
    return copy / "bundle", env


def test_a_tampered_bundle_is_refused(packaged, bento_home, keypair, tmp_path):
    bundle, env = copy_of_model(packaged, bento_home, keypair, tmp_path / "log", "tampered0001")
    lineage = bundle / "lineage.json"
    lineage.write_text(lineage.read_text().replace('"7"', '"8"'))
    _refuses(Server(packaged["bento_tag"], env), "modified after signing")


def test_a_missing_signature_or_key_is_refused(packaged, bento_home, keypair, tmp_path):
    other = signing.DevKeypair.generate().public_b64
    _refuses(
        Server(packaged["bento_tag"], server_env(bento_home, other, tmp_path / "a")),
        "does not verify with the configured key",
    )
    _refuses(
        Server(
            packaged["bento_tag"],
            server_env(bento_home, "", tmp_path / "b"),
        ),
        "TRADEOPS_SIGNING_PUBLIC_KEY is not set",
    )
    bundle, env = copy_of_model(packaged, bento_home, keypair, tmp_path / "c", "unsigned0001")
    (bundle / signing.SIGNATURE_FILE).unlink()
    _refuses(Server(packaged["bento_tag"], env), "is not signed")


def test_no_token_configured_is_refused(packaged, bento_home, keypair, tmp_path):
    env = server_env(bento_home, keypair.public_b64, tmp_path / "log", TRADEOPS_API_TOKEN="")
    _refuses(Server(packaged["bento_tag"], env), "TRADEOPS_API_TOKEN is not set")


def test_package_builds_offline_with_the_model_pinned(packaged, bento_home):
    import yaml

    bento_dir = bento_home / "bentos" / "trading_policy" / packaged["bento_tag"].split(":")[1]
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [m["tag"] for m in info["models"]] == [packaged["model_tag"]]
    assert (bento_dir / "src" / "tradeops_assets" / "core" / "features.py").is_file()
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.38" in requirements


def test_package_refuses_an_invalid_bundle(bento_home, keypair, tmp_path, policy_bundle):
    broken = tmp_path / "broken"
    shutil.copytree(policy_bundle[0], broken)
    (broken / "normaliser.json").unlink()
    with pytest.raises(DeployError, match="lacks"):
        package(bento_home, broken, keypair, tmp_path, "--no-bento")


def test_the_served_features_and_action_are_the_training_pipelines(served, policy_bundle, good):
    """Over real HTTP: what the service logs and answers is what training computes."""
    from tests.core.test_serving import pipeline_decision
    from tradeops_assets.core.bundle import PolicyBundle

    bundle = PolicyBundle.load(policy_bundle[0])
    bars = served.bars.filter(pl.col("symbol") == SYMBOL).head(102)
    features, action = pipeline_decision(bundle, bars, 99, position=0.5)
    with served.client() as client:
        body = client.post("/predict", json=good).json()
    assert body["target_position"] == pytest.approx(action, abs=1e-6)
    assert body["request_id"] in logged_ids(served, {body["request_id"]})
    row = read_log(served.log_dir).filter(pl.col("request_id") == body["request_id"])
    served_features = row.select(list(bundle.recipe.feature_columns)).to_numpy()[0]
    assert served_features == pytest.approx(features, rel=1e-9, abs=1e-12)
