"""The model kinds (River): a linear model on lagged returns and volume, and a SNARIMAX on the log close.

Each kind keeps one coin's models and answers three calls, which the evaluator (online.py) makes in
the order progressive validation allows:
- `observe(log_close)` with every bar, after the forecasts that targeted that bar were scored;
- `learn(h, x, log_return)` when a pair is complete: the features `x` of the bar a forecast was made
  from and the log return that followed over `h` minutes, taught only once that return is known;
- `predict(x, log_close, horizons)` -> the predicted log return over each horizon from now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

# River (with the SciPy it loads) is imported when a model is first made, not with this module: the worker
# imports every module of the package at start (Faust's autodiscovery), and River adds ~90 MB and ~2 s to a
# worker that may run with forecasts off.

LEARNING_RATE = 0.01  # River's default SGD step for linear regression; features are standardized first
SNARIMAX_ORDER = (3, 1, 0)  # AR(3) on 1-bar log returns (d=1 differences the log close), no MA terms


class Forecaster(Protocol):
    def observe(self, log_close: float) -> None: ...

    def learn(self, horizon_min: int, x: dict[str, float], log_return: float) -> None: ...

    def predict(self, x: dict[str, float], log_close: float, horizons: Sequence[int]) -> dict[int, float]: ...

    def keep(self, horizons: Sequence[int]) -> None: ...  # forget what it holds for any other horizon


class LinearReturns:
    """Per horizon, StandardScaler | LinearRegression (SGD) from the features to the h-minute log return."""

    def __init__(self, learning_rate: float = LEARNING_RATE) -> None:
        self.learning_rate = learning_rate
        self.by_horizon: dict[int, object] = {}

    def _model(self, horizon_min: int):
        model = self.by_horizon.get(horizon_min)
        if model is None:
            from river import linear_model, optim, preprocessing

            regression = linear_model.LinearRegression(optimizer=optim.SGD(self.learning_rate),
                                                       intercept_lr=self.learning_rate)
            model = self.by_horizon[horizon_min] = preprocessing.StandardScaler() | regression
        return model

    def observe(self, log_close: float) -> None:
        pass  # it learns from complete (features, return) pairs only

    def learn(self, horizon_min: int, x: dict[str, float], log_return: float) -> None:
        self._model(horizon_min).learn_one(x, log_return)

    def predict(self, x: dict[str, float], log_close: float, horizons: Sequence[int]) -> dict[int, float]:
        return {h: self._model(h).predict_one(x) for h in horizons}

    def keep(self, horizons: Sequence[int]) -> None:
        self.by_horizon = {h: m for h, m in self.by_horizon.items() if h in horizons}


class SnarimaxSeries:
    """River's SNARIMAX on the log close, one per coin: it learns each close as it comes and forecasts
    the path step by step (one step is one bar), read at each horizon."""

    def __init__(self, order: tuple[int, int, int] = SNARIMAX_ORDER) -> None:
        from river import time_series

        p, d, q = order
        self.model = time_series.SNARIMAX(p=p, d=d, q=q)

    def observe(self, log_close: float) -> None:
        self.model.learn_one(log_close)

    def learn(self, horizon_min: int, x: dict[str, float], log_return: float) -> None:
        pass  # the series it observes is all it learns from

    def predict(self, x: dict[str, float], log_close: float, horizons: Sequence[int]) -> dict[int, float]:
        path = self.model.forecast(horizon=max(horizons))
        return {h: path[h - 1] - log_close for h in horizons}

    def keep(self, horizons: Sequence[int]) -> None:
        pass  # one model serves every horizon


MODEL_KINDS: dict[str, Callable[[], Forecaster]] = {"linear": LinearReturns, "snarimax": SnarimaxSeries}
DEFAULT_MODELS = ("linear", "snarimax")


def parse_models(text: str) -> tuple[str, ...]:
    """'linear,snarimax' or 'linear snarimax' -> the model kinds named, order kept, repeats dropped; ValueError
    naming the kinds there are (for a setting or a flag)."""
    names = tuple(dict.fromkeys(n for n in str(text).replace(",", " ").split() if n))
    unknown = [n for n in names if n not in MODEL_KINDS]
    if unknown or not names:
        raise ValueError(f"names no model kind{'s ' + str(unknown) if unknown else ''}: choose from "
                         f"{', '.join(MODEL_KINDS)}, comma separated")
    return names
