"""The real-time tab: a card per coin and live price and 24 h volume charts, refreshed every DASHBOARD_REFRESH seconds."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from cryptoapp.schema import SIMULATED
from cryptoapp.settings.dashboard import DashboardSettings
from cryptoapp.prices.best import DEFAULT_MAX_AGE_S
from dashboard import alerts, best_table, cache, charts, data, formatting, freshness, frames, status, ui

CARDS_PER_ROW = 5



def _has(x) -> bool:
    return x is not None and not pd.isna(x)


def _quote_lines(tick) -> None:
    """Bid, ask and spread (absolute and in basis points of the mid), where the source gives them."""
    if not (_has(tick.bid_price) or _has(tick.ask_price)):
        return
    st.markdown(f"Bid **{formatting.price(tick.bid_price, tick.currency)}** · "
                f"Ask **{formatting.price(tick.ask_price, tick.currency)}**")
    st.markdown(f"Spread **{formatting.spread(tick.spread, tick.spread_bps, tick.currency)}**")


def _updated(tick, fields: str, name: str, now: dt.datetime, stale_after: dict[str, float]) -> None:
    when = tick.timestamp.to_pydatetime()
    badges = []
    if tick.source == SIMULATED:  # the badge names the source: "simulated simulated data" said it twice
        name, badges = "", [":orange-badge[simulated data]"]
    if freshness.is_stale(when, now, stale_after.get(tick.series, freshness.FLOOR_S)):
        badges.append(":red-badge[stale]")
    st.caption(" ".join([f"updated {formatting.age(when, now)} · {fields}:" + (f" {name}" if name else ""), *badges]))


def card(rows: pd.DataFrame, now: dt.datetime, stale_after: dict[str, float], names: dict[str, str],
         recent: pd.DataFrame) -> None:
    """One coin: price with a sparkline of its recent prices, 24 h change (coloured, with an arrow), 24 h volume from
    its first series (CoinGecko's when there is one), then each exchange's last price, bid, ask and spread; every
    number says its source and age."""
    ticks = list(rows.itertuples())
    primary = ticks[0]  # data.latest() puts a coin's CoinGecko series before its exchanges'
    with st.container(border=True):
        st.metric(primary.sensor_id, formatting.price(primary.value, primary.currency),
                  chart_data=frames.sparkline(recent, primary.series) or None, chart_type="line")
        st.markdown(f"{formatting.change(primary.change_24h_pct)} &nbsp;24 h")
        st.markdown(f"Volume 24 h: **{formatting.money(primary.volume_24h, primary.currency)}**")
        _quote_lines(primary)
        quoted = _has(primary.bid_price) or _has(primary.ask_price)
        _updated(primary, "price, change, volume" + (", bid, ask" if quoted else ""),
                 names.get(primary.series, primary.series), now, stale_after)
        for tick in ticks[1:]:
            name = names.get(tick.series, tick.series)
            st.markdown(f"**{name}**: last **{formatting.price(tick.value, tick.currency)}**")
            _quote_lines(tick)
            quoted = _has(tick.bid_price) or _has(tick.ask_price)
            _updated(tick, "last" + (", bid, ask" if quoted else ""), name, now, stale_after)


def _empty(settings: DashboardSettings, state: status.Status) -> None:
    """Why there is no card: the views are missing (an archive stored without them), or nothing is stored yet."""
    if ui.views_missing(settings):
        return
    # A worker that runs but gets nothing from its sources is not told to start; the status line says why.
    worker_up = state.lines and state.level != "error" and "worker" in state.lines[0] and "up" in state.lines[0]
    st.info(f"No prices yet in database `{settings.mongo_db}` at {settings.server}: the worker runs; see "
            "the pipeline line above for its sources." if worker_up else ui.no_data(settings, "prices yet"))


def _stale_after(settings: DashboardSettings, latest: pd.DataFrame, series: pd.DataFrame,
                 now: dt.datetime) -> dict[str, float]:
    lag = freshness.pipeline_lag_s(cache.worker_status(settings.mongo_uri, settings.mongo_db), now)
    return freshness.thresholds(latest, series, settings.interval, lag, settings.refresh)


def _charts(settings: DashboardSettings, latest: pd.DataFrame, series: pd.DataFrame, coins: list[str],
            names: dict[str, str]) -> None:
    left, right = st.columns([3, 2])
    with left:
        if series.empty:
            st.info(f"No ticks in the last 24 h. {ui.START_WORKER}")
        else:
            st.plotly_chart(charts.live_prices_figure(series, coins, names, settings.interval,
                                                      series.attrs.get("start"), series.attrs.get("end")),
                            key="live_prices", config={"displaylogo": False}, theme=None)
    with right:
        st.plotly_chart(charts.volume_figure(latest, names), key="live_volume", config={"displaylogo": False},
                        theme=None)


def _best_quotes(latest: pd.DataFrame, now: dt.datetime, refresh_s: float) -> None:
    """The best bid and ask across exchanges, for the coins two or more exchanges quote (none: nothing shown)."""
    # The page's data may be a refresh old: a quote the worker's /best/ still takes stays in here too.
    best = best_table.best_frame(latest, now, DEFAULT_MAX_AGE_S + refresh_s)
    if not best.empty:
        st.markdown("**Best bid and ask across exchanges**")
        st.dataframe(best, hide_index=True, key="best_quotes")
        st.caption(f"A quote older than {formatting.duration(DEFAULT_MAX_AGE_S + refresh_s)} is left out; a negative "
                   "spread is a crossed book (one exchange bids above another's ask).")


def _live_panel(settings: DashboardSettings) -> None:
    with ui.guarded(settings, "real-time tab"):
        state = ui.pipeline_status(settings)
        alerts.recent_badge(settings)
        now = dt.datetime.now(dt.timezone.utc)
        latest, series = cache.live(settings.mongo_uri, settings.mongo_db, cache.period_end(now, settings.refresh))
        if latest.empty:
            _empty(settings, state)
            return
        coins = list(dict.fromkeys(latest["sensor_id"]))
        names = charts.series_names(latest)
        stale_after = _stale_after(settings, latest, series, now)
        if (latest["source"] == SIMULATED).any():
            st.warning("Simulated data: prices marked *simulated* come from `make demo`'s random walk, "
                       "not from a market.", icon=":material/science:")
        for first in range(0, len(coins), CARDS_PER_ROW):
            for column, coin in zip(st.columns(CARDS_PER_ROW), coins[first:first + CARDS_PER_ROW]):
                with column:
                    card(latest[latest["sensor_id"] == coin], now, stale_after, names, series)
        _best_quotes(latest, now, settings.refresh)
        _charts(settings, latest, series, coins, names)
        closes = sorted(names.get(s, s) for s in series.loc[series["resolution"] != "ticks", "series"].unique())
        shown = f"{len(series):,} points in the price charts"
        if closes:
            shown += (f" (5-minute closes for {', '.join(closes)}: its tick view holds less than 24 h; raw ticks "
                      "for the others)")
        ui.footer([f"Source: {ui.source_names(sorted(set(latest['source'].dropna())))}", shown],
                  series.attrs.get("query_ms"))
        st.caption(f"Refreshes every {settings.refresh:g} s; zoom and pan are kept. The line in each card is its "
                   "price over the chart's window. A source is marked stale when no new price has come for longer "
                   "than it usually takes: its own refresh (measured on its recent ticks), plus the poll interval "
                   "for a polled source, the pipeline's measured lag and the page's refresh, at least "
                   f"{formatting.duration(freshness.FLOOR_S)} (now {freshness.rule_text(stale_after.values())}). "
                   "Exchange prices are in their quote currency (USDT is not the dollar).")


def render(settings: DashboardSettings) -> None:
    # Only this panel reruns on the timer; the rest of the page (and the user's widgets) stay put.
    st.fragment(_live_panel, run_every=settings.refresh)(settings)
