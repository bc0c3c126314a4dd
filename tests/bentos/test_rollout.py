"""policy_deployment's swap, run for real: two bentos, the front door, traffic throughout."""

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from resources.frontdoor import SPARE_FILE
from resources.serving import DeployError, LocalServing, alive, free_port, running
from tests.bentos.conftest import TOKEN, package, request_for, secrets_of
from tradeops_assets.core import signing

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bento")]


@pytest.fixture(scope="module")
def second_bento(policy_bundle, bento_home, keypair, tmp_path_factory) -> dict:
    """The same policy relabelled as model version 8: what a new champion looks like."""
    tmp = tmp_path_factory.mktemp("v8")
    bundle = shutil.copytree(policy_bundle[0], tmp / "bundle")
    lineage = json.loads((bundle / "lineage.json").read_text())
    (bundle / "lineage.json").write_text(json.dumps({**lineage, "model_version": "8"}))
    return package(bento_home, bundle, keypair, tmp, "--label", "model_version=8")


@pytest.fixture
def target(bento_home, keypair, tmp_path):
    serving = LocalServing(
        root=str(tmp_path / "serving"),
        port=free_port(),
        secrets=secrets_of(keypair, tmp_path / "keys"),
        prediction_log=str(tmp_path / "predictions"),
        bentoml_home=str(bento_home),
    )
    yield serving
    serving.stop()


