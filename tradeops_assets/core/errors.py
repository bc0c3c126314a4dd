"""One hierarchy for every error tradeops raises on bad input.

Callers catch ``TradeopsError`` to report a clean message; the subclasses tell
operators which stage refused the data, and the message says what and where.
"""


class TradeopsError(Exception):
    """Base of every error tradeops raises deliberately."""


class ConfigError(TradeopsError):
    """A deployment, source spec or run config that cannot be used."""


class MarketDataError(TradeopsError):
    """Market data that cannot be read into the canonical bar layout."""


class UnknownLayoutError(MarketDataError):
    """A vendor file whose columns do not map onto the canonical bar columns."""


class ValidationError(TradeopsError):
    """Data that was read but breaks a validation rule."""


class FeatureError(TradeopsError):
    """Bars that cannot be turned into features (too short, unsorted, ...)."""


class SnapshotError(TradeopsError):
    """A dataset snapshot that cannot be written, found or restored."""
