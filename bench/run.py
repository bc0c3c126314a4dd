"""``make bench``: every benchmark, each against a peer in the same run.

Writes bench/results.json (``{metric: {value, unit, peer, peer_value}}``, merged
so later benchmarks add to it) and regenerates BENCHMARKS.md from it with the
machine, date and command. Speed goals live here, never in tests.
"""

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from bench import pandas_features
from tradeops_assets.core import features
from tradeops_assets.core.synthetic import SyntheticSpec, generate

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = 1e-6  # pandas' rolling std drifts ~1e-8 over long series; ours matches numpy


@dataclass(frozen=True)
class Goal:
    """A goal's words and the bounds that decide it: the report says met or missed."""

    text: str
    at_least: float | None = None
    at_most: float | None = None
    peer_ratio_at_least: float | None = None  # ours / peer, for "3x pandas"

    def verdict(self, result: dict) -> str:
        value, peer = result["value"], result.get("peer_value")
        met = (self.at_least is None or value >= self.at_least) and (
            self.at_most is None or value <= self.at_most
        )
        if self.peer_ratio_at_least is not None:
            met = met and bool(peer) and value / peer >= self.peer_ratio_at_least
        return "met" if met else "**missed**"


GOALS = {
    "features_rows_per_s": Goal(
        "≥ 30M rows/s and ≥ 3x pandas on 2 cores", at_least=30e6, peer_ratio_at_least=3
    ),
    "env_steps_per_s": Goal("≥ 250k steps/s", at_least=250e3),
    "vec_env_steps_per_s": Goal("≥ 10M steps/s at 256 episodes", at_least=10e6),
    "ppo_steps_per_s": Goal("≥ 20k steps/s (1M steps under a minute)", at_least=20e3),
    "backtest_bars_per_s": Goal("≥ 1M bars/s on 2 cores, policy in the loop", at_least=1e6),
    "pnl_bars_per_s": Goal("≥ 50M bars/s on 2 cores", at_least=50e6),
    "serve_predict_rps": Goal("≥ 2,000 requests/s on one serving core", at_least=2000),
    "serve_predict_columnar_rps": Goal("≥ 2,000 requests/s on one serving core", at_least=2000),
    "serve_predict_ceiling_share": Goal("≥ 70% of /livez on the same core", at_least=70),
    "serve_predict_p99_ms": Goal("≤ 50 ms at 64 connections", at_most=50),
    "serve_predict_p99_ms_at_256": Goal("≤ 300 ms at 256 connections", at_most=300),
    "serve_predict_rps_at_256_share": Goal("≥ 90% of the peak at 256 connections", at_least=90),
    "serve_batch_arrow_decisions_per_s": Goal(
        "≥ 50,000 decisions/s through /predict_batch", at_least=50_000
    ),
    "serve_door_throughput_share": Goal("≥ 85% of the bento's own throughput", at_least=85),
    "serve_door_added_p99_ms": Goal("≤ 5 ms added to p99", at_most=5),
    "serve_faults_failed_pct": Goal("< 0.5% of requests failed over 60 s", at_most=0.5),
    "serve_worker_kill_recovery_s": Goal("< 5 s", at_most=5),
    "serve_bento_kill_recovery_s": Goal("< 5 s", at_most=5),
    "drift_seconds": Goal("≤ 0.5 s for PSI and KS on 1M rows x 50 features", at_most=0.5),
}
NIGHTLY_BUDGET_S = 6 * 3600
VEC_EPISODES = 256


def machine() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_gib:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "polars": metadata.version("polars"),
        "pandas": metadata.version("pandas"),
    }


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_features(symbols: int, bars: int) -> dict:
    data = generate(SyntheticSpec(symbols=symbols, bars=bars, freq="1m", seed=1))
    ours_s, ours = best_of(3, lambda: features.compute_features(data))
    as_pandas = data.to_pandas()
    peer_s, peer = best_of(1, lambda: pandas_features.compute(as_pandas))
    worst = 0.0
    for column in features.FEATURE_COLUMNS:  # same numbers, or the race means nothing
        a, b = ours[column].to_numpy(), peer[column].to_numpy()
        gap = float(np.max(np.abs(a - b) / (1.0 + np.abs(b))))
        if not gap <= AGREEMENT:
            raise SystemExit(f"bench: polars and pandas disagree on {column} by {gap:.2e}")
        worst = max(worst, gap)
    return {
        "features_rows_per_s": {
            "value": round(data.height / ours_s),
            "unit": "rows/s",
            "peer": "pandas",
            "peer_value": round(data.height / peer_s),
            "detail": f"{symbols} symbols x {bars} minute bars = {data.height} rows, "
            f"{len(features.FEATURE_COLUMNS)} features; polars best of 3 {ours_s:.2f} s, "
            f"pandas {peer_s:.2f} s; outputs agree to {worst:.1e} (|a-b|/(1+|b|))",
        }
    }


