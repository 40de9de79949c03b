"""`cryptoapp --help` and `--version`: the product's commands and the worker's flags first, quickly, and truthfully."""

import importlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptoapp import __version__
from cryptoapp.help import FAUST_COMMANDS, PRODUCT_COMMANDS
from cryptoapp.settings import load

ROOT = Path(__file__).resolve().parents[2]


def cryptoapp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoapp", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_help_lists_the_products_commands_and_the_worker_flags_first_within_half_a_second():
    times = []
    for _ in range(3):
        started = time.perf_counter()
        out = cryptoapp("--help")
        times.append(time.perf_counter() - started)
    assert (out.returncode, out.stderr) == (0, "")
    text = out.stdout
    assert text.index("\n  worker ") < text.index("\n  alerts ") < text.index("\n  --symbols") < text.index("Faust's own commands")
    s = load({})
    assert f"default: {','.join(s.symbols)}" in text and f"default: {s.interval:g}]" in text
    assert f"default: {s.mongo_uri}]" in text and f"default: {s.datadir}]" in text
    assert "Welcome" not in text and "--console-port" not in text  # Faust's generic text is not the product's
    assert statistics.median(times) < 0.5, times


def test_version_is_cryptoapps():
    out = cryptoapp("--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"cryptoapp {__version__}\n", "")


def test_the_help_names_every_command_the_app_has():
    from faust.cli.faust import cli  # with Faust's own commands

    for path in sorted((ROOT / "cryptoapp").glob("*/commands.py")):
        importlib.import_module(f"cryptoapp.{path.parent.name}.commands")
    assert set(cli.commands) == set(PRODUCT_COMMANDS) | set(FAUST_COMMANDS)


def test_the_worker_help_shows_the_defaults_the_worker_uses():
    out = cryptoapp("worker", "--help", env={"WEB_BIND": "127.0.0.2"})
    text = " ".join(out.stdout.split())  # click wraps the lines
    assert out.returncode == 0, out.stderr
    assert text.index("--symbols") < text.index("--interval") < text.index("--mongo-uri") < text.index("--web-port")
    assert "[WEB_BIND; default: 127.0.0.2]" in text and "0.0.0.0" not in text
    assert "[CRYPTO_DATADIR; default: .local/faust]" in text


def test_a_negative_interval_is_one_line_naming_the_fix():
    out = cryptoapp("worker", "-l", "info", env={"CRYPTO_INTERVAL": "-5"})
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == "cryptoapp: CRYPTO_INTERVAL='-5' must be positive: set it to a number above 0 s\n"
