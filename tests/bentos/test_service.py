"""The served bento end to end: real ``bentoml serve``, real HTTP, real prediction log."""

import copy
import json
import shutil
import time
from collections import Counter

import polars as pl
import pytest

from resources.serving import DeployError
from tradeops_assets.core.prediction_log import read_log

from .conftest import package, request_for

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


def test_an_arrow_batch_gets_the_json_batchs_decisions_and_its_refusals(served):
    from tradeops_assets.core import request_arrow

    requests = [
        request_for(served.bars, f"SYN000{i % 3}", 80 + i % 9, position=(i % 5) / 5 - 0.4)
        for i in range(40)
    ]
    arrow = {"content-type": request_arrow.MEDIA_TYPE}
    body = request_arrow.encode(requests)
    broken = copy.deepcopy(requests)
    broken[7]["bars"][20]["close"] = -1.0
    with served.client() as client:
        by_json = client.post("/predict_batch", json={"requests": requests})
        by_arrow = client.post("/predict_batch", content=body, headers=arrow)
        refused = client.post("/predict_batch", content=request_arrow.encode(broken), headers=arrow)
        not_here = client.post("/predict", content=body, headers=arrow)
        compressed = client.post(
            "/predict_batch", content=body, headers={**arrow, "content-encoding": "zstd"}
        )
    assert by_arrow.status_code == 200, by_arrow.text
    assert [a["target_position"] for a in by_arrow.json()] == [
        a["target_position"] for a in by_json.json()
    ]
    assert refused.status_code == 422
    assert refused.json()["field"] == "requests[7].bars.close[20]"
    assert not_here.status_code == 415
    assert "application/json" in not_here.json()["reason"]
    assert compressed.status_code == 415
    ids = {a["request_id"] for a in by_arrow.json()}
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
    ("bars.8.timestamp", "now", "bars[8].timestamp"),
    ("bars.9.timestamp", "today", "bars[9].timestamp"),
    ("bars.10.vwap", 101.0, "bars[10].vwap"),
    ("leverage", 10, "leverage"),
    ("symbol", "X" * 33, "symbol"),
    ("symbol", "SYN0001\u0000", "symbol"),
    ("bars.17.volume", 10**400, "bars[17].volume"),
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
        not_json = client.post(
            "/predict", content=b"{oops", headers={"content-type": "application/json"}
        )
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


def test_invalid_requests_are_logged_as_refused_never_as_decisions(served, good):
    """Refused requests carry a position no valid request sends: none is a decision, each
    is a refusal with its client, status and reason."""
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
    everything = read_log(served.log_dir, include_refused=True)
    refusals = everything.filter(
        (pl.col("status") == "refused") & pl.col("reason").str.starts_with("bars[")
    )
    assert refusals.height >= 3
    assert set(refusals["client"].to_list()) == {"default"}
    assert set(refusals["http_status"].to_list()) == {422}
    assert refusals["target_position"].null_count() == refusals.height


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


def raw_post(served, path: str, body: bytes, **headers: str):
    import httpx

    with httpx.Client(base_url=served.url, timeout=30) as client:
        return client.post(
            path,
            content=body,
            headers={"authorization": f"Bearer {served.token}", **headers},
        )


def test_input_is_bounded_before_any_work(served, good):
    import gzip

    body = json.dumps(good).encode()
    bomb = gzip.compress(b"[" + b" " * 20_000_000 + b"]")  # 20 MB of JSON in ~20 KB
    cases = {
        "gzip": raw_post(
            served,
            "/predict",
            bomb,
            **{"content-type": "application/json", "content-encoding": "gzip"},
        ),
        "text": raw_post(served, "/predict", body, **{"content-type": "text/plain"}),
        "form": raw_post(
            served, "/predict", body, **{"content-type": "application/x-www-form-urlencoded"}
        ),
        "none": raw_post(served, "/predict", body),
    }
    assert cases["gzip"].status_code == 415
    assert cases["gzip"].json()["error"] == "unsupported_encoding"
    for name in ("text", "form", "none"):
        assert cases[name].status_code == 415, name
    import socket

    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {served.token}\r\n".encode()
            + b"content-length: 1000000000\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")  # refused before any body byte

    def chunks():
        for _ in range(40):
            yield b" " * 1_000_000

    import httpx

    with httpx.Client(base_url=served.url, timeout=60) as client:
        meta = client.get("/metadata", headers={"authorization": f"Bearer {served.token}"})
        limit = meta.json()["limits"]["max_body_bytes"]
        chunked = client.post(
            "/predict",
            content=chunks(),
            headers={"authorization": f"Bearer {served.token}", "content-type": "application/json"},
        )
    assert 1_000_000 < limit < 40_000_000
    assert chunked.status_code == 413, chunked.text  # no content-length, still bounded
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = raw_post(served, "/predict", deep, **{"content-type": "application/json"})
    assert nested.status_code == 422, nested.text
    with served.client() as client:
        assert client.post("/predict", json=good).status_code == 200


