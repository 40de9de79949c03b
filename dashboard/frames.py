"""The dashboard's frames, pure (no driver, no streamlit): the page's limits, the checks a value passes before it reaches
a query, the time window, and the typed frames that the views' documents and the stored rows become."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from cryptoapp.candles.rings import RING_SIZE, TICK_RING_SIZE, bit_sources, label_of
from cryptoapp.candles.view_docs import columns
from cryptoapp.schema import RESOLUTIONS, TICK_NUMBERS, TICKER_RE, UTC, bson_time, is_series_id

MAX_HOURS = 168
MAX_POINTS = max(RING_SIZE.values())  # the most a chart draws: 2,016 five-minute bars make the 168 h window
LIVE_HOURS = 24
RESOLUTION_CHOICES = ("auto", "ticks", *RESOLUTIONS)
TICK_COLUMNS = ("timestamp", "sensor_id", "series", *TICK_NUMBERS, "spread", "spread_bps", "source", "granularity",
                "currency")
BAR_COLUMNS = ("timestamp", "sensor_id", "series", "open", "high", "low", "close", "ticks", "volume_24h", "sources",
               "currency", "quote_volume", "vwap")  # the last two: a trade-built bar's own volume and VWAP, else NaN


def check_ticker(ticker: object) -> str:
    """The ticker itself when it is one (A-Z, 0-9, up to 15); anything else never reaches a query."""
    if not isinstance(ticker, str) or not TICKER_RE.fullmatch(ticker):
        raise ValueError(f"{ticker!r} is not a ticker (1-15 capital letters or digits, e.g. BTC)")
    return ticker


def check_series(series: object) -> str:
    """A series id (BTC, BTC_binanceus) when it is one; anything else never reaches a query."""
    if not is_series_id(series):
        raise ValueError(f"{series!r} is not a series (a ticker, or ticker_source such as BTC_binanceus)")
    return series


def time_window(hours: float, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[now - hours, now] in UTC; hours between 1 and 168."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"the window is {hours!r} h: choose 1 to {MAX_HOURS} hours")
    end = now or dt.datetime.now(UTC)
    if end.tzinfo is None:
        raise ValueError("`now` needs a time zone (UTC)")
    end = bson_time(end)  # a bound finer than BSON's milliseconds would be rounded by the server
    return end - dt.timedelta(hours=hours), end


# --- frames ------------------------------------------------------------------------------------------------------

def _with_spread(frame: pd.DataFrame) -> pd.DataFrame:
    frame["spread"] = frame["ask_price"] - frame["bid_price"]
    mid = (frame["ask_price"] + frame["bid_price"]) / 2
    frame["spread_bps"] = frame["spread"] / mid * 10_000
    return frame


def tick_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Tick rows as a typed frame: UTC times, floats with NaN for null (never a made-up value), text columns."""
    frame = pd.DataFrame(list(rows), columns=[c for c in TICK_COLUMNS if c not in ("spread", "spread_bps")])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column in TICK_NUMBERS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("sensor_id", "series", "source", "granularity", "currency"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    frame["points"] = 1
    return _with_spread(frame)[[*TICK_COLUMNS, "points"]].sort_values("timestamp", kind="stable").reset_index(drop=True)


def bar_frame(rows: Iterable[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(BAR_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column in ("open", "high", "low", "close", "volume_24h", "quote_volume", "vwap"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["ticks"] = pd.to_numeric(frame["ticks"], errors="coerce").fillna(0).astype("int64")
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def coins_of(frame: pd.DataFrame) -> list[str]:
    """The tickers of a `latest()` frame, in its order."""
    return list(dict.fromkeys(frame["sensor_id"]))


def times_of(seconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime((seconds * 1000).round().astype("int64"), unit="ms", utc=True)


def oldest_held(doc: dict | None, unit: float) -> dt.datetime | None:
    t = columns(doc)["t"] if doc else np.array([])
    t = t[~np.isnan(t)]
    return dt.datetime.fromtimestamp(float(t.min()) / unit, UTC) if len(t) else None


def covers(doc: dict | None, start: dt.datetime) -> bool:
    """Whether a tick ring holds every tick since `start`: it reaches back that far, or was never full."""
    if doc is None:
        return False
    t = columns(doc)["t"]
    return len(t) > 0 and (len(t) < TICK_RING_SIZE or float(t.min()) <= start.timestamp() * 1000)


def ticks_in(doc: dict | None, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The ticks of a tick ring with start <= time <= end, as a tick frame."""
    if doc is None:
        return tick_frame([])
    cols = columns(doc)
    keep = (cols["t"] >= start.timestamp() * 1000) & (cols["t"] <= end.timestamp() * 1000)
    sources = np.array(doc.get("sources") or ["unknown"], dtype=object)
    frame = pd.DataFrame({"timestamp": times_of(cols["t"][keep] / 1000), "sensor_id": doc["sensor_id"],
                          "series": doc["series"],
                          **{name: cols[name][keep] if name in cols else np.nan for name in TICK_NUMBERS},
                          "source": sources[cols["src"][keep].astype("int64")] if keep.any() else [],
                          "granularity": [label_of(g) for g in cols["g"][keep]], "currency": doc.get("currency")})
    frame["points"] = 1
    return _with_spread(frame)[[*TICK_COLUMNS, "points"]].reset_index(drop=True)


def bars_in(doc: dict | None, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The bars of a bar ring with start <= bar start < end, oldest first, as a bar frame."""
    if doc is None:
        return bar_frame([])
    cols = columns(doc)
    seconds = RESOLUTIONS[doc["kind"]]
    keep = ~np.isnan(cols["t"]) & (cols["t"] > start.timestamp() - seconds) & (cols["t"] < end.timestamp())
    order = np.argsort(cols["t"][keep], kind="stable")
    pick = {name: values[keep][order] for name, values in cols.items()}
    names = {bits: bit_sources(int(bits), doc.get("source")) for bits in np.unique(pick["src"])}
    return pd.DataFrame({"timestamp": times_of(pick["t"]), "sensor_id": doc["sensor_id"], "series": doc["series"],
                         "open": pick["o"], "high": pick["h"], "low": pick["l"], "close": pick["c"],
                         "ticks": pick["n"].astype("int64"), "volume_24h": pick["v"],
                         "sources": [names[bits] for bits in pick["src"]], "currency": doc.get("currency"),
                         "quote_volume": pick["qv"], "vwap": pick["w"]},
                        columns=list(BAR_COLUMNS))


SPARKLINE_POINTS = 60


def sparkline(recent: pd.DataFrame, series: str, points: int = SPARKLINE_POINTS) -> list[float]:
    """A series' prices in data.load_live's frame, thinned to at most `points` evenly spaced ones ending with the
    newest, for the line in a card; empty when it has none."""
    values = recent.loc[recent["series"] == series, "value"].dropna().to_numpy() if not recent.empty else np.array([])
    if len(values) <= points:
        return values.tolist()
    picks = np.linspace(0, len(values) - 1, points).round().astype("int64")
    return values[picks].tolist()


def fitting_resolution(hours: float, max_points: int = MAX_POINTS) -> str:
    """The finest bar resolution that draws `hours` in at most `max_points` bars."""
    return next(res for res, seconds in RESOLUTIONS.items() if hours * 3600 / seconds <= max_points or res == "1d")


def typed(frame: pd.DataFrame, times: Sequence[str], texts: Sequence[str]) -> pd.DataFrame:
    for column in frame.columns:
        if column in times:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        elif column == "beats_naive":
            frame[column] = frame[column].fillna(False).astype(bool)
        elif column not in texts:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


ANALYTICS_DAILY_COLUMNS = ("sensor_id", "date", "open", "high", "low", "close", "return", "volatility",
                           "volatility_annualized", "max_drawdown", "ticks", "minutes", "coverage", "returns_1m",
                           "first_tick", "last_tick", "sources")
ANALYTICS_CORRELATION_COLUMNS = ("frequency", "coin_a", "coin_b", "correlation", "observations", "start", "end")
