"""The configuration of the worker and the dashboard, read once from the environment (pydantic-settings).

One `Settings` class serves both processes: the dashboard adds Streamlit secrets below the environment,
the worker lets the seed's flags (--symbols, --interval, --mongo-uri) override it. Every bad value
becomes one `ConfigError` line that names the variable and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Annotated, Any, Optional

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from cryptoapp.coins import parse_top
from cryptoapp.forecasts.forecasters import DEFAULT_MODELS, parse_models
from cryptoapp.forecasts.online import DEFAULT_HORIZONS, parse_horizons
from cryptoapp.forecasts.scoring import WINDOW
from cryptoapp.schema import COINGECKO, DEFAULT_SYMBOLS, SIMULATED, SOURCES
from cryptoapp.uris import mask_uri, mongo_servers

# Binance US lists all five default coins against USD (USDT as USDT/USD), reachable without a key
# (shared/reference/exchanges.md); its @ticker stream carries bid, ask, their sizes, last and event time.
DEFAULT_EXCHANGE = "binanceus"
DEFAULT_MAX_HZ = 1.0
DEFAULT_STALL_S = 30.0  # @ticker sends every second: 30 s without any message is a dead stream
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ConfigError(ValueError):
    """A setting a user gave is not usable; the message names the setting and the fix."""


def parse_symbols(text: str) -> tuple[str, ...]:
    """Coins as CoinGecko ids, tickers or `top:N` (the N largest by market cap), separated by commas and/or
    spaces; order kept, repeats dropped."""
    symbols = [s for s in re.split(r"[,\s]+", text.strip()) if s]
    if not symbols:
        raise ConfigError("CRYPTO_SYMBOLS is empty: name at least one coin, e.g. 'bitcoin ethereum' or 'BTC,ETH'")
    bad = [s for s in symbols if not (_SYMBOL.fullmatch(s) or parse_top(s) is not None)]
    if bad:
        raise ConfigError(f"CRYPTO_SYMBOLS has invalid coin names {bad}: use CoinGecko ids or tickers such as "
                          "'bitcoin' or 'BTC', or top:N for the N largest coins (N from 1)")
    return tuple(dict.fromkeys(symbols))


def parse_sources(text: str) -> tuple[str, ...]:
    """CRYPTO_SOURCES: comma (or space) separated source names, order kept, repeats dropped. CoinGecko and the
    simulated source write the same series (the simulated one stands in for CoinGecko), so not both."""
    names = tuple(dict.fromkeys(n.lower() for n in re.split(r"[,\s]+", str(text).strip()) if n))
    if not names:
        raise ValueError(f"is empty: name one or more of {', '.join(SOURCES)}")
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"names unknown sources {unknown}: use {', '.join(SOURCES)}, comma separated (the exchange "
                         "itself is CRYPTO_EXCHANGE)")
    if COINGECKO in names and SIMULATED in names:
        raise ValueError(f"has both {COINGECKO} and {SIMULATED}, whose ticks would share one series: keep one")
    return names


def _number(kind=float, minimum: float = 0.0, strict: bool = True, unit: str = ""):
    """A validator for a number above (or, not strict, at least) `minimum`, with a message that says so."""
    def check(value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"is not a number: set it to a {'whole ' if kind is int else ''}number "
                             f"{'above' if strict else 'of at least'} {minimum:g}{unit}") from None
        if number != number or number in (float("inf"), float("-inf")) or \
                (number <= minimum if strict else number < minimum):
            if strict and minimum == 0:
                raise ValueError("must be positive")
            raise ValueError(f"must be {'above' if strict else 'at least'} {minimum:g}{unit}")
        return number
    return check


# The mappings a load() reads, innermost first: the environment, then (dashboard) Streamlit secrets.
_GIVEN: ContextVar[tuple[Mapping[str, Any], ...]] = ContextVar("settings_sources", default=())


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, a test's dict, st.secrets)."""

    def __init__(self, settings_cls, values: Mapping[str, Any]):
        self._values = {k: str(v) for k, v in values.items() if v is not None}
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self):
        return parse_env_vars(self._values, True, True, None)


