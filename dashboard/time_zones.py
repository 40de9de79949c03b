"""The time zone a chart's times are shown in (no streamlit): the zones to choose from, and a figure's times moved to one.

Plotly has no time zones: it draws a date at the wall time written in it. So a figure built in UTC (every frame of the
dashboard is) is shown in another zone by rewriting each of its times as that zone's wall time, in the traces' x, the
shapes, the annotations and the axes' ranges; numbers and text are left alone. One helper for every tab's figures.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

UTC = "UTC"


def choices(browser_zone: str | None = None) -> list[str]:
    """UTC first (the default), then the browser's own zone when it is another one, then every named zone (Area/City)."""
    zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    first = [UTC] + ([browser_zone] if browser_zone and browser_zone != UTC and browser_zone in zones else [])
    return first + [z for z in zones if z not in first]


def is_zone(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def label(zone: str, at: dt.datetime | None = None) -> str:
    """"UTC", or the zone with its offset at `at` (default now): "Asia/Tokyo (UTC+09:00)"."""
    if zone == UTC:
        return UTC
    offset = (at or dt.datetime.now(dt.timezone.utc)).astimezone(zoneinfo.ZoneInfo(zone)).strftime("%z")
    return f"{zone} (UTC{offset[:3]}:{offset[3:]})"


def wall_time(value, zone: str):
    """A time as `zone`'s wall time, without a zone (how plotly draws it); a time without a zone is UTC. Anything else
    is returned as it is."""
    if isinstance(value, (dt.datetime, np.datetime64)) and not pd.isna(value):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp
        return stamp.tz_convert(zone).tz_localize(None)
    return value


def _moved(values, zone: str):
    if values is None or isinstance(values, (str, bytes)):
        return values
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return pd.DatetimeIndex(values).tz_localize(UTC).tz_convert(zone).tz_localize(None).to_numpy()
    if isinstance(values, Iterable):
        return [wall_time(v, zone) for v in values]
    return wall_time(values, zone)


def _has_times(values) -> bool:
    if isinstance(values, np.ndarray):
        return np.issubdtype(values.dtype, np.datetime64) or any(isinstance(v, dt.datetime) for v in values[:1])
    return isinstance(values, (list, tuple)) and any(isinstance(v, (dt.datetime, np.datetime64)) for v in values)


def in_zone(fig: go.Figure, zone: str) -> go.Figure:
    """`fig` with every time shown as `zone`'s wall time, and its bottom time axis titled with the zone (UTC:
    unchanged)."""
    if zone == UTC:
        return fig
    timed = False
    for trace in fig.data:
        if "x" in trace and _has_times(trace.x):
            trace.x, timed = _moved(trace.x, zone), True
    for shape in fig.layout.shapes:
        shape.x0, shape.x1 = wall_time(shape.x0, zone), wall_time(shape.x1, zone)
    for note in fig.layout.annotations:
        note.x = wall_time(note.x, zone)
    fig.for_each_xaxis(lambda axis: axis.update(range=_moved(axis.range, zone)) if axis.range else None)
    if timed:
        bottom = max((name for name in fig.layout if name.startswith("xaxis")), key=lambda n: int(n[5:] or 1))
        fig.layout[bottom].title = {"text": f"time in {label(zone)}", "font": {"size": 12}}
    return fig
