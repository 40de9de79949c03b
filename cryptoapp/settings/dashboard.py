"""The dashboard's settings: its share of the common ones and its own, from the environment, then Streamlit secrets."""

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from cryptoapp.settings.base import SharedSettings, load_settings, number


class DashboardSettings(SharedSettings):
    """The settings the dashboard reads, and only those; the field's alias is its environment variable."""

    refresh: number(minimum=1.0, strict=False, unit=" s") = Field(10.0, alias="DASHBOARD_REFRESH")  # s between updates


def load(environ: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> DashboardSettings:
    """The dashboard's settings from `environ` (default os.environ), then `secrets` (Streamlit's), then the defaults."""
    return load_settings(DashboardSettings, environ, secrets)
