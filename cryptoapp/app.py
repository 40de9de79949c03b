"""The Faust app, its prices topics and its latest_prices table (cryptoapp/faust_app.py), made on first use, and
`main()`, the console script, which answers `cryptoapp --help` and `--version` without making them."""

from __future__ import annotations

import sys

TABLE_WRITES_PER_BATCH = 5000  # the most table writes waiting in Faust's producer buffer before it pauses
STOP_TIMEOUT = 15.0  # seconds a stopping worker may take (it needs 1-2); services.sh kills after 30
CHANGELOG_SEGMENT_MS = 60_000  # latest_prices' changelog rolls a segment a minute, which compaction can then shrink

# Made by faust_app.py: Faust, the settings and the services take seconds to import, which `cryptoapp --help` does not
# need. `from cryptoapp.app import app` and `faust -A cryptoapp.app` make them (a bad setting raises UnusableSettings).
_MADE_ON_FIRST_USE = frozenset({"app", "settings", "prices_topic", "trades_topic", "dead_letters", "latest_prices",
                                "PricesApp", "check_sources"})
HELP_ARGS = ([], ["--help"], ["-h"], ["help"])


def __getattr__(name: str):
    if name in _MADE_ON_FIRST_USE:
        from cryptoapp import faust_app

        value = getattr(faust_app, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """`cryptoapp worker -l info [--symbols ...] [--interval S] [--mongo-uri URI]`, and every other command."""
    argv = sys.argv[1:]
    if argv in HELP_ARGS or argv == ["--version"]:
        from cryptoapp import __version__
        from cryptoapp.help import usage

        print(usage() if argv != ["--version"] else f"cryptoapp {__version__}")
        return
    from cryptoapp import faust_app

    faust_app.main(argv)