class Settings(BaseSettings):
    """Every setting of cryptoapp; the field's alias is its environment variable (README's table)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", validate_assignment=True,
                                      populate_by_name=True, env_ignore_empty=True)

    # --- servers ---
    kafka_broker: str = Field("kafka://localhost:9092", alias="KAFKA_BROKER")
    mongo_uri: str = Field("mongodb://localhost:27017", alias="MONGO_URI")
    mongo_db: str = Field("crypto", alias="MONGO_DB")
    # --- the worker ---
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_SYMBOLS, alias="CRYPTO_SYMBOLS")
    interval: float = Field(60.0, alias="CRYPTO_INTERVAL")  # the dashboard's "stale" follows it too
    source: str = Field(COINGECKO, alias="CRYPTO_SOURCE")  # one source: the spelling before CRYPTO_SOURCES
    sources_named: Optional[tuple[str, ...]] = Field(None, alias="CRYPTO_SOURCES")  # read it as `sources`
    exchange: str = Field(DEFAULT_EXCHANGE, alias="CRYPTO_EXCHANGE")  # ccxt id; checked when the worker starts
    exchange_max_hz: float = Field(DEFAULT_MAX_HZ, alias="CRYPTO_EXCHANGE_MAX_HZ")
    exchange_stall_s: float = Field(DEFAULT_STALL_S, alias="CRYPTO_EXCHANGE_STALL_S")
    exchange_ws_url: Optional[str] = Field(None, alias="CRYPTO_EXCHANGE_WS_URL")  # tests: a local server
    exchange_rest_url: Optional[str] = Field(None, alias="CRYPTO_EXCHANGE_REST_URL")
    coins_cache: str = Field(".local/coingecko-coins.json", alias="CRYPTO_COINS_CACHE")
    coingecko_api_url: str = Field("https://api.coingecko.com/api/v3", alias="COINGECKO_API_URL")
    coingecko_api_key: Optional[SecretStr] = Field(None, alias="COINGECKO_API_KEY")
    coingecko_timeout: float = Field(20.0, alias="COINGECKO_TIMEOUT")  # seconds a call may take (connect: ≤ 5)
    requests_per_minute: int = Field(25, alias="CRYPTO_REQUESTS_PER_MINUTE")
    backfill_hours: float = Field(168.0, alias="CRYPTO_BACKFILL_HOURS")  # 0: no start-up backfill
    web_port: int = Field(6066, alias="WEB_PORT")
    web_bind: str = Field("127.0.0.1", alias="WEB_BIND")
    app_id: str = Field("cryptoapp", alias="CRYPTO_APP_ID")
    topic: str = Field("crypto-prices", alias="CRYPTO_TOPIC")
    partitions: int = Field(8, alias="CRYPTO_PARTITIONS")  # fixed once the topics exist; more workers share them
    datadir: str = Field(".local/faust", alias="CRYPTO_DATADIR")
    # How long Kafka waits for a worker that stopped answering before its partitions go to the others (static
    # membership: a worker restarted within it takes them back without a rebalance).
    session_timeout: float = Field(60.0, alias="CRYPTO_SESSION_TIMEOUT")
    simulated_seed: int = Field(42, alias="CRYPTO_SIMULATED_SEED")
    candles: bool = Field(True, alias="CRYPTO_CANDLES")  # 0/false: no candles and no views (the sink alone)
    candles_hours: float = Field(170.0, alias="CRYPTO_CANDLES_HOURS")  # how late a tick may come and still count
    archive_days: Optional[float] = Field(None, alias="CRYPTO_ARCHIVE_DAYS")  # None: keep every tick
    # --- alerts (docs/alerts.md) ---
    alerts_topic_name: Optional[str] = Field(None, alias="CRYPTO_ALERTS_TOPIC")  # unset: see alerts_topic
    alert_hysteresis_pct: float = Field(0.5, alias="CRYPTO_ALERT_HYSTERESIS_PCT")  # the re-arming band
    alert_rules_poll: float = Field(2.0, alias="CRYPTO_ALERT_RULES_POLL")  # s until a rule change applies
    alert_webhook_timeout: float = Field(10.0, alias="CRYPTO_ALERT_WEBHOOK_TIMEOUT")  # s per POST
    alert_webhook_concurrency: int = Field(16, alias="CRYPTO_ALERT_WEBHOOK_CONCURRENCY")  # open POSTs
    alert_max_in_flight: int = Field(10_000, alias="CRYPTO_ALERT_MAX_IN_FLIGHT")  # firings delivered at once
    alert_max_backoff: float = Field(300.0, alias="CRYPTO_ALERT_MAX_BACKOFF")  # s between two tries, at most
    alert_give_up_after: float = Field(86400.0, alias="CRYPTO_ALERT_GIVE_UP_AFTER")  # s of retrying a firing
    alert_outbox_sweep: float = Field(30.0, alias="CRYPTO_ALERT_OUTBOX_SWEEP")  # s between outbox reads
    alert_retention_days: float = Field(30.0, alias="CRYPTO_ALERT_RETENTION_DAYS")  # 0: keep every firing
    forecasts: bool = Field(True, alias="CRYPTO_FORECASTS")  # learned from the candles' closed minutes
    forecast_horizons: Annotated[tuple[int, ...], NoDecode] = Field(DEFAULT_HORIZONS, alias="CRYPTO_FORECAST_HORIZONS")
    forecast_models: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_MODELS, alias="CRYPTO_FORECAST_MODELS")
    forecast_window: int = Field(WINDOW, alias="CRYPTO_FORECAST_WINDOW")  # scored points in the rolling window
    # --- the dashboard ---
    refresh: float = Field(10.0, alias="DASHBOARD_REFRESH")  # seconds between live updates

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        given = _GIVEN.get() or (os.environ,)
        return (init_settings, *(_MappingSource(settings_cls, values) for values in given))

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value):
        return parse_symbols(value) if isinstance(value, str) else tuple(value)

    _interval = field_validator("interval", mode="before")(_number(float, 0.0, unit=" s"))
    _timeout = field_validator("coingecko_timeout", mode="before")(_number(float, 0.0, unit=" s"))
    _session = field_validator("session_timeout", mode="before")(_number(float, 6.0, strict=False, unit=" s"))
    _positive_ints = field_validator("requests_per_minute", "web_port", "partitions",
                                     mode="before")(_number(int, 0))
    _backfill = field_validator("backfill_hours", mode="before")(_number(float, 0.0, strict=False, unit=" h"))
    _refresh = field_validator("refresh", mode="before")(_number(float, 1.0, strict=False, unit=" s"))
    # A 1d bar is made of the minutes in its day: they have to be held for at least a day and its grace.
    _candles_hours = field_validator("candles_hours", mode="before")(_number(float, 26.0, strict=False, unit=" h"))
    @field_validator("archive_days", mode="before")
    @classmethod
    def _archive_days(cls, value):
        return None if value is None else _number(float, 0.0, unit=" days")(value)
    _exchange_numbers = field_validator("exchange_max_hz", "exchange_stall_s",
                                        mode="before")(_number(float, 0.0))
    _alert_seconds = field_validator("alert_rules_poll", "alert_webhook_timeout", "alert_max_backoff",
                                     "alert_give_up_after", "alert_outbox_sweep",
                                     mode="before")(_number(float, 0.0, unit=" s"))
    _alert_counts = field_validator("alert_webhook_concurrency", "alert_max_in_flight", mode="before")(_number(int, 0))
    _alert_days = field_validator("alert_retention_days", mode="before")(
        _number(float, 0.0, strict=False, unit=" days (0 keeps every firing)"))

    @field_validator("alert_hysteresis_pct", mode="before")
    @classmethod
    def _hysteresis(cls, value):
        value = _number(float, 0.0, strict=False, unit=" %")(value)
        if value >= 50:
            raise ValueError("must be under 50 %: it is the band a price goes back by before a rule re-arms, "
                             "e.g. 0.5")
        return value

    @field_validator("forecast_horizons", mode="before")
    @classmethod
    def _forecast_horizons(cls, value):
        try:
            return parse_horizons(value if isinstance(value, str) else ",".join(map(str, value)))
        except ValueError:
            raise ValueError("is not a list of minutes: give whole minutes >= 1, comma separated (e.g. 5,60)") from None

    @field_validator("forecast_models", mode="before")
    @classmethod
    def _forecast_models(cls, value):
        return parse_models(value if isinstance(value, str) else ",".join(value))

    _forecast_window = field_validator("forecast_window", mode="before")(_number(int, 0))

    @model_validator(mode="after")
    def _forecasts_need_candles(self):
        # The forecasters learn from the candles' closed minute bars; on by default, they follow the candles.
        if "forecasts" in self.model_fields_set and self.forecasts and not self.candles:
            raise ConfigError("CRYPTO_FORECASTS=1 needs the candles (the forecasters learn from their closed minute "
                              "bars): set CRYPTO_CANDLES=1, or CRYPTO_FORECASTS=0")
        return self

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value):
        value = str(value).lower()
        if value not in SOURCES:
            raise ValueError(f"is unknown: use one of {', '.join(SOURCES)}")
        return value

    @field_validator("sources_named", mode="before")
    @classmethod
    def _sources(cls, value):
        if value is None:
            return None
        return parse_sources(value if isinstance(value, str) else ",".join(value))

    @model_validator(mode="after")
    def _one_way_to_name_sources(self):
        # Both set and disagreeing is a configuration half moved to CRYPTO_SOURCES: say so, do not pick one.
        if self.sources_named and "source" in self.model_fields_set and self.source not in self.sources_named:
            raise ConfigError(f"CRYPTO_SOURCE={self.source!r} is not among CRYPTO_SOURCES="
                              f"{','.join(self.sources_named)!r}: unset CRYPTO_SOURCE, CRYPTO_SOURCES replaces it")
        return self

    @field_validator("exchange", mode="before")
    @classmethod
    def _exchange(cls, value):
        # ccxt's ids are lower case; whether ccxt knows this one is checked when the worker starts
        # (cryptoapp.app), so the dashboard, which reads these settings too, never imports ccxt.
        return str(value).strip().lower()

    @field_validator("exchange_ws_url", mode="before")
    @classmethod
    def _ws_url(cls, value):
        if value is not None and not str(value).startswith(("ws://", "wss://")):
            raise ValueError("is not a WebSocket URL: it starts with ws:// or wss://")
        return value

    @field_validator("exchange_rest_url", mode="before")
    @classmethod
    def _rest_url(cls, value):
        if value is not None and not str(value).startswith(("http://", "https://")):
            raise ValueError("is not an HTTP URL: it starts with http:// or https://")
        return value if value is None else str(value).rstrip("/")

    @field_validator("coingecko_api_url", mode="before")
    @classmethod
    def _api_url(cls, value):
        return str(value).rstrip("/")

    @field_validator("mongo_uri", mode="before")
    @classmethod
    def _mongo_uri(cls, value):
        if not str(value).startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("is not a MongoDB URI: it starts with mongodb:// or mongodb+srv://")
        return value

    def __repr_args__(self):
        # A settings object that ends up in a log or a traceback shows no password.
        for name, value in super().__repr_args__():
            yield name, mask_uri(value) if name == "mongo_uri" else value

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources the worker runs: CRYPTO_SOURCES, else CRYPTO_SOURCE alone (default coingecko)."""
        return self.sources_named or (self.source,)

    @property
    def polled_source(self) -> Optional[str]:
        """The source the fetch timer polls (coingecko or simulated; at most one), or None."""
        return next((name for name in self.sources if name in (COINGECKO, SIMULATED)), None)

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}-dlq"

    @property
    def candles_topic(self) -> str:
        """crypto-prices -> crypto-candles (a test's own <name>-prices -> <name>-candles)."""
        return f"{self.topic.removesuffix('prices').rstrip('-')}-candles"

    @property
    def candle_grace_s(self) -> float:
        """Seconds after a bar's end before it counts as closed: a source's clock lags (CoinGecko's by up to a
        poll), and a tick that still comes later corrects the closed bar."""
        return min(600.0, max(5.0, 2 * self.interval))

    @property
    def alerts_topic(self) -> str:
        """CRYPTO_ALERTS_TOPIC, else the prices topic's name with -prices made -alerts (crypto-alerts), so a
        second pipeline with its own CRYPTO_TOPIC never reads another's firings."""
        if self.alerts_topic_name:
            return self.alerts_topic_name
        return f"{self.topic.removesuffix('prices').rstrip('-')}-alerts"

    @property
    def alert_hysteresis(self) -> float:
        """The band as a fraction (0.005), as cryptoapp.alerts.evaluation takes it."""
        return self.alert_hysteresis_pct / 100

    @property
    def api_key(self) -> Optional[str]:
        """The CoinGecko key itself; everywhere else it is a SecretStr that prints as **********."""
        return self.coingecko_api_key.get_secret_value() if self.coingecko_api_key else None

    @property
    def server(self) -> str:
        """The MongoDB servers, safe to show (no credentials)."""
        return mongo_servers(self.mongo_uri)


