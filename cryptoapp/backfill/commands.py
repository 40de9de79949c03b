"""`cryptoapp backfill`: fills the gaps in stored prices from CoinGecko's history on demand, through Kafka like every tick."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Optional

from faust.cli import AppCommand, option

from cryptoapp.app import app, prices_topic
from cryptoapp.backfill.history import HistoryBackfill
from cryptoapp.coins import resolve_all
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO
from cryptoapp.settings import ConfigError, parse_symbols
from cryptoapp.sources.coingecko import CoinGeckoClient
from cryptoapp.storage import PriceStore, StorageError

DEFAULT_HOURS = 168.0
STORED_WAIT = 60.0  # seconds the command waits for a running worker to store what it published


class UserError(Exception):
    """Bad input or an unusable service: one line for the user, exit status 1."""


async def missing_from_store(store: PriceStore, published: dict[str, list[dt.datetime]]) -> int:
    """How many of the published ticks are not in MongoDB yet."""
    missing = 0
    for ticker, times in published.items():
        if times:
            stored = {timestamp for timestamp, _ in await store.ticks.stored_times(ticker, min(times))}
            missing += sum(1 for t in times if t not in stored)
    return missing


@app.command(
    option("--hours", type=float, default=None,
           help="How far back to look for gaps, in hours (default: CRYPTO_BACKFILL_HOURS, else 168)."),
    option("--symbols", default=None,
           help="Coins as CoinGecko ids or tickers, comma or space separated (default: CRYPTO_SYMBOLS)."),
)
async def backfill(self: AppCommand, hours: Optional[float], symbols: Optional[str]) -> None:
    """Fill gaps in the stored prices of the last --hours from CoinGecko's market_chart/range."""
    try:
        await _backfill(self, hours, symbols)
    except UserError as exc:
        # file=, not err=True: Faust passes its stdout as click.echo's file, which then ignores err.
        self.say(f"cryptoapp backfill: {exc}", file=self.stderr)
        raise SystemExit(1) from None


async def _backfill(command: AppCommand, hours: Optional[float], symbols: Optional[str]) -> None:
    settings = app.settings
    if COINGECKO not in settings.sources:
        command.say(f"no backfill: CRYPTO_SOURCES={','.join(settings.sources)} has no history to fetch "
                    f"(only {COINGECKO} has)")
        return
    hours = hours if hours is not None else (settings.backfill_hours or DEFAULT_HOURS)
    if not 0 < hours < float("inf"):
        raise UserError(f"--hours {hours:g} is not a positive number of hours")
    try:
        # `cryptoapp backfill --symbols ...` has already moved the flag into settings (apply_flags);
        # `faust -A cryptoapp.app backfill --symbols ...` brings it here.
        coins = resolve_all(parse_symbols(symbols) if symbols else settings.symbols)
    except ConfigError as exc:
        raise UserError(exc) from None

    declared = False

    async def publish_declared(ticks: list[PriceTick]) -> None:
        nonlocal declared
        if not declared:  # a worker may never have run: create the topic with its partitions, not the broker's default
            await prices_topic.maybe_declare()
            declared = True
        await app.publish(ticks)

    def say(message: str, *args) -> None:
        command.say(message % args)

    # Its own process, so its own request budget: paced below CRYPTO_REQUESTS_PER_MINUTE less the live polls a
    # worker makes meanwhile; a start-up backfill running at the same moment is not counted.
    async with app.store as store, CoinGeckoClient(settings.coingecko_api_url, settings.api_key,
                                                   app.request_budget, timeout=settings.coingecko_timeout) as client:
        try:
            report = await HistoryBackfill(store.ticks, client, publish_declared, interval=settings.interval,
                                           requests_per_minute=settings.requests_per_minute,
                                           say=say).run(coins, hours)
            if report.ticks:
                deadline = time.monotonic() + STORED_WAIT
                while (missing := await missing_from_store(store, report.published)) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                if missing:
                    command.say(f"{missing} of {report.ticks} published ticks are not stored yet: is a worker "
                                "running (`make run`)? Kafka keeps them until one stores them.", file=command.stderr)
                else:
                    command.say(f"all {report.ticks} ticks stored in MongoDB ({store.where})")
            if report.unfinished:
                raise UserError(f"not finished for {', '.join(report.unfinished)} (see the warning above); "
                                "run it again later")
        except StorageError as exc:
            raise UserError(exc) from None
        finally:
            if declared:
                await app.producer.stop()
