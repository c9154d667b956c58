"""answers: what an arithmetic captcha asks for, by a parser (never eval)."""

from __future__ import annotations

import pytest

from captcha_ocr.answers import MAX_CHARS, answer, is_question


@pytest.mark.parametrize("text, value", [
    ("3+5=?", 8), ("3+5", 8), ("3+5=", 8), ("3+5?", 8), ("12-7=?", 5), ("2+3*4=?", 14), ("2*3+4", 10),
    ("8-2-1", 5), ("8÷2=?", 4), ("9/3", 3), ("6×7=?", 42), ("6x7", 42), ("6X7=?", 42), ("6*7", 42),
    ("-3+5", 2), ("3--2", 5), ("3+-2", 1), ("(2+3)*4=?", 20), ("2*(3+(4-1))", 12),
    ("３＋５＝？", 8), ("１２－７", 5), ("６×７＝?", 42), ("８÷２", 4), ("0+0=?", 0), (" 3 + 5 = ? ", 8),
])
def test_precedence_signs_brackets_tails_and_full_width(text, value):
    assert answer(text) == (value, None)


@pytest.mark.parametrize("text, reason", [
    ("7÷2=?", "not a whole number"), ("7/0", "division by zero"), ("k7dm", "not a digit or an operator"),
    ("3+", "ends where a number must be"), ("", "empty"), ("=?", "empty"), ("3+5=8", "not a digit"),
    ("(3+5", "not closed"), ("((((1))))", "deep"), ("1" + "+1" * MAX_CHARS, f"over {MAX_CHARS} characters"),
    ("3 5", "not one arithmetic expression"), ("3+5=?=?", "not a digit"),
])
def test_what_has_no_answer_says_why(text, reason):
    result = answer(text)
    assert result.value is None and reason in result.reason


def test_an_expression_of_10000_characters_costs_nothing():
    result = answer("9*" * 5000 + "9")
    assert result.value is None and "characters" in result.reason


def test_a_label_is_a_question_when_it_has_an_answer():
    assert is_question("3+5=?") and is_question("12×3") and not is_question("k7dm") and not is_question("7÷2")
