"""Offline replay: stored ticks made into 1-minute bars, run through the same forecasters, and the score table."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Optional

from cryptoapp.forecasts.features import Bar, learns_from
from cryptoapp.forecasts.forecasters import DEFAULT_MODELS, MODEL_KINDS, Forecaster
from cryptoapp.forecasts.online import DEFAULT_HORIZONS, RESOLUTION, CoinForecaster
from cryptoapp.forecasts.scoring import WINDOW, ScoreRow
from cryptoapp.schema import FORECAST_NAIVE, RESOLUTIONS


def replay(bars: Iterable[Bar], horizons: Iterable[int] = DEFAULT_HORIZONS, models: Sequence[str] = DEFAULT_MODELS,
           window: int = WINDOW, kinds: Mapping[str, Callable[[], Forecaster]] = MODEL_KINDS) -> list[ScoreRow]:
    """Feeds the bars, one at a time and in the order given, to one CoinForecaster per coin, exactly as the
    stream does, and returns their score rows (coins in order of first appearance)."""
    forecasters: dict[str, CoinForecaster] = {}
    for bar in bars:
        forecaster = forecasters.get(bar.ticker)
        if forecaster is None:
            forecaster = forecasters[bar.ticker] = CoinForecaster(bar.ticker, horizons, models, window, kinds)
        forecaster.update(bar)
    return [row for forecaster in forecasters.values() for row in forecaster.score_rows()]


def bars_from_ticks(ticker: str, ticks: Iterable[Mapping]) -> list[Bar]:
    """1-minute bars from stored ticks (`timestamp`, `value`, `volume_24h`, `source`): each minute's last price and
    last reported volume, as the candles make them; a minute without a tick has no bar (never a made-up one), and a
    minute the stream would not learn from (features.learns_from: CoinGecko's backfill alone) none either."""
    import pandas as pd  # the CLI's need only: the worker never makes bars this way

    frame = pd.DataFrame(list(ticks), columns=["timestamp", "value", "volume_24h", "source"])
    if frame.empty:
        return []
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column in ("value", "volume_24h"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["learned"] = [learns_from((source,)) for source in frame["source"].fillna("")]
    minutes = (frame.set_index("timestamp").sort_index()
               .resample(f"{RESOLUTIONS[RESOLUTION]}s", label="left", closed="left")
               .agg({"value": "last", "volume_24h": "last", "learned": "max"})
               .dropna(subset=["value"]))
    minutes = minutes[minutes["learned"].astype(bool)]
    return [Bar(ticker, start.to_pydatetime(), float(row.value),
                None if pd.isna(row.volume_24h) else float(row.volume_24h))
            for start, row in zip(minutes.index, minutes.itertuples(index=False))]


def _money(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def _share(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _ratio(mae: Optional[float], naive: Optional[float]) -> str:
    return "-" if mae is None or not naive else f"{mae / naive:.3f}"


def format_table(rows: Sequence[ScoreRow]) -> str:
    """The table the dashboard shows, as text: each model beside naive, over all points and the last window."""
    header = ("coin", "horizon", "model", "points", "MAE", "naive MAE", "MAE/naive", "hit rate",
              "window", "MAE", "naive MAE", "hit rate", "verdict (window)")
    lines = [header]
    for r in rows:
        lines.append((r.ticker, f"{r.horizon_min} min", r.model, f"{r.total_points:,}", _money(r.total_mae),
                      _money(r.total_naive_mae), _ratio(r.total_mae, r.total_naive_mae), _share(r.total_hit_rate),
                      f"{r.points:,}", _money(r.mae), _money(r.naive_mae), _share(r.hit_rate), r.verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i in (0, 1, 2, 12) else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines]
    text.insert(1, "-" * len(text[0]))
    text.append(f"MAE in the coin's currency; {FORECAST_NAIVE} = the no-change forecast on the same points. "
                "Hit rate: share of moves whose direction the model called (naive calls none; a coin toss gets 50 %).")
    return "\n".join(text)
