"""Scores of one model at one horizon (MAE, direction hits, band coverage beside naive's) and the verdict on them.

Rules, stated once:
- Every scored point holds the model's error and the naive "no change" forecast's error on the same
  point, so the two MAEs always compare like with like.
- Direction: a point where the close did not move has no direction to call and is left out of the
  direction count; on a move, a hit is a predicted change of the same sign (a predicted change of
  exactly zero is a miss). The naive forecast never calls a direction, so it has no hit rate: the
  reference for a hit rate is a coin toss's 50 %.
- The interval band is the BAND_LEVEL empirical quantile of the model's own absolute log errors over
  the window (symmetric in log space around the forecast), none before BAND_MIN_POINTS are scored.
- Verdict: the model beats naive when its window holds at least min_points(h) scored points, its MAE
  over them is lower than naive's, and by more than chance explains: the Diebold-Mariano statistic of
  the absolute-error difference (advantage_t) is at least SIGNIFICANCE_Z (one-sided 5 %). Forecasts h
  minutes ahead made a minute apart overlap, so neighbouring errors are strongly correlated: the
  statistic counts their autocovariances up to lag h - 1 (with the Harvey-Leybourne-Newbold small-sample
  correction), min_points asks for at least 200 points and at least ten whole horizons (600 points at
  60 minutes), and the window is never shorter than that (window_for(h)). A plain "lower MAE" was seen
  to crown a model on a random walk (tests/unit/test_forecasts.py, seed 2).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Optional

WINDOW = 500  # scored points in the rolling window (at least min_points(h))
MIN_POINTS = 200
MIN_HORIZONS = 10  # whole non-overlapping horizons the window must span before a verdict
BAND_LEVEL = 0.8
BAND_MIN_POINTS = 50
SIGNIFICANCE_Z = 1.645  # one-sided 5 % of a standard normal


def min_points(horizon_min: int) -> int:
    """The scored points a verdict at this horizon needs: 200, and at least ten whole horizons."""
    return max(MIN_POINTS, MIN_HORIZONS * horizon_min)


def window_for(horizon_min: int, window: int = WINDOW) -> int:
    """The rolling window at this horizon: `window` points, widened to hold min_points(h)."""
    return max(window, min_points(horizon_min))


def advantage_t(errors, naive_errors, horizon_min: int) -> Optional[float]:
    """The Diebold-Mariano statistic of (|naive error| - |model error|): positive when the model errs less, in
    standard errors; autocovariances up to lag h - 1, Harvey-Leybourne-Newbold corrected. None when the
    points are too few for it (n <= 2h) or the estimated variance is not positive."""
    import numpy as np  # loaded with River when the first model is made (forecasters.py says why not sooner)

    d = np.asarray(naive_errors, dtype=float) - np.asarray(errors, dtype=float)
    n, h = len(d), horizon_min
    if n <= 2 * h:
        return None
    centred = d - d.mean()
    variance = centred @ centred + 2 * sum(centred[k:] @ centred[:-k] for k in range(1, h))
    if not variance > 0:
        return None
    correction = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return float(d.mean() / math.sqrt(variance / n / n) * correction)


def beats_naive(points: int, mae: Optional[float], naive_mae: Optional[float], needed: int,
                advantage: Optional[float]) -> bool:
    """True when at least `needed` points are scored and the model's MAE is below naive's beyond chance."""
    return (points >= needed and mae is not None and naive_mae is not None and mae < naive_mae
            and advantage is not None and advantage >= SIGNIFICANCE_Z)


def verdict(points: int, mae: Optional[float], naive_mae: Optional[float], needed: int,
            advantage: Optional[float]) -> str:
    """The verdict in words, as the table and the page show it."""
    if points < needed:
        return f"too few points ({points} of {needed})"
    if beats_naive(points, mae, naive_mae, needed, advantage):
        return "beats naive"
    if mae is not None and naive_mae is not None and mae < naive_mae:
        return "lower MAE, within chance"
    return "does not beat naive"


def direction_hit(predicted: float, base: float, actual: float) -> Optional[bool]:
    """Whether the predicted move from `base` has the sign of the actual one; None when the close did not move."""
    moved = actual - base
    if moved == 0:
        return None
    return (predicted - base) * moved > 0


@dataclass(frozen=True)
class ScoreRow:
    """One model at one horizon for one coin: its window and since-start scores beside naive's."""

    ticker: str
    model: str
    horizon_min: int
    as_of: Optional[dt.datetime]  # start of the newest bar a point was scored on
    window: int
    min_points: int
    points: int
    mae: Optional[float]
    naive_mae: Optional[float]
    direction_points: int
    hit_rate: Optional[float]
    band_points: int
    band_coverage: Optional[float]
    total_points: int
    total_mae: Optional[float]
    total_naive_mae: Optional[float]
    total_direction_points: int
    total_hit_rate: Optional[float]
    expired: int  # forecasts whose target bar never came (a gap in the bars): neither scored nor learned
    advantage_t: Optional[float] = None  # over the window; see advantage_t()

    @property
    def beats_naive(self) -> bool:
        return beats_naive(self.points, self.mae, self.naive_mae, self.min_points, self.advantage_t)

    @property
    def verdict(self) -> str:
        return verdict(self.points, self.mae, self.naive_mae, self.min_points, self.advantage_t)

    def as_dict(self) -> dict:
        return {**asdict(self), "beats_naive": self.beats_naive, "verdict": self.verdict}


