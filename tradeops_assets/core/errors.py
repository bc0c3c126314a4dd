"""One hierarchy for every error tradeops raises on bad input.

Callers catch ``TradeopsError`` to report a clean message; the subclasses tell
operators which stage refused the data, and the message says what and where.
"""


class TradeopsError(Exception):
    """Base of every error tradeops raises deliberately."""


class ConfigError(TradeopsError):
    """A deployment, source spec or run config that cannot be used."""


def require_format(data: dict, expected: int, what: str) -> None:
    """A stored document from another code generation is refused by name, not misread."""
    if data.get("format") != expected:
        raise ConfigError(f"{what} format {data.get('format')!r}; this code reads {expected}")


class MarketDataError(TradeopsError):
    """Market data that cannot be read into the canonical bar layout."""


class UnknownLayoutError(MarketDataError):
    """A vendor file whose columns do not map onto the canonical bar columns."""


class ValidationError(TradeopsError):
    """Data that was read but breaks a validation rule."""


class FeatureError(TradeopsError):
    """Bars that cannot be turned into features (too short, unsorted, ...)."""


class LeakageError(TradeopsError):
    """Information from after a decision, or after a training window, reached what uses it."""


class SnapshotError(TradeopsError):
    """A dataset snapshot that cannot be written, found or restored."""


class RequestError(TradeopsError):
    """A serving request refused before any decision; ``field`` is its JSON path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field or 'body'}: {reason}")
        self.field = field or "body"
        self.reason = reason

    def within(self, prefix: str) -> "RequestError":
        """The same refusal with ``field`` seen from an enclosing document."""
        if not prefix:
            return self
        inner = "" if self.field == "body" else self.field
        joined = prefix + inner if inner.startswith("[") or not inner else f"{prefix}.{inner}"
        return RequestError(joined, self.reason)


class BundleError(TradeopsError):
    """A policy bundle directory that cannot be loaded, or was built for other features."""


class SignatureError(BundleError):
    """A bundle whose signature is missing, malformed or made by another key."""


class AuditError(TradeopsError):
    """The audit trail is not what was written: names the record and what is wrong."""


class GateBypassError(TradeopsError):
    """A policy version about to be packaged or deployed without the audit trail's authority."""
