"""`cryptoapp candles verify|rebuild`: candles and views checked against the archive, or made again from it."""

from __future__ import annotations

import datetime as dt
from typing import Optional

import click
from faust.cli import AppCommand, argument, option

from cryptoapp.app import app
from cryptoapp.candles.archive import rebuild, verify
from cryptoapp.candles.topics import REPLAY_HOURS, replay, replay_topic
from cryptoapp.coins import resolve_all
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC
from cryptoapp.settings import ConfigError, parse_symbols
from cryptoapp.sources.klines import against_exchange
from cryptoapp.storage import StorageError

VERIFY_HOURS = 24.0
SHOWN = 20  # mismatches printed; the count says how many there are in all


@app.command(
    argument("action", type=click.Choice(["verify", "rebuild"])),
    option("--hours", type=float, default=None,
           help="How far back, in hours, from the start of that day (verify: 24; rebuild: everything)."),
    option("--symbols", default=None, help="Coins as CoinGecko ids or tickers (default: every coin stored)."),
    option("--against-exchange", is_flag=True, default=False,
           help="verify: the exchange series' trade-built 1m candles against the exchange's own klines."),
)
async def candles(self: AppCommand, action: str, hours: Optional[float], symbols: Optional[str],
                  against_exchange: bool) -> None:
    """verify: recompute the candles from the archive and print the mismatches (exit 1 if any); with
    --against-exchange, compare the exchange series' candles with the exchange's own 1m klines.
    rebuild: recompute them and refill every serving view from the archive."""
    try:
        tickers = [coin.ticker for coin in resolve_all(parse_symbols(symbols))] if symbols else None
    except ConfigError as exc:
        self.say(f"cryptoapp candles: {exc}", file=self.stderr)
        raise SystemExit(1) from None
    if hours is not None and not 0 < hours < float("inf"):
        self.say(f"cryptoapp candles: --hours {hours:g} is not a positive number of hours", file=self.stderr)
        raise SystemExit(1)
    settings = app.settings
    if against_exchange:
        if action != "verify":
            self.say("cryptoapp candles: --against-exchange goes with verify", file=self.stderr)
            raise SystemExit(1)
        await exchange_verify(self, hours or VERIFY_HOURS, tickers)
        return
    since = dt.datetime.now(UTC) - dt.timedelta(hours=hours) if hours else None
    replay = Replay()
    try:
        async with app.store as store:
            if action == "verify":
                checked, problems = await verify(store, since=since or dt.datetime.now(UTC) -
                                                 dt.timedelta(hours=VERIFY_HOURS), tickers=tickers,
                                                 grace_s=settings.candle_grace_s)
                for line in problems[:SHOWN]:
                    self.say(line)
                if problems:
                    self.say(f"{len(problems)} mismatches in {checked} closed bars ({store.where}); "
                             "`cryptoapp candles rebuild` repairs them", file=self.stderr)
                    raise SystemExit(1)
                self.say(f"{checked} closed bars match the archive ({store.where})")
                return
            report = await rebuild(store, since=since, tickers=tickers, grace_s=settings.candle_grace_s,
                                   replay=replay, say=lambda message, *args: self.say(message % args),
                                   replay_since=dt.datetime.now(UTC) - dt.timedelta(hours=REPLAY_HOURS))
            self.say(f"rebuilt {report.candles} closed candles and {report.views} views of "
                     f"{len(report.series)} series from {report.ticks} stored ticks")
    except StorageError as exc:
        self.say(f"cryptoapp candles: {exc}", file=self.stderr)
        raise SystemExit(1) from None
    finally:
        await replay.close()


async def exchange_verify(self: AppCommand, hours: float, tickers: Optional[list[str]]) -> None:
    """`verify --against-exchange`: one line per mismatch (exit 1), one per gap repaired from the klines."""
    settings = app.settings
    coins = [coin for coin in app.coins if tickers is None or coin.ticker in tickers]
    try:
        async with app.store as store:
            out = await against_exchange(store, settings.exchange, coins, hours=hours,
                                         grace_s=settings.candle_grace_s, rest_url=settings.exchange_rest_url)
    except StorageError as exc:
        self.say(f"cryptoapp candles: {exc}", file=self.stderr)
        raise SystemExit(1) from None
    except Exception as exc:  # the exchange unreachable, or refusing: one line, the cause and the fix
        self.say(f"cryptoapp candles: {settings.exchange}'s klines could not be read ({exc.__class__.__name__}: "
                 f"{str(exc)[:160]}); check CRYPTO_EXCHANGE_REST_URL and the network", file=self.stderr)
        raise SystemExit(1) from None
    for line in out.gaps:
        self.say(f"gap: {line}")
    for line in out.mismatches:
        self.say(f"mismatch: {line}")
    summary = (f"{out.checked} complete minutes compared with {settings.exchange}'s klines over {hours:g} h: "
               f"{len(out.mismatches)} mismatches, {len(out.gaps)} gap minutes repaired")
    if out.mismatches:
        self.say(summary, file=self.stderr)
        raise SystemExit(1)
    self.say(summary)


class Replay:
    """Sends stored ticks to the candles agent alone, so a running worker's open bars hold the ticks it never saw
    (without a worker they wait in Kafka for one)."""

    def __init__(self) -> None:
        self.started = False

    async def __call__(self, ticks: list[PriceTick]) -> None:
        if not ticks:
            return
        if not self.started:
            await replay_topic.maybe_declare()
            self.started = True
        await replay(ticks)

    async def close(self) -> None:
        if self.started:
            await app.producer.stop()