class Traffic:
    """Traders calling /predict through the front door on several connections at once."""

    def __init__(self, url: str, body: dict, connections: int = 6) -> None:
        self.url, self.body = url, body
        self.statuses: Counter[int] = Counter()
        self.versions: list[str] = []
        self.started: list[float] = []  # when each answered request was sent
        self.errors: list[str] = []  # no answer at all
        self.failed: list[str] = []  # answers other than 200, with their reasons
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(connections)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = client.post("/predict", json=self.body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        self.versions.append(answer.json()["policy_version"])
                        self.started.append(sent)
                    else:
                        self.failed.append(f"{answer.status_code}: {answer.text[:300]}")

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_for(self, answered: int, timeout: float = 60) -> None:
        """Until ``answered`` requests have come back 200, or fail saying how far it got."""
        deadline = time.monotonic() + timeout
        while len(self.versions) < answered:
            assert time.monotonic() < deadline, (
                f"{len(self.versions)} of {answered} answers after {timeout:.0f} s; "
                f"statuses {dict(self.statuses)}, failed {self.failed[:3]}, "
                f"errors {self.errors[:3]}"
            )
            time.sleep(0.01)


def test_a_new_bento_replaces_the_old_under_load_without_a_failed_request(
    target, packaged, second_bento, policy_bundle
):
    first = target.deploy(packaged["bento_tag"], "first champion", {})
    body = request_for(policy_bundle[1], "SYN0000", 100)
    with Traffic(target.url, body, connections=64) as traffic:
        traffic.wait_for(200)
        second = target.deploy(second_bento["bento_tag"], "new champion v8", {})
        switched = time.monotonic()
        traffic.wait_for(len(traffic.versions) + 200)
    assert traffic.errors == []
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert traffic.versions[0] == "7"
    assert traffic.versions[-1] == "8"
    after = {v for v, t in zip(traffic.versions, traffic.started, strict=True) if t > switched}
    assert after == {"8"}  # every request sent after the swap reached the new bento
    assert not alive(first["bento_pid"])  # drained, then stopped by its PID
    assert second["previous_bento_tag"] == packaged["bento_tag"]
    assert target.current()["why"] == "new champion v8"


def test_only_bentos_signed_by_the_trusted_key_are_deployed(
    target, packaged, policy_bundle, bento_home, tmp_path
):
    target.deploy(packaged["bento_tag"], "champion", {})
    stranger = signing.DevKeypair.generate()
    forged = package(bento_home, policy_bundle[0], stranger, tmp_path)
    with pytest.raises(DeployError, match=r"refusing to deploy .*(does not verify|trusted key)"):
        target.deploy(forged["bento_tag"], "forged", {})
    assert target.current()["bento_tag"] == packaged["bento_tag"]
    answer = httpx.post(
        f"{target.url}/predict",
        json=request_for(policy_bundle[1], "SYN0001", 100),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200


def test_a_bento_failing_its_health_check_is_rolled_back(target, packaged, second_bento):
    """A signed bento that cannot start (here: a batch limit of 0 is refused at start-up)
    never gets traffic; the live one keeps serving and the refusal says why."""
    first = target.deploy(packaged["bento_tag"], "champion", {})
    misconfigured = target.model_copy(update={"max_batch": 0})
    with pytest.raises(DeployError, match=r"failed its health check .* rolled back") as err:
        misconfigured.deploy(second_bento["bento_tag"], "cannot start", {})
    assert "TRADEOPS_MAX_BATCH='0' must be >= 1" in str(err.value)
    assert target.current()["bento_tag"] == packaged["bento_tag"]
    assert alive(first["bento_pid"])
    status = target.front_door_status()
    assert status["backend"]["port"] == first["bento_port"]


def test_concurrent_deploys_run_one_after_another(target, packaged, second_bento):
    """Two deploys at once: the second waits for the first and replaces what it deployed."""
    records: list[dict] = []
    errors: list[Exception] = []

    def deploy(tag: str, why: str) -> None:
        try:
            records.append(target.deploy(tag, why, {}))
        except Exception as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=deploy, args=(packaged["bento_tag"], "one")),
        threading.Thread(target=deploy, args=(second_bento["bento_tag"], "other")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    first, second = records
    assert first["previous_bento_tag"] is None
    assert second["previous_bento_tag"] == first["bento_tag"]
    assert second["front_door_pid"] == first["front_door_pid"]
    assert not running(first["bento_pid"], first["bento_start"])
    assert target.is_serving(second["bento_tag"])
    assert target.front_door_status()["backend"]["port"] == second["bento_port"]
    assert target.current() == second


def test_a_deployment_is_bounded_at_its_door_and_stopped_whole(target, packaged, policy_bundle):
    small = target.model_copy(update={"max_body_bytes": 100_000})
    record = small.deploy(packaged["bento_tag"], "champion", {})
    processes = [tuple(p) for p in record["bento_processes"]]
    assert (record["bento_pid"], record["bento_start"]) in processes
    assert all(running(pid, start) for pid, start in processes)
    assert httpx.get(f"{small.url}/_frontdoor").status_code == 404
    assert small.front_door_status()["limits"]["max_body_bytes"] == 100_000
    body = request_for(policy_bundle[1], "SYN0001", 100)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    too_big = httpx.post(
        f"{small.url}/predict", json={**body, "bars": body["bars"] * 10}, headers=headers
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "payload_too_large"  # the door's answer
    assert httpx.post(f"{small.url}/predict", json=body, headers=headers).status_code == 200
    assert 413 not in small.request_counts()  # the bento never saw the big one
    small.stop()
    assert not any(running(pid, start) for pid, start in processes)
    assert not running(record["front_door_pid"], record["front_door_start"])


def spare_of(target: LocalServing, timeout: float = 120) -> dict:
    """The supervisor's spare, once ready."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            spare = json.loads((target.folder / SPARE_FILE).read_text())
            if spare.get("ready") and spare["bento_tag"] == target.current()["bento_tag"]:
                return spare
        assert time.monotonic() < deadline, "no spare got ready"
        time.sleep(0.2)


def kill_whole(pid: int) -> None:
    """SIGKILL a bento and every process it started (its workers leave its group)."""
    import psutil

    arbiter = psutil.Process(pid)
    for process in [*arbiter.children(recursive=True), arbiter]:
        os.kill(process.pid, signal.SIGKILL)


@pytest.mark.parametrize("spare", [False, True], ids=["cold", "spare"])
def test_a_bento_that_dies_is_started_again_by_the_front_door(
    target, packaged, policy_bundle, spare
):
    target = target.model_copy(update={"spare": spare})  # the fixture stops the same folder
    record = target.deploy(packaged["bento_tag"], "champion", {})
    standby = spare_of(target) if spare else None
    os.kill(record["bento_pid"], signal.SIGKILL)  # a crash: nothing is told, nothing drains
    deadline = time.monotonic() + 180
    while target.current()["bento_pid"] == record["bento_pid"]:
        assert time.monotonic() < deadline, target.events()
        time.sleep(0.2)
    now = target.current()
    assert now["restarts"] == 1
    assert target.is_serving(packaged["bento_tag"])
    assert target.front_door_status()["backend"]["pid"] == now["bento_pid"]
    (event,) = target.events()
    assert event["event"] == "bento_restarted"
    assert event["pid"] == record["bento_pid"]
    assert event["restart"] == {"pid": now["bento_pid"], "port": now["bento_port"]}
    assert event["how"] == ("spare" if spare else "cold start")
    if standby is not None:
        assert (now["bento_pid"], now["bento_port"]) == (standby["pid"], standby["port"])
        assert spare_of(target)["pid"] != standby["pid"]  # and a new spare after it
    else:
        assert not (target.folder / SPARE_FILE).exists()
    answer = httpx.post(
        f"{target.url}/predict",
        json=request_for(policy_bundle[1], "SYN0002", 100),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200
    while any(running(pid, start) for pid, start in record["bento_processes"]):
        assert time.monotonic() < deadline, "the dead bento's workers outlived the restart"
        time.sleep(0.2)


def test_a_whole_bento_killed_under_load_fails_no_request_and_its_spare_is_stopped_with_it(
    target, packaged, second_bento, policy_bundle
):
    """SIGKILL the bento and its workers mid-traffic: requests that find it gone wait for the
    switch to the spare (well under a second) and none fails; a deploy of another tag gets a
    spare of that tag; stopping the deployment stops the spare too."""
    deployed = target.deploy(packaged["bento_tag"], "champion", {})
    standby = spare_of(target)
    body = request_for(policy_bundle[1], "SYN0001", 100)
    with Traffic(target.url, body, connections=16) as traffic:
        traffic.wait_for(100)
        kill_whole(deployed["bento_pid"])
        deadline = time.monotonic() + 60
        while target.current()["bento_pid"] == deployed["bento_pid"]:
            assert time.monotonic() < deadline, target.events()
            time.sleep(0.05)
        traffic.wait_for(len(traffic.versions) + 300)
    assert target.current()["bento_pid"] == standby["pid"]
    assert set(traffic.statuses) == {200}, (traffic.failed[:3], traffic.errors[:3])
    assert not traffic.errors
    assert target.front_door_status()["retried"] > 0  # some found it gone, and waited
    replaced = spare_of(target)
    target.deploy(second_bento["bento_tag"], "champion", {})
    newer = spare_of(target)
    assert newer["bento_tag"] == second_bento["bento_tag"]
    assert not running(replaced["pid"], replaced["start"])  # the old tag's spare went
    target.stop()
    deadline = time.monotonic() + 30
    while running(newer["pid"], newer["start"]):
        assert time.monotonic() < deadline, "the spare outlived its deployment"
        time.sleep(0.2)


def test_a_worker_killed_under_load_is_replaced_and_the_endpoint_keeps_answering(
    target, packaged, policy_bundle
):
    """SIGKILL one of the bento's workers mid-traffic: BentoML starts another, the other
    worker answers meanwhile, and the door retries what failed before any byte."""
    import psutil

    deployed = target.deploy(packaged["bento_tag"], "champion", {})
    arbiter = psutil.Process(deployed["bento_pid"])
    workers = arbiter.children()
    assert len(workers) >= 2, [w.cmdline() for w in workers]
    body = request_for(policy_bundle[1], "SYN0000", 100)
    with Traffic(target.url, body, connections=16) as traffic:
        traffic.wait_for(100)
        os.kill(workers[0].pid, signal.SIGKILL)
        killed_at = len(traffic.versions)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = {w.pid for w in arbiter.children()}
            if len(now) >= len(workers) and workers[0].pid not in now:
                break
            time.sleep(0.2)
        replaced = {w.pid for w in arbiter.children()}
        traffic.wait_for(len(traffic.versions) + 200)
    assert workers[0].pid not in replaced
    assert len(replaced) == len(workers), "the killed worker was not replaced"
    assert len(traffic.versions) > killed_at + 200
    failed = sum(n for code, n in traffic.statuses.items() if code != 200) + len(traffic.errors)
    total = sum(traffic.statuses.values()) + len(traffic.errors)
    assert failed <= max(16, total // 200), (traffic.failed[:3], traffic.errors[:3])


def test_no_serving_process_holds_the_private_key(target, packaged, keypair, monkeypatch):
    """The deployer's own environment has the key and cloud credentials; not one process
    that serves traders (the door, the bento, its workers) inherits them."""
    import psutil

    pem = keypair.private_pem.decode()
    monkeypatch.setenv("TRADEOPS_SIGNING_KEY", pem)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-serving")
    deployed = target.deploy(packaged["bento_tag"], "champion", {})
    processes = [psutil.Process(deployed["front_door_pid"]), psutil.Process(deployed["bento_pid"])]
    processes += processes[1].children(recursive=True)
    assert len(processes) >= 4  # door, bento, two workers
    for process in processes:
        environ = process.environ()
        assert "TRADEOPS_SIGNING_KEY" not in environ, process.cmdline()
        assert "AWS_SECRET_ACCESS_KEY" not in environ, process.cmdline()
        assert not any("PRIVATE KEY" in value for value in environ.values()), process.cmdline()
    workers = processes[2:]  # the arbiter renames itself (circusd) and its environ reads empty
    assert all("TRADEOPS_SIGNING_PUBLIC_KEY" in w.environ() for w in workers)
    assert "TRADEOPS_SIGNING_PUBLIC_KEY" not in processes[0].environ()  # the door needs none