def _ratio(part: float, whole: int) -> Optional[float]:
    return part / whole if whole else None


class ScoreBoard:
    """The scored points of one model at one horizon: the last `window` kept, totals since start."""

    def __init__(self, window: int) -> None:
        # (|error|, |naive error|, |log error|, direction hit or None, inside the band or None)
        self.recent: deque[tuple[float, float, float, Optional[bool], Optional[bool]]] = deque(maxlen=window)
        self.points = 0
        self.abs_error = 0.0
        self.naive_abs_error = 0.0
        self.direction_points = 0
        self.direction_hits = 0
        self.last_target: Optional[dt.datetime] = None

    def resize(self, window: int) -> None:
        if window != self.recent.maxlen:
            self.recent = deque(self.recent, maxlen=window)

    def add(self, predicted: float, base: float, actual: float, band: Optional[tuple[float, float]],
            target: dt.datetime) -> None:
        """Scores one point: the model said `predicted`, naive said `base`, the close was `actual`."""
        error, naive_error = abs(predicted - actual), abs(base - actual)
        hit = direction_hit(predicted, base, actual)
        inside = None if band is None else band[0] <= actual <= band[1]
        self.recent.append((error, naive_error, abs(math.log(actual / predicted)), hit, inside))
        self.points += 1
        self.abs_error += error
        self.naive_abs_error += naive_error
        if hit is not None:
            self.direction_points += 1
            self.direction_hits += hit
        self.last_target = target

    def band_halfwidth(self, level: float = BAND_LEVEL, needed: int = BAND_MIN_POINTS) -> Optional[float]:
        """The `level` empirical quantile of the recent absolute log errors (the smallest error at least
        `level` of them do not exceed); None before `needed` points are scored."""
        n = len(self.recent)
        if n < needed:
            return None
        errors = sorted(point[2] for point in self.recent)
        return errors[max(0, math.ceil(level * n) - 1)]

    def row(self, ticker: str, model: str, horizon_min: int, expired: int) -> ScoreRow:
        recent = self.recent
        n = len(recent)
        directions = [p[3] for p in recent if p[3] is not None]
        bands = [p[4] for p in recent if p[4] is not None]
        return ScoreRow(
            ticker=ticker, model=model, horizon_min=horizon_min, as_of=self.last_target,
            window=recent.maxlen, min_points=min_points(horizon_min), points=n,
            mae=_ratio(math.fsum(p[0] for p in recent), n), naive_mae=_ratio(math.fsum(p[1] for p in recent), n),
            direction_points=len(directions), hit_rate=_ratio(sum(directions), len(directions)),
            band_points=len(bands), band_coverage=_ratio(sum(bands), len(bands)),
            total_points=self.points, total_mae=_ratio(self.abs_error, self.points),
            total_naive_mae=_ratio(self.naive_abs_error, self.points),
            total_direction_points=self.direction_points,
            total_hit_rate=_ratio(self.direction_hits, self.direction_points), expired=expired,
            advantage_t=advantage_t([p[0] for p in recent], [p[1] for p in recent], horizon_min))