_SECRET_FIELDS = {"MONGO_URI", "COINGECKO_API_KEY"}


def _one_line(exc: ValidationError, name: str | None = None) -> ConfigError:
    """pydantic's report as one line per setting: NAME=value (masked when secret) and what to do."""
    lines = []
    for error in exc.errors(include_url=False):
        setting = name or (str(error["loc"][0]) if error["loc"] else "a setting")
        value = error.get("input")
        shown = mask_uri(str(value)) if setting == "MONGO_URI" else "***" if setting in _SECRET_FIELDS else str(value)
        message = re.sub(r"^Value error, ", "", error["msg"])
        if error["type"] == "bool_parsing":
            message = "is neither on nor off: use 1 or 0 (true/false, yes/no)"
        if isinstance(error.get("ctx", {}).get("error"), ConfigError):
            lines.append(str(error["ctx"]["error"]))
        else:
            lines.append(f"{setting}={shown!r} {message}")
    return ConfigError("; ".join(lines))


def load(environ: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> Settings:
    """Settings from `environ` (default os.environ), then `secrets` (Streamlit's), then the defaults."""
    token = _GIVEN.set(tuple(m for m in (os.environ if environ is None else environ, secrets) if m is not None))
    try:
        return Settings()
    except ValidationError as exc:
        raise _one_line(exc) from None
    finally:
        _GIVEN.reset(token)


def apply_flags(s: Settings, argv: Sequence[str]) -> list[str]:
    """Take the seed's producer flags (--symbols, --interval, --mongo-uri) out of argv into `s`.

    Returns the remaining arguments, for Faust's own command line.
    """
    fields = {"--symbols": "symbols", "--interval": "interval", "--mongo-uri": "mongo_uri"}
    rest: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name not in fields:
            rest.append(arg)
            continue
        if not eq:
            if not args:
                raise ConfigError(f"{name} needs a value, e.g. {name}=...")
            value = args.pop(0)
        try:
            setattr(s, fields[name], value)
        except ValidationError as exc:
            raise _one_line(exc, name) from None
    return rest


def __getattr__(name: str) -> Settings:
    """`from cryptoapp.settings import settings`: the worker's settings, read from the environment on first use
    (not on import, so the dashboard, which loads its own with Streamlit secrets, never reads them)."""
    if name != "settings":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = load()
    except ConfigError as exc:  # a bad setting is the user's to fix: one line, no traceback
        raise SystemExit(f"cryptoapp: {exc}") from None
    globals()["settings"] = value
    return value
