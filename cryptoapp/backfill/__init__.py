"""Backfill: the history CoinGecko keeps, filled into the gaps of the stored prices through Kafka like every tick."""
