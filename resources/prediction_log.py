"""The prediction log as monitoring reads it: every decision the endpoint served.

The serving process writes it (``core.prediction_log.PredictionLog``) where its
deployment says; this resource is the one place the pipeline reads it from.
"""

import dagster as dg
import polars as pl

from tradeops_assets.core.prediction_log import read_log


class PredictionLogStore(dg.ConfigurableResource):
    root: str

    def read(self) -> pl.DataFrame:
        return read_log(self.root)
