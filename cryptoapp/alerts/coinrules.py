"""One coin's alert rules judged a batch at a time: per series the batch's path, the rules it crosses, their firings."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from cryptoapp.alerts.evaluation import Firing, band, fire, rule_fields, tick_fields
from cryptoapp.alerts.rules import AlertRule
from cryptoapp.alerts.thresholds import ThresholdIndex
from cryptoapp.alerts.windows import Window, window_key
from cryptoapp.schema import bson_time, tick_id as stored_tick_id

Series = tuple[str, Optional[int], int]  # (price | spread | rise | fall | volume, window length, orientation)


def series_of(rule: AlertRule) -> Series:
    if rule.kind in ("above", "below"):
        return ("price", None, 1 if rule.kind == "above" else -1)
    if rule.kind == "spread_bps":
        return ("spread", None, 1)
    if rule.kind == "volume_spike":
        return ("volume", rule.window_s, 1)
    return ("rise", rule.window_s, 1) if rule.threshold > 0 else ("fall", rule.window_s, -1)


def window_of(coin: str, rule: AlertRule) -> Optional[str]:
    """The key of the shared window a rule is measured against (None for the kinds without one)."""
    if rule.kind == "change_pct":
        return window_key(coin, "price", rule.window_s)
    if rule.kind == "volume_spike":
        return window_key(coin, "volume", rule.window_s)
    return None


def levels(rule: AlertRule, orientation: int, hysteresis: float) -> tuple[float, float]:
    """The rule's firing and re-arming levels on its (oriented) series, as evaluation.evaluate compares them."""
    width, threshold = band(rule, hysteresis), rule.threshold
    return (threshold, threshold - width) if orientation > 0 else (-threshold, -(threshold + width))


class CoinRules:
    """The enabled rules of one coin (`rules`: the rule book's list, kept to tell when it changes), their states in
    one ThresholdIndex per series, the coin's windows, and `last_at`, the newest tick time the coin judged.

    The series are values a batch's ticks give once for all their rules: the price (`above`, and `below` on the
    negated price), the spread (`spread_bps`), and per window length the rise from the window's low (`change_pct`
    > 0), the fall from its high (`change_pct` < 0, negated) and the volume's rise from its low (`volume_spike`).
    A batch judges the coin's ticks newer than the newest it judged (one no newer, out of order or redelivered, is
    ignored), updates the coin's few windows with them and hands each series' path to its index, which visits only
    the rules the path crosses. Firings, arming and states are those of evaluation.evaluate applied tick by tick
    (tests/unit/test_alert_batches.py).

    What a restart needs goes to the alert_states table: a rule's armed state and last tick time when it fired or
    re-armed; a window when a bucket opened or dropped, or one of its rules fired or re-armed, so that a window read
    back is never older than the states of its rules.

    `states`: rule id -> (armed, last tick time) for the rules that have one; `windows`: every window the rules
    use, by key."""

    def __init__(self, coin: str, rules: list[AlertRule], hysteresis: float,
                 states: dict[str, tuple[bool, Optional[float]]], windows: dict[str, Window],
                 last_at: Optional[float] = None):
        self.coin, self.rules, self.hysteresis = coin, rules, hysteresis
        self.windows, self.last_at = windows, last_at
        self._where: dict[str, tuple[Series, int]] = {}  # rule id -> (its series, its slot there)
        self._abouts: dict[int, dict[str, Any]] = {}  # position -> evaluation.rule_fields of the rule
        columns: dict[Series, tuple[list, ...]] = {}
        for position, rule in enumerate(rules):
            if not rule.enabled:
                continue
            series = series_of(rule)
            armed, last = states.get(rule.id, (True, None))
            group = columns.setdefault(series, ([], [], [], [], []))
            self._where[rule.id] = (series, len(group[0]))
            for column, value in zip(group, (position, *levels(rule, series[2], hysteresis), armed, last)):
                column.append(value)
        self.series = {series: ThresholdIndex(*group, coin_last=last_at) for series, group in columns.items()}

    def states(self) -> dict[str, tuple[bool, Optional[float]]]:
        """rule id -> (armed, last tick time), to carry over into the book of the coin's next list of rules."""
        out = {}
        for rule_id, (series, slot) in self._where.items():
            index = self.series[series]
            out[rule_id] = (bool(index.armed[slot]), index.last_of(slot, self.last_at))
        return out

    def state_json(self, key: str) -> Optional[dict[str, Any]]:
        """What the alert_states table holds under `key` (a rule id or a window key); None if this book has none."""
        if key in self._where:
            series, slot = self._where[key]
            index = self.series[series]
            return {"armed": bool(index.armed[slot]), "last_tick_at": index.last_of(slot, self.last_at)}
        window = self.windows.get(key)
        return None if window is None else window.to_json()

    def judge(self, entries: list[tuple[int, Any]], now: dt.datetime) -> tuple[list[tuple[tuple, Firing]], set[str]]:
        """Judges the coin's (batch index, PriceTick) pairs of a batch, in order: its firings, each with its place
        in the batch (batch index, the rule's position: the order evaluate_tick gives), and the table keys whose
        state changed in a way that counts."""
        judged, last = [], self.last_at
        for index, tick in entries:
            at = tick.timestamp.timestamp()
            if last is None or at > last:
                last = at
                judged.append((index, tick, at))
        if not judged:
            return [], set()
        revisions = {key: window.revision for key, window in self.windows.items()}
        paths = self._paths([tick for _, tick, _ in judged], [at for _, _, at in judged])
        ats = np.array([at for _, _, at in judged])
        firings, changed, fired_ticks, stamped = [], set(), {}, bson_time(now)
        for series, index in self.series.items():
            observed, reference = paths[series]
            oriented = observed if series[2] > 0 else -observed
            missing = np.isnan(oriented)
            fired, fired_at, moved = index.judge(np.where(missing, -np.inf, oriented),
                                                 np.where(missing, np.inf, oriented), ats, last)
            for slot in moved.tolist():
                rule = self.rules[index.positions[slot]]
                changed.add(rule.id)
                if rule.window_s:
                    changed.add(window_of(self.coin, rule))
            for slot, step in zip(fired.tolist(), fired_at.tolist()):
                position = int(index.positions[slot])
                batch_index, tick, _ = judged[step]
                if step not in fired_ticks:  # the tick's _id and fields, once for all the rules it fires
                    fired_ticks[step] = (stored_tick_id(tick.ticker, tick.timestamp, tick.source), tick_fields(tick))
                tick_id, fields = fired_ticks[step]
                seen = (None, None) if reference is None else (float(reference[0][step]), float(reference[1][step]))
                firings.append(((batch_index, position), fire(self._about(position), fields, tick_id,
                                                              float(observed[step]), *seen, stamped)))
        self.last_at = last
        changed.update(key for key, window in self.windows.items() if window.revision != revisions[key])
        return firings, changed

    def _about(self, position: int) -> dict[str, Any]:
        """What the firings of the rule at `position` say of it, worked out at its first firing."""
        about = self._abouts.get(position)
        if about is None:
            about = self._abouts[position] = rule_fields(self.rules[position], self.hysteresis)
        return about

    def _paths(self, ticks: list, ats: list[float]) -> dict[Series, tuple[np.ndarray, Optional[tuple]]]:
        """Each series' values over the judged ticks (NaN where a tick gives nothing to compare), with the window's
        reference (its low or high and their times) for the windowed ones; the windows observe the ticks."""
        price = np.array([tick.value for tick in ticks], float)
        followed: dict[str, tuple] = {}
        paths = {}
        for series in self.series:
            name, window_s, _ = series
            if name == "price":
                paths[series] = (price, None)
                continue
            if name == "spread":
                paths[series] = (_spreads(ticks), None)
                continue
            value = "volume" if name == "volume" else "price"
            key = window_key(self.coin, value, window_s)
            if key not in followed:
                values = [tick.volume_24h for tick in ticks] if value == "volume" else [tick.value for tick in ticks]
                extremes = self.windows[key].follow(ats, values)
                followed[key] = (np.array(values, float), *(np.array(column, float) for column in extremes))
            seen, lows, low_ats, highs, high_ats = followed[key]
            reference, reference_at = (highs, high_ats) if name == "fall" else (lows, low_ats)
            with np.errstate(invalid="ignore", divide="ignore"):
                change = np.where(seen > 0, (seen / reference - 1) * 100, math.nan)
            paths[series] = (change, (reference, reference_at))
        return paths


