"""The dashboard's pages run in Streamlit's AppTest (no browser); an exception a page raises fails the test."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TIMEOUT_S = 60


def ran(at: AppTest) -> AppTest:
    """`at` after one more run, which must raise nothing."""
    at.run()
    assert not at.exception, at.exception
    return at


def app_page(tab: Optional[str] = None) -> AppTest:
    """dashboard/app.py as `streamlit run` serves it, opened on `tab` (?tab=History) when given."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    if tab:
        at.query_params["tab"] = tab
    return ran(at)


def function_page(function: Callable[[], None], **session_state) -> AppTest:
    """A page that is `function` alone (a tab as dashboard/app.py calls it), with `session_state` set first."""
    at = AppTest.from_function(function, default_timeout=TIMEOUT_S)
    for key, value in session_state.items():
        at.session_state[key] = value
    return ran(at)
