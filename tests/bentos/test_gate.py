"""The gate answers its routes itself: what happens when a handler fails unexpectedly."""

import asyncio
import json
import logging

from bentos.trading_policy import service


def test_an_unexpected_failure_behind_the_gate_is_a_logged_json_500(monkeypatch, caplog):
    async def broken(_request):
        raise RuntimeError("the policy fell over")

    monkeypatch.setitem(service.HANDLERS, "/predict", broken)
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
