"""The Analytics tab: the Spark jobs' daily statistics per coin, volatility, correlations, and when they last ran."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import analytics_charts, cache, data, formatting, ui
from cryptoapp.settings.dashboard import DashboardSettings

RESULTS_TTL_S = 60  # results change only when `make analytics` runs
REFRESH_HINT = ("Refresh with `make analytics` (export to Parquet, Spark jobs, load into MongoDB; "
                "docs/analytics.md); this page shows the new results within a minute.")


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=8, show_spinner=False)
def results(uri: str, db_name: str) -> tuple[dict | None, pd.DataFrame, pd.DataFrame]:
    db = cache.client(uri)[db_name]
    return data.load_analytics_run(db), data.load_analytics_daily(db), data.load_analytics_correlation(db)


def run_caption(run: dict, now: dt.datetime) -> str:
    """One line about the last run: when, over what, where, how long."""
    computed = run.get("computed_at")
    when = f"{computed:%Y-%m-%d %H:%M} UTC ({formatting.age(computed, now)})" if computed else "—"
    parts = [f"Last run: {when}"]
    if run.get("ticks") is not None:
        parts.append(f"{run['ticks']:,} ticks of {len(run.get('coins') or [])} coins, "
                     f"{run.get('first_day') or '—'} to {run.get('last_day') or '—'}")
    if run.get("master"):
        jobs = f" in {run['jobs_s']:.0f} s" if run.get("jobs_s") is not None else ""
        parts.append(f"Spark {run.get('spark_version') or ''} on {run['master']}{jobs}")
    return " · ".join(parts)


def render(settings: DashboardSettings) -> None:
    with ui.guarded(settings, "analytics tab"):
        with st.spinner("Reading the analytics results…"):
            run, daily, pairs = results(settings.mongo_uri, settings.mongo_db)
        if run is None or daily.empty:
            st.info(f"No analytics results in database `{settings.mongo_db}` at {settings.server} yet: the worker "
                    "does not make them. `make analytics` does, from the prices stored so far (about 3 min: it "
                    "exports the archive to Parquet, runs the Spark jobs, loads their results into MongoDB); this "
                    "tab shows them within a minute. Run it again later for the days collected since.")
            return
        st.caption(f"{run_caption(run, dt.datetime.now(dt.timezone.utc))}. {REFRESH_HINT}")
        if daily["sources"].map(lambda s: "simulated" in (s or [])).any():
            st.warning("Some days are computed from simulated prices (`make demo`), not market data.")

        coin = st.selectbox("Coin", analytics_charts.coins_in_order(daily), key="analytics_coin")
        st.subheader(f"{coin}: daily statistics")
        table = analytics_charts.daily_table(daily, coin)
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption("Return: close over the previous day's close. Volatility: √Σ of squared 1-minute log returns "
                   "(annualized × √365). Max drawdown: the day's largest fall from its running high. Coverage: "
                   "minutes of the day's 1,440 that hold a tick. — where a value cannot be computed (first day, no "
                   "1-minute returns).")

        annualized = st.toggle("Annualized volatility", value=True, key="analytics_annualized")
        st.plotly_chart(analytics_charts.volatility_figure(daily, annualized), width="stretch")

        frequency = st.radio("Returns", ["daily", "hourly"], horizontal=True, key="analytics_frequency")
        if pairs[pairs["frequency"] == frequency].empty:
            st.info(f"No {frequency} correlations in the last run (too few days or coins).")
        else:
            st.plotly_chart(analytics_charts.correlation_heatmap(pairs, frequency), width="stretch")
            st.caption(f"{analytics_charts.correlation_note(pairs, frequency)} Pearson correlation over the periods "
                       "where both coins have a return; — where it is undefined (a constant price, or fewer than "
                       "two shared returns).")
