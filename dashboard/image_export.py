"""A figure as a PNG, drawn by kaleido in headless Chromium within a deadline."""

from __future__ import annotations

import concurrent.futures
import os
import shutil

import plotly.graph_objects as go

PNG_TIMEOUT_S = 30.0


class PngExportError(RuntimeError):
    """A chart could not be turned into a PNG; the message says why and what to install or change."""


def chromium_path() -> str | None:
    """The browser kaleido will use: BROWSER_PATH, else a Chrome/Chromium on PATH."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if os.path.exists(configured) else None
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    return next((path for path in map(shutil.which, names) if path), None)


def figure_png(fig: go.Figure, width: int = 1200, height: int = 600, timeout_s: float = PNG_TIMEOUT_S) -> bytes:
    """The figure as a PNG of width x height pixels, drawn by kaleido in headless Chromium."""
    if chromium_path() is None:
        raise PngExportError("PNG export needs Chromium, which was not found: install it "
                             "(apt-get install chromium, or scripts/services.sh up chromium) or set BROWSER_PATH")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="png-export")
    # A hung browser must not hold the page: wait at most timeout_s, then give up on it.
    future = pool.submit(fig.to_image, format="png", width=width, height=height)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise PngExportError(f"PNG export took longer than {timeout_s:g} s and was abandoned; try again") from None
    except Exception as exc:  # kaleido reports a missing or broken browser in several ways
        raise PngExportError(f"PNG export failed: {str(exc).splitlines()[0][:200]}") from None
    finally:
        pool.shutdown(wait=False)
