"""The dashboard's configuration, read from the environment (or Streamlit secrets) with safe-to-show server names."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_PORT = 27017
# Query options whose values are credentials (AWS session tokens, TLS key passwords, ...).
_SECRET_OPTION = re.compile(r"password|secret|token|key", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting a user gave is not usable; the message names the setting and the fix."""


@dataclasses.dataclass(frozen=True)
class DashboardSettings:
    mongo_uri: str = "mongodb://localhost:27017"
    mongo_db: str = "crypto"
    interval: float = 60.0   # CRYPTO_INTERVAL: the worker's poll period, which defines "stale" and "gap"
    refresh: float = 10.0    # DASHBOARD_REFRESH: seconds between live updates

    @property
    def server(self) -> str:
        return server_address(self.mongo_uri)


def _seconds(name: str, text: str, minimum: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of seconds: set it to e.g. 10") from None
    if not value >= minimum:
        raise ConfigError(f"{name}={text!r} is too small: use at least {minimum:g} seconds")
    return value


def load(environ: Mapping[str, str], secrets: Mapping[str, object] | None = None) -> DashboardSettings:
    """Settings from environment variables, then Streamlit secrets of the same names, then defaults."""
    def get(name: str) -> str | None:
        if environ.get(name):
            return environ[name]
        if secrets and secrets.get(name) not in (None, ""):
            return str(secrets[name])
        return None

    s = DashboardSettings()
    uri, db = get("MONGO_URI") or s.mongo_uri, get("MONGO_DB") or s.mongo_db
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"MONGO_URI={mask_uri(uri)!r} is not a MongoDB URI: it starts with mongodb:// or mongodb+srv://")
    interval = _seconds("CRYPTO_INTERVAL", get("CRYPTO_INTERVAL"), 0.1) if get("CRYPTO_INTERVAL") else s.interval
    refresh = _seconds("DASHBOARD_REFRESH", get("DASHBOARD_REFRESH"), 1) if get("DASHBOARD_REFRESH") else s.refresh
    return DashboardSettings(mongo_uri=uri, mongo_db=db, interval=interval, refresh=refresh)


def mask_uri(uri: str) -> str:
    """The URI with its password (and any credential-like option) replaced by ***, safe to print."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hosts}" if ":" in userinfo else f"{user}@{hosts}"
    query = urlencode([(k, "***" if _SECRET_OPTION.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*,:/")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def server_address(uri: str) -> str:
    """host:port of every server the URI names (comma-separated), without credentials."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    hosts = parts.netloc.rsplit("@", 1)[-1]
    if parts.scheme == "mongodb+srv":
        return f"{hosts} (DNS SRV)"
    out = []
    for host in filter(None, hosts.split(",")):
        has_port = re.search(r":\d+$", host) is not None
        out.append(host if has_port else f"{host}:{DEFAULT_PORT}")
    return ", ".join(out) or f"localhost:{DEFAULT_PORT}"
