"""The request budget on what ships: every hostile class against the SCF bundle under Python 3.10.

One fresh `python -I -S` process per case inside the unzipped bundle (bench/budget.py runs the
same cases and prints the table in the README). Each case must get its documented answer within
BUDGET_PEAK_MB of peak RSS and BUDGET_SECONDS of wall time, and its log lines must stay short and
free of the image.
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO, b64

sys.path.insert(0, str(REPO / "bench"))
from budget import BUDGET_PEAK_MB, BUDGET_SECONDS, run_in_bundle  # noqa: E402
from hostile import CLASS_COUNT, Case, cases  # noqa: E402

MIN_CLASSES = 60


@pytest.fixture(scope="session")
def hostile_cases(captcha_sample) -> list[Case]:
    return cases(captcha_sample.data, captcha_sample.text)


@pytest.fixture(scope="session")
def captcha_sample(fresh_captchas):
    return fresh_captchas[1]


def test_the_corpus_has_every_class_once(hostile_cases):
    names = [case.name for case in hostile_cases]
    assert len(names) == len(set(names)) == CLASS_COUNT >= MIN_CLASSES


@pytest.mark.slow
@pytest.mark.parametrize("index", range(CLASS_COUNT))
def test_hostile_class_on_the_bundle(unzipped_bundle, hostile_cases, captcha_sample, index):
    case = hostile_cases[index]
    root, python = unzipped_bundle
    measured = run_in_bundle(root, python, case.event)
    assert (measured.status, measured.code) == (case.status, case.code), case.name
    if case.text is not None:
        assert measured.text == case.text, case.name
    assert measured.peak_mb <= BUDGET_PEAK_MB, f"{case.name}: peak RSS {measured.peak_mb} MB"
    assert measured.seconds <= BUDGET_SECONDS, f"{case.name}: {measured.seconds} s"
    image = b64(captcha_sample.data)
    for line in measured.log_lines:
        assert len(line) < 600 and image[20:60] not in line, f"{case.name}: log line {line[:200]!r}"
