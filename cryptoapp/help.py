"""What `cryptoapp --help` says (the product's commands and the worker's flags first, Faust's own after), and the
worker's help made to show the defaults the worker really uses; the first loads neither Faust nor pydantic."""

from __future__ import annotations

import textwrap

from cryptoapp import __version__
from cryptoapp.settings import defaults

# The product's commands, as `cryptoapp --help` lists them; tests/unit/test_help.py checks that they are the commands
# the app has besides Faust's own (FAUST_COMMANDS). Each command's --help has its details.
PRODUCT_COMMANDS = {
    "worker": "run the pipeline: prices into Kafka and MongoDB, candles, alerts, forecasts, web :6066",
    "alerts": "price alerts: add COIN KIND THRESHOLD | list | pause ID | resume ID | delete ID",
    "backfill": "fill gaps in the stored prices from CoinGecko's history (--hours, --symbols)",
    "candles": "verify | rebuild: check or repair the candles and views against the archive",
    "forecast": "backtest: replay the stored prices through the forecasters, beside naive",
    "export": "parquet: export the stored ticks as Parquet for the Spark jobs",
    "analytics": "run | load: the Spark jobs (daily figures, correlations) and their results in MongoDB",
}
# Faust's own commands, for looking into a running app (agents, tables, topics) or its local state.
FAUST_COMMANDS = ("agents", "clean-versions", "completion", "livecheck", "model", "models", "reset", "send", "tables")


def worker_flags(symbols: str, interval: float, mongo_uri: str, datadir: str) -> list[tuple[str, str]]:
    """The worker's own flags as (flag, meaning) with the values they default to; a flag overrides its variable."""
    return [
        ("--symbols COINS", f"coins: CoinGecko ids or tickers, or top:N, comma separated "
                            f"[CRYPTO_SYMBOLS; default: {symbols}]"),
        ("--interval SECONDS", f"seconds between two polls [CRYPTO_INTERVAL; default: {interval:g}]"),
        ("--mongo-uri URI", f"the MongoDB server [MONGO_URI; default: {mongo_uri}]"),
        ("--datadir DIR", f"Faust's data directory [CRYPTO_DATADIR; default: {datadir}]"),
    ]


def _item(name: str, text: str, width: int = 19) -> str:
    return textwrap.fill(text, 100, initial_indent=f"  {name:<{width}} ", subsequent_indent=" " * (width + 3))


def usage() -> str:
    """`cryptoapp --help`: the environment's values are not read (that loads the settings), the defaults are shown."""
    flags = worker_flags(",".join(defaults.DEFAULT_SYMBOLS), defaults.INTERVAL_S, defaults.MONGO_URI,
                         defaults.DATADIR)
    lines = [
        "Usage: cryptoapp COMMAND [ARGS]...",
        "",
        f"  cryptoapp {__version__}: crypto prices from CoinGecko (and an exchange) through Kafka into MongoDB,",
        "  with candles, alerts and forecasts for the dashboard. Settings come from the environment (README).",
        "",
        "  cryptoapp worker -l info --symbols BTC,ETH --interval 30",
        "",
        "Commands:",
        *(_item(name, text, 10) for name, text in PRODUCT_COMMANDS.items()),
        "",
        "Worker flags (cryptoapp worker --help has them all):",
        *(_item(flag, text) for flag, text in flags),
        _item("--web-port PORT", f"the web server's port [WEB_PORT; default: {defaults.WEB_PORT}]"),
        "  -l, --loglevel      crit|error|warn|info|debug [default: warn]",
        "",
        "Options:",
        "  --version           print cryptoapp's version",
        "  --help              print this; `cryptoapp COMMAND --help` for a command's",
        "",
        textwrap.fill(f"Faust's own commands: {', '.join(FAUST_COMMANDS)} (`cryptoapp COMMAND --help`).", 100),
    ]
    return "\n".join(lines)


def fix_faust_help(settings) -> None:
    """Faust's `worker --help` and its common options as this app runs them: the worker's own flags first, and the
    defaults the worker uses (WEB_BIND, CRYPTO_DATADIR), not Faust's (0.0.0.0, {conf.name}-data). `settings`: the
    worker's, flags applied. Faust's command line is imported here, so call it just before app.main()."""
    import click
    from faust.cli.base import cli
    from faust.cli.worker import worker

    from cryptoapp.uris import mask_uri

    command = worker._click
    command.help = "Run the pipeline: " + PRODUCT_COMMANDS["worker"].split(": ", 1)[1] + "."
    shown = {p.name for p in command.params}
    flags = worker_flags(",".join(settings.symbols), settings.interval, mask_uri(settings.mongo_uri), settings.datadir)
    own = [click.Option([flag.split()[0]], metavar=flag.split()[1], help=text) for flag, text in flags]
    command.params[:0] = [o for o in own if o.name not in shown]
    wording = {
        "web_port": f"Port of the web server [WEB_PORT; default: {settings.web_port}]",
        "web_bind": f"Address the web server listens on [WEB_BIND; default: {settings.web_bind}]",
        "web_host": f"Host name in the web server's own URLs [default: the address, {settings.web_bind}]",
    }
    for param in command.params:
        param.help = wording.get(param.name, getattr(param, "help", None))
    for param in cli.params:
        if param.name == "datadir":
            param.default, param.help = settings.datadir, "Faust's data directory [CRYPTO_DATADIR]"
