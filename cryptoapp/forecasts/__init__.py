"""Forecasts learned online from closed 1-minute bars, scored by progressive validation against the naive forecast."""
