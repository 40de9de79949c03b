"""The Faust app: broker, topics, the latest_prices table and the services the agents share (store, price
sources, request budget, coins, alert rules and delivery), declared once; `main()` is the console script."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Optional

import faust
from aiokafka.admin import AIOKafkaAdminClient
from faust.app.base import SCAN_IGNORE
from faust.sensors.prometheus import setup_prometheus_sensors
from tenacity import AsyncRetrying, retry_if_result, wait_exponential

from cryptoapp.alerts.delivery import AlertDelivery
from cryptoapp.alerts.rulebook import RuleBook
from cryptoapp.coins import Coin, load_catalogue, read_catalogue, resolve_all
from cryptoapp.prices.models import PriceTick
from cryptoapp.recovery import KafkaTransport, ResumeLastTableManager
from cryptoapp.schema import COINGECKO, EXCHANGE
from cryptoapp.settings import ConfigError
from cryptoapp.settings.worker import Settings, UnusableSettings, apply_flags, from_environment
from cryptoapp.sources import PriceSource, make_source
from cryptoapp.sources.budget import request_budget
from cryptoapp.sources.coingecko import CoinGeckoClient
from cryptoapp.sources.exchange import ExchangeSource, exchange_class
from cryptoapp.storage import PriceStore

log = logging.getLogger(__name__)

BROKER_WAIT_LOG_EVERY = 30.0  # seconds between "still waiting" lines while Kafka is down at start
TABLE_WRITES_PER_BATCH = 5000  # the most table writes waiting in Faust's producer buffer before it pauses
STOP_TIMEOUT = 15.0  # seconds a stopping worker may take (it needs 1-2); services.sh kills after 30
REPEATED_CLIENT_LINES_EVERY = 30.0  # seconds between two same aiokafka complaints
CHANGELOG_SEGMENT_MS = 60_000  # latest_prices' changelog rolls a segment a minute, which compaction can then shrink
CATALOGUE_WAIT = 15.0  # seconds start-up waits for CoinGecko's coin list before using the cached or built-in one
STREAM_STOP_TIMEOUT = 5.0  # seconds the exchange stream may take to close (it needs well under one)


class RepeatedClientLines(logging.Filter):
    """Lets an aiokafka line through once per interval: it retries every 100 ms while a broker is down
    and would write ten lines a second; the first line and a count of the dropped ones are kept."""

    def __init__(self, every: float = REPEATED_CLIENT_LINES_EVERY):
        super().__init__()
        self.every = every
        self._seen: dict[tuple, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno >= logging.CRITICAL:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        last, dropped = self._seen.get(key, (-self.every, 0))
        if now - last < self.every:
            self._seen[key] = (last, dropped + 1)
            return False
        self._seen[key] = (now, 0)
        if dropped:  # the added text holds no %, so the record's own arguments still format
            record.msg = f"{record.msg} [{dropped} more like this in the last {now - last:.0f} s]"
        return True


def _exit_unfinished() -> None:
    log.critical("the worker did not stop within %.0f s (a batch MongoDB has not accepted, or a message "
                 "Faust still waits for): exiting with 70; offsets not committed are re-read on restart",
                 STOP_TIMEOUT)
    logging.shutdown()
    os._exit(70)


async def _kafka_answers(urls) -> bool:
    for url in urls:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.host, url.port or 9092), 2.0)
        except (OSError, asyncio.TimeoutError):
            continue
        writer.close()
        return True
    return False


class PricesApp(faust.App):
    """The Faust app; at start-up it waits for Kafka instead of exiting, then creates its topics.

    It owns the services its agents, timers and commands share. They are made on first use, after the
    command line's flags reached the settings, and they start before the agents, tables and timers
    (the app's own dependencies), so no agent has to start them by hand. The polled source starts once
    the coins are resolved (on_first_start); the exchange stream runs on the leader only
    (follow_leadership).
    """

    def __init__(self, *args, settings: Settings, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.exchange_source: Optional[ExchangeSource] = None  # streaming while this worker leads
        self.backfill_progress: dict = {"state": "not run"}  # the start-up backfill's, for the pipeline status
        self._own_topics: list = []

    def topic(self, *topics: str, **kwargs):
        """app.topic(), remembering the topics this app creates (internal=True) to create them first at start."""
        channel = super().topic(*topics, **kwargs)
        if kwargs.get("internal"):
            self._own_topics.append(channel)
        return channel

    @cached_property
    def coins(self) -> tuple[Coin, ...]:
        """The coins of CRYPTO_SYMBOLS. A started worker resolves them through CoinGecko's catalogue
        (resolve_coins); before that, and in commands, through the built-in list."""
        return resolve_all(self.settings.symbols)

    @cached_property
    def request_budget(self):
        """Calls per minute to the price API, shared by everything that calls it (polls and backfill)."""
        return request_budget(self.settings.requests_per_minute)

    @cached_property
    def store(self) -> PriceStore:
        return PriceStore(self.settings.mongo_uri, self.settings.mongo_db)

    @cached_property
    def source(self) -> Optional[PriceSource]:
        """The polled source (coingecko or simulated), None when CRYPTO_SOURCES has none (exchange only)."""
        return make_source(self.settings, self.coins, self.request_budget)

    @cached_property
    def rulebook(self) -> RuleBook:
        """The alert rules, read from MongoDB as it starts (before the agents) and polled for changes."""
        return RuleBook(self.store, poll_interval=self.settings.alert_rules_poll)

    @cached_property
    def alert_delivery(self) -> AlertDelivery:
        """Webhook delivery of stored firings, off the price stream (cryptoapp/alerts/delivery.py)."""
        s = self.settings
        return AlertDelivery(self.store, owner=f"{self.conf.id}-{self.worker_id}",
                             timeout=s.alert_webhook_timeout, concurrency=s.alert_webhook_concurrency,
                             max_in_flight=s.alert_max_in_flight, sweep_interval=s.alert_outbox_sweep,
                             max_backoff=s.alert_max_backoff, give_up_after=s.alert_give_up_after)

    async def publish(self, ticks: list[PriceTick]) -> None:
        """Send ticks to the prices topic keyed by ticker; returns once Kafka acknowledged them all."""
        pending = [await prices_topic.send(key=t.ticker, value=t.encode()) for t in ticks]
        for fut in pending:
            await fut

    def declared_topics(self) -> list:
        """Every topic this app creates: its own (internal) ones and its tables' changelogs."""
        channels = self._own_topics + [table.changelog_topic for table in self.tables.values()]
        return list({channel.get_topic_name(): channel for channel in channels}.values())

    def discover(self, *extra_modules: str, categories=None, ignore=(*SCAN_IGNORE, "cryptoapp.testing")) -> None:
        # Autodiscovery imports every module of the package; the tests' and benchmarks' support is not the worker's.
        super().discover(*extra_modules, categories=categories, ignore=ignore)

    def on_init_dependencies(self):
        # The source is not among them: it needs the coins, which on_first_start resolves, and starts there.
        # The alert services start after the store and before the agents (Faust's own dependencies).
        return [self.store, self.rulebook, self.alert_delivery, *super().on_init_dependencies()]

    async def resolve_coins(self) -> tuple[Coin, ...]:
        """The coins through CoinGecko's catalogue (/coins/markets, cached a day in CRYPTO_COINS_CACHE) when
        CoinGecko is a source; else, or when it does not answer in time, the cached catalogue or the built-in
        list (load_catalogue and this method log one warning when CoinGecko was asked and did not answer)."""
        s = self.settings
        path = Path(s.coins_cache)
        if COINGECKO not in s.sources:
            catalogue = read_catalogue(path)  # what CoinGecko said last time, if it ever did; no call
        else:
            try:
                async with asyncio.timeout(CATALOGUE_WAIT):
                    async with CoinGeckoClient(s.coingecko_api_url, s.api_key, self.request_budget,
                                               timeout=s.coingecko_timeout) as client:
                        catalogue = await load_catalogue(client, path, s.symbols)
            except TimeoutError:
                catalogue = read_catalogue(path)
                log.warning("CoinGecko's coin list did not come within %.0f s; using %s", CATALOGUE_WAIT,
                            f"the cached one of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else "the built-in list")
        coins = resolve_all(s.symbols, catalogue)
        log.info("coins (%s): %s", f"CoinGecko's list of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else
                 "the built-in list", ", ".join(c.ticker for c in coins))
        return coins

    async def follow_leadership(self, leading: Optional[bool] = None) -> None:
        """Streams from the exchange while this worker is the leader, and only then: started when it becomes
        the leader, stopped when it is not any more (`leading` False: stop now, e.g. partitions revoked)."""
        if EXCHANGE not in self.settings.sources:
            return
        if leading is None:
            # Not while a rebalance runs: until its end the old assignment may still say "leader" here while
            # the new one already makes another worker the leader.
            leading = self.is_leader() and not self.rebalancing
        wanted = leading and not self.should_stop
        if wanted and self.exchange_source is None:
            s = self.settings
            source = self.exchange_source = ExchangeSource(
                s.exchange, self.coins, self.publish, max_hz=s.exchange_max_hz, stall_s=s.exchange_stall_s,
                ws_url=s.exchange_ws_url, rest_url=s.exchange_rest_url,
                other_sources=(s.polled_source,) if s.polled_source else ())
            log.info("this worker leads: streaming %s quotes (at most %g a second per coin)", s.exchange,
                     s.exchange_max_hz)
            try:
                await source.start()
            except Exception:  # a bug: logged once; the instance stays, so it is not retried every second
                log.exception("the %s stream failed to start; the other sources go on", s.exchange)
        elif not wanted and self.exchange_source is not None:
            source, self.exchange_source = self.exchange_source, None
            log.info("%s: stopping the stream (%s)", source.exchange_id,
                     "the worker stops" if self.should_stop else "this worker no longer leads")
            try:
                await asyncio.wait_for(source.stop(), STREAM_STOP_TIMEOUT)
            except Exception as exc:  # a timeout too: stopping must never hold up a rebalance or the worker's stop
                log.warning("%s: the stream did not close cleanly (%r)", source.exchange_id, exc)

    @property
    def worker_id(self) -> str:
        """This worker among the others: host and web port (the web port tells two on one host apart)."""
        return f"{socket.gethostname()}:{self.conf.web_port}"

    async def on_first_start(self) -> None:
        await super().on_first_start()
        # Static membership: a worker restarted after a crash (kill -9, power loss) takes its partitions back at
        # once instead of waiting out the dead process's session, and a broker restart causes no rebalance (after
        # which Faust was seen to stop committing). The id follows the web port actually used (WEB_PORT or the
        # worker's --web-port flag, which reaches the configuration only now), so two workers on one host never
        # share one: Kafka fences the first and Faust's assignor fails the second.
        self.conf.consumer_group_instance_id = f"{self.conf.id}-{self.worker_id}"
        # Faust pauses every stream, with a warning, when over 100 table writes wait to be sent; a sink batch writes
        # up to a few per tick (latest price, its minute, the candles' marks), flushed at the batch's end.
        self.producer.buffer.max_messages = TABLE_WRITES_PER_BATCH
        repeated = RepeatedClientLines()
        for handler in logging.getLogger().handlers:  # the worker's handlers exist by now (-l info)
            handler.addFilter(repeated)
        await self._wait_for_kafka()
        if self.should_stop:
            return
        await self._check_partitions()
        # Faust creates the topics while its consumer joins the group; a topic created a moment too
        # late is left unassigned ("Ignoring missing topic") until a metadata refresh minutes later.
        try:
            for topic in self.declared_topics():
                await topic.maybe_declare()
        except Exception as exc:  # Faust declares them again as it starts: only the head start is lost
            log.warning("could not create the topics ahead of the consumer (%r); Faust creates them", exc)
        self.coins = await self.resolve_coins()
        if self.source is not None:
            await self.add_runtime_dependency(self.source)

    async def on_stop(self) -> None:
        # Faust first waits, without a timeout, until every message taken is acked: a batch MongoDB
        # does not accept, or (seen after a broker bounce) a message no agent holds, would hang the
        # stop. What is not acked by then is not committed either, so exiting is safe.
        watchdog = threading.Timer(STOP_TIMEOUT, _exit_unfinished)
        watchdog.daemon = True
        watchdog.start()
        await self.follow_leadership(leading=False)  # no tick is published into a stopping producer
        await super().on_stop()

    def _new_transport(self):
        # Faust picks its transport by URL scheme; this is its aiokafka one with the fix in recovery.py.
        return KafkaTransport(self.conf.broker_consumer, self)

    async def _check_partitions(self) -> None:
        """A prices topic made with another partition count than CRYPTO_PARTITIONS stops the worker with one line:
        its tables' changelogs must match it, and Kafka never shrinks a topic."""
        admin = AIOKafkaAdminClient(bootstrap_servers=[f"{u.host}:{u.port or 9092}" for u in self.conf.broker])
        try:
            await admin.start()
            # Listed first: describing a topic that does not exist would have the broker create it (one partition).
            if self.settings.topic not in await admin.list_topics():
                return
            described = await admin.describe_topics([self.settings.topic])
        except Exception as exc:  # Faust's own start-up reports an unusable broker more precisely
            log.warning("could not read the prices topic's partitions (%r); going on", exc)
            return
        finally:
            await admin.close()
        count = len(described[0].get("partitions") or []) if described and not described[0].get("error_code") else 0
        if count and count != self.settings.partitions:
            log.critical("the topic %s has %d partitions but CRYPTO_PARTITIONS=%d: set CRYPTO_PARTITIONS=%d (or "
                         "delete the app's topics to start afresh)", self.settings.topic, count,
                         self.settings.partitions, count)
            logging.shutdown()
            os._exit(78)

    async def _wait_for_kafka(self) -> None:
        urls = self.conf.broker
        where = ", ".join(f"{u.host}:{u.port or 9092}" for u in urls)
        if await _kafka_answers(urls):
            return
        # Faust's producer gives up at once on a broker that does not answer; waiting here lets the
        # worker be started before Kafka (boot order, a broker restarting) and go on when it arrives.
        log.warning("Kafka at %s is not reachable: waiting for it (start it with `make services`, or "
                    "fix KAFKA_BROKER); the worker goes on as soon as it answers", where)
        started = last_log = time.monotonic()

        def still_waiting(state) -> None:
            nonlocal last_log
            if time.monotonic() - last_log >= BROKER_WAIT_LOG_EVERY:
                last_log = time.monotonic()
                log.warning("still waiting for Kafka at %s (%.0f s)", where, last_log - started)

        async for attempt in AsyncRetrying(retry=retry_if_result(lambda answered: not answered),
                                           wait=wait_exponential(multiplier=0.5, max=5.0),
                                           sleep=self.sleep, before_sleep=still_waiting):
            with attempt:
                answered = self.should_stop or await _kafka_answers(urls)
            if not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(answered)
        if not self.should_stop:
            log.warning("Kafka at %s answers after %.0f s: starting", where, time.monotonic() - started)


def check_sources(s: Settings) -> None:
    """Raises ConfigError when CRYPTO_EXCHANGE names no exchange ccxt can stream (only with the exchange on:
    the check imports ccxt, which takes a few seconds the first time)."""
    if EXCHANGE in s.sources:
        exchange_class(s.exchange)


# A bad setting is the user's to fix: one line, no traceback, before anything starts. Importing this module never
# raises: without usable settings the app, its topics and its table are not made, and whatever asks for them gets
# the error (__getattr__ below): code gets a ConfigError, `cryptoapp` and `python -m cryptoapp` print it (main),
# and so does `faust -A cryptoapp.app worker` (click, Faust's command line, prints an UnusableSettings itself).
_unusable: Optional[UnusableSettings] = None
try:
    settings = from_environment()
    check_sources(settings)
except ConfigError as exc:
    _unusable = UnusableSettings(str(exc))
else:
    app = PricesApp(
        settings.app_id,
        settings=settings,
        broker=settings.kafka_broker,
        autodiscover=True,
        origin="cryptoapp",
        store="memory://",  # the table is rebuilt from its changelog topic at start-up
        datadir=settings.datadir,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",  # a new consumer group reads every tick already in Kafka
        producer_acks=-1,
        # A topic created as the worker starts can be missing from the first metadata its consumer reads ("Ignoring
        # missing topic"); aiokafka only rejoins when a later metadata read shows it. At the 5-minute default a new
        # worker could stay without the leader topic (no prices fetched) that long; 10 s costs one small request.
        consumer_metadata_max_age_ms=10_000,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        TableManager=ResumeLastTableManager,  # with KafkaTransport below: Faust's own lost ticks on restarts
    )

    # Faust's own metrics (messages, tables, commits, send latency) and cryptoapp's (cryptoapp/metrics.py) at /metrics.
    setup_prometheus_sensors(app, pattern="/metrics", name_prefix="faust")

    # Keys (tickers, b"BTC") and values are read as raw bytes: the agents parse them, so a message that is
    # not a PriceTick goes to the dead-letter topic. A str key type would make Faust decode the key first,
    # and a key that is not UTF-8 would crash the agent and stall the stream.
    prices_topic = app.topic(settings.topic, key_type=bytes, key_serializer="raw", value_type=bytes,
                             value_serializer="raw", partitions=settings.partitions, internal=True)
    dead_letters = app.topic(settings.dlq_topic, key_type=bytes, key_serializer="raw",
                             value_type=bytes, value_serializer="raw", partitions=1, internal=True)

    latest_prices = app.Table(
        "latest_prices",
        key_type=str,
        value_type=PriceTick,
        partitions=settings.partitions,
        # The changelog is compacted, but Kafka only compacts closed segments (default: after 7 days), so a
        # restart re-read every tick since; a segment a minute keeps it near one record per coin.
        extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},
        help="Ticker -> its newest PriceTick (by source timestamp); restored from the changelog on restart.",
    )


def __getattr__(name: str):
    # Only reached when a name above was not made: the settings were unusable, and the importer is told why.
    if _unusable is not None and name in ("settings", "app", "prices_topic", "dead_letters", "latest_prices"):
        raise _unusable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """`cryptoapp worker -l info [--symbols ...] [--interval S] [--mongo-uri URI]`."""
    if _unusable is not None:
        sys.exit(f"cryptoapp: {_unusable}")
    try:
        sys.argv[1:] = apply_flags(settings, sys.argv[1:])
    except ConfigError as exc:
        sys.exit(f"cryptoapp: {exc}")
    app.main()
