"""Test support: a fake CoinGecko server and a worker started as users start it."""
