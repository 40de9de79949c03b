"""The simulated source: seeded, realistic, labelled, and never claiming bid/ask it does not have."""

import datetime as dt

from cryptoapp.coins import resolve_all
from cryptoapp.schema import DEFAULT_SYMBOLS
from cryptoapp.sources.simulated import SimulatedSource

NOW = dt.datetime(2025, 11, 21, 10, tzinfo=dt.timezone.utc)


def test_same_seed_same_walk_and_every_tick_labelled():
    a = SimulatedSource(resolve_all(DEFAULT_SYMBOLS), seed=7)
    b = SimulatedSource(resolve_all(DEFAULT_SYMBOLS), seed=7)
    walks = [[t.value for t in src.step(NOW)] for src in (a, b) for _ in range(3)]
    assert walks[:3] == walks[3:]
    ticks = a.step(NOW)
    assert {t.source for t in ticks} == {"simulated"}
    assert all(t.bid_price is None and t.ask_price is None for t in ticks)
    prices = {t.ticker: t.value for t in ticks}
    assert 50_000 < prices["BTC"] < 150_000 and 0.98 < prices["USDT"] < 1.02


def test_it_simulates_every_built_in_coin_and_nothing_else():
    from cryptoapp.coins import KNOWN_COINS, Coin
    from cryptoapp.sources.simulated import LEVELS

    assert set(LEVELS) == set(KNOWN_COINS.values())
    source = SimulatedSource((*resolve_all(["bitcoin", "solana"]), Coin("notacoin", "NOTACOIN")))
    assert [t.ticker for t in source.step(NOW)] == ["BTC", "SOL"]  # no price is invented for a coin it has none of
