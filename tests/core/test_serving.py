"""core.bundle, core.request and core.decision: the served decision is the training pipeline's
decision, and bad input is named."""

import copy
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import features, sample, signing
from tradeops_assets.core.bundle import PolicyBundle, required_bars, write_bundle
from tradeops_assets.core.decision import decide, decide_one
from tradeops_assets.core.env import TradingEnv
from tradeops_assets.core.errors import BundleError, RequestError, SignatureError
from tradeops_assets.core.market import EnvConfig, MarketArrays
from tradeops_assets.core.prediction_log import LogBatch, PredictionLog, read_log
from tradeops_assets.core.request import Limits, _timestamps_us, request_for

from .conftest import SERVING_WINDOW as WINDOW

SYMBOL_RULE = (
    "must be 1-32 characters: letters, digits and . _ : / ^ = -, starting with a letter or digit"
)


def pipeline_decision(
    bundle, bars: pl.DataFrame, row: int, position: float
) -> tuple[np.ndarray, float]:
    """The training path: compute_features -> Normaliser -> the env's observation -> act.

    ``bars`` runs two bars past the decision bar ``row`` (the env needs a next bar to
    reward); features are causal, so those bars change nothing at ``row``.
    """
    frame = features.compute_features(bars)
    arrays = MarketArrays.from_features(frame, bundle.normaliser)
    env = TradingEnv(arrays, EnvConfig(window=WINDOW, episode_bars=1))
    env._row, env._position = row - features.WARMUP_BARS, position
    action = bundle.policy.act(env._obs()[None, :])[0] * bundle.env.max_position
    return frame.select(features.FEATURE_COLUMNS).to_numpy()[env._row], float(action)


@pytest.mark.parametrize(("length", "position"), [(80, 0.0), (81, -0.7), (150, 1.0), (398, 0.3)])
def test_served_decision_equals_the_training_pipeline(bundle, synthetic_bars, length, position):
    requests, expected = [], []
    for symbol in synthetic_bars["symbol"].unique().sort():
        bars = synthetic_bars.filter(pl.col("symbol") == symbol)
        expected.append(pipeline_decision(bundle, bars.head(length + 2), length - 1, position))
        requests.append(request_for(bars.head(length), position))
    decisions = decide(bundle, requests)
    for i, (feats, action) in enumerate(expected):
        np.testing.assert_allclose(decisions.features[i], feats, rtol=1e-9, atol=1e-12)
        assert decisions.targets[i] == pytest.approx(action, abs=1e-6)
    one = decide_one(bundle, requests[0])
    assert one.targets[0] == pytest.approx(expected[0][1], abs=1e-6)


def test_numpy_features_match_core_features_on_real_and_degenerate_bars(synthetic_bars):
    assert features.feature_mismatch(synthetic_bars, rows=300) < 1e-9
    assert features.feature_mismatch(sample.load_sample(), rows=200) < 1e-9
    assert features.feature_mismatch(features.self_check_bars(), rows=48) < 1e-9


def _hostile_series(rng: np.random.Generator, n: int) -> np.ndarray:
    """Prices from 0.1 to 1e5 moving by 1e-9 to 10% a bar, with flat stretches and spikes
    a thousand times the level: what passes through a rolling window's sums."""
    x = 10 ** rng.uniform(-1, 5) * np.exp(np.cumsum(rng.normal(0, 10 ** rng.uniform(-9, -1), n)))
    for _ in range(4):
        start = rng.integers(0, n)
        x[start : start + rng.integers(1, 120)] = x[start]
    for at in rng.integers(1, n, 3):
        x[at] *= rng.choice([1e-3, 0.1, 10.0, 1e3])
    return x


@pytest.mark.parametrize("width", [20, 50, 60])
def test_rolling_windows_equal_each_window_summed_on_its_own(width):
    """The kernel moves a window's sums bar by bar; a spike leaving, a flat stretch and a
    thousand-fold range must not leave what summing each window afresh would not."""
    from tradeops_assets.core.tail_kernel import _rolling

    rng = np.random.default_rng(width)
    checked = flat = 0
    for _ in range(200):
        x = _hostile_series(rng, 400)
        first = int(rng.integers(width, 300))
        mean, std = np.empty((2, 400 - first))
        _rolling(x, first, 400, width, mean, std)
        for i, t in enumerate(range(first, 400)):
            window = x[t - width + 1 : t + 1]
            if (window == window[-1]).all():
                flat += 1
                assert (mean[i], std[i]) == (x[t], 0.0), (width, t)
                continue
            offsets = window - window[-1]
            expected_std = np.std(offsets, ddof=1)
            assert std[i] == pytest.approx(expected_std, rel=1e-9), (width, t)
            rounding = 2 * np.spacing(x[t])  # of adding the mean offset to the level
            assert abs(mean[i] - x[t] - offsets.mean()) <= 1e-9 * expected_std + rounding, (
                width,
                t,
            )
            checked += 1
    assert checked > 10_000
    assert flat > 100


