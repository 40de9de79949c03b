"""The alerts' collections: the rules (crypto.alert_rules), the firings being delivered (crypto.alert_outbox) and
every firing with its final delivery state (crypto.alerts).

On FerretDB every update, delete and filtered read scans the whole collection, even by _id
(shared/reference/services.md): the outbox, which is updated for each firing, holds only what is in flight, and
crypto.alerts only ever receives inserts (and the retention's one delete_many), so neither a burst of firings nor
months of them make a write slow the sink's. Documents are built by cryptoapp.alerts.
"""

from __future__ import annotations

import datetime as dt

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from cryptoapp.alerts import queries
from cryptoapp.schema import ALERT_OUTBOX, ALERT_RULES, ALERTS
from cryptoapp.storage.base import Family, StorageError, translated


class Alerts(Family):
    """The rules the worker polls, and the firings' way from the outbox to crypto.alerts."""

    @property
    def rules(self):
        return self.collection(ALERT_RULES)

    @property
    def firings(self):
        return self.collection(ALERTS)

    @property
    def outbox(self):
        return self.collection(ALERT_OUTBOX)

    # --- rules ----------------------------------------------------------------------------------------------------

    @translated
    async def add_rule(self, doc: dict) -> None:
        """Stores a new rule document (AlertRule.to_document()); its _id is new, so an existing one is an error."""
        try:
            await self.rules.insert_one(doc)
        except DuplicateKeyError:
            raise StorageError(f"a rule with id {doc['_id']!r} already exists") from None

    @translated
    async def list_rules(self) -> list[dict]:
        """Every rule document, oldest first."""
        return queries.oldest_first([doc async for doc in self.rules.find(queries.every_rule())])

    @translated
    async def set_rule_enabled(self, rule_id: str, enabled: bool, now: dt.datetime) -> bool:
        """Pauses (False) or resumes (True) a rule; False when no rule has that id."""
        result = await self.rules.update_one(queries.rule_by_id(rule_id), queries.set_enabled(enabled, now))
        return result.matched_count == 1

    @translated
    async def delete_rule(self, rule_id: str) -> bool:
        """Deletes a rule (its stored firings stay); False when no rule has that id."""
        return (await self.rules.delete_one(queries.rule_by_id(rule_id))).deleted_count == 1

    @translated
    async def rules_version(self) -> tuple[int, int, dt.datetime | None]:
        """(rules, enabled rules, the newest updated_at): moves with every add, pause, resume and delete (even
        two within one millisecond), so a poller reads the rules only when it moved."""
        count = await self.rules.count_documents(queries.every_rule())
        enabled = await self.rules.count_documents(queries.enabled_rules())
        newest = await self.rules.find_one(queries.every_rule(), {"updated_at": 1},
                                           sort=queries.newest_change_first())
        return count, enabled, (newest or {}).get("updated_at")

    # --- firings --------------------------------------------------------------------------------------------------

    @translated
    async def insert_firings(self, docs: list[dict]) -> list[str]:
        """Stores finished firings (Firing.to_document(status=...)) in crypto.alerts, insert-if-absent by _id;
        returns the ids that were new."""
        return (await self.insert_new(self.firings, docs, "alerts")).new

    @translated
    async def enqueue_firings(self, docs: list[dict]) -> list[str]:
        """Puts firings to deliver (status pending) in crypto.alert_outbox, insert-if-absent by _id (a firing
        replayed while it is still in flight is not queued twice); returns the ids that were new."""
        return (await self.insert_new(self.outbox, docs, "alerts")).new

    @translated
    async def finish_firing(self, doc: dict) -> None:
        """finish_firings of one firing."""
        await self.finish_firings([doc])

    @translated
    async def finish_firings(self, docs: list[dict]) -> None:
        """Moves firings out of the outbox with their final state: inserted into crypto.alerts (an earlier
        delivery of a replayed firing may have put one there already), then deleted from the outbox, one insert and
        one delete for the lot (on FerretDB each delete reads the whole outbox). A crash in between leaves them in
        the outbox: they are sent again (at least once) and finished then."""
        if not docs:
            return
        await self.insert_new(self.firings, docs, "alerts")
        await self.outbox.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})

    @translated
    async def pending_firings(self, limit: int = 1000) -> list[dict]:
        """The firings in the outbox, oldest first: what a (re)started worker delivers."""
        return [doc async for doc in self.outbox.find({}).sort("fired_at", ASCENDING).limit(limit)]

    @translated
    async def extend_leases(self, firing_ids: list[str], owner: str, until: dt.datetime) -> None:
        """Renews `owner`'s lease on the firings it is delivering (cryptoapp.alerts.delivery)."""
        await self.outbox.update_many({"_id": {"$in": firing_ids}, "owner": owner}, {"$set": {"lease_until": until}})

    @translated
    async def claim_firing(self, firing_id: str, seen: tuple, owner: str, until: dt.datetime) -> bool:
        """Makes `owner` the deliverer of an outbox firing if its (owner, lease_until) are still those `seen`
        (compare-and-set: of two workers claiming one firing, one wins); True when this call won."""
        was_owner, was_until = seen
        claimed = await self.outbox.find_one_and_update(
            {"_id": firing_id, "owner": was_owner, "lease_until": was_until},
            {"$set": {"owner": owner, "lease_until": until}},  # no projection: FerretDB 1.24 refuses one here
            return_document=ReturnDocument.AFTER)
        return claimed is not None

    @translated
    async def delete_firings_before(self, cutoff: dt.datetime) -> int:
        """Deletes the finished firings (crypto.alerts) fired before `cutoff`; the outbox is never trimmed.
        Returns how many went."""
        return (await self.firings.delete_many({"fired_at": {"$lt": cutoff}})).deleted_count
