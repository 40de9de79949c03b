"""The alert rule model: what a rule may say, its one-line validation messages and its MongoDB document.

Pure (pydantic and the standard library, no driver, no Faust, no Streamlit): the CLI, the worker and the
dashboard's form validate with this one module, so a rule refused in one place is refused everywhere.

Kinds and their threshold (a rule fires when the observed value reaches the threshold):
- `above` / `below`: a price in the tick's currency (USD), e.g. 100000.
- `change_pct`: a SIGNED percentage over `window_s`: +3 fires when the price has risen 3 % or more from
  the lowest price within the window, -3 when it has fallen 3 % or more from the highest. A move in
  either direction is two rules (one +3, one -3): each then has one crossing direction and one band.
- `volume_spike`: a positive percentage: the 24 h volume (`volume_24h` of the tick) has risen that much
  from its lowest value within `window_s`.
- `spread_bps`: (ask - bid) / mid in basis points, fires at or above the threshold; needs ticks with bid
  and ask, which only some sources give (see `check_bid_ask`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection, Iterable, Iterator
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cryptoapp.alerts.wording import CLI, HINTS, RuleError, Wording, one_line
from cryptoapp.schema import TICKER_RE, UTC, bson_time, granularity_seconds, is_finite_number
from cryptoapp.uris import mask_webhook_url

KINDS = ("above", "below", "change_pct", "volume_spike", "spread_bps")
WINDOW_KINDS = frozenset({"change_pct", "volume_spike"})
MIN_WINDOW_S = 60
MAX_WINDOW_S = 86400  # the volume is already a 24 h figure; a longer price window belongs to the history
RULE_ID_RE = re.compile(r"[0-9a-f]{8}")
Kind = Literal["above", "below", "change_pct", "volume_spike", "spread_bps"]
PayloadFormat = Literal["json", "slack", "discord"]
__all__ = ["CLI", "RuleError", "Wording", "one_line"]  # re-exported: the errors' words live in wording.py


def new_rule_id() -> str:
    """A short random id, given once at creation and never changed (8 hex digits: 4 billion values)."""
    return secrets.token_hex(4)


def parse_window(value: object) -> int:
    """Seconds from '15m', '1h', '90s', '1d' or a number of seconds; ValueError with the fix otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration: use e.g. 15m, 1h or 90s")
    if isinstance(value, (int, float)):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    else:
        seconds = granularity_seconds(value.strip().lower()) if isinstance(value, str) else 0
        if not seconds:
            raise ValueError(f"{value!r} is not a duration: use e.g. 15m, 1h or 90s")
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S or seconds != int(seconds):
        raise ValueError(f"{value!r} is outside 1m to 24h: use e.g. 15m or 1h")
    return int(seconds)