def _env_arrays():
    from tradeops_assets.core.market import MarketArrays, Normaliser

    frame = features.compute_features(generate(SyntheticSpec(symbols=20, bars=5000, seed=1)))
    raw = frame.select(features.FEATURE_COLUMNS).to_numpy()
    return MarketArrays.from_features(frame, Normaliser.fit(raw))


def _steps_per_s(step, reset, steps: int) -> float:
    reset()
    start = time.perf_counter()
    for _ in range(steps):
        if step():
            reset()
    return steps / (time.perf_counter() - start)


def _anytrading(window: int):
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    import gymnasium as gym
    from gym_anytrading.datasets import STOCKS_GOOGL

    return gym.make(
        "stocks-v0", df=STOCKS_GOOGL, window_size=window, frame_bound=(window, len(STOCKS_GOOGL))
    ).unwrapped


def bench_env(steps: int) -> dict:
    """One env, then 256 episodes per call, each against gym-anytrading's stocks env."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from tradeops_assets.core.env import TradingEnv, VecTradingEnv
    from tradeops_assets.core.market import EnvConfig

    arrays, config = _env_arrays(), EnvConfig()
    ours, action = TradingEnv(arrays, config), np.array([0.5], np.float32)
    single = _steps_per_s(lambda: ours.step(action)[2], lambda: ours.reset(seed=0), steps)
    peer = _anytrading(config.window)
    peer_single = _steps_per_s(lambda: any(peer.step(1)[2:4]), lambda: peer.reset(seed=0), steps)

    vec = VecTradingEnv(arrays, VEC_EPISODES, config)
    actions = np.full((VEC_EPISODES, 1), 0.5, np.float32)
    vec_calls = max(steps // VEC_EPISODES, 50)
    vec.reset()
    vec_rate = _steps_per_s(lambda: vec.step(actions) is None, vec.reset, vec_calls) * VEC_EPISODES
    peer_vec = DummyVecEnv([lambda: _anytrading(config.window)] * VEC_EPISODES)
    peer_actions = np.ones(VEC_EPISODES, np.int64)
    peer_calls = max(vec_calls // 20, 10)
    peer_vec_rate = (
        _steps_per_s(lambda: peer_vec.step(peer_actions) is None, peer_vec.reset, peer_calls)
        * VEC_EPISODES
    )
    obs = f"window {config.window} x {arrays.n_features} features + position"
    return {
        "env_steps_per_s": {
            "value": round(single),
            "unit": "steps/s",
            "peer": "gym-anytrading stocks-v0",
            "peer_value": round(peer_single),
            "detail": f"{steps} steps; {obs}",
        },
        "vec_env_steps_per_s": {
            "value": round(vec_rate),
            "unit": "steps/s",
            "peer": "gym-anytrading stocks-v0 x256 in SB3 DummyVecEnv",
            "peer_value": round(peer_vec_rate),
            "detail": f"{VEC_EPISODES} episodes per call, {vec_calls} calls; {obs}",
        },
    }


def bench_ppo(timesteps: int) -> dict:
    """PPO end to end with the default training config, against PPO on gym-anytrading."""
    import tempfile

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from tradeops_assets.core import sample
    from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig
    from tradeops_assets.core.training import train

    frame = features.compute_features(sample.load_sample())
    config = TrainConfig(timesteps=timesteps)
    span = PolicyRecipe.by_fraction(config, frame).train_window
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        result = train(frame, config, span, Path(workdir))
        ours = result.timesteps / (time.perf_counter() - start)

    peer_env = DummyVecEnv([lambda: _anytrading(config.env.window)] * config.n_envs)
    peer_model = PPO(
        "MlpPolicy",
        peer_env,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": list(config.net_arch)},
    )
    peer_steps = config.n_envs * config.n_steps * 2
    start = time.perf_counter()
    peer_model.learn(peer_steps)
    peer = peer_steps / (time.perf_counter() - start)
    nightly = ours * NIGHTLY_BUDGET_S
    rows = frame.height
    return {
        "ppo_steps_per_s": {
            "value": round(ours),
            "unit": "steps/s",
            "peer": "SB3 PPO on gym-anytrading stocks-v0 x32 (DummyVecEnv)",
            "peer_value": round(peer),
            "detail": f"default config ({config.algorithm}, {config.n_envs} envs, "
            f"{config.n_steps} steps/rollout, net {list(config.net_arch)}), {result.timesteps} "
            f"steps on the sample ({rows} feature rows); 1M steps take {1e6 / ours / 60:.1f} min; "
            f"the 6-hour nightly budget buys {nightly / 1e6:,.0f}M steps, "
            f"{nightly / rows:,.0f} passes over the sample's rows",
        }
    }


def bench_backtest(symbols: int, bars: int) -> dict:
    """The policy in the loop, every symbol per call, against a bar-by-bar Python loop."""
    from tradeops_assets.core import backtest
    from tradeops_assets.core.env import VecTradingEnv
    from tradeops_assets.core.market import EnvConfig, MarketArrays, Normaliser, step_accounting
    from tradeops_assets.core.recipe import TrainConfig
    from tradeops_assets.core.training import make_model
    from tradeops_assets.core.windows import bar_times, whole

    frame = features.compute_features(generate(SyntheticSpec(symbols=symbols, bars=bars, seed=2)))
    arrays = MarketArrays.from_features(
        frame, Normaliser.fit(frame.select(features.FEATURE_COLUMNS).to_numpy())
    )
    config = EnvConfig()
    vec = VecTradingEnv(arrays, 2, config)
    train_config = TrainConfig(n_envs=2, batch_size=512)
    policy = train_config.spec.export(make_model(train_config, vec))
    book = backtest.book(arrays, config.window, whole(bar_times(frame)))
    decisions = int(book.lengths.sum())

    def batched():
        positions = backtest.run_on_book(policy, book, config)
        return backtest.account(
            positions, arrays.next_return[book.rows()], book.symbol_starts(), config
        )

    ours_s, ledger = best_of(3, batched)
    few = 3
    subset = backtest.Book(arrays, book.first[:few], book.last[:few])
    peer_s, peer_pnl = best_of(1, lambda: backtest.per_bar_loop(policy, arrays, subset, config))
    if not np.allclose(ledger.pnl[: peer_pnl.size], peer_pnl, atol=1e-9):
        raise SystemExit("bench: batched backtest and the bar-by-bar loop disagree")

    position = np.tile(ledger.position, max(1, 20_000_000 // decisions))
    returns = np.tile(arrays.next_return[book.rows()], max(1, 20_000_000 // decisions))
    starts = np.arange(0, position.size, bars, dtype=np.int64)
    pnl_s, _ = best_of(3, lambda: backtest.account(position, returns, starts, config))
    n_loop = 200_000

    def loop_pnl():
        out, held = [], 0.0
        for i in range(n_loop):
            step, _ = step_accounting(held, float(position[i]), float(returns[i]), config)
            out.append(step)
            held = float(position[i])
        return out

    loop_s, _ = best_of(1, loop_pnl)
    return {
        "backtest_bars_per_s": {
            "value": round(decisions / ours_s),
            "unit": "bars/s",
            "peer": "bar-by-bar Python loop, same numpy policy",
            "peer_value": round(int(subset.lengths.sum()) / peer_s),
            "detail": f"{symbols} symbols x {decisions // symbols:,} decision bars, policy "
            f"(window {config.window}, net 64x64) in the loop, all symbols per call, ledger "
            f"and costs included; equal P&L to 1e-9 on {few} symbols",
        },
        "pnl_bars_per_s": {
            "value": round(position.size / pnl_s),
            "unit": "bars/s",
            "peer": "per-bar Python loop of step_accounting",
            "peer_value": round(n_loop / loop_s),
            "detail": f"fees, slippage, borrow and P&L over {position.size / 1e6:.0f}M bars",
        },
    }


LOWER_IS_BETTER = ("s", "ms")


def _advantage(result: dict) -> float | None:
    """How many times better than the peer: above 1 is ours ahead, whichever way is better.
    None where a ratio means nothing: the figure is itself a share of the peer (a %), or
    either side is zero (a recovery with nothing to recover)."""
    ours, peer = result["value"], result.get("peer_value")
    if not peer or not ours or result["unit"].startswith("%"):
        return None
    return peer / ours if result["unit"].split()[0] in LOWER_IS_BETTER else ours / peer


def render(results: dict, info: dict, when: str, command: str) -> str:
    """The report; a metric an earlier run measured says when and by which command."""
    fresh = sorted(n for n, r in results.items() if r.get("measured") == when)
    judged = [GOALS[n].verdict(r) for n, r in results.items() if n in GOALS]
    lines = [
        "# Benchmarks",
        "",
        "Every figure is measured against its peer in the same run. A partial run "
        "(`--only`) refreshes some metrics and keeps the others from earlier runs; "
        "the `measured` column says which run each figure comes from. `ours vs peer` is "
        "n/a where the figure is itself a share of its peer, or either side is zero.",
        "",
        f"- date: {when}",
        f"- command: `{command}`",
        f"- refreshed by this run: {', '.join(f'`{n}`' for n in fresh) or 'none'}",
        f"- goals met: {judged.count('met')} of {len(judged)} measured",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "| metric | tradeops | peer | peer value | ours vs peer | goal | verdict | measured "
        "| detail |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in sorted(results.items()):
        ratio = _advantage(r)
        compared = "n/a" if ratio is None else f"{ratio:.1f}x"
        measured = f"{r.get('measured', 'unknown')} by `{r.get('command', 'unknown')}`"
        goal = GOALS.get(name)
        verdict = goal.verdict(r) if goal else ""
        lines.append(
            f"| `{name}` | {r['value']:,} {r['unit']} | {r['peer']} | {r['peer_value']:,} | "
            f"{compared} | {goal.text if goal else ''} | {verdict} | {measured} | "
            f"{r.get('detail', '')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--env-steps", type=int, default=200_000)
    parser.add_argument("--ppo-steps", type=int, default=131_072)
    parser.add_argument("--backtest-symbols", type=int, default=500)
    parser.add_argument("--backtest-bars", type=int, default=2520)
    parser.add_argument("--out", type=Path, default=ROOT, help="folder for BENCHMARKS.md, bench/")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: features,env,ppo,backtest,serving,availability,drift",
    )
    parser.add_argument("--drift-rows", type=int, default=1_000_000)
    parser.add_argument("--drift-peer-rows", type=int, default=100_000)
    parser.add_argument("--serve-seconds", type=float, default=5.0)
    parser.add_argument("--serve-connections", default="1,16,64,256")
    parser.add_argument("--availability-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    chosen = set(filter(None, args.only.split(","))) or {
        "features",
        "env",
        "ppo",
        "backtest",
        "serving",
        "availability",
        "drift",
    }

    results_path = args.out / "bench" / "results.json"
    earlier = json.loads(results_path.read_text()) if results_path.exists() else {}
    fresh: dict = {}
    if "features" in chosen:
        fresh.update(bench_features(args.symbols, args.bars))
    if "env" in chosen:
        fresh.update(bench_env(args.env_steps))
    if "ppo" in chosen:
        fresh.update(bench_ppo(args.ppo_steps))
    if "backtest" in chosen:
        fresh.update(bench_backtest(args.backtest_symbols, args.backtest_bars))
    if "serving" in chosen:
        from bench.serving import bench_serving

        levels = tuple(int(c) for c in args.serve_connections.split(","))
        fresh.update(bench_serving(levels, args.serve_seconds))
    if "availability" in chosen:
        from bench.availability import bench_availability

        fresh.update(bench_availability(args.availability_seconds))
    if "drift" in chosen:
        from bench.drift import bench_drift

        fresh.update(bench_drift(args.drift_rows, 50, args.drift_peer_rows, best_of))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out == ROOT and not args.only:
        command = "make bench"
    for result in fresh.values():
        result.update(measured=when, command=command.strip())
    results = {**earlier, **fresh}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / "BENCHMARKS.md").write_text(render(results, machine(), when, command.strip()))
    for name, r in fresh.items():
        print(f"{name}: {r['value']:,} {r['unit']} (peer {r['peer']}: {r['peer_value']:,})")


if __name__ == "__main__":
    main()
