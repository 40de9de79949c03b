"""The worker's MongoDB access (the only package here that imports the driver): one store, a family per part.

    store.ticks      the archive, latest, status           (ticks.py)
    store.candles    candles and the serving views          (candles.py)
    store.alerts     rules, firings and their outbox        (alerts.py)
    store.forecasts  forecasts and their scores             (forecasts.py)
    store.analytics  the export's reads, the results        (analytics.py)

The client, error translation, index creation and `until_written` are the families' shared base (base.py).
"""

from __future__ import annotations

from cryptoapp.storage.alerts import Alerts
from cryptoapp.storage.analytics import Analytics
from cryptoapp.storage.base import StorageError, StoreBase
from cryptoapp.storage.candles import Candles
from cryptoapp.storage.forecasts import Forecasts
from cryptoapp.storage.ticks import Ticks, WriteResult

__all__ = ["PriceStore", "StorageError", "WriteResult"]


class PriceStore(StoreBase):
    """One MongoDB client per worker, opened and closed with it, and the families of collections on it."""

    def __init__(self, uri: str, database: str, socket_timeout_s: float = 30.0, **kwargs):
        super().__init__(uri, database, socket_timeout_s, **kwargs)
        self.ticks = Ticks(self)
        self.candles = Candles(self)
        self.alerts = Alerts(self)
        self.forecasts = Forecasts(self)
        self.analytics = Analytics(self)
