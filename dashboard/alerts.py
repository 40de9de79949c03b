"""The Alerts tab (a form that creates rules checked by cryptoapp.alerts.rules, the rules with pause/resume/delete,
recent firings) and the real-time tab's badge and toasts for the firings of the last minutes."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from cryptoapp.alerts.rule_input import Tracked, rule_from_input
from cryptoapp.alerts.rules import KINDS, RuleError, Wording
from cryptoapp.coins import Coin, spellings
from cryptoapp.settings.dashboard import DashboardSettings
from dashboard import cache, data, formatting, ui
from dashboard.alert_tables import coins_with_bid_ask, fired_words, firings_frame, firings_table, rules_frame

KIND_LABELS = {
    "above": "price above (USD)", "below": "price below (USD)",
    "change_pct": "price change within a window (%, + rise / - fall)",
    "volume_spike": "24 h volume up within a window (%)", "spread_bps": "bid/ask spread above (bps)",
}
# The form's labels, which its errors name too (the same rule code as the CLI's, in the page's own words).
LABELS = {"coin": "Coin", "kind": "Kind", "threshold": "Threshold", "window": "Window (change and volume only)",
          "webhook": "Webhook URL (optional)", "format": "Payload", "untracked": "Keep it for a coin with no prices yet"}
FORM = Wording({k: v.split(" (")[0] for k, v in LABELS.items()}, "15m",
               f"tick “{LABELS['untracked']}” to store the rule anyway")
NOTICE = "alerts_notice"  # session state: the outcome of the last button, shown after the rerun it causes
RECENT_S = 600  # the real-time tab's badge counts the firings of the last 10 minutes
TOASTED = "alerts_toasted"  # session state: ids of the recent firings this session has seen
BADGE_NAMES = 3  # rules named in the badge; the Alerts tab lists them all


def _form(settings: DashboardSettings, db) -> None:
    latest = cache.series(settings.mongo_uri, settings.mongo_db)  # the newest tick of every series
    coins = list(dict.fromkeys(latest["sensor_id"]))
    with st.form("new_alert", clear_on_submit=False, border=True):
        st.markdown("**New alert**")
        left, middle, right = st.columns(3)
        coin = left.selectbox(LABELS["coin"], coins or ["BTC"], accept_new_options=True, key="alert_coin",
                              help="A ticker or a CoinGecko id, as CRYPTO_SYMBOLS takes them: BTC or bitcoin.")
        kind = middle.selectbox(LABELS["kind"], KINDS, format_func=KIND_LABELS.get, key="alert_kind")
        threshold = right.text_input(LABELS["threshold"], placeholder="e.g. 100000, 3 or -3", key="alert_threshold")
        left, middle, right = st.columns(3)
        window = left.text_input(LABELS["window"], placeholder="e.g. 15m, 1h", key="alert_window")
        webhook = middle.text_input(LABELS["webhook"], type="password", key="alert_webhook",
                                    help="Kept secret: shown masked everywhere once saved.")
        payload = right.selectbox(LABELS["format"], ("json", "slack", "discord"), key="alert_format")
        untracked = st.checkbox(LABELS["untracked"], key="alert_untracked",
                                help="The rule waits until the worker stores prices for its coin (CRYPTO_SYMBOLS).")
        submitted = st.form_submit_button("Add alert")
    if not submitted:
        return
    # The coins the worker prices, as the page knows them: those it stores prices for.
    tracked = Tracked.of((Coin(t.lower(), t) for t in coins), spellings())
    try:
        rule = rule_from_input(coin, kind, threshold, tracked=tracked, untracked=untracked, words=FORM,
                               window=window, webhook=webhook, format=payload,
                               coins_with_bid_ask=coins_with_bid_ask(latest))
    except RuleError as exc:
        st.error(f"Not added: {exc}")
        return
    data.add_rule(db, rule.to_document())
    waits = f" It waits: the worker stores no prices for {rule.coin} yet." if tracked.waits(rule.coin) else ""
    st.success(f"Added {rule.describe()} (rule {rule.id}); the worker applies it within seconds.{waits}")


def _act(db, rule_id: str, action: str) -> None:
    """A pause/resume/delete button's callback: runs before the rerun, so the list shows the result."""
    now = dt.datetime.now(dt.timezone.utc)
    try:
        found = data.delete_rule(db, rule_id) if action == "delete" else \
            data.set_rule_enabled(db, rule_id, action == "resume", now)
    except data.DataUnavailable as exc:
        st.session_state[NOTICE] = ("error", f"Rule {rule_id} not changed: MongoDB did not answer ({exc}).")
        return
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
    st.session_state[NOTICE] = ("success", f"Rule {rule_id} {done}.") if found else \
        ("warning", f"Rule {rule_id} is already gone.")


