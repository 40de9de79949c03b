"""The Alerts tab's tables, and markers of fired alerts for a price chart, built from stored documents (no streamlit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import pandas as pd
import plotly.graph_objects as go

from cryptoapp.alerts.rules import shown_rules
from dashboard import formatting

RULE_COLUMNS = ("id", "rule", "state", "webhook", "format", "created_at", "problem", "last_fired")
FIRING_COLUMNS = ("fired_at", "coin", "rule", "observed", "threshold", "unit", "status", "attempts", "last_error",
                  "rule_id", "id")
# Delivery states as people read them; `pending` is also what a webhook being retried looks like.
STATUS_WORDS = {"pending": "sending", "delivered": "delivered", "failed": "failed", "stored": "stored (no webhook)"}


def rules_frame(docs: Iterable[dict], last_fired: Mapping[str, dt.datetime] | None = None) -> pd.DataFrame:
    """One row per stored rule, webhook masked, with when it last fired (`last_fired`: rule id -> time, as
    data.last_fired reads it; NaT for a rule that never fired); a malformed document is a row with its problem."""
    last_fired = last_fired or {}
    rows = []
    for doc, shown, problem in shown_rules(docs):
        if shown is None:
            rows.append({"id": str(doc.get("_id")), "rule": "", "state": "invalid", "webhook": "", "format": "",
                         "created_at": doc.get("created_at"), "problem": problem})
            continue
        rows.append({**{k: shown[k] for k in ("id", "rule", "webhook", "format", "created_at")},
                     "state": "enabled" if shown["enabled"] else "paused", "problem": ""})
    frame = pd.DataFrame(rows, columns=list(RULE_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["last_fired"] = pd.to_datetime(frame["id"].map(last_fired), utc=True)
    return frame


def fired_words(last: pd.Timestamp | None, now: dt.datetime) -> str:
    """A rule's line in the list ends with this: "last fired 2025-11-21 10:00 UTC (5 min ago)", or "never fired"."""
    if last is None or pd.isna(last):
        return "never fired"
    return f"last fired {formatting.utc_time(last, seconds=False)} UTC ({formatting.age(last.to_pydatetime(), now)})"


def firings_frame(docs: Iterable[dict]) -> pd.DataFrame:
    """Recent firings, newest first, with what was compared and how delivery went."""
    rows = [{**{c: doc.get(c) for c in FIRING_COLUMNS if c != "id"}, "id": doc.get("_id"),
             "status": STATUS_WORDS.get(doc.get("status"), doc.get("status"))} for doc in docs]
    frame = pd.DataFrame(rows, columns=list(FIRING_COLUMNS))
    frame["fired_at"] = pd.to_datetime(frame["fired_at"], utc=True)
    for column in ("observed", "threshold"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.sort_values("fired_at", ascending=False, kind="stable").reset_index(drop=True)


FIRING_HEADERS = {"fired_at": "Fired (UTC)", "coin": "Coin", "rule": "Rule", "observed": "Observed",
                  "threshold": "Threshold", "status": "Delivery", "attempts": "Attempts", "last_error": "Last error",
                  "rule_id": "Rule id"}


def firings_table(frame: pd.DataFrame) -> pd.DataFrame:
    """firings_frame as a person reads it: headers in words, times in UTC without an offset, numbers with thousands
    separators and their unit (the threshold as the rule wrote it, 200,000 USD; the observed value to a price's
    digits, 86,877.12 USD), blank where there was no error."""
    def with_unit(values: pd.Series, digits=formatting.number) -> list[str]:
        return [formatting.MISSING if pd.isna(v) else f"{digits(v)} {formatting.text(u)}".strip()
                for v, u in zip(values, frame["unit"])]

    table = pd.DataFrame({
        "fired_at": [formatting.utc_time(t) for t in frame["fired_at"]], "coin": frame["coin"].map(formatting.text),
        "rule": frame["rule"].map(formatting.text), "observed": with_unit(frame["observed"], formatting.amount),
        "threshold": with_unit(frame["threshold"]), "status": frame["status"].map(formatting.text),
        "attempts": [formatting.MISSING if pd.isna(a) else f"{int(a):,}" for a in frame["attempts"]],
        "last_error": frame["last_error"].map(formatting.text), "rule_id": frame["rule_id"].map(formatting.text)})
    return table.rename(columns=FIRING_HEADERS)


def coins_with_bid_ask(latest: pd.DataFrame) -> set[str]:
    """The coins with a series whose newest tick carries bid and ask (the frame of data.latest, one row a series):
    spread_bps rules need them."""
    if latest.empty:
        return set()
    quoted = latest[latest["bid_price"].notna() & latest["ask_price"].notna()]
    return set(quoted["sensor_id"])


def firing_markers(docs: Iterable[dict]) -> go.Scatter:
    """A marker per firing at the time and price of the tick that fired it, for a coin's price chart.

    `docs` are firing documents as dashboard.data.recent_firings returns them, e.g. the firings of the chart's
    coin and window: `recent_firings(db, limit=..., since=start, coin=ticker)` (newest first; the order does not
    matter here). Each marker sits at `tick.timestamp` (UTC datetime) and `tick.value` (the price in the tick's
    currency, the price panel's y axis); hovering shows the rule in words. Firings of every kind (volume_spike
    and spread_bps too) are marked at the price: the marker says when, the hover what. With no firings it draws
    nothing. For the history chart, `firing_layer` wraps it as one of history_charts.history_figure's `layers`."""
    docs = list(docs)
    return go.Scatter(
        x=[d["tick"]["timestamp"] for d in docs], y=[d["tick"]["value"] for d in docs], mode="markers",
        name="alerts fired", marker={"symbol": "star", "size": 12, "color": "#d62728", "line": {"width": 1}},
        text=[d.get("rule", "") for d in docs], hovertemplate="%{text}<br>%{x}<br>%{y:,.2f}<extra>alert</extra>")


def firing_layer(docs: Iterable[dict]):
    """A layer for history_charts.history_figure(..., layers=[firing_layer(docs)]): firing_markers(docs) on the price
    panel (drawn only when there is a firing, so the legend names no empty trace)."""
    docs = list(docs)

    def draw(fig: go.Figure, panels) -> None:
        if docs:
            fig.add_trace(firing_markers(docs), row=panels.rows["price"], col=1)

    return draw
