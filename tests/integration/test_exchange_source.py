"""The exchange source against a local server speaking Binance US's protocol: quotes, conflation, drops, stalls,
dead links, malformed messages, unlisted coins, one stream per process. Needs no Kafka: publish() collects."""

from __future__ import annotations

import contextlib
import logging

import pytest

from cryptoapp.coins import resolve_all
from cryptoapp.schema import DEFAULT_SYMBOLS
from cryptoapp.sources.ccxt_stream import AlreadyStreaming
from cryptoapp.sources.exchange import ExchangeSource
from testkit.processes import async_wait_for
from tests.support.fake_exchange import FakeBinanceUS, running

COINS = resolve_all(DEFAULT_SYMBOLS)
LOGGER = "cryptoapp.sources.exchange"
SYMBOL = {"BTC": "BTCUSD", "ETH": "ETHUSDT", "BNB": "BNBUSD", "USDT": "USDTUSD", "USDC": "USDCUSD"}


@pytest.fixture
async def fake():
    async with running(FakeBinanceUS()) as server:
        yield server


@contextlib.asynccontextmanager
async def source(fake: FakeBinanceUS, coins=COINS, **options):
    """A started ExchangeSource pointed at the fake; yields it and the list publish() filled."""
    published = []

    async def publish(ticks):
        published.extend(ticks)

    src = ExchangeSource("binanceus", coins, publish, ws_url=fake.ws_url, rest_url=fake.rest_url,
                         **{"stall_s": 30.0, **options})
    src.published_ticks = published
    await src.start()
    try:
        yield src
    finally:
        await src.stop()


def ticks_of(src, ticker, after=0):
    return [t for t in src.published_ticks[after:] if t.ticker == ticker]


async def streaming(fake: FakeBinanceUS, src) -> None:
    """Waits for the subscriptions, starts the fake's updates and waits for a first BTC tick."""
    await async_wait_for(lambda: fake.subscribed(), 10, "the subscriptions")
    await fake.stream(5)
    await async_wait_for(lambda: ticks_of(src, "BTC"), 10, "a first BTC tick")


async def btc_ticks_again(src, what: str) -> None:
    """Waits for a BTC tick published after this call."""
    before = len(src.published_ticks)
    await async_wait_for(lambda: ticks_of(src, "BTC", after=before), 10, what)


def lines(caplog, text):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and text in r.getMessage()]


async def test_ticks_carry_the_exchanges_bid_ask_sizes_and_quote_currency(fake, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake, coins=resolve_all([*DEFAULT_SYMBOLS, "solana"])) as src:
        await async_wait_for(lambda: len(fake.subscribed()) == 5, 10, "the five subscriptions")
        await fake.stream(5)
        await async_wait_for(lambda: all(ticks_of(src, t) for t in SYMBOL), 10, "a tick of every listed coin")
        fake.stop_stream()
    sent = {(s.symbol, s.event_ms): s for s in fake.sent}
    for tick in src.published_ticks:
        quote = sent[(SYMBOL[tick.ticker], round(tick.timestamp.timestamp() * 1000))]  # the update it came from
        assert (tick.value, tick.bid_price, tick.ask_price, tick.bid_size, tick.ask_size, tick.volume_24h) == (
            quote.last, quote.bid, quote.ask, quote.bid_qty, quote.ask_qty, quote.quote_volume)
        assert tick.source == "binanceus" and tick.tick_id.startswith(f"{tick.ticker}_binanceus_")
    # ETH/USD is halted (status BREAK): ETH comes from ETH/USDT and says so; USDT is priced in USD.
    assert {t.ticker: t.currency for t in src.published_ticks} == {
        "BTC": "usd", "ETH": "usdt", "BNB": "usd", "USDT": "usd", "USDC": "usd"}
    assert len(lines(caplog, "ETH from ETH/USDT (ETH/USD halted)")) == 1
    # Binance US has no SOL book: one line at start-up, and SOL is left to the other sources.
    assert lines(caplog, "SOL") == ["binanceus does not list SOL (no SOL pair against USD/USDT); "
                                    "it comes from the other sources only"]
    assert fake.exchange_info_calls == 1 and fake.connections_opened == 1
    assert [r["method"] for r in fake.requests] == ["SUBSCRIBE"]  # one request for all five @ticker streams
    assert sorted(fake.requests[0]["params"]) == sorted(f"{s.lower()}@ticker" for s in SYMBOL.values())


