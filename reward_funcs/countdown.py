"""Countdown reward: the answer equation must use exactly the given numbers and equal the target.

The equation is evaluated without ``eval``: it is parsed with :mod:`ast` and only non-negative
integer literals, ``+ - * /``, unary minus/plus and parentheses are accepted. Arithmetic is exact
(:class:`fractions.Fraction`), so ``7 / 3 * 3`` equals 7. No power operator exists, and the
equation length is capped, so no input can make the evaluation slow.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction
from typing import Any

from reward_funcs._text import column, completion_to_text
from reward_funcs.registry import register

MAX_EQUATION_CHARS = 300
_ALLOWED_CHARS = re.compile(r"[0-9+\-*/()\s]+")
_BARE_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_SYMBOLS = {
    "\\times": "*",
    "\\cdot": "*",
    "×": "*",
    "·": "*",
    "\\div": "/",
    "÷": "/",
    "−": "-",
    "\\left": "",
    "\\right": "",
    "\\(": "",
    "\\)": "",
    "\\[": "",
    "\\]": "",
    "$": "",
}
_BINARY_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class InvalidEquation(ValueError):
    """The text is not an equation made of integers, + - * / and parentheses."""


def extract_equation(text: str) -> str:
    """The last ``<answer>...</answer>`` content, else the last non-empty line.

    >>> extract_equation("<think>try 3 * 5</think> <answer> (7 - 3) * 5 + 2 </answer>")
    '(7 - 3) * 5 + 2'
    """
    lowered = text.lower()
    end = lowered.rfind("</answer>")
    start = lowered.rfind("<answer>", 0, end) if end != -1 else -1
    if start != -1:
        return text[start + len("<answer>") : end].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _split_claim(equation: str) -> tuple[str, Fraction | None]:
    """Normalise symbols and split ``expr = 22`` (or ``22 = expr``) into the expression and the claim."""
    for symbol, replacement in _SYMBOLS.items():
        equation = equation.replace(symbol, replacement)
    equation = equation.strip().rstrip(".").strip()
    sides = equation.split("=")
    if len(sides) == 1:
        return equation, None
    if len(sides) == 2:
        left, right = sides
        if _BARE_NUMBER.fullmatch(right):
            return left.strip(), Fraction(right.strip())
        if _BARE_NUMBER.fullmatch(left):
            return right.strip(), Fraction(left.strip())
    raise InvalidEquation("an equation with '=' must have a bare number on one side")


def evaluate_equation(equation: str) -> tuple[Fraction, list[int]]:
    """Exact value of ``equation`` and the integer literals it uses; raises on anything else.

    >>> evaluate_equation("(7 - 3) * 5 + 2")
    (Fraction(22, 1), [7, 3, 5, 2])
    >>> evaluate_equation("__import__('os')")
    Traceback (most recent call last):
    ...
    reward_funcs.countdown.InvalidEquation: unsupported characters in the equation

    Division by zero raises :class:`ZeroDivisionError`.
    """
    if len(equation) > MAX_EQUATION_CHARS:
        raise InvalidEquation(f"equation longer than {MAX_EQUATION_CHARS} characters")
    equation, claimed = _split_claim(equation)
    if not _ALLOWED_CHARS.fullmatch(equation):
        raise InvalidEquation("unsupported characters in the equation")
    try:
        tree = ast.parse(equation, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise InvalidEquation(f"not a valid expression: {error}") from None
    literals: list[int] = []

    def value_of(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](value_of(node.left), value_of(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = value_of(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        raise InvalidEquation(f"unsupported syntax: {type(node).__name__}")

    try:
        value = value_of(tree.body)
    except RecursionError:
        raise InvalidEquation("equation nested too deeply") from None
    if claimed is not None and claimed != value:
        raise InvalidEquation(f"the equation states {claimed} but evaluates to {value}")
    return value, literals


def _as_fraction(value: Any) -> Fraction | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Fraction(str(value).strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        return None


def _as_numbers(value: Any) -> list[Fraction] | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    numbers = [_as_fraction(item) for item in value]
    return None if any(number is None for number in numbers) else numbers  # type: ignore[return-value]


def score_equation(text: str, numbers: list[Fraction], target: Fraction) -> float:
    try:
        value, literals = evaluate_equation(extract_equation(text))
    except (InvalidEquation, ZeroDivisionError):
        return 0.0
    uses_each_number_once = Counter(Fraction(literal) for literal in literals) == Counter(numbers)
    return 1.0 if uses_each_number_once and value == target else 0.0


@register("countdown")
def countdown_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the answer equation uses each of ``numbers`` exactly once and equals ``target``.

    Columns ``numbers`` (list of ints) and ``target``; a row without them scores None.

    >>> countdown_reward(
    ...     ["<answer>(7 - 3) * 5 + 2</answer>", "<answer>7 * 3 + 5</answer>", "<answer>22</answer>"],
    ...     numbers=[[3, 5, 7, 2]] * 3,
    ...     target=[22] * 3,
    ... )
    [1.0, 0.0, 0.0]
    >>> countdown_reward(["<answer>1 + 2</answer>"])
    [None]
    """
    size = len(completions)
    scores: list[float | None] = []
    for completion, numbers, target in zip(
        completions, column(kwargs, "numbers", size), column(kwargs, "target", size), strict=True
    ):
        given, goal = _as_numbers(numbers), _as_fraction(target)
        if given is None or goal is None:
            scores.append(None)
            continue
        scores.append(score_equation(completion_to_text(completion), given, goal))
    return scores
