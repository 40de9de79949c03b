"""Trades the real worker sustains into candles: a crypto-trades topic pre-filled with exchange trades (five coins,
sequential ids, the last ten minutes), drained by `cryptoapp worker` with the exchange and its trades on; trades/s from
its first committed batch to the last, and the worker's RSS at the end. Target: >= 5,000 trades/s."""

from __future__ import annotations

import asyncio
import random
import time

import psutil

from bench import harness
from cryptoapp.schema import DEFAULT_TICKERS
from cryptoapp.settings import load
from cryptoapp.trades.models import Trade
from testkit.audit import publish
from testkit.processes import Worker

TARGET = 5_000
PRICES = {"BTC": 67187.33, "ETH": 3470.5, "BNB": 597.1, "USDT": 1.0001, "USDC": 0.9999}


def trades(total: int, end_ms: int, span_ms: int = 600_000) -> list[Trade]:
    """`total` trades of the five coins spread over the `span_ms` before `end_ms`, in time order per coin."""
    rng = random.Random(22)
    per = total // len(DEFAULT_TICKERS)
    out = []
    for n, ticker in enumerate(DEFAULT_TICKERS):
        price = PRICES[ticker]
        for i in range(per):
            price *= 1 + rng.gauss(0, 1e-4)
            out.append(Trade(ticker, "binanceus", "usd", 1_000_000 + i, end_ms - span_ms + i * span_ms // per,
                             round(price, 4), round(rng.uniform(0.0001, 0.5), 5), rng.choice(("buy", "sell"))))
    return sorted(out, key=lambda t: t.time_ms)


def run(quick: bool) -> dict:
    total = 5_000 if quick else 100_000
    cap = 60.0 if quick else 300.0
    name = harness.unique_name("trades")
    topic = f"{name}-trades"  # what the worker's settings name beside its prices topic
    client = harness.mongo()
    try:
        asyncio.run(harness.create_topic(topic, load().partitions))
        prefill_s = asyncio.run(publish(harness.KAFKA, topic, trades(total, int(time.time() * 1000) - 60_000),
                                        linger_ms=20, max_batch_size=1 << 20))
        # The exchange's REST URL refuses: the stream only retries its markets; the trades come from the topic.
        worker = Worker(name, {"CRYPTO_TOPIC": f"{name}-prices", "MONGO_DB": name, "CRYPTO_SOURCES": "exchange",
                               "CRYPTO_EXCHANGE_REST_URL": "http://127.0.0.1:9/api/v3", "CRYPTO_FORECASTS": "0",
                               "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust")})
        try:
            worker.start(wait_web=False)
            proc = psutil.Process(worker.proc.pid)
            asyncio.run(harness.wait_committed(name, topic, 1, cap, 0.05, worker._alive))
            first, began = asyncio.run(harness.committed_count(name, topic)), time.perf_counter()
            completed = asyncio.run(harness.wait_committed(name, topic, total, cap, 0.2, worker._alive))
            seconds = time.perf_counter() - began
            done = asyncio.run(harness.committed_count(name, topic))
            rss = harness.rss_mb(proc)
        finally:
            worker.stop()
        bars = client[name].candles.count_documents({"provenance": "trades", "resolution": "1m"})
    finally:
        harness.remove_run(client, name)
    rate = round((done - first) / seconds) if seconds > 0 and done > first else None  # None: drained in one commit
    return {"status": "ok", "trades": total, "prefill_s": round(prefill_s, 2), "completed": completed,
            "trades_per_s": rate, "target_trades_per_s": TARGET, "worker_rss_mb": rss, "closed_1m_bars": bars,
            "log": str(worker.log_path),
            "how": "committed offsets of crypto-trades from the worker's first batch to the last (offsets follow the "
                   "bars sent to crypto-candles)"}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1))
