"""The trade candles' table, declared next to the app (Faust's layout); crypto-trades itself is the app's topic."""

from __future__ import annotations

from cryptoapp.app import app
from cryptoapp.streams import state_table

trade_minutes = state_table(
    app, "trade_minutes",
    help="Series@minute -> its trade bar so far and the trade ids counted in it (cryptoapp.trades.bars.new_minute).")
