"""The history chart's resolution: what "auto" asks the views for, and the sentences that say what it picked and why.

Pure (no streamlit, no I/O). The rule: a line draws raw ticks while the window's ticks fit in one chart (at most
frames.MAX_POINTS) and the tick view reaches back over the whole window, else the finest bars that draw the window in
at most MAX_POINTS. Candlesticks need bars, and stay readable only while a candle is a few pixels wide: the finest
resolution that draws the window in at most MAX_CANDLES bars (24 h: 5m; 168 h: 1h); while the window has fewer than
MIN_CANDLES of them (a database a minute old), the ticks are drawn as a line instead.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cryptoapp.schema import RESOLUTIONS
from dashboard import formatting, time_zones
from dashboard.frames import MAX_POINTS, fitting_resolution

MAX_CANDLES = 300  # about 3 px a candle across a 1,000 px chart; CoinGecko's 1m bars are single ticks anyway
MIN_CANDLES = 10  # fewer bars make no readable candlestick chart: a fresh database's ticks say more
CANDLES, LINE = "candles", "line"


def requested(choice: str, mode: str, hours: float) -> str:
    """The resolution to read for a user's `choice` ("auto", "ticks" or a bar resolution) and chart mode."""
    if choice != "auto":
        return choice
    return fitting_resolution(hours, MAX_CANDLES) if mode == CANDLES else "auto"


def needs_ticks(frame: pd.DataFrame, choice: str, mode: str) -> bool:
    """Whether "auto" candlesticks found too few bars and the ticks should be drawn instead."""
    return choice == "auto" and mode == CANDLES and len(frame) < MIN_CANDLES


def _bars(resolution: str) -> str:
    return "raw ticks" if resolution == "ticks" else f"{resolution} bars"


def explain(frame: pd.DataFrame, choice: str, mode: str, hours: float, too_few_bars: int | None = None) -> str:
    """One sentence: the resolution drawn, and why (what auto picked, or that the user chose it)."""
    used = frame.attrs.get("resolution", "ticks")
    ticks = frame.attrs.get("ticks")
    if choice != "auto":
        text = f"Resolution: {_bars(used)} (chosen)."
        if used == "ticks" and mode == CANDLES:
            text += " Ticks are drawn as a line: candlesticks need a bar resolution."
        return text
    if too_few_bars is not None:
        return (f"Resolution: auto → raw ticks, drawn as a line: the window has {too_few_bars} "
                f"{fitting_resolution(hours, MAX_CANDLES)} bar{'s' * (too_few_bars != 1)} so far, too few for "
                "candlesticks.")
    if used == "ticks":
        return (f"Resolution: auto → raw ticks: the {ticks or 0:,} ticks of the last {hours:g} h fit in one chart "
                f"(at most {MAX_POINTS:,} points).")
    if mode == CANDLES:
        return (f"Resolution: auto → {used} bars: candlesticks need bars, and {used} is the finest resolution that "
                f"draws {hours:g} h in at most {MAX_CANDLES} candles (readable ones).")
    fits = f"{used} is the finest resolution that draws {hours:g} h in at most {MAX_POINTS:,} bars"
    why = (f"its {ticks:,} ticks are more than a chart draws" if ticks and ticks > MAX_POINTS
           else "the tick view does not reach back over the whole window")
    return f"Resolution: auto → {used} bars: {why}, and {fits}."


def when(at: dt.datetime, zone: str = time_zones.UTC) -> str:
    """"07 Dec 06:20 UTC", or the wall time and zone of `zone`: "07 Dec 15:20 Asia/Tokyo"."""
    return f"{time_zones.wall_time(at, zone):%d %b %H:%M} {zone}"


def reach_note(frame: pd.DataFrame, coin: str, name: str, choice: str, zone: str = time_zones.UTC) -> str | None:
    """A sentence when the window reaches past what the view holds (attrs["held_from"]), else None."""
    start, held_from = frame.attrs.get("start"), frame.attrs.get("held_from")
    if start is None or held_from is None:
        return None
    used = frame.attrs.get("resolution", "ticks")
    window = frame.attrs["end"] - start
    slack = max(dt.timedelta(seconds=RESOLUTIONS.get(used, 60)), window * 0.02)
    if held_from - start <= slack:
        return None
    view = "tick view" if used == "ticks" else f"{used} view"
    text = (f"The window starts {when(start, zone)}, but the {view} of {coin} · {name} holds data from "
            f"{when(held_from, zone)} on: the chart shows what it holds.")
    if choice != "auto" and used != "1d":
        text += " A coarser resolution reaches further back."
    return text


def newest_note(frame: pd.DataFrame, now: dt.datetime, zone: str = time_zones.UTC) -> str | None:
    """A sentence when the newest point is well before the window's end (the source stopped), else None."""
    if frame.empty or frame.attrs.get("end") is None:
        return None
    newest = frame["timestamp"].max().to_pydatetime()
    used = frame.attrs.get("resolution", "ticks")
    step = RESOLUTIONS.get(used, 0)
    if (frame.attrs["end"] - newest).total_seconds() <= max(3 * step, 600):
        return None
    return (f"Newest point: {when(newest, zone)} ({formatting.age(newest, now)}); nothing has been stored for this "
            "series since.")
