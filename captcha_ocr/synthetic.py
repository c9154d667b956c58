"""Reproducible captchas from the `captcha` library.

captcha >= 0.7.1 draws every random choice from the `secrets` module, so seeding `random` changes
nothing. We hand its module a seeded stand-in with the same three functions it calls, which makes
each (seed, index) pair always produce the same image, in any process and any order.

Outside `training/` because the handler's /sample route (the demo page) and the benchmarks use it too;
it needs the `captcha` library (pinned in runtime-pins.txt, so it is in the SCF bundle) but never
TensorFlow.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import captcha.image
from captcha.image import ImageCaptcha

CAPTCHA_WIDTH, CAPTCHA_HEIGHT = 160, 60
_patch_lock = threading.Lock()
_generator = ImageCaptcha(width=CAPTCHA_WIDTH, height=CAPTCHA_HEIGHT)  # caches its loaded fonts


class SeededSecrets:
    """The subset of `secrets` that captcha.image uses, backed by a seeded `random.Random`."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq: Any) -> Any:
        return self._rng.choice(seq)


def derive_seed(*parts: object) -> int:
    """A stable 64-bit seed from any parts, e.g. ("train", 7, 1234): no collisions between purposes."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@contextmanager
def seeded_captcha(seed: int) -> Iterator[None]:
    with _patch_lock:
        original = captcha.image.secrets
        captcha.image.secrets = SeededSecrets(seed)
        try:
            yield
        finally:
            captcha.image.secrets = original


def random_text(rng: random.Random, charset: str, lengths: tuple[int, ...]) -> str:
    return "".join(rng.choice(charset) for _ in range(rng.choice(lengths)))


def synthetic_captcha(seed: int, charset: str, lengths: tuple[int, ...]) -> tuple[str, bytes]:
    """One captcha as (text, PNG bytes), fully determined by `seed`."""
    text = random_text(random.Random(seed), charset, lengths)
    with seeded_captcha(seed):
        png = _generator.generate(text, format="png").getvalue()
    return text, png
