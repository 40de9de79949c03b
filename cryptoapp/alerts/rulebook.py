"""The alert rules a worker evaluates, by coin, kept in step with crypto.alert_rules by polling (no restart needed).

FerretDB has no change streams, and the collection is small, so the worker asks every `poll_interval`
seconds for (rules, enabled rules, newest updated_at) and reads the rules only when that moved: an add or a
delete changes the count, a pause or resume the enabled count, and each raises the newest updated_at.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from mode import Service

from cryptoapp.alerts.rules import AlertRule, RuleError
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)


class RuleBook(Service):
    """`for_coin(ticker)` gives the enabled rules of a coin; `pop_removed(ticker)` the ids of the coin's rules
    deleted since it was last asked (their state can go: a Faust table entry must be deleted from an event of
    the partition it was written from, which the rule's coin tells). `loaded` is set once the rules were read.

    The first read happens as the service starts, so a worker's agents, started after it, never judge a tick
    without the rules; with MongoDB down it is retried every `poll_interval` and `loaded` waits for it.
    `store` is the worker's alerts storage (PriceStore.alerts)."""

    def __init__(self, store, poll_interval: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.poll_interval = poll_interval
        self.rules: dict[str, AlertRule] = {}
        self.loaded = asyncio.Event()
        self._by_coin: dict[str, list[AlertRule]] = {}
        self._removed: dict[str, set[str]] = {}
        self._version: Optional[tuple] = None
        self._malformed: set[str] = set()  # ids already warned about, so a bad document is one log line

    def for_coin(self, ticker: str) -> list[AlertRule]:
        return self._by_coin.get(ticker, [])

    def pop_removed(self, ticker: str) -> set[str]:
        """The ids of `ticker`'s rules deleted since the last call for it (empty almost always)."""
        return self._removed.pop(ticker, set()) if self._removed else set()

    async def on_start(self) -> None:
        try:
            await self.refresh()
        except StorageError as exc:
            log.warning("alerts: could not read the rules (%s); alerts wait until MongoDB answers", exc)

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
        for rule_id, rule in removed.items():
            self._removed.setdefault(rule.coin, set()).add(rule_id)
        self.loaded.set()
        log.info("alerts: %d rules (%d enabled); %d new, %d deleted since the last read",
                 len(rules), sum(map(len, by_coin.values())), added, len(removed))
        return True

    @Service.task
    async def _polling(self) -> None:
        while not self.should_stop:
            await self.sleep(self.poll_interval)
            try:
                await self.refresh()
            except StorageError as exc:  # the rules last read stay in force until MongoDB answers again
                log.warning("alerts: could not read the rules (%s); next try in %.0f s", exc, self.poll_interval)
