"""What both processes' settings share: the loading machinery, the checks of numbers and URLs, what both read."""

import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Optional, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from cryptoapp.settings import defaults
from cryptoapp.uris import mask_uri, mongo_servers


class ConfigError(ValueError):
    """A setting a user gave is not usable; the message names the setting and the fix."""


def _number(kind=float, minimum: float = 0.0, strict: bool = True, unit: str = ""):
    """A validator for a number above (or, not strict, at least) `minimum`, with a message that says so."""
    fix = f"set it to a {'whole ' if kind is int else ''}number {'above' if strict else 'of at least'} {minimum:g}{unit}"

    def check(value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"is not a number: {fix}") from None
        if number != number or number in (float("inf"), float("-inf")) or \
                (number <= minimum if strict else number < minimum):
            if strict and minimum == 0:
                raise ValueError(f"must be positive: {fix}")
            raise ValueError(f"must be {'above' if strict else 'at least'} {minimum:g}{unit}: {fix}")
        return number
    return check


def number(kind=float, minimum: float = 0.0, *, strict: bool = True, unit: str = "", optional: bool = False):
    """The type of a number setting above (or, not strict, at least) `minimum`; optional: it may be unset (None)."""
    check = _number(kind, minimum, strict, unit)
    if optional:
        return Annotated[Optional[kind], BeforeValidator(lambda value: None if value is None else check(value))]
    return Annotated[kind, BeforeValidator(check)]


Seconds = number(float, 0.0, unit=" s")  # a wait, a timeout or an interval
Count = number(int, 0)  # a whole number above 0: a port, a partition count, a limit


def url_check(what: str, *schemes: str) -> Callable[[Any], Any]:
    """A validator for a URL setting that must start with one of `schemes` (an unset optional one passes)."""
    def check(value: Any) -> Any:
        if value is not None and not str(value).startswith(schemes):
            raise ValueError(f"is not {what}: it starts with {' or '.join(schemes)}")
        return value
    return check


def listed(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A validator for a list setting: comma separated text, or a list (Streamlit secrets, a test's values) joined
    by commas first; an unset optional one passes."""
    def check(value: Any) -> Any:
        return None if value is None else parse(value if isinstance(value, str) else ",".join(map(str, value)))
    return check


# The mappings a load() reads, innermost first: the environment, then (dashboard) Streamlit secrets.
_GIVEN: ContextVar[tuple[Mapping[str, Any], ...]] = ContextVar("settings_sources", default=())
_SECRET_FIELDS = {"MONGO_URI", "COINGECKO_API_KEY"}


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, a test's dict, st.secrets)."""

    def __init__(self, settings_cls, values: Mapping[str, Any]):
        self._values = {k: str(v) for k, v in values.items() if v is not None}
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self):
        return parse_env_vars(self._values, True, True, None)


class SharedSettings(BaseSettings):
    """The settings both processes read; the field's alias is its environment variable (README's table)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", validate_assignment=True,
                                      populate_by_name=True, env_ignore_empty=True)

    mongo_uri: str = Field(defaults.MONGO_URI, alias="MONGO_URI")
    mongo_db: str = Field("crypto", alias="MONGO_DB")
    interval: Seconds = Field(defaults.INTERVAL_S, alias="CRYPTO_INTERVAL")  # the worker's polls; the dashboard's "stale"
    forecasts: bool = Field(True, alias="CRYPTO_FORECASTS")  # the worker learns them, the dashboard says if off

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        given = _GIVEN.get() or (os.environ,)
        return (init_settings, *(_MappingSource(settings_cls, values) for values in given))

    _mongo_uri = field_validator("mongo_uri", mode="before")(url_check("a MongoDB URI", "mongodb://", "mongodb+srv://"))

    def __repr_args__(self):
        # A settings object that ends up in a log or a traceback shows no password.
        for name, value in super().__repr_args__():
            yield name, mask_uri(value) if name == "mongo_uri" else value

    @property
    def server(self) -> str:
        """The MongoDB servers, safe to show (no credentials)."""
        return mongo_servers(self.mongo_uri)


def one_line(exc: ValidationError, name: str | None = None) -> ConfigError:
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


S = TypeVar("S", bound=SharedSettings)


def load_settings(cls: type[S], environ: Mapping[str, Any] | None = None,
                  secrets: Mapping[str, Any] | None = None) -> S:
    """`cls` from `environ` (default os.environ), then `secrets` (Streamlit's), then the defaults."""
    token = _GIVEN.set(tuple(m for m in (os.environ if environ is None else environ, secrets) if m is not None))
    try:
        return cls()
    except ValidationError as exc:
        raise one_line(exc) from None
    finally:
        _GIVEN.reset(token)
