"""The worker's settings, read once from the environment, with the seed's flags (--symbols, --interval, --mongo-uri)."""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Optional

import click
from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode

from cryptoapp.forecasts.forecasters import DEFAULT_MODELS, parse_models
from cryptoapp.forecasts.online import DEFAULT_HORIZONS, parse_horizons
from cryptoapp.forecasts.scoring import WINDOW
from cryptoapp.schema import COINGECKO, SIMULATED, SOURCES, TRADE_EXCHANGES
from cryptoapp.settings import defaults
from cryptoapp.settings.base import (
    ConfigError, Count, Seconds, SharedSettings, listed, load_settings, number, one_line, url_check)
from cryptoapp.settings.exchanges import parse_exchanges
from cryptoapp.settings.lists import parse_sources, parse_symbols

# Binance US lists all five default coins against USD (USDT as USDT/USD), reachable without a key
# (shared/reference/exchanges.md); its @ticker stream carries bid, ask, their sizes, last and event time.
DEFAULT_EXCHANGE = "binanceus"
DEFAULT_MAX_HZ = 1.0
DEFAULT_STALL_S = 30.0  # @ticker sends every second: 30 s without any message is a dead stream
_http_url = url_check("an HTTP URL", "http://", "https://")


def _under_half(value: float) -> float:
    if value >= 50:
        raise ValueError("must be under 50 %: it is the band a price goes back by before a rule re-arms, e.g. 0.5")
    return value


def _minutes(text: str) -> tuple[int, ...]:
    try:
        return parse_horizons(text)
    except ValueError:
        raise ValueError("is not a list of minutes: give whole minutes >= 1, comma separated (e.g. 5,60)") from None


