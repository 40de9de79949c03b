"""Trades: an exchange's trade stream (crypto-trades) and the true OHLCV candles made from it."""
