"""`cryptoapp alerts add|list|pause|resume|delete`: manage the alert rules in MongoDB; a running worker applies a change within seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Optional

import aiohttp
from faust.cli import AppCommand, argument, option

from cryptoapp.alerts.rule_input import CoinError, Tracked, alert_coin
from cryptoapp.alerts.rules import RULE_ID_RE, RuleError, new_rule, shown_rules
from cryptoapp.app import app
from cryptoapp.coins import spellings
from cryptoapp.schema import UTC, iso_z
from cryptoapp.sources.catalogue import tracked_coins
from cryptoapp.storage import PriceStore, StorageError

ACTIONS = ("add", "list", "pause", "resume", "delete")
ADD_USAGE = ("add needs COIN KIND THRESHOLD, e.g. `cryptoapp alerts add BTC above 100000` or "
             "`cryptoapp alerts add ETH change_pct -3 --window 15m`")
WORKER_TIMEOUT = 5.0  # seconds the command waits for the worker's /prices/ view


class UserError(Exception):
    """Bad input or an unusable service: one line for the user, exit status 1."""


class QuickCommand(AppCommand):
    """A command run on a plain event loop (Faust's documented way: override __call__), not inside mode's
    Worker, whose shutdown always sleeps a second or two: every `cryptoapp alerts` call took 2 s, now 0.5 s."""

    abstract = True

    def __call__(self, *args, **kwargs) -> None:
        asyncio.run(self.execute(*self.args, *args, **{**self.kwargs, **kwargs}))


@app.command(
    argument("action"),
    argument("args", nargs=-1),
    option("--window", default=None, help="change_pct and volume_spike: the window, e.g. 15m, 1h, 90s."),
    option("--webhook", default=None, help="URL the alert is POSTed to (optional: without one it is only stored)."),
    option("--format", "payload_format", default="json",
           help="Webhook payload: json (documented in the README), slack ({'text'}) or discord ({'content'})."),
    option("--paused", is_flag=True, default=False, help="add: create the rule paused."),
    option("--untracked", is_flag=True, default=False,
           help="add: store a rule for a coin the worker does not track (CRYPTO_SYMBOLS); it waits until it does."),
    base=QuickCommand,
)
async def alerts(self: AppCommand, action: str, args: tuple[str, ...], window: Optional[str],
                 webhook: Optional[str], payload_format: str, paused: bool, untracked: bool) -> None:
    """Price alerts: add COIN KIND THRESHOLD [--window W] [--webhook URL] [--format F] | list | pause ID | resume ID | delete ID.

    COIN is spelled as in CRYPTO_SYMBOLS (a CoinGecko id or a ticker: bitcoin or BTC) and must be one the worker
    tracks (else exit 2), unless --untracked. KIND is above or below (a price in USD), change_pct (a signed %,
    e.g. 3 or -3, with --window), volume_spike (24 h volume up by a %, with --window) or spread_bps (bid/ask
    spread in basis points).
    """
    try:
        await _alerts(self, action, args, (window, webhook, payload_format), paused, untracked)
    except (UserError, RuleError) as exc:
        # file=, not err=True: Faust passes its stdout as click.echo's file, which then ignores err.
        self.say(f"cryptoapp alerts: {exc}", file=self.stderr)
        raise SystemExit(2 if isinstance(exc, CoinError) else 1) from None


# A negative threshold (change_pct -3, a fall) would otherwise be taken for an unknown option `-3`;
# options the command does not know then arrive among the arguments and are refused there by name.
alerts._click.context_settings["ignore_unknown_options"] = True


async def _alerts(command: AppCommand, action: str, args: tuple[str, ...], delivery: tuple, paused: bool,
                  untracked: bool) -> None:
    if action not in ACTIONS:
        raise UserError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    unknown = [a for a in args if a.startswith("--")]
    if unknown:
        raise UserError(f"{unknown[0]} is not an option of `cryptoapp alerts`: use --window, --webhook, --format, "
                        "--paused or --untracked")
    if action == "add":
        if len(args) != 3:
            raise UserError(ADD_USAGE)
        await _add(command, *args, delivery, paused, untracked)
        return
    if action == "list":
        if args:
            raise UserError("list takes no arguments")
        async with _store() as store:
            docs = await store.alerts.list_rules()
        command.say(_listing(docs, _tracked(), as_json=command.json))
        return
    if len(args) != 1:
        raise UserError(f"{action} needs one rule id, e.g. `cryptoapp alerts {action} 3f9a2c1b`")
    rule_id = args[0].strip().lower()
    if not RULE_ID_RE.fullmatch(rule_id):
        raise UserError(f"id: {args[0]!r} is not a rule id (8 hex digits, as `cryptoapp alerts list` shows)")
    async with _store() as store:
        if action == "delete":
            found = await store.alerts.delete_rule(rule_id)
        else:
            found = await store.alerts.set_rule_enabled(rule_id, action == "resume", dt.datetime.now(UTC))
    if not found:
        raise UserError(f"id: no rule {rule_id}; `cryptoapp alerts list` shows the rules")
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
    command.say(f"rule {rule_id} {done}; a running worker applies it within seconds")


def _tracked() -> Tracked:
    """The coins the worker prices, from the settings it reads (CRYPTO_SYMBOLS, resolved as it resolves them)."""
    coins, catalogue = tracked_coins(app.settings)
    return Tracked.of(coins, spellings(catalogue))


async def _add(command: AppCommand, coin: str, kind: str, threshold: str, delivery: tuple, paused: bool,
               untracked: bool) -> None:
    tracked = _tracked()
    ticker = alert_coin(coin, tracked, untracked=untracked)
    window, webhook, payload_format = delivery
    with_book = await _coins_with_bid_ask(str(ticker)) if kind.strip().lower() == "spread_bps" else set()
    rule = new_rule(ticker, kind, threshold, window=window, webhook=webhook, format=payload_format,
                    enabled=not paused, coins_with_bid_ask=with_book)
    async with _store() as store:
        await store.alerts.add_rule(rule.to_document())
    shown = rule.shown()
    where = f" -> {shown['webhook']} ({shown['format']})" if shown["webhook"] else " (stored only: no --webhook)"
    state = " [paused]" if paused else f" [waiting: the worker does not track {rule.coin}]" \
        if tracked.waits(rule.coin) else ""
    command.say(f"added rule {rule.id}: {rule.describe()}{where}{state}; a running worker applies it within seconds")


class _store:
    """PriceStore for one command, its failures turned into one line."""

    async def __aenter__(self) -> PriceStore:
        self.store = PriceStore(app.settings.mongo_uri, app.settings.mongo_db)
        await self.store.start()
        return self.store

    async def __aexit__(self, kind, exc, tb) -> None:
        await self.store.stop()
        if isinstance(exc, StorageError):
            raise UserError(str(exc)) from None


def _listing(docs: list[dict], tracked: Tracked, as_json: bool) -> str:
    """The rules as a table (or JSON); an enabled rule for a coin the worker does not track shows as waiting."""
    rows, bad = [], []
    for _, row, problem in shown_rules(docs):
        if row is None:
            bad.append(problem)
            continue
        state = ("waiting" if tracked.waits(row["coin"]) else "enabled") if row["enabled"] else "paused"
        rows.append({**row, "state": state})
    if as_json:
        return json.dumps([{**r, "created_at": iso_z(r["created_at"])} for r in rows] + [{"error": b} for b in bad])
    if not rows and not bad:
        return "no alert rules yet: add one with `cryptoapp alerts add BTC above 100000`"
    table = [("ID", "RULE", "STATE", "WEBHOOK", "FORMAT", "CREATED")] + [
        (r["id"], r["rule"], r["state"], r["webhook"] or "-", r["format"],
         iso_z(r["created_at"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    return "\n".join(lines + [f"skipped: {b}" for b in bad])


def _quoted(tick: object) -> bool:
    return isinstance(tick, dict) and tick.get("bid_price") is not None and tick.get("ask_price") is not None


async def _coins_with_bid_ask(coin: str) -> set[str]:
    """The tickers with a series whose newest tick carries bid and ask, as the running worker's views show them:
    the coin itself from /prices/<TICKER>/?source=<CRYPTO_EXCHANGE> (routed to the worker that owns the coin),
    the others this worker holds from /prices/ (named in a refusal, so the user sees which coins could have a
    spread_bps rule)."""
    ticker = coin.strip().upper()
    settings = app.settings
    host = "127.0.0.1" if settings.web_bind in ("", "0.0.0.0", "::") else settings.web_bind
    base = f"http://{host}:{settings.web_port}/prices/"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WORKER_TIMEOUT)) as session:
            async with session.get(f"{base}{ticker}/", params={"source": settings.exchange}) as resp:
                if resp.status not in (200, 404):
                    raise UserError(f"coin: cannot tell whether {ticker} has bid/ask: the worker at {base}{ticker}/ "
                                    f"answered HTTP {resp.status}; try again in a few seconds")
                own = await resp.json() if resp.status == 200 else None
            async with session.get(base) as resp:
                held = await resp.json() if resp.status == 200 else {}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        raise UserError(f"coin: cannot tell whether {ticker} has bid/ask: no worker answers at {base}; spread_bps "
                        "rules are checked against the running sources, so start the worker (make run) first") from None
    quoted = {tick.get("ticker") for tick in (held.values() if isinstance(held, dict) else ()) if _quoted(tick)}
    return quoted | {ticker} if _quoted(own) else quoted - {ticker}