async def test_twenty_updates_a_second_become_at_most_one_tick_a_second_the_last_of_each(fake):
    async with source(fake, max_hz=1.0) as src:
        await async_wait_for(lambda: fake.subscribed(), 10, "the subscriptions")
        await fake.stream(20)
        await async_wait_for(lambda: len(ticks_of(src, "BTC")) >= 3, 10, "three BTC ticks")
        fake.stop_stream()
    for ticker, symbol in SYMBOL.items():
        ticks = ticks_of(src, ticker)
        seconds = [int(t.timestamp.timestamp()) for t in ticks]
        assert len(seconds) == len(set(seconds)), f"{ticker}: two ticks in one second: {seconds}"
        for tick, second in zip(ticks, seconds):
            in_slot = [s for s in fake.sent if s.symbol == symbol and s.event_ms // 1000 == second]
            assert len(in_slot) >= 2 or tick is ticks[0]  # the fake really sent several per second
            assert tick.value == max(in_slot, key=lambda s: s.event_ms).last, f"{ticker}: not the slot's last"
    assert len(fake.sent) >= 10 * len(src.published_ticks)  # 20 updates a second became about one tick


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "tcp-reset"])
async def test_a_dropped_socket_is_redialled_and_ticks_resume(fake, caplog, abrupt):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake) as src:
        await streaming(fake, src)
        assert await fake.drop(abrupt=abrupt) == 1
        before = len(src.published_ticks)
        await async_wait_for(lambda: fake.connections_opened == 2 and fake.subscribed(), 10, "a new subscription")
        await async_wait_for(lambda: ticks_of(src, "BTC", after=before), 10, "BTC ticks after the drop")
        fake.stop_stream()
    assert len(lines(caplog, "connection lost after")) == 1
    assert src.gaps and src.gaps[0] < 2.0  # the gap is the reconnect, reported in one line
    assert len(lines(caplog, "streaming again")) == 1


async def test_a_stalled_stream_is_logged_redialled_and_recovers(fake, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake, stall_s=1.0) as src:
        await streaming(fake, src)
        fake.silent = True  # the socket stays up and answers pings, but no update comes
        await async_wait_for(lambda: lines(caplog, "no message for"), 10, "the stall warning")
        await async_wait_for(lambda: fake.connections_opened >= 2, 10, "a redial after the stall")
        fake.silent = False
        await btc_ticks_again(src, "BTC ticks after the stall")
        fake.stop_stream()
    assert len(lines(caplog, "no message for")) == 1  # one line per stall, however many redials it took
    assert len(lines(caplog, "quotes again after")) == 1


async def test_a_dead_link_is_found_by_the_keepalive(fake, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake, keepalive_s=0.3, stall_s=60.0) as src:
        await streaming(fake, src)
        fake.dead = True  # no updates and no pongs: only the client's pings can tell
        await async_wait_for(lambda: lines(caplog, "keepalive missing"), 10, "the missed-pong error")
        fake.dead = False
        await btc_ticks_again(src, "BTC ticks on a new connection")
        fake.stop_stream()
    assert fake.connections_opened >= 2


async def test_the_client_answers_the_servers_pings(fake):
    fake.ping_every_s = 0.1
    async with source(fake):
        await async_wait_for(lambda: fake.pongs >= 3, 10, "three pongs to the server's pings")
    assert fake.connections_opened == 1  # never dropped for a late pong


async def test_malformed_messages_are_skipped_with_a_log_line_and_the_stream_goes_on(fake, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake) as src:
        await streaming(fake, src)
        await fake.send_raw('{"e": "24hrTicker", "E": 1711356300123, "s": ')  # cut short: not JSON
        await fake.send_raw('{"e": "24hrTicker", "E": 1711356300123, "s": "BTCUSD", "c": "abc"}')
        await fake.send_raw('{"e": "24hrTicker", "E": 1711356300123, "s": "BTCUSD", "c": "-5.0"}')
        await async_wait_for(lambda: src.malformed == 3, 10, "three malformed messages counted")
        await btc_ticks_again(src, "BTC ticks after them")
        fake.stop_stream()
    skipped = lines(caplog, "skipped a malformed message")
    assert len(skipped) == 1 and "JSONDecodeError" in skipped[0]  # rate-limited: one line, then counted
    assert fake.connections_opened == 1  # no reconnect needed
    assert all(t.value > 0 for t in src.published_ticks)


async def test_one_process_streams_an_exchange_once(fake):
    async with source(fake):
        await async_wait_for(lambda: fake.subscribed(), 10, "the subscriptions")
        with pytest.raises(AlreadyStreaming):
            async with source(fake):
                pass
        assert fake.connections_opened == 1
    async with source(fake):  # a stopped source frees its place
        await async_wait_for(lambda: fake.connections_opened == 2, 10, "the second source's connection")


async def test_the_connection_is_renewed_before_the_exchanges_24_hour_limit(fake, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    async with source(fake, max_connection_s=1.0) as src:  # 23.5 h in production
        await async_wait_for(lambda: fake.subscribed(), 10, "the subscriptions")
        await fake.stream(5)
        await async_wait_for(lambda: fake.connections_opened >= 2, 10, "a renewed connection")
        await btc_ticks_again(src, "BTC ticks on the new connection")
        fake.stop_stream()
    assert lines(caplog, "renewing the connection") and not lines(caplog, "connection lost")
    assert max(src.gaps) < 1.0
