"""The alert rules a worker evaluates, by coin, kept in step with crypto.alert_rules by polling (no restart needed).

FerretDB has no change streams, and the collection is small, so the worker asks every `poll_interval`
seconds for (rules, enabled rules, newest updated_at) and reads the rules only when that moved: an add or a
delete changes the count, a pause or resume the enabled count, and each raises the newest updated_at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Optional

from mode import Service

from cryptoapp.alerts.rules import AlertRule, RuleError
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)


class RuleBook(Service):
    """`for_coin(ticker)` gives the enabled rules of a coin; `on_removed(rules)` is called with the rules deleted
    since the last read, by id (their state can go: a Faust table entry must be deleted from an event of the
    partition it was written from, which the rule's coin tells)."""

    def __init__(self, store, poll_interval: float = 2.0,
                 on_removed: Optional[Callable[[dict[str, AlertRule]], None]] = None, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.poll_interval = poll_interval
        self.on_removed = on_removed
        self.rules: dict[str, AlertRule] = {}
        self._by_coin: dict[str, list[AlertRule]] = {}
        self._version: Optional[tuple] = None
        self._malformed: set[str] = set()  # ids already warned about, so a bad document is one log line

    def for_coin(self, ticker: str) -> list[AlertRule]:
        return self._by_coin.get(ticker, [])

    async def refresh(self) -> bool:
        """Reads the rules if they changed since the last read; True when they did. StorageError if MongoDB fails."""
        version = await self.store.rules_version()
        if version == self._version:
            return False
        rules = {}
        for doc in await self.store.list_rules():
            try:
                rule = AlertRule.from_document(doc)
            except RuleError as exc:
                if doc.get("_id") not in self._malformed:
                    self._malformed.add(doc.get("_id"))
                    log.warning("alerts: %s; the rule is skipped until it is fixed or deleted", exc)
                continue
            rules[rule.id] = rule
        removed = {rule_id: rule for rule_id, rule in self.rules.items() if rule_id not in rules}
        by_coin: dict[str, list[AlertRule]] = {}
        for rule in rules.values():
            if rule.enabled:
                by_coin.setdefault(rule.coin, []).append(rule)
        added = len(set(rules) - set(self.rules))
        self.rules, self._by_coin, self._version = rules, by_coin, version
        log.info("alerts: %d rules (%d enabled); %d new, %d deleted since the last read",
                 len(rules), sum(map(len, by_coin.values())), added, len(removed))
        if removed and self.on_removed is not None:
            self.on_removed(removed)
        return True

    @Service.task
    async def _polling(self) -> None:
        while not self.should_stop:
            try:
                await self.refresh()
            except StorageError as exc:  # the rules last read stay in force until MongoDB answers again
                log.warning("alerts: could not read the rules (%s); next try in %.0f s", exc, self.poll_interval)
            await self.sleep(self.poll_interval)
