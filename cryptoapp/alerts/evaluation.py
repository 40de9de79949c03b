"""What an alert rule means tick by tick: its state, its firing, its band, and `evaluate`, the per-tick reference."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, MutableMapping
from typing import Any, Optional

from cryptoapp.alerts.rules import AlertRule
from cryptoapp.alerts.windows import observe
from cryptoapp.schema import UTC, bson_time, iso_z, tick_id as stored_tick_id

DEFAULT_HYSTERESIS = 0.005
# The tick fields a firing keeps (what the receiver and the dashboard need to see what fired it).
TICK_FIELDS = ("timestamp", "value", "currency", "source", "bid_price", "ask_price", "volume_24h")
# Delivery states of a stored firing (`status`): `pending` (in crypto.alert_outbox) until its webhook answered
# 2xx, then `delivered` in crypto.alerts; `failed` when the webhook refused it for good (4xx) or retries ran
# out; `stored` without a webhook.
PENDING, DELIVERED, FAILED, STORED_ONLY = "pending", "delivered", "failed", "stored"


@dataclasses.dataclass(slots=True)
class RuleState:
    """What one rule remembers between ticks (one small JSON record per rule; its window, for change_pct and
    volume_spike, in `buckets`: see windows.py). `revision` counts the changes worth persisting at once
    (arming, disarming, a window bucket opened or dropped); the in-bucket low/high moves between them."""

    armed: bool = True
    last_tick_at: Optional[float] = None  # source time (Unix s) of the newest tick evaluated
    buckets: list[list[float]] = dataclasses.field(default_factory=list)  # [start, low, low_at, high, high_at]
    low: Optional[float] = None  # the window's extremes over `buckets`, with their times
    low_at: Optional[float] = None
    high: Optional[float] = None
    high_at: Optional[float] = None
    revision: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"armed": self.armed, "last_tick_at": self.last_tick_at, "buckets": [list(b) for b in self.buckets],
                "low": self.low, "low_at": self.low_at, "high": self.high, "high_at": self.high_at,
                "revision": self.revision}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RuleState":
        return cls(armed=bool(data["armed"]), last_tick_at=data.get("last_tick_at"),
                   buckets=[list(b) for b in data.get("buckets") or ()], low=data.get("low"),
                   low_at=data.get("low_at"), high=data.get("high"), high_at=data.get("high_at"),
                   revision=int(data.get("revision", 0)))

    def observe(self, value: float, at: float, window_s: int) -> None:
        """Adds a value seen at `at` (Unix s) to the rule's own window (windows.observe)."""
        observe(self, value, at, window_s)