def test_no_feature_rows_asked_gives_an_empty_batch():
    bars = np.ones((5, features.WARMUP_BARS))
    assert features.tail_features(bars, [features.WARMUP_BARS], 0).shape == (
        1,
        0,
        len(features.FEATURE_COLUMNS),
    )


def test_the_compiled_features_leave_no_machine_code_on_disk(synthetic_bars, tmp_path):
    """A cached object file would run without passing the bento's signature check."""
    from tradeops_assets.core import tail_kernel

    bars = synthetic_bars.head(200).select(features.OHLCV).to_numpy().T  # readonly, strided
    features.tail_features(bars, [200], 8)
    sources = Path(tail_kernel.__file__).parent
    assert not [p for p in sources.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert all(type(f._cache).__name__ == "NullCache" for f in tail_kernel.COMPILED)


def test_required_bars_is_what_compute_features_needs_for_one_window(synthetic_bars, bundle):
    bars = synthetic_bars.filter(pl.col("symbol") == "SYN0000")
    need = required_bars(WINDOW)
    assert features.compute_features(bars.head(need)).height == WINDOW
    assert features.compute_features(bars.head(need - 1)).height == WINDOW - 1
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request_for(bars.head(need - 1), 0.0))
    assert err.value.field == "bars"


def test_timestamps_accept_iso_with_offsets_and_epoch_seconds(bundle, synthetic_bars):
    bars = synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(80)
    base = request_for(bars, 0.0)
    epoch = copy.deepcopy(base)
    offset = copy.deepcopy(base)
    for bar, e, o in zip(base["bars"], epoch["bars"], offset["bars"], strict=True):
        moment = datetime.fromisoformat(bar["timestamp"])
        e["timestamp"] = moment.timestamp()
        o["timestamp"] = moment.astimezone().isoformat()
        bar["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    stamps = [decide_one(bundle, r).bar_timestamps_us[0] for r in (base, epoch, offset)]
    expected = int(bars["timestamp"][-1].replace(tzinfo=UTC).timestamp() * 1e6)
    assert stamps == [expected] * 3


def test_epoch_seconds_may_mix_ints_and_floats_but_not_be_nan(bundle, synthetic_bars):
    bars = synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(80)
    request = request_for(bars, 0.0)
    for i, bar in enumerate(request["bars"]):
        seconds = datetime.fromisoformat(bar["timestamp"]).timestamp()
        bar["timestamp"] = int(seconds) if i % 2 else float(seconds)
    expected = int(bars["timestamp"][-1].replace(tzinfo=UTC).timestamp() * 1e6)
    assert decide_one(bundle, request).bar_timestamps_us[0] == expected
    request["bars"][7]["timestamp"] = float("nan")
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert err.value.field == "bars[7].timestamp"
    assert "not a plausible one" in err.value.reason


def test_batch_errors_name_the_request_and_limits_apply(bundle, synthetic_bars):
    good = request_for(synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(90), 0.0)
    bad = copy.deepcopy(good)
    bad["bars"][4]["high"] = float("nan")
    with pytest.raises(RequestError) as err:
        decide(bundle, [good, bad], path="requests")
    assert (err.value.field, err.value.reason) == (
        "requests[1].bars[4].high",
        "must be finite, got nan",
    )
    with pytest.raises(RequestError, match="at most 1 requests"):
        decide(bundle, [good, good], Limits(max_batch=1))
    with pytest.raises(RequestError, match="at most 85 bars"):
        decide_one(bundle, good, Limits(max_bars=85))


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            lambda bars: bars[5].update(timestamp=bars[4]["timestamp"]),
            "bars[5].timestamp",
            "duplicates",
        ),
        (
            lambda bars: bars[5].update(timestamp=bars[3]["timestamp"]),
            "bars[5].timestamp",
            "earlier than",
        ),
        (lambda b: b[7].update(high=b[7]["low"] * 0.99), "bars[7]", "low <= open"),
        (lambda b: b[9].update(volume=float("inf")), "bars[9].volume", "finite"),
    ],
)
def test_a_bar_out_of_order_twice_or_inconsistent_is_refused_by_name(
    bundle, synthetic_bars, change, field, reason
):
    request = request_for(synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(90), 0.0)
    change(request["bars"])
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert err.value.field == field
    assert reason in err.value.reason


