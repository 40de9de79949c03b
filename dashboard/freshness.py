"""When a series is stale: no new observation for longer than its source's refresh plus the pipeline's lag (pure).

A person calls a price stale when the next one is overdue, so the rule is measured per series, never a fixed
multiple of the poll interval (3 × 2 s flickered on every healthy card of the demo):

    stale after = max(FLOOR_S, refresh + poll + pipeline lag + page refresh)

- refresh: how often the source gives a new observation, measured as the 90th percentile of the gaps between the
  series' last RECENT_TICKS observations (the tick view the page already reads). A long outage is one gap among
  them and does not move it; a source that refreshes slowly (CoinGecko, about once a minute) does.
- poll: a polled source (CoinGecko, the simulated demo: one series per ticker) is asked every CRYPTO_INTERVAL, so a
  new observation can wait up to one interval before the worker sees it; a stream (an exchange) does not wait.
- pipeline lag: the workers' own measurement, from fetch to stored (crypto.status' `readable_p90_s`).
- page refresh: the page reads the views once per DASHBOARD_REFRESH.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from dashboard.formatting import duration
from dashboard.status import GONE_AFTER_S

FLOOR_S = 30.0          # never stale sooner: a few missed demo polls are not worth a red badge
RECENT_TICKS = 31       # the last 30 gaps
REFRESH_QUANTILE = 0.9


def source_refresh_s(times: Iterable) -> float:
    """The 90th percentile of the gaps between consecutive observation times, over the last RECENT_TICKS of them
    (a gap that happened: nine in ten were no longer); 0 with fewer than two."""
    stamps = pd.to_datetime(pd.Series(list(times)), utc=True).sort_values().iloc[-RECENT_TICKS:]
    gaps = stamps.diff().dt.total_seconds().dropna().to_numpy()
    return float(np.quantile(gaps, REFRESH_QUANTILE, method="higher")) if len(gaps) else 0.0


def stale_after_s(refresh_s: float, poll_s: float, lag_s: float, page_s: float) -> float:
    """Seconds without a new observation after which a series is stale (the module's rule)."""
    return max(FLOOR_S, refresh_s + poll_s + max(0.0, lag_s) + page_s)


def is_stale(observed_at: dt.datetime, now: dt.datetime, after_s: float) -> bool:
    return (now - observed_at).total_seconds() > after_s


def is_polled(series: str, ticker: str) -> bool:
    """CoinGecko's and the demo's series are one per ticker and polled; an exchange's (BTC_binanceus) streams."""
    return series == ticker


def thresholds(latest: pd.DataFrame, recent: pd.DataFrame, interval_s: float, lag_s: float,
               page_s: float) -> dict[str, float]:
    """series -> seconds after which it is stale, for every series of a data.latest() frame; `recent` is the page's
    price frame (data.load_live's second frame): a series' raw ticks of its newest tick's source give its refresh."""
    out = {}
    for row in latest.itertuples():
        mine = recent[(recent["series"] == row.series) & (recent["resolution"] == "ticks")
                      & (recent["source"] == row.source)] if not recent.empty else recent
        refresh = source_refresh_s(mine["timestamp"]) if len(mine) else 0.0
        poll = interval_s if is_polled(row.series, row.sensor_id) else 0.0
        out[row.series] = stale_after_s(refresh, poll, lag_s, page_s)
    return out


def pipeline_lag_s(status_docs: Iterable[Mapping], now: dt.datetime) -> float:
    """The slowest running worker's measured fetch-to-stored lag (the 90th percentile over its recent ticks, in its
    status document); 0 when no running worker says."""
    return max((float(d["readable_p90_s"]) for d in status_docs if d.get("readable_p90_s") is not None
                and (now - d["heartbeat"]).total_seconds() <= GONE_AFTER_S), default=0.0)


def rule_text(after: Iterable[float]) -> str:
    """The footnote's words for the thresholds in force, e.g. "30 s" or "30 s to 2.2 min"."""
    values = sorted(set(round(a) for a in after)) or [FLOOR_S]
    low, high = duration(values[0]), duration(values[-1])
    return low if low == high else f"{low} to {high}"