def format_window(seconds: Optional[int]) -> str:
    """900 -> '15m', 3600 -> '1h', 90 -> '90s'; '' for no window."""
    if not seconds:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _stripped_lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _webhook_url(value: object) -> Optional[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("give an http(s) URL, e.g. https://hooks.slack.com/services/...")
    value = value.strip()
    shown = mask_webhook_url(value)
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError(f"{shown!r} is not a valid URL: give e.g. https://example.com/hook") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{shown!r} is not an http(s) URL: give e.g. https://hooks.slack.com/services/...")
    if any(c.isspace() for c in value):
        raise ValueError(f"{shown!r} holds spaces: give the URL exactly as the receiving service shows it")
    return value


def _rule_id(value: str) -> str:
    if not RULE_ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a rule id (8 hex digits, as `cryptoapp alerts list` shows)")
    return value


def _ticker(value: object) -> object:
    if isinstance(value, str):
        ticker = value.strip().upper()
        if not TICKER_RE.fullmatch(ticker):
            raise ValueError(f"{value!r} is not a ticker: use 1-15 letters or digits, e.g. BTC")
        return ticker
    return value


def _finite_threshold(value: float) -> float:
    if not is_finite_number(value):
        raise ValueError(f"{value!r} is not a finite number: {HINTS['threshold']}")
    return value


def _window_or_none(value: object) -> Optional[int]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_window(value)


def _utc_time(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is not None and value.tzinfo is None:
        raise ValueError("the time has no time zone: give it in UTC")
    return None if value is None else bson_time(value)


class Delivery(BaseModel):
    """Where a rule's firings go: a webhook (optional; without one they are only stored) and its payload."""

    model_config = ConfigDict(extra="forbid")

    webhook: Optional[str] = Field(default=None, repr=False)  # holds a secret: never in a repr
    format: PayloadFormat = "json"

    _webhook = field_validator("webhook", mode="before")(_webhook_url)
    _format = field_validator("format", mode="before")(_stripped_lower)


class AlertRule(BaseModel):
    """One alert rule; stored in crypto.alert_rules with its id as `_id`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_rule_id)
    coin: str
    kind: Kind
    threshold: float
    window_s: Optional[int] = None
    enabled: bool = True
    delivery: Delivery = Field(default_factory=Delivery)
    created_at: dt.datetime = Field(default_factory=lambda: bson_time(dt.datetime.now(UTC)))
    updated_at: Optional[dt.datetime] = None  # set to created_at when not given; bumped by pause/resume

    _id = field_validator("id")(_rule_id)
    _coin = field_validator("coin", mode="before")(_ticker)
    _kind = field_validator("kind", mode="before")(_stripped_lower)
    _threshold = field_validator("threshold")(_finite_threshold)
    _window = field_validator("window_s", mode="before")(_window_or_none)
    _utc = field_validator("created_at", "updated_at")(_utc_time)

    @model_validator(mode="after")
    def _fits_kind(self, info: ValidationInfo) -> "AlertRule":
        # Model-level messages carry their field name themselves (pydantic gives them no location), in the words of
        # the place the rule was typed (new_rule's `words`).
        t, kind, words = self.threshold, self.kind, (info.context or {}).get("words", CLI)
        threshold, window = words.field("threshold"), words.field("window")
        if kind in ("above", "below") and t <= 0:
            raise ValueError(f"{threshold}: a price must be positive, e.g. {kind} 100000")
        if kind == "change_pct" and t == 0:
            raise ValueError(f"{threshold}: change_pct needs a signed percentage, e.g. 3 (a rise of 3 %) or -3 "
                             "(a fall of 3 %)")
        if kind == "change_pct" and t <= -100:
            raise ValueError(f"{threshold}: a price cannot fall {-t:g} %: use a fall under 100 %, e.g. -3")
        if kind in ("volume_spike", "spread_bps") and t <= 0:
            example = "50 (volume up 50 %)" if kind == "volume_spike" else "20 (20 basis points)"
            raise ValueError(f"{threshold}: {kind} needs a positive number, e.g. {example}")
        if kind in WINDOW_KINDS and self.window_s is None:
            raise ValueError(f"{window}: {kind} needs a window, e.g. {words.window_example}")
        if kind not in WINDOW_KINDS and self.window_s is not None:
            raise ValueError(f"{window}: only change_pct and volume_spike take a window; {kind} does not")
        if self.updated_at is None:
            self.updated_at = self.created_at
        return self

    # --- how it is shown and stored ---------------------------------------------------------------------
    @property
    def unit(self) -> str:
        return {"above": "USD", "below": "USD", "spread_bps": "bps"}.get(self.kind, "%")

    def describe(self) -> str:
        """One line a person reads: 'BTC above 100,000 USD', 'ETH down 3 % within 15m'."""
        window = format_window(self.window_s)
        if self.kind in ("above", "below"):
            return f"{self.coin} {self.kind} {self.threshold:,.10g} USD"
        if self.kind == "change_pct":
            return f"{self.coin} {'up' if self.threshold > 0 else 'down'} {abs(self.threshold):g} % within {window}"
        if self.kind == "volume_spike":
            return f"{self.coin} 24h volume up {self.threshold:g} % within {window}"
        return f"{self.coin} spread above {self.threshold:g} bps"

    def shown(self) -> dict[str, Any]:
        """The rule as a table row, safe to display: the webhook masked."""
        return {"id": self.id, "coin": self.coin, "rule": self.describe(), "kind": self.kind,
                "threshold": self.threshold, "window": format_window(self.window_s), "enabled": self.enabled,
                "webhook": mask_webhook_url(self.delivery.webhook), "format": self.delivery.format,
                "created_at": self.created_at}

    def to_document(self) -> dict[str, Any]:
        """The crypto.alert_rules document (every field present, null where unset)."""
        doc = self.model_dump()
        return {"_id": doc.pop("id"), **doc}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "AlertRule":
        """The rule a stored document holds; RuleError (one line, with its _id) for a malformed one."""
        fields = {k: v for k, v in doc.items() if k != "_id"}
        try:
            return cls(id=doc.get("_id"), **fields)
        except ValidationError as exc:
            raise RuleError(f"stored rule {doc.get('_id')!r}: {one_line(exc)}") from None
        except TypeError as exc:
            raise RuleError(f"stored rule {doc.get('_id')!r}: {exc}") from None


def shown_rules(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Optional[dict[str, Any]], str]]:
    """Each stored rule document with the rule as shown (AlertRule.shown) and "", or None and its problem (one
    line) when the document is malformed: a listing shows the problem, not a crash."""
    for doc in docs:
        try:
            yield doc, AlertRule.from_document(doc).shown(), ""
        except RuleError as exc:
            yield doc, None, str(exc)


def new_rule(coin: object, kind: object, threshold: object, *, window: object = None, webhook: object = None,
             format: object = "json", enabled: bool = True, coins_with_bid_ask: Collection[str] = (),
             words: Wording = CLI) -> AlertRule:
    """A new rule from user input (CLI arguments, form fields); RuleError with one line, in `words`, when it is not
    usable. The coin is a ticker here (rule_input.rule_from_input takes the spellings of CRYPTO_SYMBOLS).

    `coins_with_bid_ask`: the tickers whose ticks carry bid and ask, as the running sources give them;
    a spread_bps rule for any other coin is refused.
    """
    try:
        rule = AlertRule.model_validate({"coin": coin, "kind": kind, "threshold": threshold, "window_s": window,
                                         "enabled": enabled, "delivery": {"webhook": webhook, "format": format}},
                                        context={"words": words})
    except ValidationError as exc:
        raise RuleError(one_line(exc, words)) from None
    check_bid_ask(rule, coins_with_bid_ask, words)
    return rule


def check_bid_ask(rule: AlertRule, coins_with_bid_ask: Collection[str], words: Wording = CLI) -> None:
    """Refuses a spread_bps rule for a coin whose ticks have no bid/ask (CoinGecko gives none)."""
    if rule.kind == "spread_bps" and rule.coin not in coins_with_bid_ask:
        having = ", ".join(sorted(coins_with_bid_ask)) or "none"
        raise RuleError(f"{words.field('coin')}: {rule.coin} has no bid/ask from the running sources (coins with bid/ask: "
                        f"{having}); spread_bps needs a source that quotes {rule.coin}'s bid and ask, "
                        "such as an exchange")