def test_bundle_refuses_features_it_was_not_trained_on(bundle, tmp_path):
    import json
    import shutil

    shutil.copytree(bundle.path, tmp_path / "b")
    recipe = json.loads((tmp_path / "b" / "recipe.json").read_text())
    recipe["feature_columns"] = recipe["feature_columns"][:-1]
    (tmp_path / "b" / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(BundleError, match="trained on features"):
        PolicyBundle.load(tmp_path / "b")


def test_signature_detects_tampering_and_foreign_keys(bundle, tmp_path):
    import shutil

    directory = shutil.copytree(bundle.path, tmp_path / "b")
    key = signing.DevKeypair.generate()
    with pytest.raises(SignatureError, match="not signed"):
        signing.verify_bundle(directory, key.public_b64)
    signing.sign_bundle(directory, key.private_pem)
    assert signing.verify_bundle(directory, key.public_b64)["digest"] == signing.bundle_digest(
        directory
    )
    stranger = signing.DevKeypair.generate()
    with pytest.raises(SignatureError, match=r"claims signer key \w+; the trusted key is"):
        signing.verify_bundle(directory, stranger.public_b64)
    record = json.loads((directory / signing.SIGNATURE_FILE).read_text())
    trusted = signing.key_id(signing.load_public_key(stranger.public_b64))
    (directory / signing.SIGNATURE_FILE).write_text(json.dumps(record | {"key_id": trusted}))
    with pytest.raises(SignatureError, match="does not verify with the trusted key"):
        signing.verify_bundle(directory, stranger.public_b64)  # the key id is checked, not trusted
    signing.sign_bundle(directory, key.private_pem)
    (directory / "lineage.json").write_text('{"model_version": "forged"}')
    with pytest.raises(SignatureError, match="modified after signing"):
        signing.verify_bundle(directory, key.public_b64)


def test_prediction_log_writes_date_partitions_on_close(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=3600)
    n = len(features.FEATURE_COLUMNS)
    for i in range(3):
        log.append(
            LogBatch(
                request_ids=[f"r{i}a", f"r{i}b"],
                predicted_at_us=1_700_000_000_000_000,
                bar_timestamps_us=np.array([1, 2]),
                symbols=["A", "B"],
                positions=np.zeros(2),
                targets=np.array([0.5, -0.5]),
                features=np.ones((2, n)),
                policy_version="1",
                bento_tag="trading_policy:x",
                latency_ms=0.3,
            )
        )
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["date=2023-11-14"]
    frame = read_log(tmp_path)
    assert frame.height == 6
    assert frame["target_position"].to_list() == [0.5, -0.5] * 3
    assert log.failures == 0


def test_a_bundle_serves_only_the_symbols_its_recipe_was_trained_on(
    bundle, tmp_path, synthetic_bars
):
    trained_on_two = replace(bundle.recipe, symbols=("SYN0000", "SYN0001"))
    directory = write_bundle(
        tmp_path / "b", bundle.policy, bundle.normaliser, trained_on_two, {"model_version": "2"}
    )
    loaded = PolicyBundle.load(directory)
    assert loaded.symbols == {"SYN0000", "SYN0001"}
    stranger = request_for(synthetic_bars.filter(pl.col("symbol") == "SYN0002").head(90), 0.0)
    with pytest.raises(RequestError) as err:
        decide_one(loaded, stranger)
    assert err.value.field == "symbol"
    assert "not one this policy was trained for" in err.value.reason


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda b: b.__setitem__(3, "a bar"), "bars[3]", "must be an object, got str"),
        (lambda b: b[4].pop("close"), "bars[4].close", "is missing"),
        (lambda b: b[6].pop("timestamp"), "bars[6].timestamp", "is missing"),
        (lambda b: b[8].update(volume="1000"), "bars[8].volume", "must be a number, got str"),
        (lambda b: b[2].update(high=None), "bars[2].high", "must be a number, got NoneType"),
        (
            lambda b: b[9].update(low=10**400),
            "bars[9].low",
            "must be a number a float can hold, got a 1329-bit integer",
        ),
    ],
)
def test_a_malformed_bar_is_located_and_named(bundle, synthetic_bars, change, field, reason):
    request = request_for(synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(90), 0.0)
    change(request["bars"])
    with pytest.raises(RequestError) as err:
        decide(bundle, [request], path="requests")
    assert (err.value.field, err.value.reason) == (f"requests[0].{field}", reason)


