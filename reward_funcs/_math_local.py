r"""Judge simple answers in-process, without SymPy: numbers, closed forms, and tuples, intervals and sets of them.

The rules follow math-verify's: tuples and intervals are ordered (and an interval's brackets matter),
sets and bare lists are not, ``x = 3`` equals ``3``. When either side is outside what this module
understands the verdict is None and the pair goes to the math-verify worker. One exception: a power tower
such as ``9^{9^{9^{9}}}`` provably equals no number (nor set of numbers) understood here, so against
such a gold it is rejected at once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reward_funcs._math_closed_form import ClosedForm, closed_form, is_huge_power
from reward_funcs._math_numbers import PlainNumber, numbers_match, parse_plain_number

_MAX_ELEMENTS = 32
_CACHE_SIZE = 1 << 16
_ASSIGNMENT = re.compile(r"\s*([A-Za-z])\s*=(?!=)")
_INFINITY = re.compile(r"([-+]?)\s*(?:\\infty|\\inf|∞|oo)")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_OPENING = "([{"
_CLOSING = ")]}"


@dataclass(frozen=True)
class Infinity:
    """``\\infty`` or ``-\\infty``, as an interval end."""

    sign: int


Element = PlainNumber | ClosedForm | Infinity


@dataclass(frozen=True)
class AnswerList:
    """A tuple or interval (``kind`` is its two brackets, e.g. ``[)``) or a set (``kind == "set"``)."""

    kind: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class LocalAnswer:
    """An answer this module understands, with the variable it was assigned to (``x = 3``), if any."""

    variable: str | None
    value: Element | AnswerList


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_locally(answer: str) -> LocalAnswer | None:
    r"""Parse an answer in-process, or None when it needs math-verify.

    >>> parse_locally(r"x = 2\sqrt{3}").variable, parse_locally(r"[1, \infty)").value.kind
    ('x', '[)')
    >>> parse_locally("x^2 + 1") is None
    True
    """
    variable = None
    assignment = _ASSIGNMENT.match(answer)
    if assignment is not None:
        variable, answer = assignment.group(1), answer[assignment.end() :]
        if "=" in answer:
            return None
    value: Element | AnswerList | None = _element(answer)
    if value is None:
        value = _answer_list(answer)
    return None if value is None else LocalAnswer(variable, value)


def local_verdict(gold: LocalAnswer, answer: str) -> bool | None:
    r"""Whether ``answer`` equals ``gold``; None when only math-verify can tell.

    >>> gold = parse_locally(r"(1, 2\sqrt{2})")
    >>> local_verdict(gold, r"(1, \sqrt{8})"), local_verdict(gold, r"(2\sqrt{2}, 1)"), local_verdict(gold, "(1, y)")
    (True, False, None)
    """
    predicted = parse_locally(answer)
    if predicted is None:
        if is_huge_power(answer):
            return False  # 9^{9^{9^{9}}} equals no number (or set of numbers) parsed here; SymPy may take minutes
        return None
    if gold.variable is not None and predicted.variable is not None and gold.variable != predicted.variable:
        return None  # x = 3 vs y = 3: math-verify compares the equations
    return _values_verdict(gold.value, predicted.value)


def _values_verdict(gold: Element | AnswerList, predicted: Element | AnswerList) -> bool | None:
    if isinstance(gold, AnswerList) != isinstance(predicted, AnswerList):
        return None  # e.g. a set vs one number: math-verify has rules for that
    if not isinstance(gold, AnswerList) or not isinstance(predicted, AnswerList):
        return _elements_verdict(gold, predicted)
    if gold.kind != predicted.kind:
        return None  # e.g. an open interval vs a bare list: math-verify has rules for that
    if gold.kind == "set":
        return _sets_verdict(gold.elements, predicted.elements)
    if len(gold.elements) != len(predicted.elements):
        return False
    return _all_verdicts(
        _elements_verdict(g, p) for g, p in zip(gold.elements, predicted.elements, strict=True)
    )


def _sets_verdict(gold: tuple[Element, ...], predicted: tuple[Element, ...]) -> bool | None:
    """Equal as sets: every element of each side equals some element of the other."""
    gold_covered = _all_verdicts(_any_verdict(_elements_verdict(g, p) for p in predicted) for g in gold)
    predicted_covered = _all_verdicts(_any_verdict(_elements_verdict(g, p) for g in gold) for p in predicted)
    return _all_verdicts([gold_covered, predicted_covered])


def _all_verdicts(verdicts: Iterable[bool | None]) -> bool | None:
    """False if any verdict is False, else None if any is None, else True."""
    undecided = False
    for verdict in verdicts:
        if verdict is False:
            return False
        undecided = undecided or verdict is None
    return None if undecided else True


def _any_verdict(verdicts: Iterable[bool | None]) -> bool | None:
    """True if any verdict is True, else None if any is None, else False."""
    undecided = False
    for verdict in verdicts:
        if verdict is True:
            return True
        undecided = undecided or verdict is None
    return None if undecided else False


def _elements_verdict(gold: Element, predicted: Element) -> bool | None:
    if isinstance(gold, PlainNumber) and isinstance(predicted, PlainNumber):
        return numbers_match(gold, predicted)
    if isinstance(gold, Infinity) or isinstance(predicted, Infinity):
        return gold == predicted
    if isinstance(gold, ClosedForm) and isinstance(predicted, ClosedForm):
        return gold == predicted
    number, closed = (gold, predicted) if isinstance(gold, PlainNumber) else (predicted, gold)
    assert isinstance(number, PlainNumber) and isinstance(closed, ClosedForm)
    rational = closed.rational_value()
    if rational is not None:
        as_number = PlainNumber(rational)
        return numbers_match(number, as_number) if number is gold else numbers_match(as_number, number)
    if number.decimal or number.percent:
        return None  # 1.5708 vs pi/2 depends on math-verify's rounding rules
    return False  # a rational never equals an irrational closed form


def _element(text: str) -> Element | None:
    text = _SIZING.sub("", text).strip()
    number = parse_plain_number(text)
    if number is not None:
        return number
    infinity = _INFINITY.fullmatch(text)
    if infinity is not None:
        return Infinity(-1 if infinity.group(1) == "-" else 1)
    return closed_form(text)


def _answer_list(text: str) -> AnswerList | None:
    text = _SIZING.sub("", text).strip()
    if text.startswith("\\{") and text.endswith("\\}"):
        kind, inner = "set", text[2:-2]
    elif text[:1] in "([" and text[-1:] in ")]" and _outer_brackets_pair(text):
        kind, inner = text[0] + text[-1], text[1:-1]
    else:
        kind, inner = "set", text  # a bare list "1, 2" is a set for math-verify
    parts = _split_top_level(inner)
    if parts is None or not 2 <= len(parts) <= _MAX_ELEMENTS:
        return None
    elements = []
    for part in parts:
        element = _element(part)
        if element is None:
            return None
        elements.append(element)
    return AnswerList(kind, tuple(elements))


def _outer_brackets_pair(text: str) -> bool:
    """Whether the first bracket of ``text`` closes at its last character (so "(1)+(2)" is not enclosed)."""
    depth = 0
    for index, char in enumerate(text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
            if depth == 0:
                return index == len(text) - 1
    return False


def _split_top_level(text: str) -> list[str] | None:
    """Split on commas outside brackets; None if the brackets do not balance."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth != 0:
        return None
    parts.append(text[start:])
    return parts
