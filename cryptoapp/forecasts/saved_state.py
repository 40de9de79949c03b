"""The forecasters' saved state as bytes: a header naming format and River release, then a pickle loaded safely."""

from __future__ import annotations

import importlib.metadata
import io
import json
import pickle
from collections.abc import Collection
from typing import Any, Optional

FORMAT_VERSION = 1  # of dump(); raise it whenever the pickled classes change shape
_MAGIC = b"cryptoapp-forecast-state"
# Pickled River models are only trusted by the River release that wrote them.
RIVER_RELEASE = ".".join(importlib.metadata.version("river").split(".")[:2])


class StateFormatError(ValueError):
    """Saved forecast state this code cannot load (another format or River release, or damaged); says which."""


def dump(state: Any, ticker: str) -> bytes:
    """`state` (a CoinForecaster) pickled behind the header line."""
    header = json.dumps({"format": FORMAT_VERSION, "river": RIVER_RELEASE, "ticker": ticker})
    return _MAGIC + b" " + header.encode() + b"\n" + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def load(data: bytes, kind_modules: Collection[Optional[str]]) -> Any:
    """What dump() wrote; StateFormatError (one line) for anything else. Besides this package's classes and River's,
    only those of `kind_modules` (the modules of the configured model kinds) are loaded."""
    if not isinstance(data, (bytes, bytearray)) or not data.startswith(_MAGIC + b" "):
        raise StateFormatError("the saved forecast state is not one this program wrote")
    line, _, body = bytes(data).partition(b"\n")
    try:
        header = json.loads(line[len(_MAGIC) + 1:])
    except ValueError:
        raise StateFormatError("the saved forecast state has a damaged header") from None
    if header.get("format") != FORMAT_VERSION or header.get("river") != RIVER_RELEASE:
        raise StateFormatError(f"the saved forecast state has format {header.get('format')} (River "
                               f"{header.get('river')}); this worker reads format {FORMAT_VERSION} "
                               f"(River {RIVER_RELEASE})")
    try:
        return _StateUnpickler(io.BytesIO(body), kind_modules).load()
    except Exception as exc:  # a truncated or damaged pickle raises any of a dozen types
        raise StateFormatError(f"the saved forecast state is damaged ({exc.__class__.__name__})") from None


class _StateUnpickler(pickle.Unpickler):
    """Loads only what a forecast state holds: this package's classes, River's, the model kinds' own, and a
    few plain types; anything else (a function to call, another package) fails the load."""

    PACKAGES = ("cryptoapp.forecasts.", "river.")
    PLAIN = {"builtins": {"float", "int", "complex", "bool", "str", "bytes", "bytearray", "tuple", "list",
                          "dict", "set", "frozenset", "slice", "range"},
             "collections": {"deque", "OrderedDict", "defaultdict", "Counter"},
             "datetime": {"datetime", "date", "timedelta", "timezone"}}

    def __init__(self, file, kind_modules: Collection[Optional[str]]) -> None:
        super().__init__(file)
        self.kind_modules = kind_modules

    def find_class(self, module: str, name: str):
        if not ((module + ".").startswith(self.PACKAGES) or module in self.kind_modules
                or name in self.PLAIN.get(module, ())):
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a forecast state")
        return super().find_class(module, name)