def _request(synthetic_bars) -> dict:
    return request_for(synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(80), 0.25)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda r: ["not", "an", "object"], "body", "a request must be an object, got list"),
        (lambda r: {k: v for k, v in r.items() if k != "symbol"}, "symbol", "is missing"),
        (lambda r: {k: v for k, v in r.items() if k != "bars"}, "bars", "is missing"),
        (lambda r: {k: v for k, v in r.items() if k != "position"}, "position", "is missing"),
        (lambda r: r | {"symbol": ""}, "symbol", SYMBOL_RULE),
        (lambda r: r | {"symbol": 7}, "symbol", SYMBOL_RULE),
        (lambda r: r | {"symbol": "A" * 33}, "symbol", SYMBOL_RULE),
        (lambda r: r | {"symbol": "AAPL\n"}, "symbol", SYMBOL_RULE),
        (lambda r: r | {"symbol": "-AAPL"}, "symbol", SYMBOL_RULE),
        (lambda r: r | {"symbol": "AA PL"}, "symbol", SYMBOL_RULE),
        (
            lambda r: r | {"leverage": 3},
            "leverage",
            "is not a field here; expected only bars, position, symbol",
        ),
        (
            lambda r: _bar(r, 3, vwap=1.0),
            "bars[3].vwap",
            "is not a field here; expected only close, high, low, open, timestamp, volume",
        ),
        (
            lambda r: _bar(r, 4, timestamp="now"),
            "bars[4].timestamp",
            "'now' is not an ISO 8601 timestamp",
        ),
        (
            lambda r: _bar(r, 0, timestamp="today"),
            "bars[0].timestamp",
            "'today' is not an ISO 8601 timestamp",
        ),
        (
            lambda r: _bar(r, 7, volume=10**400),
            "bars[7].volume",
            "must be a number a float can hold, got a 1329-bit integer",
        ),
        (lambda r: r | {"position": "0.5"}, "position", "must be a number, got str"),
        (lambda r: r | {"position": 1.5}, "position", "must be within [-1, 1], got 1.5"),
        (
            lambda r: r | {"position": -1.0000001},
            "position",
            "must be within [-1, 1], got -1.0000001",
        ),
        (lambda r: r | {"bars": {"0": 1}}, "bars", "must be a list of bars, got dict"),
        (
            lambda r: r | {"bars": r["bars"][:3]},
            "bars",
            f"needs at least {required_bars(16)} bars ({features.WARMUP_BARS} warm-up + "
            "window 16), got 3",
        ),
        (lambda r: _bar(r, 2, open=0.0), "bars[2].open", "must be > 0, got 0.0"),
        (lambda r: _bar(r, 5, close=-1.0), "bars[5].close", "must be > 0, got -1.0"),
        (lambda r: _bar(r, 9, volume=-3.0), "bars[9].volume", "must be >= 0, got -3.0"),
        (
            lambda r: _bar(_bar(_cents(r), 2, volume=0), 9, volume=-3.0),
            "bars[9].volume",
            "must be >= 0, got -3.0",
        ),
        (lambda r: _bar(_cents(r), 5, close=-1.0), "bars[5].close", "must be > 0, got -1.0"),
        (lambda r: r | {"position": float("inf")}, "position", "must be finite, got inf"),
        (
            lambda r: _bar(r, 6, timestamp=r["bars"][5]["timestamp"]),
            "bars[6].timestamp",
            "duplicates bars[5].timestamp: bars must be oldest first, one per timestamp",
        ),
        (
            lambda r: _bar(r, 6, timestamp=r["bars"][4]["timestamp"]),
            "bars[6].timestamp",
            "is earlier than bars[5].timestamp: bars must be oldest first, one per timestamp",
        ),
        (
            lambda r: _bar(r, 4, timestamp="2015-02-30T00:00:00"),
            "bars[4].timestamp",
            "'2015-02-30T00:00:00' is not an ISO 8601 timestamp",
        ),
    ],
)
def test_every_request_refusal_names_its_field_and_reason_exactly(
    bundle, synthetic_bars, change, field, reason
):
    request = change(copy.deepcopy(_request(synthetic_bars)))
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert (err.value.field, err.value.reason) == (field, reason)