class Settings(SharedSettings):
    """The settings of the worker and its commands; a field's alias is its environment variable (README's table)."""

    # --- servers (MongoDB's: SharedSettings) ---
    kafka_broker: str = Field("kafka://localhost:9092", alias="KAFKA_BROKER")
    # --- the worker ---
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(defaults.DEFAULT_SYMBOLS, alias="CRYPTO_SYMBOLS")
    source: str = Field(COINGECKO, alias="CRYPTO_SOURCE")  # one source: the spelling before CRYPTO_SOURCES
    sources_named: Optional[tuple[str, ...]] = Field(None, alias="CRYPTO_SOURCES")  # read it as `sources`
    exchange: str = Field(DEFAULT_EXCHANGE, alias="CRYPTO_EXCHANGE")  # ccxt id; checked when the worker starts
    exchanges_named: Optional[tuple[str, ...]] = Field(None, alias="CRYPTO_EXCHANGES")  # read it as `exchanges`
    best_max_age_s: Seconds = Field(10.0, alias="CRYPTO_BEST_MAX_AGE_S")  # /prices/<T>/best/ leaves older quotes out
    exchange_max_hz: number() = Field(DEFAULT_MAX_HZ, alias="CRYPTO_EXCHANGE_MAX_HZ")
    exchange_stall_s: number() = Field(DEFAULT_STALL_S, alias="CRYPTO_EXCHANGE_STALL_S")
    exchange_ws_url: Optional[str] = Field(None, alias="CRYPTO_EXCHANGE_WS_URL")  # tests: a local server
    exchange_rest_url: Optional[str] = Field(None, alias="CRYPTO_EXCHANGE_REST_URL")
    trades: bool = Field(True, alias="CRYPTO_TRADES")  # the exchange's trade stream and candles from its trades
    coins_cache: str = Field(".local/coingecko-coins.json", alias="CRYPTO_COINS_CACHE")
    coingecko_api_url: str = Field("https://api.coingecko.com/api/v3", alias="COINGECKO_API_URL")
    coingecko_api_key: Optional[SecretStr] = Field(None, alias="COINGECKO_API_KEY")
    coingecko_timeout: Seconds = Field(20.0, alias="COINGECKO_TIMEOUT")  # seconds a call may take (connect: ≤ 5)
    requests_per_minute: Count = Field(25, alias="CRYPTO_REQUESTS_PER_MINUTE")
    backfill_hours: number(strict=False, unit=" h") = Field(168.0, alias="CRYPTO_BACKFILL_HOURS")  # 0: no backfill
    web_port: Count = Field(defaults.WEB_PORT, alias="WEB_PORT")
    web_bind: str = Field(defaults.WEB_BIND, alias="WEB_BIND")
    app_id: str = Field("cryptoapp", alias="CRYPTO_APP_ID")
    topic: str = Field("crypto-prices", alias="CRYPTO_TOPIC")  # the prices topic; the others are named below
    partitions: Count = Field(8, alias="CRYPTO_PARTITIONS")  # fixed once the topics exist; more workers share them
    datadir: str = Field(defaults.DATADIR, alias="CRYPTO_DATADIR")
    # How long Kafka waits for a worker that stopped answering before its partitions go to the others (static
    # membership: a worker restarted within it takes them back without a rebalance).
    session_timeout: number(minimum=6.0, strict=False, unit=" s") = Field(60.0, alias="CRYPTO_SESSION_TIMEOUT")
    simulated_seed: int = Field(42, alias="CRYPTO_SIMULATED_SEED")
    candles: bool = Field(True, alias="CRYPTO_CANDLES")  # 0/false: no candles and no views (the sink alone)
    # 1: Faust's Prometheus sensor as it comes, a labelled update per message and event (cryptoapp/sensors.py)
    faust_event_metrics: bool = Field(False, alias="CRYPTO_FAUST_EVENT_METRICS")
    # How late a tick may come and still count. A 1d bar is made of the minutes in its day: they have to be held
    # for at least a day and its grace.
    candles_hours: number(minimum=26.0, strict=False, unit=" h") = Field(170.0, alias="CRYPTO_CANDLES_HOURS")
    archive_days: number(unit=" days", optional=True) = Field(None, alias="CRYPTO_ARCHIVE_DAYS")  # unset: keep all
    # --- alerts (docs/alerts.md) ---
    alerts_topic_name: Optional[str] = Field(None, alias="CRYPTO_ALERTS_TOPIC")  # unset: see alerts_topic
    alert_hysteresis_pct: Annotated[number(strict=False, unit=" %"), AfterValidator(_under_half)] = Field(
        0.5, alias="CRYPTO_ALERT_HYSTERESIS_PCT")  # the re-arming band
    alert_rules_poll: Seconds = Field(2.0, alias="CRYPTO_ALERT_RULES_POLL")  # s until a rule change applies
    alert_webhook_timeout: Seconds = Field(10.0, alias="CRYPTO_ALERT_WEBHOOK_TIMEOUT")  # s per POST
    alert_webhook_concurrency: Count = Field(16, alias="CRYPTO_ALERT_WEBHOOK_CONCURRENCY")  # open POSTs
    alert_max_in_flight: Count = Field(10_000, alias="CRYPTO_ALERT_MAX_IN_FLIGHT")  # firings delivered at once
    alert_max_backoff: Seconds = Field(300.0, alias="CRYPTO_ALERT_MAX_BACKOFF")  # s between two tries, at most
    alert_give_up_after: Seconds = Field(86400.0, alias="CRYPTO_ALERT_GIVE_UP_AFTER")  # s of retrying a firing
    alert_outbox_sweep: Seconds = Field(30.0, alias="CRYPTO_ALERT_OUTBOX_SWEEP")  # s between outbox reads
    alert_retention_days: number(strict=False, unit=" days (0 keeps every firing)") = Field(
        30.0, alias="CRYPTO_ALERT_RETENTION_DAYS")
    # --- forecasts, learned from the candles' closed minutes (on or off: SharedSettings.forecasts) ---
    forecast_horizons: Annotated[tuple[int, ...], NoDecode] = Field(DEFAULT_HORIZONS, alias="CRYPTO_FORECAST_HORIZONS")
    forecast_models: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_MODELS, alias="CRYPTO_FORECAST_MODELS")
    forecast_window: Count = Field(WINDOW, alias="CRYPTO_FORECAST_WINDOW")  # scored points in the rolling window

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value):
        return parse_symbols(value) if isinstance(value, str) else tuple(value)

    _forecast_horizons = field_validator("forecast_horizons", mode="before")(listed(_minutes))
    _forecast_models = field_validator("forecast_models", mode="before")(listed(parse_models))
    _sources = field_validator("sources_named", mode="before")(listed(parse_sources))
    _exchanges = field_validator("exchanges_named", mode="before")(listed(parse_exchanges))
    _ws_url = field_validator("exchange_ws_url", mode="before")(url_check("a WebSocket URL", "ws://", "wss://"))

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value):
        value = str(value).lower()
        if value not in SOURCES:
            raise ValueError(f"is unknown: use one of {', '.join(SOURCES)}")
        return value

    @field_validator("exchange", mode="before")
    @classmethod
    def _exchange(cls, value):
        # ccxt's ids are lower case; whether ccxt knows this one is checked when the worker starts (cryptoapp.app):
        # importing ccxt takes a few seconds, and commands that stream nothing never need it.
        return str(value).strip().lower()

    @field_validator("exchange_rest_url", mode="before")
    @classmethod
    def _rest_url(cls, value):
        value = _http_url(value)
        return value if value is None else str(value).rstrip("/")

    @field_validator("coingecko_api_url", mode="before")
    @classmethod
    def _api_url(cls, value):
        return str(value).rstrip("/")

    @model_validator(mode="after")
    def _forecasts_need_candles(self):
        # The forecasters learn from the candles' closed minute bars; on by default, they follow the candles.
        if "forecasts" in self.model_fields_set and self.forecasts and not self.candles:
            raise ConfigError("CRYPTO_FORECASTS=1 needs the candles (the forecasters learn from their closed minute "
                              "bars): set CRYPTO_CANDLES=1, or CRYPTO_FORECASTS=0")
        return self

    @model_validator(mode="after")
    def _one_way_to_name_sources(self):
        # Both set and disagreeing is a configuration half moved to CRYPTO_SOURCES: say so, do not pick one.
        if self.sources_named and "source" in self.model_fields_set and self.source not in self.sources_named:
            raise ConfigError(f"CRYPTO_SOURCE={self.source!r} is not among CRYPTO_SOURCES="
                              f"{','.join(self.sources_named)!r}: unset CRYPTO_SOURCE, CRYPTO_SOURCES replaces it")
        return self

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources the worker runs: CRYPTO_SOURCES, else CRYPTO_SOURCE alone (default coingecko)."""
        return self.sources_named or (self.source,)

    @property
    def exchanges(self) -> tuple[str, ...]:
        """The exchanges streamed (ccxt ids): CRYPTO_EXCHANGES, else CRYPTO_EXCHANGE alone (default binanceus)."""
        return self.exchanges_named or (self.exchange,)

    @property
    def polled_source(self) -> Optional[str]:
        """The source the fetch timer polls (coingecko or simulated; at most one), or None."""
        return next((name for name in self.sources if name in (COINGECKO, SIMULATED)), None)

    @property
    def candle_grace_s(self) -> float:
        """Seconds after a bar's end before it counts as closed: a source's clock lags (CoinGecko's by up to a
        poll), and a tick that still comes later corrects the closed bar."""
        return min(600.0, max(5.0, 2 * self.interval))

    @property
    def alert_hysteresis(self) -> float:
        """The band as a fraction (0.005), as cryptoapp.alerts.evaluation takes it."""
        return self.alert_hysteresis_pct / 100

    @property
    def api_key(self) -> Optional[str]:
        """The CoinGecko key itself; everywhere else it is a SecretStr that prints as **********."""
        return self.coingecko_api_key.get_secret_value() if self.coingecko_api_key else None

    # --- the topics' names: every topic the app declares is named here and nowhere else ---

    def _beside_prices(self, kind: str) -> str:
        """crypto-prices -> crypto-<kind> (a test's own <name>-prices -> <name>-<kind>)."""
        return f"{self.topic.removesuffix('prices').rstrip('-')}-{kind}"

    @property
    def dlq_topic(self) -> str:
        """The prices topic's dead letters, the messages that are not a PriceTick (crypto-prices-dlq)."""
        return f"{self.topic}-dlq"

    @property
    def candles_topic(self) -> str:
        """Every bar the candles agent updates or closes (crypto-candles)."""
        return self._beside_prices("candles")

    @property
    def trades_topic(self) -> str:
        """The exchange's trades, keyed by ticker (crypto-trades)."""
        return self._beside_prices("trades")

    @property
    def trades_on(self) -> bool:
        """Whether the exchange's trades are streamed and make its series' candles (CRYPTO_TRADES with the
        exchange among CRYPTO_SOURCES)."""
        return self.trades and "exchange" in self.sources

    @property
    def trade_exchanges(self) -> frozenset[str]:
        """The exchanges whose trades are streamed and make their series' candles (schema.TRADE_EXCHANGES)."""
        return frozenset(x for x in self.exchanges if x in TRADE_EXCHANGES) if self.trades_on else frozenset()

    @property
    def alerts_topic(self) -> str:
        """CRYPTO_ALERTS_TOPIC, else the prices topic's name with -prices made -alerts (crypto-alerts), so a
        second pipeline with its own CRYPTO_TOPIC never reads another's firings."""
        return self.alerts_topic_name or self._beside_prices("alerts")

    @property
    def candle_replay_topic(self) -> str:
        """Stored ticks for the candles alone, never archived again (`cryptoapp candles rebuild`)."""
        return f"{self.app_id}-candle-replay"

    @property
    def candle_clock_topic(self) -> str:
        """The leader's time, sent to every partition so that a quiet coin's bars close too."""
        return f"{self.app_id}-candle-clock"

    @property
    def view_ticks_topic(self) -> str:
        """The sink's stored ticks, a message per series and batch, for the serving views."""
        return f"{self.app_id}-view-ticks"

    @property
    def forecast_minutes_topic(self) -> str:
        """The closed minutes the views agent relays to the forecasting agent, its one reader."""
        return f"{self.app_id}-forecast-minutes"


class UnusableSettings(ConfigError, click.ClickException):
    """A ConfigError as the worker starts: Python code that imports the app can catch it, and Faust's command line
    (click: `faust -A cryptoapp.app worker`) prints it as one line, `cryptoapp: <message>`, and exits with 1."""

    def __init__(self, message: str):
        click.ClickException.__init__(self, message)

    def show(self, file=None) -> None:
        click.echo(f"cryptoapp: {self.message}", file=file, err=file is None)


def load(environ: Mapping[str, Any] | None = None) -> Settings:
    """The worker's settings from `environ` (default os.environ), then the defaults."""
    return load_settings(Settings, environ)


_from_environment: Optional[Settings] = None


def from_environment() -> Settings:
    """The worker's settings, read from os.environ on first use and shared from then on (the app, its agents and
    commands, `from cryptoapp.settings import settings`); raises UnusableSettings on a bad setting."""
    global _from_environment
    if _from_environment is None:
        try:
            _from_environment = load()
        except ConfigError as exc:
            raise UnusableSettings(str(exc)) from None
    return _from_environment


def apply_flags(s: Settings, argv: Sequence[str]) -> list[str]:
    """Take the seed's producer flags (--symbols, --interval, --mongo-uri) and --datadir (-D) out of argv into `s`.

    Returns the remaining arguments, for Faust's own command line.
    """
    fields = {"--symbols": "symbols", "--interval": "interval", "--mongo-uri": "mongo_uri", "--datadir": "datadir",
              "-D": "datadir"}
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
            raise one_line(exc, name) from None
    return rest
