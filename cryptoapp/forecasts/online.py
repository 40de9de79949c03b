"""One coin's forecasting state, run by progressive validation: predict, wait h minutes, score, then learn.

At each new bar, in this order:
1. every queued forecast whose target is this bar is scored against its close (the models have not
   seen that close yet), and only then is each model taught the pair (features when the forecast was
   made, log return that followed); a forecast whose target bar never came (a gap) expires unscored
   and untaught;
2. the models observe the bar;
3. each model forecasts the close `h` minutes ahead for each horizon, from this bar's features, and the
   forecasts are queued beside the naive one (this close).
A bar that is not newer than the last one seen (a redelivery, a replay) changes nothing, so the state
can be saved after any bar and restored (to_bytes/from_bytes, saved_state.py) without scoring or learning a bar twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from cryptoapp.forecasts import saved_state
from cryptoapp.forecasts.features import Bar, History, InvalidBar
from cryptoapp.forecasts.forecasters import DEFAULT_MODELS, MODEL_KINDS, Forecaster
from cryptoapp.forecasts.saved_state import StateFormatError
from cryptoapp.forecasts.scoring import BAND_LEVEL, WINDOW, ScoreBoard, ScoreRow, window_for
from cryptoapp.schema import FORECAST_NAIVE, MIN_GAP_S, RESOLUTIONS, bar_start, is_finite_number

log = logging.getLogger(__name__)

DEFAULT_HORIZONS = (5, 60)  # minutes
RESOLUTION = "1m"  # the bars forecasts are made from; a horizon of h minutes is h bars


@dataclass(frozen=True)
class _Prediction:
    """What `model` predicted, from the bar starting at `made_at`, for the close of the bar at `target_at`."""

    ticker: str
    model: str
    horizon_min: int
    made_at: dt.datetime
    target_at: dt.datetime
    base_close: float  # the close it was made from: the naive forecast
    predicted_close: float


@dataclass(frozen=True)
class Forecast(_Prediction):
    """A prediction as it is made, with its band."""

    band_low: Optional[float]  # None until the model has BAND_MIN_POINTS scored errors at this horizon
    band_high: Optional[float]
    band_points: int  # scored errors the band was derived from
    band_level: float = BAND_LEVEL


@dataclass(frozen=True)
class ScoredPoint(_Prediction):
    """A forecast scored against the close it predicted (naive's forecast is `base_close`)."""

    actual_close: float


@dataclass(frozen=True)
class BarOutcome:
    """What one bar did: nothing when it was not newer than the last bar seen (accepted False)."""

    bar: Bar
    accepted: bool
    forecasts: tuple[Forecast, ...] = ()
    scored: tuple[ScoredPoint, ...] = ()
    expired: int = 0


# CoinForecaster, _Pending and _Horizon are pickled in saved states under this module's name (saved_state.py):
# moving or renaming them makes every saved state unreadable, and the workers' forecasts start fresh.
@dataclass
class _Pending:
    made_at: dt.datetime
    target_at: dt.datetime
    base: float
    x: dict[str, float]
    predicted: dict[str, float]  # model -> predicted close
    bands: dict[str, Optional[tuple[float, float]]]


@dataclass
class _Horizon:
    pending: deque[_Pending] = field(default_factory=deque)
    boards: dict[str, ScoreBoard] = field(default_factory=dict)
    expired: int = 0


def _checked_horizons(horizons: Iterable[int]) -> tuple[int, ...]:
    result = []
    for h in horizons:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"forecast horizon {h!r} is not a whole number of minutes >= 1 (e.g. 5,60)")
        result.append(h)
    if not result:
        raise ValueError("no forecast horizon: name at least one, in minutes (e.g. 5,60)")
    return tuple(sorted(set(result)))