def _cents(request: dict) -> dict:
    """Every price and volume under 1: a bound no test of a price or volume may assume."""
    for bar in request["bars"]:
        for key in ("open", "high", "low", "close", "volume"):
            bar[key] = bar[key] / 1e9
    return request


def _bar(request: dict, i: int, **values) -> dict:
    request["bars"][i].update(values)
    return request


def test_timestamps_with_any_utc_offset_are_the_same_instant(bundle, synthetic_bars):
    """Offsets other than UTC take the exact (datetime) path; a mix of them too."""
    from datetime import timedelta, timezone

    base = _request(synthetic_bars)
    expected = decide_one(bundle, base).bar_timestamps_us[0]
    zones = [timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    for mixed in (False, True):
        shifted = copy.deepcopy(base)
        for i, bar in enumerate(shifted["bars"]):
            zone = zones[i % 2] if mixed else zones[0]
            bar["timestamp"] = datetime.fromisoformat(bar["timestamp"]).astimezone(zone).isoformat()
        assert decide_one(bundle, shifted).bar_timestamps_us[0] == expected
    naive = copy.deepcopy(base)
    for bar in naive["bars"]:
        bar["timestamp"] = datetime.fromisoformat(bar["timestamp"]).strftime("%Y-%m-%d %H:%M:%S")
    assert decide_one(bundle, naive).bar_timestamps_us[0] == expected  # naive is UTC


def test_every_limit_of_a_valid_request_is_accepted_exactly_at_the_limit(bundle, synthetic_bars):
    """Flat bars (low = open = close = high), zero volume, prices under 1, a position of
    exactly +-1 and exactly the most bars a request may carry are all valid."""
    bars = synthetic_bars.filter(pl.col("symbol") == "SYN0000").head(90)
    request = request_for(bars, -1.0)
    for bar in request["bars"]:
        for key in ("open", "high", "low", "close"):
            bar[key] = bar[key] / 1000  # every price well under 1
    flat = request["bars"][10]
    flat.update(open=flat["close"], high=flat["close"], low=flat["close"], volume=0)
    opened_low = request["bars"][11]
    opened_low.update(open=opened_low["low"], close=opened_low["high"])
    decided = decide_one(bundle, request, Limits(max_bars=90))
    assert decided.symbols == ["SYN0000"]
    assert decided.positions[0] == -1.0
    decide_one(bundle, request | {"position": 1.0}, Limits(max_bars=90))
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request, Limits(max_bars=89))
    assert (err.value.field, err.value.reason) == ("bars", "at most 89 bars per request, got 90")
    micro = copy.deepcopy(request)
    start = datetime.fromisoformat(micro["bars"][0]["timestamp"]).timestamp()
    for i, bar in enumerate(micro["bars"]):
        bar["timestamp"] = start + i * 1e-6  # one microsecond apart: distinct, in order
    decide_one(bundle, micro, Limits(max_bars=90))


def test_timestamps_of_two_kinds_are_refused_by_name(bundle, synthetic_bars):
    request = _request(synthetic_bars)
    request["bars"][3]["timestamp"] = 1_420_000_000
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert (err.value.field, err.value.reason) == (
        "bars[3].timestamp",
        "must be an ISO 8601 string or epoch seconds, the same kind for every bar; got int",
    )
    first_odd = _request(synthetic_bars)
    first_odd["bars"][0]["timestamp"] = 1_420_000_000.5  # the first bar sets the kind
    with pytest.raises(RequestError) as err:
        decide_one(bundle, first_odd)
    assert (err.value.field, err.value.reason) == (
        "bars[1].timestamp",
        "must be an ISO 8601 string or epoch seconds, the same kind for every bar; got str",
    )


