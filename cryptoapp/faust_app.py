"""The Faust app: broker, topics, the latest_prices table and the services the agents share (store, price
sources, request budget, coins, alert rules and delivery), declared once; made on first use of cryptoapp.app.app."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from functools import cached_property
from typing import Optional

import faust

from cryptoapp.alerts.delivery import AlertDelivery
from cryptoapp.alerts.rulebook import RuleBook
from cryptoapp.broker import check_partitions, wait_for_kafka
from cryptoapp.app import STOP_TIMEOUT, TABLE_WRITES_PER_BATCH
from cryptoapp.coins import Coin
from cryptoapp.logs import RepeatedClientLines
from cryptoapp.prices.models import PriceTick
from cryptoapp.recovery import KafkaTransport, ResumeLastTableManager
from cryptoapp.schema import EXCHANGE
from cryptoapp.sensors import setup_metrics
from cryptoapp.settings import ConfigError
from cryptoapp.settings.worker import Settings, UnusableSettings, apply_flags, from_environment
from cryptoapp.sources import PriceSource, make_source
from cryptoapp.sources.budget import request_budget
from cryptoapp.sources.catalogue import resolve_coins, tracked_coins
from cryptoapp.sources.ccxt_stream import exchange_class
from cryptoapp.sources.exchange import ExchangeSource
from cryptoapp.sources.leader import LeaderStream
from cryptoapp.storage import PriceStore
from cryptoapp.streams import raw_topic, send_all, state_table

log = logging.getLogger(__name__)


def _exit_unfinished() -> None:
    log.critical("the worker did not stop within %.0f s (a batch MongoDB has not accepted, or a message "
                 "Faust still waits for): exiting with 70; offsets not committed are re-read on restart",
                 STOP_TIMEOUT)
    logging.shutdown()
    os._exit(70)


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
        (cryptoapp.sources.catalogue.resolve_coins); before that, and in commands, through the cached catalogue or
        the built-in list; either way a coin none of them knows is left out."""
        return tracked_coins(self.settings)[0]

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
        return RuleBook(self.store.alerts, poll_interval=self.settings.alert_rules_poll)

    @cached_property
    def alert_delivery(self) -> AlertDelivery:
        """Webhook delivery of stored firings, off the price stream (cryptoapp/alerts/delivery.py)."""
        s = self.settings
        return AlertDelivery(self.store.alerts, owner=f"{self.conf.id}-{self.worker_id}",
                             timeout=s.alert_webhook_timeout, concurrency=s.alert_webhook_concurrency,
                             max_in_flight=s.alert_max_in_flight, sweep_interval=s.alert_outbox_sweep,
                             max_backoff=s.alert_max_backoff, give_up_after=s.alert_give_up_after)

    @cached_property
    def leader_stream(self) -> LeaderStream:
        """The exchange stream, run while this worker leads (follow_leadership)."""
        return LeaderStream(self.settings, lambda: self.coins, self.publish, self.publish_trades)

    @property
    def exchange_source(self) -> Optional[ExchangeSource]:
        """The exchange source while this worker leads and streams, else None."""
        return self.leader_stream.source

    @cached_property
    def stages(self):
        """The batch's stages and their per-partition state (cryptoapp/pipeline.py, which imports this module)."""
        from cryptoapp.pipeline import Stages
        return Stages(self)

    async def publish(self, ticks: list[PriceTick]) -> None:
        """Send ticks to the prices topic keyed by ticker; returns once Kafka acknowledged them all."""
        await send_all((prices_topic, t.ticker, t.encode()) for t in ticks)

    async def publish_trades(self, trades) -> None:
        """Send trades to crypto-trades keyed by ticker; returns once Kafka acknowledged them all."""
        await send_all((trades_topic, t.ticker.encode(), t.encode()) for t in trades)

    def declared_topics(self) -> list:
        """Every topic this app creates: its own (internal) ones and its tables' changelogs."""
        channels = self._own_topics + [table.changelog_topic for table in self.tables.values()]
        return list({channel.get_topic_name(): channel for channel in channels}.values())

    def on_init_dependencies(self):
        # The source is not among them: it needs the coins, which on_first_start resolves, and starts there.
        # The alert services start after the store and before the agents (Faust's own dependencies).
        return [self.store, self.rulebook, self.alert_delivery, *super().on_init_dependencies()]

    async def follow_leadership(self, leading: Optional[bool] = None) -> None:
        """Streams from the exchange while this worker is the leader, and only then: started when it becomes
        the leader, stopped when it is not any more (`leading` False: stop now, e.g. partitions revoked)."""
        if leading is None and self.leader_stream.on:
            # Not while a rebalance runs: until its end the old assignment may still say "leader" here while
            # the new one already makes another worker the leader.
            leading = self.is_leader() and not self.rebalancing
        await self.leader_stream.follow(bool(leading), stopping=self.should_stop)

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
        RepeatedClientLines.install()  # the worker's handlers exist by now (-l info)
        await wait_for_kafka(self.conf.broker, self)
        if self.should_stop:
            return
        await check_partitions(self.conf.broker, self.settings.topic, self.settings.partitions)
        # Faust creates the topics while its consumer joins the group; a topic created a moment too
        # late is left unassigned ("Ignoring missing topic") until a metadata refresh minutes later.
        try:
            for topic in self.declared_topics():
                await topic.maybe_declare()
        except Exception as exc:  # Faust declares them again as it starts: only the head start is lost
            log.warning("could not create the topics ahead of the consumer (%r); Faust creates them", exc)
        self.coins = await resolve_coins(self.settings, self.request_budget)
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


def check_sources(s: Settings) -> None:
    """Raises ConfigError when CRYPTO_EXCHANGE names no exchange ccxt can stream (only with the exchange on:
    the check imports ccxt, which takes a few seconds the first time)."""
    if EXCHANGE in s.sources and not s.exchanges_named:  # several: a bad one is skipped with a line as it starts
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
    setup_metrics(app, per_event=settings.faust_event_metrics)

    # Keys (tickers, b"BTC") and values are read as raw bytes: the agents parse them, so a message that is
    # not a PriceTick goes to the dead-letter topic. A str key type would make Faust decode the key first,
    # and a key that is not UTF-8 would crash the agent and stall the stream.
    prices_topic = raw_topic(app, settings.topic)
    trades_topic = raw_topic(app, settings.trades_topic)
    dead_letters = app.topic(settings.dlq_topic, key_type=bytes, key_serializer="raw",
                             value_type=bytes, value_serializer="raw", partitions=1, internal=True)

    latest_prices = state_table(
        app, "latest_prices", value_type=PriceTick,
        help="Ticker -> its newest PriceTick (by source timestamp); restored from the changelog on restart.",
    )


def __getattr__(name: str):
    # Only reached when a name above was not made: the settings were unusable, and the importer is told why.
    if _unusable is not None and name in ("settings", "app", "prices_topic", "trades_topic", "dead_letters",
                                          "latest_prices"):
        raise _unusable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str]) -> None:
    """Faust's command line for `cryptoapp COMMAND ...`, after the seed's flags (and --datadir) reached the settings."""
    if _unusable is not None:
        sys.exit(f"cryptoapp: {_unusable}")
    try:
        sys.argv[1:] = apply_flags(settings, argv)
    except ConfigError as exc:
        sys.exit(f"cryptoapp: {exc}")
    app.conf.datadir = settings.datadir
    from cryptoapp.help import fix_faust_help

    fix_faust_help(settings)
    app.main()
