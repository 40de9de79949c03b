"""Forecasts and scores as `crypto.forecasts` and `crypto.forecast_scores` documents, with deterministic `_id`s."""

from __future__ import annotations

from collections.abc import Iterable

from cryptoapp.forecasts.online import Forecast
from cryptoapp.forecasts.scoring import ScoreRow
from cryptoapp.schema import FORECAST_SCORE_FIELDS, bson_time, forecast_id, forecast_score_id


def forecast_document(forecast: Forecast) -> dict:
    """One forecast; the same forecast always makes the same document, so writing it twice stores one."""
    return {  # the fields of schema.FORECAST_FIELDS, in that order
        "_id": forecast_id(forecast.ticker, forecast.model, forecast.horizon_min, forecast.made_at),
        "sensor_id": forecast.ticker,
        "model": forecast.model,
        "horizon_min": forecast.horizon_min,
        "made_at": bson_time(forecast.made_at),
        "target_at": bson_time(forecast.target_at),
        "base_close": forecast.base_close,
        "predicted_close": forecast.predicted_close,
        "band_low": forecast.band_low,
        "band_high": forecast.band_high,
        "band_level": forecast.band_level,
        "band_points": forecast.band_points,
    }


def score_document(row: ScoreRow) -> dict:
    """One model's score at one horizon for one coin, `_id` BTC_linear_5m: rewritten in place as it moves."""
    values = row.as_dict()
    doc = {"_id": forecast_score_id(row.ticker, row.model, row.horizon_min), "sensor_id": row.ticker,
           **{name: values[name] for name in FORECAST_SCORE_FIELDS[2:]}}
    if doc["as_of"] is not None:
        doc["as_of"] = bson_time(doc["as_of"])
    return doc


def forecast_documents(forecasts: Iterable[Forecast]) -> list[dict]:
    return [forecast_document(f) for f in forecasts]


def score_documents(rows: Iterable[ScoreRow]) -> list[dict]:
    return [score_document(r) for r in rows]
