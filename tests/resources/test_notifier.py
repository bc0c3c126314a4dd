"""Alerts reach a real webhook receiver on loopback, retry, and never fail their caller."""

import logging
import socket

from resources.notifier import DRIFT, Notifier
from tradeops_assets.receiver import Receiver


def test_an_alert_posts_slack_compatible_json_and_logs_a_line(caplog):
    with Receiver() as receiver, caplog.at_level(logging.WARNING, "tradeops.alerts"):
        ok = Notifier(webhook_url=receiver.url).alert(DRIFT, "feature drift", {"psi": 0.4})
    assert ok
    (post,) = receiver.posts
    assert post["text"] == "[tradeops] feature drift"
    assert post["tradeops"]["kind"] == DRIFT
    assert post["tradeops"]["details"] == {"psi": 0.4}
    assert "ALERT drift_breach: feature drift" in caplog.text


def test_a_failing_webhook_is_retried_and_a_dead_one_is_reported_not_raised():
    with Receiver(fail_first=2) as flaky:
        assert Notifier(webhook_url=flaky.url).alert(DRIFT, "retried")
    assert flaky.attempts == 3
    assert len(flaky.posts) == 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"  # bound, never listening
    assert Notifier(webhook_url=dead, timeout_s=0.5).alert(DRIFT, "nobody home") is False


def test_without_a_webhook_an_alert_is_a_log_line(caplog):
    with caplog.at_level(logging.WARNING, "tradeops.alerts"):
        assert Notifier().alert(DRIFT, "only logged")
    assert "only logged" in caplog.text
