"""The pages: the demo page, served by the handler itself at /demo (and at / to a browser), and the
labelling page of `captcha-ocr label`. Every URL in them is relative, so they work behind any
path prefix."""

from functools import cache
from importlib import resources

DEMO_PAGE = "index.html"
LABEL_PAGE = "label.html"


@cache
def page(name: str) -> str:
    """A page of this folder, read once per process."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
