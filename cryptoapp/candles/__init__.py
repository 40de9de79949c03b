"""Candles and the serving views: OHLC bars kept by the stream, and the bounded views the dashboard reads."""
