"""The project's layout rules, checked on the tree: every module imports, one module per process imports the MongoDB
driver, figures never pull it in, the dashboard never pulls in the worker's libraries, the test support is not
shipped, and nothing outside tests/ imports the tests."""

import ast
import configparser
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import find_packages

import cryptoapp

ROOT = Path(__file__).resolve().parents[2]
DRIVER = re.compile(r"^\s*(from|import)\s+(pymongo|bson|motor)\b", re.M)


def modules(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
            if not m.name.endswith("__main__")]


@pytest.mark.parametrize("name", modules(cryptoapp))
def test_every_worker_module_imports(name):
    # Faust's autodiscovery only logs a module that fails to import, and its views or agents are silently gone.
    importlib.import_module(name)


def test_one_module_per_process_imports_the_driver():
    # The worker's side is the storage package (a base and one module per family of collections); what the two
    # share, such as cryptoapp/alerts/queries.py, is plain documents.
    product = [p for folder in ("cryptoapp", "dashboard") for p in (ROOT / folder).rglob("*.py")]
    importers = sorted(str(p.relative_to(ROOT)) for p in product if DRIVER.search(p.read_text()))
    worker = [p for p in importers if p.startswith("cryptoapp/")]
    assert worker and all(p.startswith("cryptoapp/storage/") for p in worker), worker
    assert [p for p in importers if not p.startswith("cryptoapp/")] == ["dashboard/data.py"]


def pulled_in(module: str, libraries: tuple[str, ...]) -> list[str]:
    """Which of `libraries` importing `module` loads, in a fresh interpreter."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(m for m in {libraries!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out)


@pytest.mark.parametrize("module", ["dashboard.charts", "dashboard.history_charts", "dashboard.chart_layout",
                                    "dashboard.price_marks", "dashboard.time_zones", "dashboard.forecast_charts",
                                    "dashboard.image_export", "dashboard.indicators", "dashboard.export",
                                    "dashboard.frames", "dashboard.best_table", "cryptoapp.schema", "cryptoapp.settings",
                                    "cryptoapp.settings.worker", "cryptoapp.settings.dashboard"])
def test_pure_modules_pull_in_no_driver_faust_or_streamlit(module):
    assert pulled_in(module, ("pymongo", "faust", "streamlit")) == []


@pytest.mark.parametrize("module", ["dashboard.data", "dashboard.alerts"])
def test_dashboard_modules_pull_in_no_worker_library(module):
    # They may import the driver (data.py is the dashboard's driver module) and streamlit, never what only the worker runs.
    assert pulled_in(module, ("faust", "river", "ccxt")) == []


def test_the_test_support_is_not_shipped():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    include = config["options.packages.find"]["include"].replace(",", " ").split()
    shipped = find_packages(ROOT, include=include)
    assert "cryptoapp" in shipped and "dashboard" in shipped
    assert not [p for p in shipped if p.split(".")[0] in ("testkit", "tests", "bench")]


def test_the_dashboards_settings_pull_in_no_worker_module():
    # The dashboard's settings and the modules every page imports: none of the worker's libraries (Faust, River,
    # ccxt) nor the worker's settings and the domain modules they parse with.
    worker_only = "('cryptoapp.settings.worker', 'cryptoapp.coins', 'cryptoapp.forecasts', 'cryptoapp.app')"
    code = ("import sys, dashboard.ui, dashboard.cache, cryptoapp.settings.dashboard; print(sorted(m for m in "
            f"sys.modules if m.split('.')[0] in ('faust', 'river', 'ccxt', 'aiokafka') "
            f"or m.startswith({worker_only})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_nothing_outside_tests_imports_the_tests():
    offenders = [str(p.relative_to(ROOT)) for folder in ("bench", "cryptoapp", "dashboard", "testkit")
                 for p in (ROOT / folder).rglob("*.py") if re.search(r"^\s*(from|import)\s+tests\b", p.read_text(), re.M)]
    assert offenders == []


STAGES = ("prices", "alerts", "candles", "forecasts", "trades")  # the batch's stages, called in order by cryptoapp/pipeline.py
STAGE_IMPORT = re.compile(r"^\s*(?:from|import)\s+cryptoapp\.(\w+)(?:\.(\w+))?", re.M)


def test_no_stage_package_imports_another():
    # A stage may read another's shared types (its models module), never its steps: the order lives in one file.
    offenders = []
    for stage in STAGES:
        for path in (ROOT / "cryptoapp" / stage).rglob("*.py"):
            for package, module in STAGE_IMPORT.findall(path.read_text()):
                if package in STAGES and package != stage and module != "models":
                    offenders.append(f"{path.relative_to(ROOT)} imports cryptoapp.{package}.{module}")
    assert offenders == []


def test_the_batchs_stages_are_called_from_one_file():
    callers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cryptoapp").rglob("*.py")
                     if re.search(r"\b(AlertStage|CandleStage|ViewStage|ForecastStage|TradeStage)\(", p.read_text()))
    assert callers == ["cryptoapp/pipeline.py"]


def test_no_product_file_over_300_lines_nor_function_over_60():
    # The house's size rule (issue 20): a file a newcomer reads at one sitting, a function on one screen.
    too_long = []
    for path in [*(ROOT / "cryptoapp").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")]:
        source = path.read_text()
        if len(source.splitlines()) > 300:
            too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert too_long == []