@pytest.mark.parametrize(
    ("stamps", "field", "got"),
    [
        ([1_420_000_000, 1_420_000_000.5, "2015-01-01T00:00:00Z"], "bars[2].timestamp", "str"),
        (["2015-01-01T00:00:00Z", None, 5], "bars[1].timestamp", "NoneType"),
        ([None, "2015-01-01T00:00:00Z"], "bars[0].timestamp", "NoneType"),
        ([True, False], "bars[0].timestamp", "bool"),
        ([1.5, 2.5, [3]], "bars[2].timestamp", "list"),
    ],
)
def test_the_first_timestamp_of_another_kind_is_named(stamps, field, got):
    """Ints and floats are one kind (epoch seconds); the first bar decides which kind."""
    with pytest.raises(RequestError) as err:
        _timestamps_us(stamps)
    assert (err.value.field, err.value.reason) == (
        field,
        f"must be an ISO 8601 string or epoch seconds, the same kind for every bar; got {got}",
    )


def _micros(year: int, micro: int) -> int:
    return (date(year, 1, 1) - date(1970, 1, 1)).days * 86_400 * 10**6 + micro


@pytest.mark.parametrize(
    "stamps",
    [
        ["2300-01-01T00:00:00.000001Z", "2300-01-01T00:00:00.000003Z"],
        ["2300-01-01T00:00:00.000001+00:00", "2300-01-01T00:00:00.000003+00:00"],
        ["2300-01-01T00:00:00.000001", "2300-01-01T00:00:00.000003"],
        ["2300-01-01T01:00:00.000001+01:00", "2299-12-31T19:00:00.000003-05:00"],
        ["2300-01-01T00:00:00.000001", "2300-01-01T01:00:00.000003+01:00"],
    ],
)
def test_timestamps_are_exact_integer_microseconds_on_every_path(stamps):
    """Past 2255 a float64 cannot hold every microsecond: each path (the fast one for
    Z, +00:00 and naive stamps, the exact one for other offsets and for a mix of naive
    and offset stamps) must stay in integers."""
    parsed = _timestamps_us(stamps)
    assert parsed.dtype == np.int64
    assert parsed.tolist() == [_micros(2300, 1), _micros(2300, 3)]
    seconds = _timestamps_us([1_420_000_000, 1_420_000_000.25])
    assert seconds.dtype == np.int64
    assert seconds.tolist() == [1_420_000_000_000_000, 1_420_000_000_250_000]


def test_microsecond_bars_are_distinct_and_a_later_duplicate_is_named(bundle, synthetic_bars):
    request = _request(synthetic_bars)
    for i, bar in enumerate(request["bars"]):
        bar["timestamp"] = f"2015-01-05T00:00:00.{i:06d}Z"  # one microsecond apart
    decide_one(bundle, request)
    request["bars"][50]["timestamp"] = request["bars"][49]["timestamp"]
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert err.value.field == "bars[50].timestamp"
    assert err.value.reason.startswith("duplicates bars[49].timestamp")


def test_a_timestamp_numpy_reads_as_not_a_time_is_refused(bundle, synthetic_bars):
    request = _request(synthetic_bars)
    for bar in request["bars"]:  # naive stamps take numpy's fast path, which reads "NaT"
        bar["timestamp"] = bar["timestamp"].removesuffix("+00:00")
    request["bars"][4]["timestamp"] = "NaT"
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert (err.value.field, err.value.reason) == (
        "bars[4].timestamp",
        "'NaT' is not an ISO 8601 timestamp",
    )


def test_epoch_seconds_stop_exactly_at_the_plausible_limit(bundle, synthetic_bars):
    """1e11 s (year 5138) is milliseconds sent as seconds; one second less is accepted."""
    request = _request(synthetic_bars)
    n = len(request["bars"])
    for i, bar in enumerate(request["bars"]):
        bar["timestamp"] = 1e11 - n + i
    assert decide_one(bundle, request).bar_timestamps_us[0] == (10**11 - 1) * 10**6
    for i, bar in enumerate(request["bars"]):
        bar["timestamp"] = 1e11 - n + 1 + i
    with pytest.raises(RequestError) as err:
        decide_one(bundle, request)
    assert (err.value.field, err.value.reason) == (
        f"bars[{n - 1}].timestamp",
        "epoch timestamps are seconds; 100000000000.0 is not a plausible one",
    )


def test_request_for_is_the_body_a_trader_sends(synthetic_bars):
    one = synthetic_bars.filter(pl.col("symbol") == "SYN0001").head(1)
    body = request_for(one)
    row = one.row(0, named=True)
    assert body == {
        "symbol": "SYN0001",
        "position": 0.0,
        "bars": [
            {"timestamp": row["timestamp"].isoformat(), **{k: row[k] for k in features.OHLCV}}
        ],
    }
