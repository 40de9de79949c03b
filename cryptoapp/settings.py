"""Reads the worker's configuration from the environment once; command-line flags may override it."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_SYMBOLS = ("bitcoin", "ethereum", "binancecoin", "tether", "usd-coin")
SOURCES = ("coingecko", "simulated")


class ConfigError(ValueError):
    """A setting a user gave is not usable; the message names the setting and the fix."""


@dataclasses.dataclass
class Settings:
    kafka_broker: str = "kafka://localhost:9092"
    mongo_uri: str = "mongodb://localhost:27017"
    mongo_db: str = "crypto"
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    interval: float = 60.0
    source: str = "coingecko"
    coingecko_api_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: str | None = dataclasses.field(default=None, repr=False)
    requests_per_minute: int = 25
    coingecko_timeout: float = 20.0  # seconds one HTTP call may take in all (connect: at most 5)
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    app_id: str = "cryptoapp"
    topic: str = "crypto-prices"
    partitions: int = 4
    datadir: str = ".local/faust"
    simulated_seed: int = 42
    backfill_hours: float = 168.0  # history filled at start-up; 0 turns the start-up backfill off

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}-dlq"


def parse_symbols(text: str) -> tuple[str, ...]:
    """Coins as CoinGecko ids or tickers, separated by commas and/or spaces; order kept, repeats dropped."""
    symbols = [s for s in re.split(r"[,\s]+", text.strip()) if s]
    if not symbols:
        raise ConfigError("CRYPTO_SYMBOLS is empty: name at least one coin, e.g. 'bitcoin ethereum' or 'BTC,ETH'")
    bad = [s for s in symbols if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", s)]
    if bad:
        raise ConfigError(f"CRYPTO_SYMBOLS has invalid coin names {bad}: use CoinGecko ids or tickers such as 'bitcoin' or 'BTC'")
    return tuple(dict.fromkeys(symbols))


def _positive(name: str, text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number: set it to a positive {kind.__name__}") from None
    if not value > 0:
        raise ConfigError(f"{name}={text!r} must be positive")
    return value


def _non_negative(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number: set it to 0 or more") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name}={text!r} must be a finite number, 0 or more")
    return value


def load(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from environment variables (names as in the README); unset ones keep their defaults."""
    s = Settings()
    env = {k: v for k, v in environ.items() if v != ""}
    s.kafka_broker = env.get("KAFKA_BROKER", s.kafka_broker)
    s.mongo_uri = env.get("MONGO_URI", s.mongo_uri)
    s.mongo_db = env.get("MONGO_DB", s.mongo_db)
    if "CRYPTO_SYMBOLS" in env:
        s.symbols = parse_symbols(env["CRYPTO_SYMBOLS"])
    if "CRYPTO_INTERVAL" in env:
        s.interval = _positive("CRYPTO_INTERVAL", env["CRYPTO_INTERVAL"])
    s.source = env.get("CRYPTO_SOURCE", s.source).lower()
    if s.source not in SOURCES:
        raise ConfigError(f"CRYPTO_SOURCE={s.source!r} is unknown: use one of {', '.join(SOURCES)}")
    s.coingecko_api_url = env.get("COINGECKO_API_URL", s.coingecko_api_url).rstrip("/")
    s.coingecko_api_key = env.get("COINGECKO_API_KEY")
    if "COINGECKO_TIMEOUT" in env:
        s.coingecko_timeout = _positive("COINGECKO_TIMEOUT", env["COINGECKO_TIMEOUT"])
    if "CRYPTO_REQUESTS_PER_MINUTE" in env:
        s.requests_per_minute = _positive("CRYPTO_REQUESTS_PER_MINUTE", env["CRYPTO_REQUESTS_PER_MINUTE"], int)
    if "WEB_PORT" in env:
        s.web_port = _positive("WEB_PORT", env["WEB_PORT"], int)
    s.web_bind = env.get("WEB_BIND", s.web_bind)
    s.app_id = env.get("CRYPTO_APP_ID", s.app_id)
    s.topic = env.get("CRYPTO_TOPIC", s.topic)
    s.datadir = env.get("CRYPTO_DATADIR", s.datadir)
    if "CRYPTO_BACKFILL_HOURS" in env:
        s.backfill_hours = _non_negative("CRYPTO_BACKFILL_HOURS", env["CRYPTO_BACKFILL_HOURS"])
    return s


def apply_flags(s: Settings, argv: Sequence[str]) -> list[str]:
    """Take the seed's producer flags (--symbols, --interval, --mongo-uri) out of argv into `s`.

    Returns the remaining arguments, for Faust's own command line.
    """
    rest: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name not in ("--symbols", "--interval", "--mongo-uri"):
            rest.append(arg)
            continue
        if not eq:
            if not args:
                raise ConfigError(f"{name} needs a value, e.g. {name}=...")
            value = args.pop(0)
        if name == "--symbols":
            s.symbols = parse_symbols(value)
        elif name == "--interval":
            s.interval = _positive("--interval", value)
        else:
            s.mongo_uri = value
    return rest


# URI options whose values are credentials (TLS key passwords, AWS session tokens, ...).
_SECRET_OPTION = re.compile(r"password|secret|token|key|authmechanismproperties", re.IGNORECASE)


def mask_uri(uri: str) -> str:
    """The URI with its password and credential-like options replaced by ***, safe to print or log."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return "<unparseable URI>"
    if password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1))
    if _SECRET_OPTION.search(parts.query):
        parts = parts._replace(query=urlencode([(k, "***" if _SECRET_OPTION.search(k) else v)
                                                for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                                               safe="*,:/"))
    return urlunsplit(parts)


try:
    settings = load()
except ConfigError as _exc:  # a bad setting is the user's to fix: one line, no traceback
    raise SystemExit(f"cryptoapp: {_exc}") from None
