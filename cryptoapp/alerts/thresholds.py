"""The rules of one of a coin's series indexed by threshold, so that a batch visits only the rules its path crosses."""

from __future__ import annotations

from typing import Optional

import numpy as np

EMPTY = np.empty(0, np.intp)


def walk(hit: np.ndarray, rearm: np.ndarray, fire: np.ndarray, rearm_at: np.ndarray, armed: np.ndarray,
         start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each rule's crossings over a batch's series, from its position `start`: (the rules that fired, the positions
    they fired at, every rule's armed state after the batch, the rules that fired or re-armed). A rule fires at
    the first position where hit >= its level, then re-arms at the first later one where rearm < its re-arming
    level, and so on: a round per crossing, each round over the rules that still have one ahead of them."""
    n = len(hit)
    top = np.full(n + 1, -np.inf)  # the highest hit from each position on (+ one past the end)
    top[:n] = np.maximum.accumulate(hit[::-1])[::-1]
    bottom = np.full(n + 1, np.inf)
    bottom[:n] = np.minimum.accumulate(rearm[::-1])[::-1]
    armed, position = armed.copy(), np.minimum(start, n)
    moved = np.zeros(len(fire), bool)
    fired_rules, fired_at = [], []
    active = np.arange(len(fire))
    while active.size:
        up, at = armed[active], position[active]
        due = np.where(up, top[at] >= fire[active], bottom[at] < rearm_at[active])
        active, up, at = active[due], up[due], at[due]
        if not active.size:
            break
        crossed = _next_crossing(hit, rearm, fire[active], rearm_at[active], up, at)
        fired_rules.append(active[up])
        fired_at.append(crossed[up])
        armed[active] = ~up
        position[active] = crossed + 1
        moved[active] = True
    if not fired_rules:
        return EMPTY, EMPTY, armed, moved
    return np.concatenate(fired_rules), np.concatenate(fired_at), armed, moved


def _next_crossing(hit, rearm, fire, rearm_at, up, start) -> np.ndarray:
    """The first position at or after `start` where each rule (known to have one) fires (`up`) or re-arms."""
    first = start[0]
    if (start == first).all():  # the usual case: bisection over the running extremes from there
        crossed = np.empty(len(fire), np.intp)
        crossed[up] = np.searchsorted(np.maximum.accumulate(hit[first:]), fire[up], "left") + first
        down = ~up
        crossed[down] = np.searchsorted(-np.minimum.accumulate(rearm[first:]), -rearm_at[down], "right") + first
        return crossed
    columns = np.arange(len(hit))
    reached = np.where(up[:, None], hit >= fire[:, None], rearm < rearm_at[:, None]) & (columns >= start[:, None])
    return reached.argmax(axis=1)


class ThresholdIndex:
    """One series' rules (the price, the spread or a window's change of one coin): slot i is the rule at
    `positions[i]` of the coin's list, with its levels and armed state.

    Every rule is oriented upwards: it fires when the series reaches its firing level (`hit >= fire`) and re-arms
    when the series goes back under its re-arming level (`rearm < rearm_at`); a `below` rule or a fall is the same
    rule on the negated series. The armed rules sit sorted by firing level and the disarmed ones by re-arming
    level, so the rules a batch can move are two ranges found by bisection: the armed ones at or under the batch's
    highest value and the disarmed ones over its lowest. Each of them fires or re-arms at least once in the batch;
    no other rule is visited. A batch's series holds the values of the ticks the coin judged, in order, -inf (in
    `hit`) and +inf (in `rearm`) where a tick had nothing to compare (no quote, no volume).

    `last` gives each rule's last judged tick time (None: never judged), `coin_last` the coin's. A rule newer than
    the coin (its state read back after a restart) is `ahead`: it judges only the ticks newer than its own, and
    joins the sorted ranges once the coin caught up with it. An older one is taken as in step with the coin: it
    judges the ticks newer than the coin's newest (a rule added or resumed judges from the next new tick)."""

    def __init__(self, positions: list[int], fire: list[float], rearm_at: list[float], armed: list[bool],
                 last: list[Optional[float]], coin_last: Optional[float]):
        self.positions = np.asarray(positions, np.intp)
        self.fire = np.asarray(fire, float)
        self.rearm_at = np.asarray(rearm_at, float)
        self.armed = np.asarray(armed, bool)
        self.ahead = {slot: at for slot, at in enumerate(last)
                      if at is not None and (coin_last is None or at > coin_last)}
        in_step = np.array([slot not in self.ahead for slot in range(len(positions))], bool)
        self._levels = {True: np.empty(0), False: np.empty(0)}  # armed: firing levels; disarmed: re-arming levels
        self._slots = {True: EMPTY, False: EMPTY}
        self._insert(np.flatnonzero(in_step))

    def __len__(self) -> int:
        return len(self.positions)

    def last_of(self, slot: int, coin_last: Optional[float]) -> Optional[float]:
        return self.ahead.get(slot, coin_last)

    def judge(self, hit: np.ndarray, rearm: np.ndarray, ats: np.ndarray,
              coin_last: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Walks the rules the batch's series can move (`ats`: the judged ticks' times, ascending; `coin_last`: the
        newest of them): (the slots that fired, the positions they fired at, the slots that fired or re-armed)."""
        crossing = np.searchsorted(self._levels[True], hit.max(), "right")
        rearming = np.searchsorted(self._levels[False], rearm.min(), "right")
        ahead = np.fromiter(self.ahead, np.intp, len(self.ahead))
        if not crossing and rearming == len(self._levels[False]) and not ahead.size:
            return EMPTY, EMPTY, EMPTY
        slots = np.concatenate((self._slots[True][:crossing], self._slots[False][rearming:], ahead))
        start = np.zeros(len(slots), np.intp)
        if ahead.size:
            start[len(slots) - ahead.size:] = np.searchsorted(ats, [self.ahead[s] for s in ahead.tolist()], "right")
        fired, fired_at, armed, moved = walk(hit, rearm, self.fire[slots], self.rearm_at[slots], self.armed[slots],
                                             start)
        self.armed[slots] = armed
        for kind, cut in ((True, slice(crossing, None)), (False, slice(None, rearming))):
            self._levels[kind], self._slots[kind] = self._levels[kind][cut], self._slots[kind][cut]
        joining = [s for s in ahead.tolist() if self.ahead[s] <= coin_last]
        for slot in joining:
            del self.ahead[slot]
        self._insert(np.concatenate((slots[:len(slots) - ahead.size], np.asarray(joining, np.intp))))
        return slots[fired], fired_at, slots[moved]

    def _insert(self, slots: np.ndarray) -> None:
        """Puts in-step slots into the sorted range of their state."""
        for kind, levels in ((True, self.fire), (False, self.rearm_at)):
            mine = slots[self.armed[slots] == kind]
            if not mine.size:
                continue
            order = np.argsort(levels[mine], kind="stable")
            mine, values = mine[order], levels[mine[order]]
            at = np.searchsorted(self._levels[kind], values, "right")
            self._levels[kind] = np.insert(self._levels[kind], at, values)
            self._slots[kind] = np.insert(self._slots[kind], at, mine)