def _spreads(ticks: list) -> np.ndarray:
    """(ask - bid) / mid in basis points per tick, NaN where a tick has no quote (evaluation.evaluate's formula)."""
    bid = np.array([tick.bid_price for tick in ticks], float)
    ask = np.array([tick.ask_price for tick in ticks], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((bid > 0) & (ask > 0), (ask - bid) / ((ask + bid) / 2) * 10_000, math.nan)


def build(coin: str, rules: list[AlertRule], hysteresis: float, previous: Optional[CoinRules] = None,
          saved: Callable[[str], Optional[dict]] = lambda key: None) -> CoinRules:
    """The book of a coin's (new) list of rules: states and windows carried over from `previous` (the book of its
    former list), else read with `saved` (the table's value under a key, or None); a rule without either starts
    armed, a window without either empty. A rule state of the per-rule format (buckets of its own) seeds its
    window when the table holds none yet, so an upgraded worker keeps its windows' history."""
    known = previous.states() if previous is not None else {}
    last_at = previous.last_at if previous is not None else None
    states, legacy = {}, {}
    for rule in rules:
        if rule.id in known:
            states[rule.id] = known[rule.id]
            continue
        data = saved(rule.id)
        if not data:
            continue
        states[rule.id] = (bool(data["armed"]), data.get("last_tick_at"))
        key = window_of(coin, rule)
        if key and data.get("buckets") and _newer(data, legacy.get(key)):
            legacy[key] = data
    windows: dict[str, Window] = {}
    for rule in rules:
        key = window_of(coin, rule)
        if key is None or key in windows or not rule.enabled:
            continue
        if previous is not None and key in previous.windows:
            windows[key] = previous.windows[key]
        elif (data := saved(key) or legacy.get(key)) is not None:
            windows[key] = Window.from_json(data, rule.window_s)
        else:
            windows[key] = Window(rule.window_s, last_at=last_at)
    return CoinRules(coin, rules, hysteresis, states, windows, last_at)


def _newer(state: dict, than: Optional[dict]) -> bool:
    return than is None or (state.get("last_tick_at") or 0) > (than.get("last_tick_at") or 0)
