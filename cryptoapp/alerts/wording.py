"""How a rule's one-line errors name its fields: RuleError, the words of each place rules are typed in (the CLI's
arguments and flags, the dashboard form's labels) and pydantic's errors said in them. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pydantic import ValidationError

from cryptoapp.uris import mask_webhook_url

# How a field is called where users type it (CLI flags, form labels) when pydantic names it otherwise.
FIELD_NAMES = {"window_s": "window", "delivery.webhook": "webhook", "delivery.format": "format"}
HINTS = {
    "threshold": "give a number, e.g. 100000 for a price or 3 for 3 %",
    "enabled": "use true or false",
    "created_at": "use an ISO-8601 time with a time zone",
}


class RuleError(ValueError):
    """A rule that cannot be accepted; the message is one line naming the field and the fix."""


@dataclasses.dataclass(frozen=True)
class Wording:
    """How a place where people type rules names their fields in its one-line errors: the CLI its arguments and
    flags, the dashboard's form its labels."""

    fields: Mapping[str, str]  # a rule field (coin, kind, threshold, window, webhook, format) -> its name there
    window_example: str  # how a window is given there, e.g. "--window 15m"
    untracked: str  # how to store a rule for a coin the worker does not track, e.g. "add --untracked"

    def field(self, name: str) -> str:
        return self.fields.get(name, name)


CLI = Wording({}, "--window 15m", "add --untracked to store the rule anyway")


def one_line(exc: ValidationError, words: Wording = CLI) -> str:
    """pydantic's errors as one line naming the (first) field, as `words` name it, and the fix."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = FIELD_NAMES.get(".".join(str(p) for p in first["loc"]), ".".join(str(p) for p in first["loc"]))
    kind, given = first["type"], first.get("input")
    if kind == "value_error":
        message = str(first["ctx"]["error"])
    elif kind == "literal_error":
        message = f"{given!r} is not one of {first['ctx']['expected']}"
    elif kind == "missing":
        message = "is missing" + (f": {HINTS[field]}" if field in HINTS else "")
    elif kind == "extra_forbidden":
        message = "is not a rule field"
    elif kind.startswith(("float_", "int_")) and field != "webhook":
        message = f"{given!r} is not a number" + (f": {HINTS[field]}" if field in HINTS else "")
    elif kind.startswith("bool_"):
        message = f"{given!r} is not true or false"
    else:
        if field == "webhook":  # never echo a URL that may hold a token
            given = mask_webhook_url(given) if isinstance(given, str) else type(given).__name__
        message = f"{given!r} is not valid ({first['msg'][0].lower()}{first['msg'][1:]})"
        if field in HINTS:
            message += f": {HINTS[field]}"
    line = f"{words.field(field)}: {message}" if field else message
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return line