def parse_horizons(text: str) -> tuple[int, ...]:
    """'5,60' or '5 60' -> (5, 60): minutes ahead; ValueError naming the bad part (for a setting or a flag)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    bad = [p for p in parts if not p.isdigit() or int(p) < 1]
    if bad or not parts:
        raise ValueError(f"forecast horizons {text!r}: give whole minutes >= 1, comma separated (e.g. 5,60)")
    return _checked_horizons(int(p) for p in parts)


def _synced(held: dict, wanted: Sequence, make: Callable, label: str, say_new: bool) -> list[str]:
    """`held` keeps its entries that are `wanted` and gains the missing ones, from `make(key)`, in `wanted`'s
    order; returns what changed, each `label`led ("model linear dropped"; "... starts fresh" when `say_new`)."""
    changes = []
    for key in [k for k in held if k not in wanted]:
        del held[key]
        changes.append(f"{label.format(key)} dropped")
    for key in wanted:
        if key not in held:
            held[key] = make(key)
            if say_new:
                changes.append(f"{label.format(key)} starts fresh")
    return changes


def _close_from(base: float, log_return: float) -> Optional[float]:
    """The close a predicted log return means; None for a prediction that is no number."""
    if not is_finite_number(log_return):
        return None
    try:
        close = base * math.exp(log_return)
    except OverflowError:
        return None
    return close if is_finite_number(close) and close > 0 else None


class CoinForecaster:
    """Models, queued forecasts, scores and the last bar seen, of one coin."""

    def __init__(self, ticker: str, horizons: Iterable[int] = DEFAULT_HORIZONS,
                 models: Sequence[str] = DEFAULT_MODELS, window: int = WINDOW,
                 kinds: Mapping[str, Callable[[], Forecaster]] = MODEL_KINDS) -> None:
        self.ticker = ticker
        self.horizons: tuple[int, ...] = ()
        self.models: dict[str, Forecaster] = {}
        self.window = window
        self.by_horizon: dict[int, _Horizon] = {}
        self.history = History()
        self.last_start: Optional[dt.datetime] = None
        self.bars = 0  # bars taken
        self.skipped = 0  # bars not newer than the last one seen: ignored
        self.reconfigure(horizons, models, window, kinds)

    def reconfigure(self, horizons: Iterable[int], models: Sequence[str], window: int = WINDOW,
                    kinds: Mapping[str, Callable[[], Forecaster]] = MODEL_KINDS) -> list[str]:
        """Adds what is new (fresh), drops what is gone, keeps the rest learned; returns what changed."""
        horizons = _checked_horizons(horizons)
        unknown = [name for name in models if name not in kinds or name == FORECAST_NAIVE]
        if unknown or not models:
            raise ValueError(f"forecast models {list(models)!r}: choose from {', '.join(kinds)}")
        changes = _synced(self.models, models, lambda name: kinds[name](), "model {}", bool(self.bars))
        changes += _synced(self.by_horizon, horizons, lambda h: _Horizon(), "horizon {} min", bool(self.bars))
        for h in horizons:
            state = self.by_horizon[h]
            state.boards = {name: state.boards.get(name) or ScoreBoard(window_for(h, window)) for name in self.models}
            for board in state.boards.values():
                board.resize(window_for(h, window))
        for model in self.models.values():
            model.keep(horizons)
        self.horizons, self.window = horizons, window
        return changes

    def update(self, bar: Bar) -> BarOutcome:
        """Takes one closed bar: scores what targeted it, then teaches the models, then forecasts from it."""
        if bar.ticker != self.ticker:
            raise InvalidBar(f"a {bar.ticker} bar was given to the forecaster of {self.ticker}")
        if bar_start(bar.start, RESOLUTION) != bar.start:
            raise InvalidBar(f"{bar.ticker} bar start {bar.start.isoformat()} is not on a whole minute")
        if self.last_start is not None and bar.start <= self.last_start:
            self.skipped += 1
            return BarOutcome(bar, accepted=False)
        if self.last_start is not None and (bar.start - self.last_start).total_seconds() > MIN_GAP_S:
            # Returns across a hole would read as one huge move: features start again after it.
            self.history.clear()
        scored, expired = self._score_and_learn(bar)
        self.history.append(bar)
        log_close = math.log(bar.close)
        for model in self.models.values():
            model.observe(log_close)
        forecasts = self._forecast(bar, log_close)
        self.last_start = bar.start
        self.bars += 1
        return BarOutcome(bar, True, tuple(forecasts), tuple(scored), expired)

    def _score_and_learn(self, bar: Bar) -> tuple[list[ScoredPoint], int]:
        scored, expired = [], 0
        for h, state in self.by_horizon.items():
            pending = state.pending
            while pending and pending[0].target_at <= bar.start:
                entry = pending.popleft()
                if entry.target_at < bar.start:  # its bar never came
                    state.expired += 1
                    expired += 1
                    continue
                for name, predicted in entry.predicted.items():
                    board = state.boards.get(name)
                    if board is not None:
                        board.add(predicted, entry.base, bar.close, entry.bands.get(name), bar.start)
                        scored.append(ScoredPoint(self.ticker, name, h, entry.made_at, entry.target_at,
                                                  entry.base, predicted, bar.close))
                log_return = math.log(bar.close / entry.base)
                for model in self.models.values():
                    model.learn(h, entry.x, log_return)
        return scored, expired

    def _forecast(self, bar: Bar, log_close: float) -> list[Forecast]:
        x = self.history.features()
        if x is None:
            return []
        predictions = {name: model.predict(x, log_close, self.horizons) for name, model in self.models.items()}
        forecasts = []
        for h, state in self.by_horizon.items():
            target = bar.start + dt.timedelta(seconds=h * RESOLUTIONS[RESOLUTION])
            entry = _Pending(bar.start, target, bar.close, x, {}, {})
            for name, returns in predictions.items():
                predicted = _close_from(bar.close, returns.get(h))
                if predicted is None:
                    continue
                board = state.boards[name]
                half = board.band_halfwidth()
                band = None if half is None else (predicted * math.exp(-half), predicted * math.exp(half))
                entry.predicted[name] = predicted
                entry.bands[name] = band
                forecasts.append(Forecast(self.ticker, name, h, bar.start, target, bar.close, predicted,
                                          band and band[0], band and band[1], len(board.recent) if band else 0))
            state.pending.append(entry)
        return forecasts

    def score_rows(self) -> list[ScoreRow]:
        """One row per horizon and model, in that order."""
        return [state.boards[name].row(self.ticker, name, h, state.expired)
                for h, state in sorted(self.by_horizon.items()) for name in self.models]

    def latest_forecasts(self) -> list[Forecast]:
        """The forecasts made from the newest bar (still waiting for their targets)."""
        out = []
        for h, state in sorted(self.by_horizon.items()):
            if state.pending and state.pending[-1].made_at == self.last_start:
                entry = state.pending[-1]
                for name, predicted in entry.predicted.items():
                    band = entry.bands.get(name)
                    points = len(state.boards[name].recent) if band else 0
                    out.append(Forecast(self.ticker, name, h, entry.made_at, entry.target_at, entry.base,
                                        predicted, band and band[0], band and band[1], points))
        return out

    # --- saved state ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state: a header line naming the format and River release, then the pickled object."""
        return saved_state.dump(self, self.ticker)

    @classmethod
    def from_bytes(cls, data: bytes, kinds: Mapping[str, Callable[[], Forecaster]] = MODEL_KINDS) -> "CoinForecaster":
        """The state to_bytes() wrote; StateFormatError (one line) for anything else. Only classes of this
        package, River and the model `kinds` are loaded (the bytes come from Kafka or MongoDB)."""
        loaded = saved_state.load(data, {getattr(kind, "__module__", None) for kind in kinds.values()})
        if not isinstance(loaded, cls):
            raise StateFormatError("the saved forecast state holds something else")
        return loaded


def restore(data: Optional[bytes], ticker: str, horizons: Iterable[int] = DEFAULT_HORIZONS,
            models: Sequence[str] = DEFAULT_MODELS, window: int = WINDOW,
            kinds: Mapping[str, Callable[[], Forecaster]] = MODEL_KINDS) -> CoinForecaster:
    """The saved state of `ticker` set to this configuration, or a fresh one (saying why in one line)."""
    if data is None:
        return CoinForecaster(ticker, horizons, models, window, kinds)
    try:
        state = CoinForecaster.from_bytes(data, kinds)
        if state.ticker != ticker:
            raise StateFormatError(f"the saved forecast state is {state.ticker}'s")
    except StateFormatError as exc:
        log.warning("forecasts of %s start fresh: %s", ticker, exc)
        return CoinForecaster(ticker, horizons, models, window, kinds)
    changes = state.reconfigure(horizons, models, window, kinds)
    if changes:
        log.warning("forecasts of %s: the settings changed since the state was saved: %s", ticker, "; ".join(changes))
    return state
