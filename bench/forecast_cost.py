"""`python -m bench.forecast_cost [--mongo]`: forecasting's cost per closed bar, its state size, its MongoDB writes.

The forecasting agent takes one closed 1-minute bar per coin per minute. This replays a minute-by-minute
stream for 5 coins through the real forecasters (default horizons and models) after a warm-up that fills
every window and queue, and times each step the agent would take: update (score, learn, forecast),
documents, to_bytes (the state snapshot) and from_bytes (a restart). With --mongo it also times the
per-minute writes (the forecasts of 5 coins, their scores, a prune of those whose target has passed) and the dashboard's
read of one coin's forecasts and scores, on the running MongoDB server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import time
import uuid

import numpy as np

from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.features import Bar
from cryptoapp.forecasts.online import CoinForecaster
from cryptoapp.schema import DEFAULT_TICKERS, FORECASTS, UTC
from cryptoapp.uris import mask_uri

LEVELS = {"BTC": 87000.0, "ETH": 2900.0, "BNB": 850.0, "USDT": 1.0, "USDC": 1.0}
WARM_UP = 700  # bars: the 60-minute windows (600 points) and queues are full after this
MEASURED = 600


def _stream(minutes: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2025, 11, 21, tzinfo=UTC)
    paths = {t: LEVELS[t] * np.exp(np.cumsum(rng.normal(0, 0.0008, minutes))) for t in DEFAULT_TICKERS}
    volumes = {t: 1e9 * np.exp(np.cumsum(rng.normal(0, 0.001, minutes))) for t in DEFAULT_TICKERS}
    for i in range(minutes):
        yield [Bar(t, t0 + dt.timedelta(minutes=i), float(paths[t][i]), float(volumes[t][i])) for t in DEFAULT_TICKERS]


def _ms(values: list[float]) -> dict:
    values = sorted(values)
    return {"mean": round(statistics.fmean(values) * 1000, 3), "p50": round(values[len(values) // 2] * 1000, 3),
            "p99": round(values[int(len(values) * 0.99)] * 1000, 3), "max": round(values[-1] * 1000, 3)}


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def measure() -> dict:
    rss_before = _rss_mb()
    forecasters = {t: CoinForecaster(t) for t in DEFAULT_TICKERS}
    update_s, minute_s, docs_s, minutes = [], [], [], []
    for i, minute in enumerate(_stream(WARM_UP + MEASURED)):
        started = time.perf_counter()
        outcomes = []
        for bar in minute:
            t = time.perf_counter()
            outcomes.append(forecasters[bar.ticker].update(bar))
            if i >= WARM_UP:
                update_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        forecast_documents(f for o in outcomes for f in o.forecasts)
        score_documents(r for f in forecasters.values() for r in f.score_rows())
        if i >= WARM_UP:
            docs_s.append(time.perf_counter() - t)
            minute_s.append(time.perf_counter() - started)
            minutes.append(minute)
    snapshot_s, restore_s, sizes = [], [], []
    for forecaster in forecasters.values():
        t = time.perf_counter()
        data = forecaster.to_bytes()
        snapshot_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        CoinForecaster.from_bytes(data)
        restore_s.append(time.perf_counter() - t)
        sizes.append(len(data))
    per_minute_ms = statistics.fmean(minute_s) * 1000 + statistics.fmean(snapshot_s) * 1000 * len(forecasters)
    first = next(iter(forecasters.values()))
    return {
        "coins": len(forecasters), "horizons_min": list(first.horizons), "models": list(first.models),
        "bars_measured_per_coin": MEASURED,
        "update_ms_per_bar": _ms(update_s),
        "documents_ms_per_minute": _ms(docs_s),
        "minute_ms_all_coins": _ms(minute_s),
        "snapshot_ms_per_coin": _ms(snapshot_s), "restore_ms_per_coin": _ms(restore_s),
        "state_bytes_per_coin": max(sizes),
        # River, SciPy and NumPy load with the first model; then the state of 5 coins.
        "rss_mb_before_models": rss_before, "rss_mb_after": _rss_mb(),
        # One bar per coin per minute: the agent's share of one core, snapshots of every coin included.
        "cpu_share_of_one_core": round(per_minute_ms / 60_000, 6),
    }


async def measure_writes(uri: str, rounds: int = 20) -> dict:
    """The per-minute writes of 5 coins on a database of its own (dropped afterwards)."""
    from cryptoapp.storage import PriceStore

    name = f"bench-forecasts-{uuid.uuid4().hex[:8]}"
    forecasters = {t: CoinForecaster(t) for t in DEFAULT_TICKERS}
    first = forecasters[DEFAULT_TICKERS[0]]
    forecasts_s, scores_s, prune_s = [], [], []
    async with PriceStore(uri, name) as store:
        try:
            for i, minute in enumerate(_stream(WARM_UP + rounds)):
                made = [f for bar in minute for f in forecasters[bar.ticker].update(bar).forecasts]
                if i < WARM_UP - max(first.horizons):
                    continue
                docs = forecast_documents(made)
                if i < WARM_UP:  # the collection holds the forecasts still waiting for their target
                    await store.write_forecasts(docs)
                    continue
                t = time.perf_counter()
                await store.write_forecasts(docs)
                forecasts_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                await store.write_forecast_scores(score_documents(r for f in forecasters.values()
                                                                  for r in f.score_rows()))
                scores_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                await store.prune_forecasts(minute[0].start)
                prune_s.append(time.perf_counter() - t)
            read_s = _dashboard_reads(uri, name, minute[0].start - dt.timedelta(minutes=5))
            stored = await store._forecast_collection(FORECASTS).count_documents({})
        finally:
            await store.client.drop_database(name)
    return {"server": mask_uri(uri), "forecasts_stored": stored, "forecasts_ms_per_minute": _ms(forecasts_s),
            "scores_ms_per_minute": _ms(scores_s), "prune_ms_per_minute": _ms(prune_s),
            "dashboard_read_ms": _ms(read_s)}


def _dashboard_reads(uri: str, name: str, since: dt.datetime, rounds: int = 5) -> list[float]:
    from dashboard import data

    client = data.connect(uri)
    try:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            data.load_forecasts(client[name], "BTC", since=since)
            times.append(time.perf_counter() - t)
        return times
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo", action="store_true", help="also time the writes on MONGO_URI")
    args = parser.parse_args()
    result = measure()
    if args.mongo:
        result["mongo_writes"] = asyncio.run(measure_writes(os.environ.get("MONGO_URI", "mongodb://localhost:27017")))
    print(json.dumps({"forecasts": result}, indent=2))


if __name__ == "__main__":
    main()
