"""The history tab's CSV: exactly the rows the chart draws and the indicator values drawn with them."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.indicators import Line

TICK_COLUMNS = ["timestamp", "sensor_id", "series", "value", "bid_price", "ask_price", "spread", "spread_bps",
                "bid_size", "ask_size", "volume_24h", "change_24h_pct", "market_cap", "currency", "source",
                "granularity"]
BAR_COLUMNS = ["timestamp", "sensor_id", "series", "open", "high", "low", "close", "ticks", "volume_24h", "currency",
               "sources"]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def table(frame: pd.DataFrame, lines: Sequence[Line] = ()) -> pd.DataFrame:
    """The chart's data as one table: a tick frame's or a bar frame's columns (a bar's `timestamp` is its start, its
    `sources` joined with "+"), then a column per indicator line (empty where the indicator has no value yet)."""
    bars = "close" in frame.columns
    out = frame[[c for c in (BAR_COLUMNS if bars else TICK_COLUMNS) if c in frame.columns]].copy()
    if bars:
        out.insert(1, "resolution", frame.attrs.get("resolution"))
        out["sources"] = out["sources"].map(lambda s: "+".join(s or ()))
    for line in lines:
        out[line.name] = line.values.reindex(frame.index)
    return out


def csv(frame: pd.DataFrame, lines: Sequence[Line] = ()) -> str:
    return table(frame, lines).to_csv(index=False, date_format=TIME_FORMAT)
