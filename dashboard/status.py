"""The pipeline's status in words, from the workers' status documents (crypto.status); no streamlit, no driver."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from dashboard import formatting

# A worker writes its status every 10 s (cryptoapp/status/agents.py); six missed writes and it counts as gone.
GONE_AFTER_S = 60
LAG_WORTH_SAYING = 1000
NAMES = {"coingecko": "CoinGecko", "simulated": "the simulated source"}


@dataclasses.dataclass(frozen=True)
class Status:
    level: str            # "ok", "warning" or "error"
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " · ".join(self.lines)


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def describe(docs: Sequence[dict], now: dt.datetime) -> Status:
    """What a user should know first: whether a worker runs, whether its sources answer, what the backfill does."""
    if not docs:
        return Status("warning", ("No worker has reported yet: start it with `make run` (or `make demo` offline)",))
    beats = [d["heartbeat"] for d in docs]
    live = [d for d in docs if (now - d["heartbeat"]).total_seconds() <= GONE_AFTER_S]
    if not live:
        return Status("error", (f"No worker heartbeat for {formatting.age(max(beats), now).removesuffix(' ago')} "
                                "(last from " + max(docs, key=lambda d: d["heartbeat"])["worker"] + "): is it running? "
                                "`make status`, then `make run`",))
    lines = [f"{len(live)} worker{'s' if len(live) > 1 else ''} up"]
    level = "ok"
    sources: dict[str, dict] = {}
    for doc in live:  # the leader polls; an exchange streams on the leader too
        for name, health in (doc.get("sources") or {}).items():
            if doc.get("leader") or name not in sources:
                sources[name] = health
    for name, health in sorted(sources.items()):
        shown = NAMES.get(name, name)
        if health.get("error"):
            since = _when(health.get("error_since"))
            lines.append(f"{shown}: {health['error']}" + (f" since {since:%H:%M} UTC" if since else ""))
            level = "warning"
        elif health.get("ok_at"):
            lines.append(f"{shown}: last answer {formatting.age(_when(health['ok_at']), now)}")
        else:
            lines.append(f"{shown}: no answer yet")
    backfill = next((d.get("backfill") for d in live if d.get("leader")), None) or {}
    if backfill.get("state") == "running":
        lines.append(f"backfill {backfill.get('calls', 0)} of {backfill.get('planned', 0)} calls so far "
                     f"({backfill.get('coins_done', 0)} of {backfill.get('coins', 0)} coins looked at)")
    elif backfill.get("state") == "unfinished":
        lines.append(f"backfill unfinished for {', '.join(backfill.get('unfinished') or [])}: the next start or "
                     "`cryptoapp backfill` goes on")
        level = "warning"
    behind = sum(sum((d.get("lag") or {}).values()) for d in live)
    if behind >= LAG_WORTH_SAYING:
        lines.append(f"{behind:,} ticks waiting to be stored")
    return Status(level, tuple(lines))


def views_missing(db_name: str, server: str) -> str:
    """What the page says when the archive holds ticks but the views it reads are missing."""
    return (f"Database `{db_name}` at {server} holds stored prices but not the views this page reads (they were "
            "stored before the views existed, or the views were dropped). A worker makes them when it starts "
            "(`make run`, or `make demo` offline); `cryptoapp candles rebuild` makes them without starting one.")
