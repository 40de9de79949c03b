"""Prices: the tick record, the agents that move it, the views that serve it."""
