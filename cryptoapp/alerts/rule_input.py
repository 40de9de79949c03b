"""A new rule from what a person typed, checked the same way in the CLI and the dashboard's form: the coin spelled as
CRYPTO_SYMBOLS spells it (a CoinGecko id or a ticker), and refused, with the tracked coins, when the worker does not
price it, unless asked for; the errors in the words of the place it was typed (cryptoapp.alerts.wording). Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from cryptoapp.alerts.rules import AlertRule, new_rule
from cryptoapp.alerts.wording import CLI, RuleError, Wording
from cryptoapp.coins import Coin, nearest_ids


class CoinError(RuleError):
    """A rule for a coin nobody knows, or one the worker does not track (the CLI exits with 2 for it)."""


@dataclasses.dataclass(frozen=True)
class Tracked:
    """The coins a rule may name: the tickers the worker prices, and every spelling of a known coin, lower case ->
    the coin (cryptoapp.coins.spellings)."""

    tickers: tuple[str, ...]
    names: Mapping[str, Coin]

    @classmethod
    def of(cls, coins: Iterable[Coin], names: Mapping[str, Coin]) -> "Tracked":
        coins = tuple(coins)
        return cls(tuple(c.ticker for c in coins),
                   {**names, **{c.ticker.lower(): c for c in coins}, **{c.coin_id: c for c in coins}})

    def waits(self, ticker: str) -> bool:
        """Whether a rule for `ticker` waits: the worker does not price that coin (yet)."""
        return ticker not in self.tickers


def alert_coin(given: object, tracked: Tracked, *, untracked: bool = False, words: Wording = CLI) -> object:
    """The ticker the coin a person typed means ("bitcoin", "btc", "BTC" -> "BTC"). A coin the worker does not
    track is refused with the tracked ones (CoinError), unless `untracked`; anything else not a string is left to
    the rule's own checks."""
    if not isinstance(given, str) or not given.strip():
        return given
    name = given.strip()
    coin = tracked.names.get(name.lower())
    if coin is not None and not tracked.waits(coin.ticker):
        return coin.ticker
    if untracked:
        return coin.ticker if coin is not None else name
    label, listed = words.field("coin"), ", ".join(tracked.tickers) or "none"
    if coin is not None:
        raise CoinError(f"{label}: {coin.ticker} ({coin.coin_id}) is not among the coins the worker tracks "
                        f"({listed}): add it to CRYPTO_SYMBOLS and restart the worker, or {words.untracked} (it "
                        "waits until the coin is tracked)")
    near = ", ".join(nearest_ids(name, tracked.names)) or "none"
    raise CoinError(f"{label}: {name!r} is no coin id or ticker the catalogue knows (nearest known ids: {near}); "
                    f"the worker tracks {listed}")


def rule_from_input(coin: object, kind: object, threshold: object, *, tracked: Tracked, untracked: bool = False,
                    words: Wording = CLI, **fields) -> AlertRule:
    """cryptoapp.alerts.rules.new_rule for a coin as a person names it (alert_coin); `fields` are new_rule's."""
    return new_rule(alert_coin(coin, tracked, untracked=untracked, words=words), kind, threshold, words=words,
                    **fields)