@dataclasses.dataclass(frozen=True)
class Firing:
    """One alert fired by one tick; stored in crypto.alerts (`_id` = id) and sent to the rule's webhook."""

    id: str                          # <rule id>_<tick _id>: the same tick and rule always give the same id
    rule_id: str
    coin: str
    kind: str
    rule: str                        # the rule in words, e.g. "BTC above 100,000 USD"
    threshold: float
    unit: str                        # USD, % or bps
    observed: float                  # the value compared with the threshold
    reference: Optional[float]       # change_pct / volume_spike: the window's low (rise) or high (fall)
    reference_at: Optional[dt.datetime]
    window_s: Optional[int]
    band: float                      # how far back the value must go before the rule re-arms
    tick_id: str                     # the _id of the tick in crypto.prices
    tick: dict[str, Any]             # that tick's fields (TICK_FIELDS), timestamp as a datetime
    fired_at: dt.datetime
    webhook: Optional[str] = dataclasses.field(default=None, repr=False)  # holds a secret: never in a repr
    format: str = "json"

    @property
    def text(self) -> str:
        """One line for people (Slack, Discord, logs): what crossed, the values compared, when."""
        if self.kind in ("above", "below"):
            seen = f"{self.observed:,.10g} {self.tick.get('currency', 'usd').upper()}"
        elif self.kind == "spread_bps":
            seen = f"spread {self.observed:.2f} bps"
        else:
            what = "volume" if self.kind == "volume_spike" else "price"
            seen = (f"{what} {self.observed:+.2f} % from {self.reference:,.10g} "
                    f"(at {iso_z(self.reference_at)}) to {self.tick.get('volume_24h' if what == 'volume' else 'value'):,.10g}")
        return f"{self.rule}: {seen} at {iso_z(self.tick['timestamp'])} (rule {self.rule_id}, alert {self.id})"

    def to_document(self, status: Optional[str] = None, attempts: int = 0,
                    delivered_at: Optional[dt.datetime] = None, last_error: Optional[str] = None) -> dict[str, Any]:
        """The stored firing with its delivery state: `pending` in crypto.alert_outbox while it is being
        delivered, then in crypto.alerts as `delivered` or `failed`; `stored` at once without a webhook."""
        doc = {"_id": self.id, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "id"}}
        doc["tick"] = dict(self.tick)
        doc.update(status=status or (PENDING if self.webhook else STORED_ONLY), delivered=status == DELIVERED,
                   attempts=attempts, delivered_at=delivered_at, last_error=last_error)
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Firing":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(id=doc["_id"], **{k: v for k, v in doc.items() if k in names and k != "id"})

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (ISO-8601 Z times), for the crypto-alerts topic; from_json reverses it."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["tick"] = {**self.tick, "timestamp": iso_z(self.tick["timestamp"])}
        out["fired_at"] = iso_z(self.fired_at)
        out["reference_at"] = iso_z(self.reference_at) if self.reference_at else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Firing":
        data = dict(data)
        data["tick"] = {**data["tick"], "timestamp": _parse_time(data["tick"]["timestamp"])}
        data["fired_at"] = _parse_time(data["fired_at"])
        data["reference_at"] = _parse_time(data["reference_at"]) if data.get("reference_at") else None
        return cls(**data)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def firing_id(rule_id: str, tick_id: str) -> str:
    """Deterministic: a tick redelivered after a crash fires with the id it fired with before."""
    return f"{rule_id}_{tick_id}"


def band(rule: AlertRule, hysteresis: float = DEFAULT_HYSTERESIS) -> float:
    """How far back past the threshold the observed value must go before the rule re-arms.

    A rule fires once per crossing: after firing it is disarmed, and it re-arms only when the observed value has
    gone back past the threshold by this band, so a price dancing on the line fires once. The band (`hysteresis`,
    a fraction, default 0.005 = 0.5 %) is measured in the price's own terms:
    - `above` / `below` / `spread_bps`: that fraction of the threshold (above 100,000 re-arms under 99,500;
      spread above 20 bps re-arms under 19.9 bps).
    - `change_pct` / `volume_spike`: that many percent of the price (volume), i.e. 0.5 percentage points of
      change: +3 % re-arms when the rise from the window's low is back under 2.5 %. (0.5 % of a 3 % threshold,
      0.015 points, would be far inside a price's tick-to-tick noise.) At most half the threshold, so a small
      threshold can always re-arm."""
    if rule.kind in ("change_pct", "volume_spike"):
        return min(hysteresis * 100, abs(rule.threshold) / 2)
    return hysteresis * abs(rule.threshold)


