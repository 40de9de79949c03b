"""The alert rules' queries as plain documents (filters, sorts, updates), for the worker's store and the dashboard.

Pure (no driver): both processes' storage modules run these against crypto.alert_rules, so a rule is read, listed,
paused and deleted the same way wherever it is done.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable


def every_rule() -> dict[str, Any]:
    return {}


def enabled_rules() -> dict[str, Any]:
    return {"enabled": True}


def rule_by_id(rule_id: str) -> dict[str, Any]:
    return {"_id": rule_id}


def set_enabled(enabled: bool, now: dt.datetime) -> dict[str, Any]:
    """Pauses (False) or resumes (True) a rule; updated_at moves, so a poller of rules_version sees the change."""
    return {"$set": {"enabled": enabled, "updated_at": now}}


def newest_change_first() -> list[tuple[str, int]]:
    return [("updated_at", -1)]


def oldest_first(docs: Iterable[dict]) -> list[dict]:
    """Rule documents in the order they were made (equal times by _id): the order every list of rules shows."""
    return sorted(docs, key=lambda d: (str(d.get("created_at")), str(d["_id"])))
