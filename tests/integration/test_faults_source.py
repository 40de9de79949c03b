"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): the worker facing a CoinGecko that misbehaves stores nothing wrong and goes on."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import signal
import time

import pytest
from aiohttp import web
from pymongo import MongoClient

from testkit.processes import wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer

pytestmark = pytest.mark.integration
SYMBOLS = "bitcoin ethereum binancecoin tether usd-coin solana"
SOLANA = {"usd": 187.25, "usd_market_cap": 8.6e10, "usd_24h_vol": 3.1e9, "usd_24h_change": 1.5,
          "last_updated_at": 1711356300}


@dataclasses.dataclass
class TimedFake(FakeCoinGecko):
    """The fake CoinGecko, noting when each call came and hanging only `hang_seconds` (the client gives up first)."""

    times: list = dataclasses.field(default_factory=list)
    hang_seconds: float = 3.0

    async def simple_price(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        return await super().simple_price(request)

    async def _fault_response(self):
        if self.fault == "hang":
            await asyncio.sleep(self.hang_seconds)
            return web.json_response({}, status=504)
        return await super()._fault_response()


@pytest.fixture(scope="module")
def fake():
    answer = copy.deepcopy(FakeCoinGecko().prices)
    answer["solana"] = dict(SOLANA)
    with FakeCoinGeckoServer(TimedFake(prices=answer)) as fake:
        yield fake


@pytest.fixture(scope="module")
def budget_fake():
    with FakeCoinGeckoServer(TimedFake()) as fake:
        yield fake


@pytest.fixture(scope="module")
def budget_worker(private_services, budget_fake, unique_module_name):
    """Polls every 0.5 s on a budget of 3 calls a minute; started first, checked by the module's last test."""
    worker = private_services.worker(f"{unique_module_name}-budget", COINGECKO_API_URL=budget_fake.url,
                                     CRYPTO_INTERVAL="0.5", CRYPTO_REQUESTS_PER_MINUTE="3")
    worker.start(wait_web=False)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def unique_module_name():
    return f"faults-src-{time.strftime('%H%M%S')}"


@pytest.fixture(scope="module")
def db(private_services, unique_module_name):
    client = MongoClient(private_services.mongo_uri, tz_aware=True)
    yield client[unique_module_name]
    client.close()


@pytest.fixture(scope="module")
def worker(private_services, fake, db, budget_worker):
    worker = private_services.worker(db.name, COINGECKO_API_URL=fake.url, CRYPTO_SYMBOLS=SYMBOLS,
                                     CRYPTO_INTERVAL="0.5", COINGECKO_TIMEOUT="1",
                                     CRYPTO_REQUESTS_PER_MINUTE="1000")
    worker.start()
    wait_for(lambda: db.prices.count_documents({}) == 6, 60, "the six coins of the first answer stored")
    yield worker
    worker.stop()


_next_time = iter(range(1711356360, 1711999999, 60))


def move(fake, coin_id: str, **entry) -> int:
    """Gives `coin_id` a newer source time (and the fields given); returns that time."""
    updated = next(_next_time)
    fake.prices[coin_id] = {**fake.prices[coin_id], **entry, "last_updated_at": updated}
    return updated


def doc_id(ticker: str, updated: int) -> str:
    return f"{ticker}_{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(updated))}"


def lines(worker, pattern: str, since: int = 0) -> list[str]:
    return [line for line in worker.log_text()[since:].splitlines() if re.search(pattern, line)]


@pytest.mark.parametrize("fault, warning", [
    ("503", r"CoinGecko poll skipped: CoinGecko answered HTTP 503"),
    ("hang", r"CoinGecko poll skipped: CoinGecko unreachable at http://127\.0\.0\.1:\d+/api/v3 \(\w*Timeout\w*\)"),
    ("html-403", r"CoinGecko poll skipped: CoinGecko answered HTTP 403 with an HTML page \(a CDN block\?\)"),
    ("truncated", r"CoinGecko poll skipped: CoinGecko answered invalid JSON"),
    ("not-json", r"CoinGecko poll skipped: CoinGecko answered text/html; charset=utf-8, not JSON"),
])
def test_a_bad_answer_is_skipped_with_one_warning_and_polling_goes_on(worker, fake, db, fault, warning):
    since = len(worker.log_text())
    documents = db.prices.count_documents({})
    updated = move(fake, "bitcoin", usd=67300.5)
    fake.fault = fault
    calls = len(fake.times)
    # Passing faults get three tries a poll (waiting 1-2 s, then 2-3 s); one poll shows that. The others
    # are polled three times: the unchanged problem is named once.
    retried = fault in ("503", "hang")
    wait_for(lambda: len(fake.times) >= calls + 3 and lines(worker, warning, since), 60, f"polls answered {fault}")
    assert len(lines(worker, warning, since)) == 1, lines(worker, "WARNING", since)
    if retried:
        assert len(fake.times) - calls >= 3
    assert db.prices.count_documents({}) == documents
    fake.fault = None
    wait_for(lambda: db.prices.find_one({"_id": doc_id("BTC", updated)}), 30, "the next good answer stored")
    assert worker.proc.poll() is None


def test_bad_coins_are_named_once_and_the_others_stored(worker, fake, db):
    since = len(worker.log_text())
    times = {coin: move(fake, coin, usd=value) for coin, value in
             (("bitcoin", None), ("ethereum", -5.0), ("binancecoin", 0), ("tether", float("nan")))}
    del fake.prices["usd-coin"]
    solana = move(fake, "solana", usd=188.0)
    wait_for(lambda: db.prices.find_one({"_id": doc_id("SOL", solana)}), 30, "the good coin of the answer stored")
    calls = len(fake.times)
    wait_for(lambda: len(fake.times) >= calls + 2, 30, "two more polls of the same answer")
    for ticker, reason in (("BTC", "price is None, not a number"), ("ETH", "price -5.0 is not positive"),
                           ("BNB", "price 0 is not positive"), ("USDT", "price is nan, not a number"),
                           ("USDC", "'usd-coin' is not in the answer")):
        assert len(lines(worker, rf"WARNING.*CoinGecko: {ticker} skipped: .*{re.escape(reason)}", since)) == 1
    for ticker, coin in (("BTC", "bitcoin"), ("ETH", "ethereum"), ("BNB", "binancecoin"), ("USDT", "tether")):
        assert db.prices.find_one({"_id": doc_id(ticker, times[coin])}) is None
    assert db.prices.count_documents({"value": {"$lte": 0}}) == 0


def test_an_absurd_jump_is_skipped_even_after_a_restart_until_confirmed(worker, fake, db):
    """The filter's last value survives a restart (seeded from latest_prices); three agreeing answers move it."""
    good = move(fake, "ethereum", usd=3471.0)
    wait_for(lambda: db.prices.find_one({"_id": doc_id("ETH", good)}), 30, "a good ETH tick stored")
    wait_for(lambda: worker.price("ETH") == 3471.0, 30, "latest_prices holding it")
    assert worker.stop() == 0
    since = len(worker.log_text())
    absurd = [move(fake, "ethereum", usd=3471.0 * 60)]
    worker.start()
    wait_for(lambda: lines(worker, r"CoinGecko: ETH skipped: price 208260\.0 is over 50x away from the last one "
                                   r"\(3471\.0\)", since), 30, "the jump named after the restart")
    assert db.prices.find_one({"_id": doc_id("ETH", absurd[0])}) is None
    absurd.append(move(fake, "ethereum", usd=3471.0 * 61))
    wait_for(lambda: len(lines(worker, "CoinGecko: ETH skipped", since)) == 2, 30, "the second jump named")
    assert db.prices.find_one({"_id": doc_id("ETH", absurd[1])}) is None
    confirmed = move(fake, "ethereum", usd=3471.0 * 62)
    wait_for(lambda: db.prices.find_one({"_id": doc_id("ETH", confirmed)}), 30, "the third agreeing answer stored")
    assert lines(worker, r"CoinGecko: ETH accepted at 215202\.0: 3 answers in a row", since)
    assert [db.prices.find_one({"_id": doc_id("ETH", t)}) for t in absurd] == [None, None]


def test_rate_limits_back_off_exponentially_honour_retry_after_and_name_each_wait(worker, fake, db):
    since = len(worker.log_text())
    fake.fault = "429"
    first = len(fake.times)
    pause = r"CoinGecko rate limit \(HTTP 429\): pausing CoinGecko polls for (\d+) s;"
    wait_for(lambda: len(fake.times) >= first + 2 and len(lines(worker, pause, since)) >= 2, 60,
             "two rate-limited calls")
    assert fake.times[first + 1] - fake.times[first] >= 1.0  # no call during the first pause
    waits = [int(re.search(pause, line).group(1)) for line in lines(worker, pause, since)]
    assert len(waits) == len(fake.times) - first  # one line per wait, none per skipped poll
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 4, waits  # jittered, doubling: never hammering
    fake.fault, fake.retry_after = "429-retry-after", "3"
    before = len(fake.times)
    wait_for(lambda: len(fake.times) >= before + 2, 60, "two calls answered with Retry-After: 3")
    assert fake.times[before + 1] - fake.times[before] >= 3.0
    assert lines(worker, r"pausing CoinGecko polls for 3 s \(Retry-After\)", since)
    fake.fault = None
    updated = move(fake, "solana", usd=189.0)
    wait_for(lambda: db.prices.find_one({"_id": doc_id("SOL", updated)}), 60, "polling resumed after the limits")


def test_the_request_budget_is_never_exceeded_in_any_minute(budget_worker, budget_fake):
    """Runs last: the budget worker (3 calls a minute, a poll due every 0.5 s) started with the module."""
    wait_for(lambda: len(budget_fake.times) >= 4, 90, "four calls on a budget of three a minute")
    times = list(budget_fake.times)
    # One call every 20 s: a bucket three calls deep would answer three polls at once, then one every 20 s.
    assert min(b - a for a, b in zip(times, times[1:])) >= 20 * 0.95
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= 3
    assert re.search(r"WARNING.*CRYPTO_INTERVAL=0.5 s asks for more calls than CRYPTO_REQUESTS_PER_MINUTE=3 "
                     r"allows: polls go every 20.0 s", budget_worker.log_text())
    assert budget_worker.proc.poll() is None
    assert budget_worker.stop(signal.SIGTERM) == 0
