"""Alerts: a log line always, and a JSON post to a webhook when one is configured.

The payload is Slack-compatible (``text``) and carries the structured alert beside it
(``tradeops``), so a chat channel and a pager both read it. Delivery is bounded: a
short timeout, a few retries with backoff, and every failure swallowed after it is
logged, so an unreachable webhook can delay a run by seconds, never fail it. The URL
is a secret (``dg.EnvVar("TRADEOPS_ALERT_WEBHOOK")``).
"""

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx

logger = logging.getLogger("tradeops.alerts")

DRIFT, RETRAIN, REFUSED, DEPLOYED, RUN_FAILED, SERVING, BYPASS, OVERRIDDEN = (
    "drift_breach",
    "retrain_requested",
    "gate_refused",
    "deployment_done",
    "run_failed",
    "serving_health_breach",
    "gate_bypass_refused",
    "manual_override",
)


class Notifier(dg.ConfigurableResource):
    webhook_url: str = ""
    timeout_s: float = 2.0
    attempts: int = 3

    def alert(self, kind: str, title: str, details: dict[str, Any] | None = None) -> bool:
        """Logs the alert and posts it; True if the webhook took it (or none is configured)."""
        details = details or {}
        logger.warning("ALERT %s: %s %s", kind, title, json.dumps(details, default=str))
        if not self.webhook_url:
            return True
        payload = {
            "text": f"[tradeops] {title}",
            "tradeops": {
                "kind": kind,
                "title": title,
                "details": details,
                "time": datetime.now(UTC).isoformat(),
            },
        }
        body = json.dumps(payload, default=str)
        for attempt in range(self.attempts):
            try:
                answer = httpx.post(
                    self.webhook_url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout_s,
                )
                if answer.status_code < 300:
                    return True
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            logger.warning("alert %s not delivered (attempt %d): %s", kind, attempt + 1, problem)
            time.sleep(0.2 * 2**attempt)
        return False
