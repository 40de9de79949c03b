"""`cryptoapp forecast backtest`: replays stored prices through the forecasters and prints model vs naive."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Optional

import click
from faust.cli import AppCommand, argument, option

from cryptoapp.app import app
from cryptoapp.coins import resolve_all
from cryptoapp.forecasts.backtest import bars_from_ticks, format_table, replay
from cryptoapp.forecasts.forecasters import MODEL_KINDS, parse_models
from cryptoapp.forecasts.online import parse_horizons
from cryptoapp.schema import SIMULATED, UTC, iso_z
from cryptoapp.settings import ConfigError, parse_symbols, settings
from cryptoapp.storage import PriceStore, StorageError

DEFAULT_DAYS = 7.0


class UserError(Exception):
    """Bad input or an unusable service: one line for the user, exit status 1."""


def _spacing(bars: list) -> str:
    """What the bars' usual step says, when it is not a minute: history stored a point every 5 minutes (the demo's,
    CoinGecko's) makes a bar every 5 minutes, and the minutes between have none."""
    steps = sorted((b.start - a.start).total_seconds() for a, b in zip(bars, bars[1:]))
    median = steps[len(steps) // 2] if steps else 60
    return "" if median <= 60 else f" (mostly a bar every {median / 60:g} min: the minutes between have no tick)"


@app.command(
    argument("action", type=click.Choice(["backtest"])),
    option("--symbols", default=None,
           help="Coins as CoinGecko ids or tickers, comma or space separated (default: CRYPTO_SYMBOLS)."),
    option("--days", type=float, default=DEFAULT_DAYS, show_default=True,
           help="How many days of stored prices, up to now, to replay."),
    option("--horizons", default=None, help="Minutes ahead, comma separated (default: CRYPTO_FORECAST_HORIZONS, 5,60)."),
    option("--models", default=None,
           help=f"Model kinds, comma separated: {', '.join(MODEL_KINDS)} (default: CRYPTO_FORECAST_MODELS, all)."),
)
async def forecast(self: AppCommand, action: str, symbols: Optional[str], days: float,
                   horizons: Optional[str], models: Optional[str]) -> None:
    """backtest: replay the stored prices through the forecasters and print each model beside naive."""
    try:
        await _backtest(self, symbols, days, horizons, models)
    except UserError as exc:
        self.say(f"cryptoapp forecast {action}: {exc}", file=self.stderr)  # say(err=True) writes to stdout
        raise SystemExit(1) from None


async def _backtest(command: AppCommand, symbols: Optional[str], days: float, horizons: Optional[str],
                    models: Optional[str]) -> None:
    if not 0 < days < float("inf"):
        raise UserError(f"--days {days:g} is not a positive number of days")
    try:
        chosen_horizons = parse_horizons(horizons) if horizons else settings.forecast_horizons
        coins = resolve_all(parse_symbols(symbols) if symbols else settings.symbols)
    except (ConfigError, ValueError) as exc:
        raise UserError(exc) from None
    try:
        chosen_models = parse_models(models) if models else settings.forecast_models
    except ValueError as exc:
        raise UserError(f"--models {models!r} {exc}") from None
    end = dt.datetime.now(UTC)
    start = end - dt.timedelta(days=days)
    bars = []
    async with PriceStore(settings.mongo_uri, settings.mongo_db) as store:
        for coin in coins:
            try:
                ticks = await store.forecasts.coin_ticks(coin.ticker, start, end)
            except StorageError as exc:
                raise UserError(exc) from None
            coin_bars = bars_from_ticks(coin.ticker, ticks)
            sources = Counter(t.get("source") for t in ticks)
            label = ", ".join(f"{s} {n:,}" for s, n in sources.most_common())
            if not ticks:
                command.say(f"{coin.ticker}: no stored ticks of CoinGecko's series (an exchange's is not forecast) "
                            f"from {iso_z(start)} to {iso_z(end)} in {store.where}")
                continue
            if not coin_bars:
                command.say(f"{coin.ticker}: {len(ticks):,} ticks ({label}), all CoinGecko's backfilled history (a "
                            "point every 5 minutes or hour): no minute bars to learn from")
                continue
            command.say(f"{coin.ticker}: {len(ticks):,} ticks ({label}) -> {len(coin_bars):,} one-minute bars, "
                        f"{iso_z(coin_bars[0].start)} to {iso_z(coin_bars[-1].start)}{_spacing(coin_bars)}"
                        + ("  [SIMULATED prices, not market data]" if SIMULATED in sources else ""))
            bars.extend(coin_bars)
    if not bars:
        raise UserError(f"nothing to replay: no stored ticks of {', '.join(c.ticker for c in coins)} in the last "
                        f"{days:g} days (run the worker: make run, or make demo for simulated prices)")
    started = time.perf_counter()
    rows = replay(bars, chosen_horizons, chosen_models, settings.forecast_window)
    command.say(f"replayed {len(bars):,} bars through {', '.join(chosen_models)} at "
                f"{', '.join(f'{h} min' for h in chosen_horizons)} in {time.perf_counter() - started:.1f} s\n")
    command.say(format_table(rows))
