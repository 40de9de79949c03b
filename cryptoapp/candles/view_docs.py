"""A view document as a reader gets it: its tail put in (what the view holds now) and its packed arrays as numpy
columns, no Python object per point. Pure; the rings themselves are in cryptoapp.candles.rings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np

from cryptoapp.candles.rings import BAR_ARRAYS, TICK_ARRAYS, TICK_RING_SIZE, TickRing
from cryptoapp.schema import RESOLUTIONS


def tail_extends(doc: Optional[Mapping], tail: Optional[Mapping]) -> bool:
    """Whether `tail` holds ticks newer than ring document `doc`: it was written over the revision `doc` is at."""
    return bool(doc and tail and tail.get("base_rev") == doc.get("rev"))


def with_tail(doc: Optional[Mapping], tail: Optional[Mapping]) -> Optional[Mapping]:
    """A ring document with its tail in it: what the view holds now.

    Bars go to their slots (a slot keeps the newer bar). For ticks, the usual case, every tail tick newer than the
    ring's newest, is a concatenation of the packed arrays; a late tick in the tail goes through TickRing, which
    decides between two ticks at one time as the archive does."""
    if not tail_extends(doc, tail):
        return doc
    if doc["kind"] != "ticks":
        return _bars_with_tail(doc, tail)
    body, extra = columns(doc), columns(tail)
    if not extra["t"].size:
        return doc
    ordered = bool(np.all(np.diff(extra["t"]) > 0)) and (not body["t"].size or extra["t"][0] > body["t"][-1])
    if not ordered:
        ring = TickRing.from_document(doc)
        for row in TickRing.from_document(tail).rows_held():
            ring.add_values(*row)
        return {**ring.document(tail["updated_at"]), "rev": doc.get("rev")}
    sources = sorted(set(doc.get("sources") or []) | set(tail.get("sources") or []))
    codes = {name: np.array([sources.index(s) for s in part.get("sources") or []] or [0], dtype="<f8")
             for name, part in (("doc", doc), ("tail", tail))}
    body["src"] = codes["doc"][body["src"].astype(int)] if body["src"].size else body["src"]
    extra["src"] = codes["tail"][extra["src"].astype(int)]
    merged = {name: np.concatenate([body[name], extra[name]])[-TICK_RING_SIZE:].astype("<f8").tobytes()
              for name in (*TICK_ARRAYS, "src")}
    return {**doc, **merged, "sources": sources, "updated_at": tail["updated_at"]}


def _bars_with_tail(doc: Mapping, tail: Mapping) -> Mapping:
    body, extra = columns(doc), columns(tail)
    size, step = len(body["t"]), RESOLUTIONS[doc["kind"]]
    slots = (extra["t"] // step).astype(int) % size
    held = body["t"][slots]
    newer = np.isnan(held) | (held <= extra["t"])
    merged = {}
    for name in (*BAR_ARRAYS, "src"):
        column = body[name].copy()
        column[slots[newer]] = extra[name][newer]
        merged[name] = column.astype("<f8").tobytes()
    return {**doc, **merged, "updated_at": tail["updated_at"]}


def columns(doc: Mapping) -> dict[str, "np.ndarray"]:
    """A view document's packed arrays as numpy arrays (float64, little-endian); NaN where a value is none (and for
    an array the document was saved without)."""
    names = TICK_ARRAYS if doc["kind"] == "ticks" else BAR_ARRAYS
    size = len(doc["t"]) // 8
    return {name: np.frombuffer(bytes(doc[name]), dtype="<f8") if name in doc else np.full(size, np.nan)
            for name in (*names, "src")}
