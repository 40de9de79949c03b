"""The alerts' step of the sink's batch: every tick judged against its coin's rules, the rules' state held per
partition on this object (the app's pipeline owns it) and written to the `alert_states` table.

Once per crossing, across restarts: a firing is acknowledged by Kafka before the state that says the rule
fired is written, and Faust flushes both before it commits the tick's offset. A crash in between replays
the tick, which fires again with the same id (rule id + tick id); the outbox queues it once and
receivers deduplicate on it. A restart with the state written ignores the replayed tick (no newer than the
last one the rule saw).

A rule's state is written when it changes in a way that counts: armed or disarmed, a window bucket opened or
dropped (RuleState.revision), not for every tick. A restart replays the ticks since the last commit onto it;
what can be lost in a crash is the low and high a window's newest bucket reached from ticks already
committed, at most 1/60 of the window: the precision the buckets keep anyway. Writing every rule's state
for every tick would send a changelog record per rule and tick: 100,000 a second for 1,000 rules at 1,000
ticks/s, of up to 5 kB each.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable

from cryptoapp.alerts.evaluation import Firing, RuleState, evaluate_tick
from cryptoapp.schema import UTC
from cryptoapp.streams import in_partition_of


class AlertStage:
    """The rules' states of this worker's coins: live objects here, their JSON in the state table."""

    def __init__(self, app, states_table, topic):
        self.app = app
        self.table = states_table
        self.topic = topic
        self._states: dict[str, RuleState] = {}
        # ticker -> (the rule book's list of the coin's rules, their states by id): rebuilt when the list changes
        self._coin_states: dict[str, tuple[list, dict[str, RuleState]]] = {}
        self._unsaved: dict[str, tuple] = {}  # rule id -> (an event of its coin, its state) changed, not written yet

    def forget(self) -> None:
        """Partitions were revoked: a coin that comes back later may have had its rules' state moved on elsewhere."""
        self._states.clear()
        self._coin_states.clear()
        self._unsaved.clear()

    def _states_of(self, ticker: str, rules: list) -> dict[str, RuleState]:
        held = self._coin_states.get(ticker)
        if held is not None and held[0] is rules:
            return held[1]
        states = {}
        for rule in rules:
            state = self._states.get(rule.id)
            if state is None:
                saved = self.table.get(rule.id)
                state = self._states[rule.id] = RuleState.from_json(saved) if saved else RuleState()
            states[rule.id] = state
        self._coin_states[ticker] = (rules, states)
        return states

    def evaluate_batch(self, ticks: list[tuple]) -> list[Firing]:
        """The firings of a batch of (event, tick) pairs; the rules whose state changed in a way that counts are kept
        unsaved, each with the (last) event of its coin: its state is written in that event's partition. Drops
        deleted rules' state."""
        rulebook, hysteresis = self.app.rulebook, self.app.settings.alert_hysteresis
        now = dt.datetime.now(UTC)
        firings: list[Firing] = []
        moved: set[str] = set()
        for event, tick in ticks:
            removed = rulebook.pop_removed(tick.ticker)
            if removed:
                with in_partition_of(event):  # the tombstone goes where the state was written
                    for rule_id in removed:
                        self.table.pop(rule_id, None)
                        self._states.pop(rule_id, None)
                        self._unsaved.pop(rule_id, None)
            rules = rulebook.for_coin(tick.ticker)
            if not rules:
                continue
            states = self._states_of(tick.ticker, rules)
            firings += evaluate_tick(rules, states, tick, now, hysteresis, moved)
            if moved:
                for rule_id in moved:
                    self._unsaved[rule_id] = (event, states[rule_id])
                moved.clear()
        return firings

    async def judge(self, ticks: list[tuple]) -> Callable[[], Awaitable[None]]:
        """Judges a batch of the sink's (event, tick) pairs and sends the firings to the alerts topic; returns the step
        that waits until Kafka has them all and then writes the changed states. The sink calls that step after its
        archive write, so the two round trips overlap. Kafka's acknowledgement of the firings is awaited once per
        batch: once per tick that fired, each round trip held the whole consumer (measured: the sink fell seconds
        behind at 70 firings/s)."""
        await self.app.rulebook.loaded.wait()  # read as the worker starts; waits only while MongoDB does not answer
        firings = self.evaluate_batch(ticks)  # no await inside: a stop cannot cut it in half
        sent = [await self.topic.send(key=f.coin.encode(), value=json.dumps(f.to_json()).encode()) for f in firings]

        async def settle() -> None:
            for future in sent:
                await future
            # Written once Kafka has the firings; what a failed batch left unwritten is written by the next one.
            while self._unsaved:
                rule_id, (event, state) = self._unsaved.popitem()
                with in_partition_of(event):
                    self.table[rule_id] = state.to_json()

        return settle