def test_extreme_prices_get_a_422_and_never_a_nan_decision(served, good):
    extreme = copy.deepcopy(good)
    for i, bar in enumerate(extreme["bars"]):
        scale = 1e300 if i % 2 else 1e-300
        for key in ("open", "high", "low", "close"):
            bar[key] = bar[key] * scale
        bar["volume"] = 1e308
    marked = {**extreme, "position": -0.987654}
    with served.client() as client:
        single = client.post("/predict", json=marked)
        batch = client.post("/predict_batch", json={"requests": [good, marked]})
        after = client.post("/predict", json=good)
    assert single.status_code == 422, single.text
    assert "beyond float range" in single.json()["reason"]
    assert batch.status_code == 422
    assert batch.json()["field"] == "requests[1].bars"
    assert after.status_code == 200
    rid = after.json()["request_id"]
    logged_ids(served, {rid})
    served_rows = read_log(served.log_dir)
    assert served_rows.filter(pl.col("position") == -0.987654).height == 0
    assert served_rows["target_position"].is_nan().sum() == 0


def test_named_clients_are_logged_and_revoked_without_a_redeploy(served, good):
    """Every call on a new connection, so that every worker answers some: a worker that
    saw no traffic while a client was added must know it too when a bad edit lands."""
    from tradeops_assets.core import tokens

    from .conftest import DESK_TOKEN

    def post(token: str):
        with served.client(token) as client:
            return client.post("/predict", json=good)

    desk_b = "desk-b-token-" + "x" * 30
    answer = post(DESK_TOKEN)
    assert answer.status_code == 200
    tokens.write_tokens(served.tokens_file, {"desk-a": DESK_TOKEN, "desk-b": desk_b})
    b_answer = _until(lambda: post(desk_b), 200)
    logged_ids(served, {answer.json()["request_id"], b_answer.json()["request_id"]})
    log = read_log(served.log_dir)
    by_id = dict(zip(log["request_id"].to_list(), log["client"].to_list(), strict=True))
    assert by_id[answer.json()["request_id"]] == "desk-a"
    assert by_id[b_answer.json()["request_id"]] == "desk-b"
    time.sleep(2.5)  # every worker past its next reload, busy or not
    tokens.write_tokens(served.tokens_file, {"desk-b": desk_b})  # desk-a revoked
    _until(lambda: post(DESK_TOKEN), 401)
    time.sleep(2.5)
    assert {post(DESK_TOKEN).status_code for _ in range(12)} == {401}
    served.tokens_file.write_text("{not json")  # a bad edit keeps the tokens in force
    time.sleep(2.5)
    assert {post(desk_b).status_code for _ in range(12)} == {200}
    assert {post(DESK_TOKEN).status_code for _ in range(12)} == {401}
    with served.client() as client:
        metrics = client.get("/metrics").text
    assert "tradeops_token_reload_failures_total" in metrics
    assert "tradeops_token_reload_failures_total 0.0" not in metrics
    tokens.write_tokens(served.tokens_file, {"desk-a": DESK_TOKEN})
    _until(lambda: post(DESK_TOKEN), 200)
    time.sleep(2.5)


def test_concurrent_single_calls_are_each_logged_as_their_own(served):
    """Single calls decided in one batch are logged together (one queue item a turn):
    each row must still be its own caller's, with its own position and answer."""
    from concurrent.futures import ThreadPoolExecutor

    from .conftest import DESK_TOKEN

    calls = [(k, DESK_TOKEN if k % 2 else served.token) for k in range(64)]
    positions = {k: round(-0.9 + 0.025 * k, 3) for k, _ in calls}

    def post(call):
        k, token = call
        body = request_for(served.bars, f"SYN{k % 3:04d}", 100, position=positions[k])
        with served.client(token) as client:
            return k, client.post("/predict", json=body)

    with ThreadPoolExecutor(32) as pool:
        answers = dict(pool.map(post, calls))
    assert {r.status_code for r in answers.values()} == {200}
    by_id = {r.json()["request_id"]: k for k, r in answers.items()}
    logged_ids(served, set(by_id))
    rows = read_log(served.log_dir).filter(pl.col("request_id").is_in(list(by_id)))
    assert rows.height == len(by_id)
    for row in rows.iter_rows(named=True):
        k = by_id[row["request_id"]]
        assert row["client"] == ("desk-a" if k % 2 else "default")
        assert row["symbol"] == f"SYN{k % 3:04d}"
        assert row["position"] == positions[k]
        assert row["target_position"] == answers[k].json()["target_position"]
        assert row["latency_ms"] > 0


