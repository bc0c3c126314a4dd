import json

import pytest

from bench import run


def test_bench_writes_results_and_report_in_the_agreed_shape(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text(
        json.dumps({"older_metric": {"value": 1, "unit": "x", "peer": "p", "peer_value": 2}})
    )
    run.main(
        [
            "--symbols",
            "3",
            "--bars",
            "2000",
            "--env-steps",
            "2000",
            "--ppo-steps",
            "8192",
            "--backtest-symbols",
            "20",
            "--backtest-bars",
            "400",
            "--serve-seconds",
            "0.5",
            "--serve-connections",
            "1,4",
            "--out",
            str(tmp_path),
            "--only",  # drift's peer (Evidently) is installed by `make bench` only
            "features,env,ppo,backtest,serving",
        ]
    )
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert "older_metric" in results  # merged, not overwritten
    feats = results["features_rows_per_s"]
    assert feats["peer"] == "pandas"
    assert feats["unit"] == "rows/s"
    assert feats["value"] > 0
    assert feats["peer_value"] > 0
    assert results["ppo_steps_per_s"]["value"] > 0
    assert "nightly budget" in results["ppo_steps_per_s"]["detail"]
    for metric in ("env_steps_per_s", "vec_env_steps_per_s"):
        assert results[metric]["peer"].startswith("gym-anytrading")
        assert results[metric]["value"] > 0
        assert results[metric]["peer_value"] > 0
    for metric in ("backtest_bars_per_s", "pnl_bars_per_s"):
        assert results[metric]["value"] > 0
        assert results[metric]["peer_value"] > 0
        assert "loop" in results[metric]["peer"]
    for metric in ("serve_predict_rps", "serve_predict_p99_ms", "serve_batch_decisions_per_s"):
        assert results[metric]["peer"].startswith("mlflow models serve")
        assert results[metric]["value"] > 0
        assert results[metric]["peer_value"] > 0
    assert "(0 failed)" in results["serve_predict_rps"]["detail"]
    for metric in (
        "serve_batch_arrow_decisions_per_s",
        "serve_predict_ceiling_share",
        "serve_predict_rps_at_4_share",
        "serve_door_throughput_share",
        "serve_door_added_p99_ms",
    ):
        assert metric in results, metric
    report = (tmp_path / "BENCHMARKS.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| `features_rows_per_s`"))
    verdict = run.GOALS["features_rows_per_s"].verdict(feats)
    assert f"| {verdict} |" in row
    judged = sum(name in run.GOALS for name in results)
    assert f"- goals met: {report.count('| met |')} of {judged} measured" in report
    assert "features_rows_per_s" in report
    refreshed = next(line for line in report.splitlines() if "refreshed by this run" in line)
    assert "`features_rows_per_s`" in refreshed
    assert "older_metric" not in refreshed  # kept from an earlier run, and said so
    assert "| unknown by `unknown` |" in report
    assert results["features_rows_per_s"]["command"].startswith("python -m bench.run")
    assert "cores:" in report
    assert "date:" in report


def test_the_drift_race_data_has_drift_where_planted_and_nowhere_else():
    """What drift_seconds races on: a fast answer that missed the drift would mean nothing."""
    from bench.drift import SHIFTED, WIDENED, sample
    from tradeops_assets.core import drift

    names = tuple(f"f{j}" for j in range(12))
    reference = drift.DistributionReference.fit(sample(20_000, 12, 1, shifted=False), names)
    moved = drift.drift(reference, sample(20_000, 12, 2, shifted=True))
    still = drift.drift(reference, sample(20_000, 12, 3, shifted=False))
    planted = set(SHIFTED) | set(WIDENED)
    assert {j for j in range(12) if moved.psi[j] >= drift.PSI_WARN} == planted
    assert still.worst_psi < drift.PSI_WARN


def test_the_comparison_says_how_many_times_better_whichever_way_is_better():
    assert run._advantage({"value": 0.5, "unit": "s", "peer_value": 290.0}) == 580.0
    behind = run._advantage({"value": 489.2, "unit": "ms at 64 connections", "peer_value": 405.3})
    assert behind < 1  # a slower p99 than the peer's reads as behind, not ahead
    assert run._advantage({"value": 30.0, "unit": "rows/s", "peer_value": 10.0}) == 3.0
    # a share of the peer is already the comparison; nothing recovers faster than zero
    share = {"value": 84.8, "unit": "% of BentoML's own ceiling", "peer_value": 2472}
    assert run._advantage(share) is None
    assert run._advantage({"value": 0.11, "unit": "s", "peer_value": 0.0}) is None
    failed = {"value": 0.0, "unit": "% of requests failed", "peer_value": 0.05}
    assert run._advantage(failed) is None


def test_a_goal_is_met_only_inside_every_bound():
    both = run.Goal("≥ 30M rows/s and ≥ 3x pandas", at_least=30e6, peer_ratio_at_least=3)
    assert both.verdict({"value": 31e6, "peer_value": 10e6}) == "met"
    assert both.verdict({"value": 31e6, "peer_value": 11e6}) == "**missed**"  # 2.8x
    assert both.verdict({"value": 29e6, "peer_value": 1e6}) == "**missed**"
    assert both.verdict({"value": 31e6, "peer_value": 0}) == "**missed**"  # no peer figure
    ceiling = run.Goal("≤ 5 s", at_most=5)
    assert ceiling.verdict({"value": 5.0}) == "met"
    assert ceiling.verdict({"value": 5.01}) == "**missed**"


def test_recovery_is_timed_from_the_kill_to_the_last_request_it_hurt():
    from bench.availability import _recovery

    hurt = [(9.0, 9.5, False), (10.1, 10.2, False), (10.0, 12.9, True), (19.0, 20.4, False)]
    assert _recovery(hurt, killed=10.0, until=20.0) == pytest.approx(2.9)  # held, then answered
    assert _recovery(hurt, killed=13.0, until=20.0) == 0.0  # nothing hurt after it
    assert _recovery(hurt, killed=20.0, until=30.0) == pytest.approx(0.4)  # in flight at the kill


def test_throughput_counts_until_the_last_request_sent_in_the_window_is_answered():
    """Requests slower than the window (batches at 256 connections took 13 s in a 5 s
    window) must not count as made within it."""
    import asyncio

    from bench.load import _load

    delay_s = 0.6

    async def answer_late(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay_s)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def run() -> dict:
        server = await asyncio.start_server(answer_late, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            spec = {
                "url": f"http://127.0.0.1:{port}/",
                "method": "GET",
                "bodies": [None],
                "connections": 4,
                "duration": 0.1,
                "warmup": 0.0,
            }
            return await _load(spec)

    result = asyncio.run(run())
    assert result["requests"] == 4  # one each, all sent in the window
    assert result["failures"] == 0
    assert result["span_s"] >= delay_s
    assert result["rps"] == result["requests"] / result["span_s"]