def evaluate(rule: AlertRule, state: RuleState, tick, now: dt.datetime, hysteresis: float = DEFAULT_HYSTERESIS,
             *, tick_id: Optional[str] = None, at: Optional[float] = None) -> Optional[Firing]:
    """The firing `tick` (a PriceTick) causes under `rule`, or None; updates `state` in place.

    Ticks are judged in source time: a tick no newer than the last one a rule has seen (out of order, or
    redelivered after a crash) is ignored, so it cannot fire again; when a redelivered tick meets state older
    than itself it fires again with the same firing id (rule id + the tick's _id), which the store and the
    webhook receivers deduplicate. The stream does not call this for each rule and tick: it judges a batch per
    coin with the rules indexed by threshold (cryptoapp/alerts/coinrules.py), held to the same firings and states
    as this function by tests/unit/test_alert_batches.py; this stays the plain statement of the rules (and makes
    single firings).

    `now` is the firing's fired_at. `tick_id` and `at` (the tick's source time in Unix s) may be given
    when one tick is evaluated against many rules, so they are computed once.
    """
    if not rule.enabled:
        return None
    if at is None:
        at = tick.timestamp.timestamp()
    last = state.last_tick_at
    if last is not None and at <= last:
        return None  # out of order or redelivered: already judged, never fires twice
    state.last_tick_at = at
    kind, threshold = rule.kind, rule.threshold
    reference = reference_at = None
    if kind == "above" or kind == "below":
        observed = tick.value
    elif kind == "spread_bps":
        bid, ask = tick.bid_price, tick.ask_price
        if bid is None or ask is None or bid <= 0 or ask <= 0:
            return None  # no quote in this tick: nothing to compare, nothing invented
        observed = (ask - bid) / ((ask + bid) / 2) * 10_000
    else:
        value = tick.value if kind == "change_pct" else tick.volume_24h
        if value is None or value <= 0:
            return None
        state.observe(value, at, rule.window_s)
        if threshold > 0:
            reference, reference_at = state.low, state.low_at
        else:
            reference, reference_at = state.high, state.high_at
        observed = (value / reference - 1) * 100
    downwards = kind == "below" or threshold < 0
    if not state.armed:
        # The band is only needed while disarmed: computing it for every armed rule cost a third of the time.
        width = band(rule, hysteresis)
        if (observed > threshold + width) if downwards else (observed < threshold - width):
            state.armed = True
            state.revision += 1
        return None
    if (observed > threshold) if downwards else (observed < threshold):
        return None
    state.armed = False
    state.revision += 1
    if tick_id is None:
        tick_id = stored_tick_id(tick.ticker, tick.timestamp, tick.source)
    return fire(rule_fields(rule, hysteresis), tick_fields(tick), tick_id, observed, reference, reference_at,
                bson_time(now))


def fire(about: dict[str, Any], fields: dict[str, Any], tick_id: str, observed: float, reference: Optional[float],
         reference_at: Optional[float], fired_at: dt.datetime) -> Firing:
    """The firing of a rule (`about`: its rule_fields) by a tick (`fields`: its tick_fields, stored under `tick_id`)
    that showed `observed` against `reference` (the window's low or high, seen at `reference_at` in Unix s; None
    for the kinds without a window); `fired_at` as MongoDB stores it."""
    return Firing(id=firing_id(about["rule_id"], tick_id), **about, observed=observed, reference=reference,
                  reference_at=None if reference_at is None else dt.datetime.fromtimestamp(reference_at, UTC),
                  tick_id=tick_id, tick=dict(fields), fired_at=fired_at)


def rule_fields(rule: AlertRule, hysteresis: float = DEFAULT_HYSTERESIS) -> dict[str, Any]:
    """What every firing of a rule says of it."""
    return {"rule_id": rule.id, "coin": rule.coin, "kind": rule.kind, "rule": rule.describe(),
            "threshold": rule.threshold, "unit": rule.unit, "window_s": rule.window_s, "band": band(rule, hysteresis),
            "webhook": rule.delivery.webhook, "format": rule.delivery.format}


def tick_fields(tick) -> dict[str, Any]:
    """What a firing keeps of the tick that fired it (TICK_FIELDS, the time as MongoDB stores it)."""
    return {field: getattr(tick, field) for field in TICK_FIELDS} | {"timestamp": bson_time(tick.timestamp)}


def evaluate_tick(rules: Iterable[AlertRule], states: MutableMapping[str, RuleState], tick, now: dt.datetime,
                  hysteresis: float = DEFAULT_HYSTERESIS, changed: Optional[set[str]] = None) -> list[Firing]:
    """Every firing of one tick under the rules of its coin; a rule without state gets a fresh one.

    `changed`, when given, receives the ids of the rules whose state changed in a way worth persisting (its
    revision moved)."""
    at = tick.timestamp.timestamp()
    tick_id = None  # the stored _id, worked out for the first firing only: most ticks fire nothing
    firings = []
    for rule in rules:
        state = states.get(rule.id)
        if state is None:
            state = states[rule.id] = RuleState()
        revision = state.revision
        firing = evaluate(rule, state, tick, now, hysteresis, tick_id=tick_id, at=at)
        if firing is not None:
            tick_id = firing.tick_id
            firings.append(firing)
        if changed is not None and state.revision != revision:
            changed.add(rule.id)
    return firings