def _until(call, status: int, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response
        time.sleep(0.2)


def test_random_paths_and_anonymous_calls_create_no_metric_series(served, good):
    import uuid

    import httpx

    marker = uuid.uuid4().hex[:12]
    with httpx.Client(base_url=served.url, timeout=30) as anonymous:
        for i in range(300):
            anonymous.get(f"/{marker}-{i}")
            anonymous.post("/predict", json=good)
        before = anonymous.get("/metrics").text
        for i in range(300, 600):
            anonymous.get(f"/{marker}-{i}", headers={"authorization": f"Bearer {served.token}"})
        after = anonymous.get("/metrics").text
    assert marker not in after
    series = [line for line in after.splitlines() if line and not line.startswith("#")]
    assert len(series) < 400, len(series)
    assert 'reason="not_found"' in after
    assert 'reason="unauthorized"' in after
    assert abs(len(after) - len(before)) < 2_000  # 300 more paths: counters move, no new series


def test_a_second_bento_on_the_same_home_keeps_the_first_ones_counters(
    served, packaged, bento_home, keypair, tmp_path
):
    """BentoML wipes its Prometheus directory at every start, one per BENTOML_HOME: the
    new bento of a rollout erased the live one's counters (and flaked the test above)."""
    import re

    import httpx

    from .conftest import Server, server_env

    def not_found(url: str) -> float:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        found = re.search(r'tradeops_refused_requests_total\{reason="not_found"\} (\S+)', text)
        return float(found.group(1)) if found else 0.0

    for i in range(5):
        httpx.get(f"{served.url}/missing-{i}", timeout=30)
    before = not_found(served.url)
    assert before >= 5
    env = server_env(bento_home, keypair.public_b64, tmp_path / "predictions")
    second = Server(packaged["bento_tag"], env)
    try:
        assert second.wait_ready(), second.log_text()[-3000:]
        assert not_found(served.url) == before
        httpx.get(f"{second.url}/missing", timeout=30)
        assert not_found(second.url) == 1.0
        assert not_found(served.url) == before
    finally:
        second.stop()
    assert not_found(served.url) == before


def test_overload_sheds_fast_with_retry_after(packaged, bento_home, keypair, tmp_path, good):
    """One slow upload holds the only slot; the next caller gets 503 at once, not a queue."""
    import socket

    import httpx

    from .conftest import TOKEN, Server, server_env

    env = server_env(
        bento_home,
        keypair.public_b64,
        tmp_path / "log",
        TRADEOPS_MAX_IN_FLIGHT="1",
        TRADEOPS_SERVE_WORKERS="1",
    )
    server = Server(packaged["bento_tag"], env)
    try:
        assert server.wait_ready(), server.log_text()[-3000:]
        body = json.dumps(good).encode()
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(
            b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {TOKEN}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body[:100]
        )
        headers = {"authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
            shed = _until(lambda: client.post("/predict", json=good), 503)
            assert shed.headers["retry-after"] == "1"
            assert shed.json()["error"] == "overloaded"
            slow.sendall(body[100:])
            assert b"200 OK" in slow.recv(65536)
            slow.close()
            assert client.post("/predict", json=good).status_code == 200
    finally:
        server.stop()


def fuzz(url: str, token: str, good: dict, n: int) -> Counter:
    """Sends ``n`` generated bad requests; each must get a 4xx. Returns statuses seen."""
    import httpx

    from .fuzz import cases

    auth = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        limits = client.get("/metadata", headers=auth).json()["limits"]
        seen: Counter = Counter()
        for case in cases(good, limits, n):
            headers = {**(auth if case.authorised else {}), **case.headers}
            response = client.request(case.method, case.path, content=case.body, headers=headers)
            assert 400 <= response.status_code < 500, (
                case.category,
                case.body[:300],
                response.status_code,
                response.text[:300],
            )
            assert "target_position" not in response.text
            seen[response.status_code] += 1
    return seen


def test_a_thousand_generated_bad_requests_get_4xx_and_change_nothing(served, good):
    with served.client() as client:
        before = client.post("/predict", json=good).json()
    seen = fuzz(served.url, served.token, good, 1200)
    with served.client() as client:
        after = client.post("/predict", json=good).json()
    assert sum(seen.values()) == 1200
    assert {401, 404, 405, 413, 415, 422} <= set(seen), seen
    assert after["target_position"] == before["target_position"]
    assert (after["policy_version"], after["bento_tag"]) == (
        before["policy_version"],
        before["bento_tag"],
    )
