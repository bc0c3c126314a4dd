"""Generated bad requests, seeded: every kind of input the endpoint must refuse with a 4xx.

Each case is definitely invalid (never a mutation that might happen to be valid),
so the test can demand a 4xx for every one of them, not just "no 5xx".
"""

import copy
import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

NUMERIC_KEYS = ("open", "high", "low", "close", "volume")
PRICE_KEYS = ("open", "high", "low", "close")


@dataclass
class Case:
    category: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    authorised: bool = True


def _json(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _bar_mutation(rng: random.Random, request: dict) -> dict:
    bad = copy.deepcopy(request)
    bars = bad["bars"]
    i = rng.randrange(len(bars))
    key = rng.choice(NUMERIC_KEYS)
    price = rng.choice(PRICE_KEYS)
    choice = rng.randrange(14)
    if choice == 0:
        bars[i][key] = rng.choice([float("nan"), float("inf"), float("-inf")])
    elif choice == 1:
        bars[i][key] = rng.choice(["1.0", None, True, [], {}, "NaN"])
    elif choice == 2:
        bars[i][price] = rng.choice([0.0, -1.0, -1e-9, -(10**30)])
    elif choice == 3:
        bars[i]["volume"] = rng.choice([-1.0, -1e-300, -(10**20)])
    elif choice == 4:
        bars[i][key] = 10 ** rng.randrange(309, 2000)
    elif choice == 5:
        del bars[i][rng.choice((*NUMERIC_KEYS, "timestamp"))]
    elif choice == 6:
        bars[i][rng.choice(["vwap", "Close", "ts", "", "x" * 1000])] = 1.0
    elif choice == 7:
        bars[i]["timestamp"] = rng.choice(
            [
                "now",
                "today",
                "NaT",
                "",
                "yesterday",
                "2024-13-01",
                "2024-02-30T00:00:00",
                "T00:00",
                "\u0000",
                "9" * 40,
                " 2024-01-01",
            ]
        )
    elif choice == 8:
        bars[i]["timestamp"] = rng.choice([1e20, -1e20, 1.7e12, float("nan")])
    elif choice == 9 and i > 0:
        bars[i]["timestamp"] = bars[i - 1]["timestamp"]
    elif choice == 10:
        bars[i]["low"], bars[i]["high"] = bars[i]["high"] * 2, bars[i]["low"] / 2
    elif choice == 11:
        bars[i] = rng.choice([[1, 2, 3], "bar", 7, None])
    elif choice == 12:
        for bar in bars:  # overflow only once features are computed
            for k in PRICE_KEYS:
                bar[k] = bar[k] * (1e300 if rng.random() < 0.5 else 1e-300)
            bar["volume"] = 1e308
    else:
        bars[0]["timestamp"] = 1_700_000_000  # a kind differing from the other bars
    return bad


def _request_mutation(rng: random.Random, request: dict, limits: dict) -> dict | list | str:
    bad = copy.deepcopy(request)
    choice = rng.randrange(10)
    if choice == 0:
        del bad[rng.choice(["symbol", "bars", "position"])]
    elif choice == 1:
        bad[rng.choice(["leverage", "Symbol", "__proto__", "x" * 200])] = 1
    elif choice == 2:
        bad["symbol"] = rng.choice(
            [
                "",
                " ",
                "X" * 33,
                "NOPE",
                "SYN0001\n",
                "-SYN",
                "SYN 1",
                7,
                None,
                ["SYN0001"],
                "\u00e9",
            ]
        )
    elif choice == 3:
        bad["position"] = rng.choice([1.0001, -1.5, 1e308, "0.5", None, float("nan"), 10**400])
    elif choice == 4:
        bad["bars"] = rng.choice([[], {}, "bars", None, bad["bars"][:5]])
    elif choice == 5:
        bad["bars"] = bad["bars"] * (limits["max_bars"] // len(bad["bars"]) + 1)
    elif choice == 6:
        return rng.choice([[], "request", 1, None, [bad]])
    elif choice == 7:
        bad["bars"] = bad["bars"][::-1]
    else:
        return _bar_mutation(rng, bad)
    return bad


def cases(valid: dict, limits: dict, n: int, seed: int = 13) -> Iterator[Case]:
    """``n`` bad requests across every category, the same ones for the same seed."""
    rng = random.Random(seed)
    js = {"content-type": "application/json"}
    for k in range(n):
        category = rng.choice(
            ["bar", "bar", "bar", "request", "request", "batch", "bytes", "headers", "route"]
        )
        if category == "bar":
            yield Case(category, "POST", "/predict", _json(_bar_mutation(rng, valid)), js)
        elif category == "request":
            body = _json(_request_mutation(rng, valid, limits))
            yield Case(category, "POST", "/predict", body, js)
        elif category == "batch":
            choice = rng.randrange(5)
            if choice == 0:
                body = _json({"requests": [valid] * (limits["max_batch"] + 1)})
            elif choice == 1:
                body = _json({"requests": [valid, _bar_mutation(rng, valid)]})
            elif choice == 2:
                body = _json({"requests": [], "extra": 1})
            elif choice == 3:
                body = _json({"reqs": [valid]})
            else:
                body = _json({"requests": "all"})
            yield Case(category, "POST", "/predict_batch", body, js)
        elif category == "bytes":
            choice = rng.randrange(6)
            text = _json(valid)
            body = [
                text[: rng.randrange(1, len(text) - 1)],
                b"[" * 50_000 + b"]" * 50_000,
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))),
                b"",
                b"\xef\xbb\xbf" + b"{'symbol': 'SYN0001'}",
                b'{"symbol": "' + b"A" * 100_000 + b'"}',
            ][choice]
            yield Case(category, "POST", "/predict", body, js)
        elif category == "headers":
            choice = rng.randrange(6)
            body = _json(valid)
            if choice == 0:
                yield Case(category, "POST", "/predict", body, {})
            elif choice == 1:
                yield Case(category, "POST", "/predict", body, {"content-type": "text/plain"})
            elif choice == 2:
                headers = {**js, "content-encoding": rng.choice(["gzip", "br", "deflate"])}
                yield Case(category, "POST", "/predict", gzip.compress(body), headers)
            elif choice == 3:
                yield Case(category, "POST", "/predict", body, js, authorised=False)
            elif choice == 4:
                yield Case(
                    category, "POST", "/predict", body, {**js, "authorization": "Bearer x"}, False
                )
            else:
                yield Case(
                    category,
                    "POST",
                    "/predict",
                    body,
                    {**js, "authorization": "Basic dXNlcg=="},
                    False,
                )
        else:
            choice = rng.randrange(4)
            if choice == 0:
                yield Case(category, "GET", "/predict", b"", {})
            elif choice == 1:
                yield Case(category, "DELETE", "/metadata", b"", {})
            elif choice == 2:
                yield Case(category, "GET", f"/admin/{k}", b"", {})
            else:
                yield Case(category, "POST", f"/predict/{k}", _json(valid), js)