def _rules(db) -> None:
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        getattr(st, notice[0])(notice[1])
    docs = data.list_rules(db)
    rules = rules_frame(docs, data.last_fired(db, [str(d.get("_id")) for d in docs]))
    now = dt.datetime.now(dt.timezone.utc)
    st.markdown(f"**Rules** ({len(rules)})")
    if rules.empty:
        st.info("No alert rules yet: add one above, or `cryptoapp alerts add BTC above 100000`.")
        return
    for row in rules.itertuples(index=False):
        text, state, actions = st.columns([6, 1, 2], vertical_alignment="center")
        where = f" → `{row.webhook}` ({row.format})" if row.webhook else ""
        text.markdown(f"`{row.id}` {row.rule or row.problem}{where} · {fired_words(row.last_fired, now)}")
        state.markdown(":green-badge[enabled]" if row.state == "enabled" else
                       ":gray-badge[paused]" if row.state == "paused" else ":red-badge[invalid]")
        toggle, delete = actions.columns(2)
        if row.state != "invalid":
            action = "pause" if row.state == "enabled" else "resume"
            toggle.button(action.capitalize(), key=f"{action}_{row.id}", on_click=_act, args=(db, row.id, action))
        delete.button("Delete", key=f"delete_{row.id}", on_click=_act, args=(db, row.id, "delete"))


def _firings(settings: DashboardSettings) -> None:
    with ui.guarded(settings, "alerts list"):
        firings = firings_frame(data.recent_firings(cache.database(settings)))
        st.markdown("**Recent alerts**")
        if firings.empty:
            st.caption("No alert has fired yet.")
            return
        st.dataframe(firings_table(firings), hide_index=True, width="stretch")


def render(settings: DashboardSettings) -> None:
    with ui.guarded(settings, "alerts tab"):
        db = cache.database(settings)
        _form(settings, db)
        _rules(db)
    # Firings arrive by themselves: only this part reruns on the timer.
    st.fragment(_firings, run_every=settings.refresh)(settings)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _recent(uri: str, db_name: str, end: dt.datetime) -> list[dict]:
    """The firings of the RECENT_S seconds before `end`, newest first (one query per refresh period)."""
    return data.recent_firings(cache.client(uri)[db_name], since=end - dt.timedelta(seconds=RECENT_S))


def recent_badge(settings: DashboardSettings) -> None:
    """On the real-time tab: a badge counting the firings of the last 10 minutes with the newest rules named,
    and a toast for each firing that arrives while the page is open (the ones there at first load only count)."""
    now = dt.datetime.now(dt.timezone.utc)
    firings = [f for f in _recent(settings.mongo_uri, settings.mongo_db, cache.period_end(now, settings.refresh))
               if (now - f["fired_at"]).total_seconds() <= RECENT_S]
    first_load = TOASTED not in st.session_state
    seen = st.session_state.setdefault(TOASTED, set())
    for firing in reversed(firings):  # oldest first, so the newest toast ends up on top
        if firing["_id"] not in seen and not first_load:
            st.toast(f"**Alert** {firing['rule']}: {firing['observed']:,.6g} {firing['unit']}",
                     icon=":material/notifications_active:")
        seen.add(firing["_id"])
    if not firings:
        return
    count = f"{len(firings)} alert{'s' if len(firings) > 1 else ''} in the last {RECENT_S // 60} min"
    named = " · ".join(f"{f['rule']} ({formatting.age(f['fired_at'], now)})" for f in firings[:BADGE_NAMES])
    more = f" and {len(firings) - BADGE_NAMES} more" if len(firings) > BADGE_NAMES else ""
    st.markdown(f":red-badge[:material/notifications_active: {count}] {named}{more} — the Alerts tab has them all.")
