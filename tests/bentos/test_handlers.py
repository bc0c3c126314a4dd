"""Pieces of the request path checked in process: the body parser, and the gate's own
answer when a handler fails unexpectedly (real servers are in test_service.py)."""

import asyncio
import json
import logging
import math
from types import SimpleNamespace

import pytest
from pydantic_core import from_json
from starlette.requests import Request

from bentos.trading_policy import service
from tradeops_assets.core.errors import RequestError


def test_an_unexpected_failure_behind_the_gate_is_a_logged_json_500(monkeypatch, caplog):
    async def broken(_request):
        raise RuntimeError("the policy fell over")

    monkeypatch.setitem(service.ROUTES, "/predict", ("POST", broken))
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [], "state": {}}
    with caplog.at_level(logging.ERROR, logger="tradeops.serving"):
        asyncio.run(service._answer(scope, receive, send))
    assert sent[0]["status"] == 500
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "internal_error"}
    assert "/predict failed" in caplog.text
    assert "the policy fell over" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"symbol": "SYN0001", "position": 0.5, "bars": [{"close": 101.25}]}',
        b'{"close": [1e308, 2.5e-308, -0.0, 123456789012345678]}',
        b'[{"a": "\\u00e9\\ud83d\\ude00"}, null, true]',
    ],
)
def test_the_fast_parser_reads_what_the_other_reads(body):
    assert service._loads(body) == from_json(body)


def test_what_the_fast_parser_refuses_is_read_for_validation_to_name_the_field():
    parsed = service._loads(
        b'{"bars": [{"close": NaN, "open": Infinity, "volume": 1%s}]}' % (b"0" * 400)
    )
    bar = parsed["bars"][0]
    assert math.isnan(bar["close"])
    assert bar["open"] == math.inf
    assert bar["volume"] == 10**400


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": 1,}', b"\xff\xfe"])
def test_a_body_neither_parser_reads_is_refused_as_the_body(monkeypatch, body):
    limits = SimpleNamespace(max_body_bytes=1_000)
    monkeypatch.setattr(service, "_state", SimpleNamespace(settings=limits))

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(RequestError) as refused:
        asyncio.run(service._body(request))
    assert refused.value.field == "body"
    assert refused.value.reason.startswith("is not valid JSON: ")
