"""The defaults of the settings the command line's help shows, apart from pydantic, so that `cryptoapp --help` shows
them without loading it (the settings' fields take theirs from here)."""

from cryptoapp.schema import DEFAULT_SYMBOLS

__all__ = ["DATADIR", "DEFAULT_SYMBOLS", "INTERVAL_S", "MONGO_URI", "WEB_BIND", "WEB_PORT"]

MONGO_URI = "mongodb://localhost:27017"
INTERVAL_S = 60.0  # CoinGecko refreshes its prices about once a minute
WEB_PORT = 6066
WEB_BIND = "127.0.0.1"  # the worker's web server answers this host only; WEB_BIND=0.0.0.0 opens it to the network
DATADIR = ".local/faust"
