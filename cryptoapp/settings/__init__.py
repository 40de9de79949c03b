"""cryptoapp's settings: a shared base (base.py) and one class per process, the worker's and the dashboard's."""

__all__ = ["ConfigError", "mask_uri"]
# Every name is imported on first use: `cryptoapp --help` reads settings/defaults.py without loading pydantic, and the
# dashboard, which imports cryptoapp.settings.dashboard, never loads the worker's settings nor the domain modules
# (coins, forecasts) they parse with. `from cryptoapp.settings import Settings, load, apply_flags, settings, ...`
# names the worker's.
_WORKER_NAMES = frozenset({"Settings", "UnusableSettings", "load", "apply_flags", "parse_symbols", "parse_sources",
                           "DEFAULT_EXCHANGE", "DEFAULT_MAX_HZ", "DEFAULT_STALL_S"})


def __getattr__(name: str):
    """ConfigError, mask_uri and the worker's names; `settings` is the worker's settings, read from the environment
    on first use (a bad setting raises UnusableSettings, a ConfigError)."""
    if name == "ConfigError":
        from cryptoapp.settings.base import ConfigError
        return ConfigError
    if name == "mask_uri":
        from cryptoapp.uris import mask_uri
        return mask_uri
    if name == "settings":
        from cryptoapp.settings.worker import from_environment
        return from_environment()
    if name in _WORKER_NAMES:
        from cryptoapp.settings import worker
        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
