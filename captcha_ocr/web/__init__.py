"""The demo page, served by the handler itself at /demo (and at / to a browser)."""

from functools import cache
from importlib import resources


@cache
def demo_page() -> str:
    """index.html, read once: every URL in it is relative, so it works behind any path prefix."""
    return resources.files(__name__).joinpath("index.html").read_text(encoding="utf-8")
