"""What a reading means, per model task: an arithmetic captcha ("3+5=?") asks for its answer, 8.

A parser, never `eval`: integers, `+ - × x * ÷ /` with the usual precedence, unary minus, one
level of brackets at most a few deep, full-width forms (＋－×÷＊／＝？ and ０-９), and a trailing `=`,
`=?` or `?`. Division must come out whole (captcha sites ask whole-number questions): a quotient
that does not, a division by zero, an expression of more than MAX_CHARS characters or more than
MAX_DEPTH brackets deep, or a reading that is not an expression at all, gives no answer and says why.
"""

from __future__ import annotations

import re
from typing import NamedTuple

TASKS = ("text", "arithmetic")
# the operators a question's reading holds, as the general model's charset draws them (and as its
# generator places them: only in questions, never in text)
OPERATORS = "+-*=?"
MAX_CHARS = 32  # "12×34+56÷7=?" is 12; a reading much longer is not a question a captcha asks
MAX_DEPTH = 3
_FULL_WIDTH = str.maketrans("０１２３４５６７８９＋－×÷＊／＝？（）", "0123456789+-*/*/=?()")
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_TAIL = re.compile(r"\s*=?\s*\??\s*$")


class Answer(NamedTuple):
    value: int | None
    reason: str | None = None  # why there is no value


class _NoAnswer(Exception):
    pass


def normalise(text: str) -> str:
    """Full-width and look-alike operators to ASCII (x and X mean times, as captchas draw them)."""
    return text.translate(_FULL_WIDTH).replace("x", "*").replace("X", "*")


def answer(text: str) -> Answer:
    """The integer an arithmetic reading asks for, or None with the reason."""
    if len(text) > MAX_CHARS:
        return Answer(None, f"the reading is over {MAX_CHARS} characters: no question a captcha asks")
    expression = _TAIL.sub("", normalise(text))
    try:
        tokens = _tokens(expression)
        value, position = _sum(tokens, 0, 0)
        if position != len(tokens):
            raise _NoAnswer("the reading is not one arithmetic expression")
    except _NoAnswer as problem:
        return Answer(None, str(problem))
    return Answer(value)


def is_question(text: str) -> bool:
    """Whether a label is an arithmetic question with an answer (training picks the task from its labels)."""
    return answer(text).value is not None


def _tokens(expression: str) -> list[str]:
    tokens, position = [], 0
    while position < len(expression):
        found = _TOKEN.match(expression, position)
        if not found:
            raise _NoAnswer(f"{expression[position:position + 1]!r} is not a digit or an operator")
        tokens.append(found.group(1) or found.group(2))
        position = found.end()
    if not tokens:
        raise _NoAnswer("the reading is empty")
    return tokens


def _sum(tokens: list[str], position: int, depth: int) -> tuple[int, int]:
    value, position = _product(tokens, position, depth)
    while position < len(tokens) and tokens[position] in "+-":
        operator = tokens[position]
        right, position = _product(tokens, position + 1, depth)
        value = value + right if operator == "+" else value - right
    return value, position


def _product(tokens: list[str], position: int, depth: int) -> tuple[int, int]:
    value, position = _unary(tokens, position, depth)
    while position < len(tokens) and tokens[position] in "*/":
        operator = tokens[position]
        right, position = _unary(tokens, position + 1, depth)
        if operator == "*":
            value *= right
        elif right == 0:
            raise _NoAnswer("a division by zero")
        elif value % right:
            raise _NoAnswer(f"{value}/{right} is not a whole number")
        else:
            value //= right
    return value, position


def _unary(tokens: list[str], position: int, depth: int) -> tuple[int, int]:
    if position < len(tokens) and tokens[position] in "+-":  # a sign; MAX_CHARS bounds how many
        sign = -1 if tokens[position] == "-" else 1
        value, position = _unary(tokens, position + 1, depth)
        return sign * value, position
    return _atom(tokens, position, depth)


def _atom(tokens: list[str], position: int, depth: int) -> tuple[int, int]:
    if position >= len(tokens):
        raise _NoAnswer("the expression ends where a number must be")
    token = tokens[position]
    if token == "(":
        if depth >= MAX_DEPTH:
            raise _NoAnswer(f"brackets more than {MAX_DEPTH} deep")
        value, position = _sum(tokens, position + 1, depth + 1)
        if position >= len(tokens) or tokens[position] != ")":
            raise _NoAnswer("a bracket is not closed")
        return value, position + 1
    if not token.isdigit():
        raise _NoAnswer(f"{token!r} where a number must be")
    return int(token), position + 1
