r"""Judge one completion against its gold answers: extraction, the kind of gold, and the comparison.

Runs inside the verification worker (:mod:`reward_funcs._verify_worker`), under its timeout, so that no
completion can stall the caller. math-verify stays the engine for mathematics; what it does not decide
well is decided before it is asked:

* a multiple-choice gold (``B``, ``(B)``, ``(A) 12``) compares on the letter; an answer that names several
  letters (``B or C``) or disowns one (``B is wrong``) picks none;
* a gold made of words (``Yes``, ``even``, ``listen``) compares as normalized text, never as a product of
  variables; a gold that spells out a number (``forty two``) cannot be read and scores None;
* a clock time (``2:30``) compares as a time, not as the ratio 2:30;
* an answer that negates itself (``7 is not correct``, ``x \neq 7``) scores 0;
* units must match when both sides have them (``5 m`` is not ``5 km``), after converting one quantity's units
  into the gold's (``5000 m`` is ``5 km``: :mod:`reward_funcs._math_units`);
* numbers compare exactly or within the gold's own precision (:func:`reward_funcs._math_numbers.numbers_match`),
  also against irrational values (``3.14`` and ``\pi``, ``1.41421`` and ``\sqrt{2}``);
* ``\varnothing``, ``\sqrt{-1}``, trigonometry in degrees and mixed numbers are rewritten into forms
  math-verify reads; integers of any length compare digit by digit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from reward_funcs._math_closed_form import closed_form
from reward_funcs._math_extract import completion_answer, gold_answer, gold_choice, predicted_choice
from reward_funcs._math_local import LocalAnswer, local_verdict, parse_locally
from reward_funcs._math_numbers import (
    PlainNumber,
    decimal_matches_exact,
    mixed_number,
    parse_plain_number,
    split_unit,
    within_precision,
)
from reward_funcs._math_text import (
    clock_time,
    has_number_words,
    is_negated,
    is_word_answer,
    normalized_words,
    same_time,
)
from reward_funcs._math_units import scaled, unit_ratio

_GOLD_CACHE_SIZE = 16384
_LONG_INTEGER_DIGITS = 200  # shorter integers are plain numbers
_INTEGER = re.compile(r"([-−+]?)\s*(\d{1,3}(?:,\d{3})+|\d+)")
_EMPTY_SET = re.compile(r"\\varnothing(?![A-Za-z])|∅|\\\{\s*\\\}")
_IMAGINARY_UNIT = re.compile(r"\\sqrt\s*\{\s*-\s*1\s*\}|\\sqrt\s*-\s*1(?!\d)")
_TRIG_DEGREES = re.compile(
    r"\\(sin|cos|tan|cot|sec|csc)\s*(\()?\s*(\d{1,6}(?:\.\d{1,6})?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)\s*(?(2)\))"
)
_ANSWER_PREVIEW = 1000  # characters of an extracted answer sent back for the completions table


class Verifier(Protocol):
    """The math-verify side of the judge (see :class:`reward_funcs._verify_worker.Verifier`)."""

    def score(self, gold: str, prediction: str, soft_timeout: float | None = None) -> float | None: ...

    def parses(self, gold: str) -> bool: ...

    def numeric_value(self, answer: str) -> Fraction | None: ...


CHOICE, WORDS, TIME, LONG_INTEGER, MATH, UNREADABLE = "choice", "words", "time", "long integer", "math", "unreadable"


@dataclass(frozen=True)
class Gold:
    """A gold answer, read once: its kind and what the comparison for that kind needs."""

    kind: str
    text: str  # for MATH, the value without its unit, in the form math-verify reads
    choice: str | None = None
    words: str = ""
    time: tuple[int, int, int, str | None] | None = None
    unit: str = ""
    local: LocalAnswer | None = None
    number: PlainNumber | None = None


@functools.lru_cache(maxsize=_GOLD_CACHE_SIZE)
def parse_gold(solution: str) -> Gold | None:
    r"""Read a gold solution; None when it holds no answer at all.

    >>> parse_gold(r"so the answer is $\boxed{\frac{1}{2}}$").local.value.value
    Fraction(1, 2)
    >>> parse_gold("(A) 12").choice, parse_gold(r"\text{Yes}").kind, parse_gold("forty two").kind, parse_gold("  ")
    ('A', 'words', 'unreadable', None)
    >>> parse_gold("5 km").unit, parse_gold("2:30").kind
    ('km', 'time')
    """
    answer = gold_answer(solution)
    if not answer:
        return None
    choice = gold_choice(answer)
    if choice is not None:
        return Gold(CHOICE, answer, choice=choice)
    time = clock_time(answer)
    if time is not None:
        return Gold(TIME, answer, time=time)
    if is_word_answer(answer):
        if has_number_words(answer):
            return Gold(UNREADABLE, answer)
        return Gold(WORDS, answer, words=normalized_words(answer))
    digits = long_integer(answer)
    if digits is not None:
        return Gold(LONG_INTEGER, digits)
    value, unit = split_unit(math_form(answer))
    return Gold(MATH, value, unit=unit, local=parse_locally(value), number=parse_plain_number(value))


def long_integer(answer: str) -> str | None:
    """An integer of more than ``_LONG_INTEGER_DIGITS`` digits, canonical (sign, no separators), else None.

    >>> long_integer("-" + "0" + "9" * 300) == "-" + "9" * 300, long_integer("12") is None
    (True, True)
    """
    if len(answer) <= _LONG_INTEGER_DIGITS:
        return None
    match = _INTEGER.fullmatch(answer.strip())
    if match is None:
        return None
    digits = match.group(2).replace(",", "").lstrip("0") or "0"
    if len(digits) <= _LONG_INTEGER_DIGITS:
        return None
    return ("-" if match.group(1) in ("-", "−") else "") + digits


def math_form(answer: str) -> str:
    r"""Rewrite what math-verify misreads: ``\varnothing``, ``\sqrt{-1}``, degrees in trigonometry, mixed numbers.

    >>> math_form(r"\sin 60^\circ"), math_form(r"\varnothing"), math_form(r"2\sqrt{-1}"), math_form("1 1/2")
    ('\\sin(60\\pi/180)', '\\emptyset', '2i', '\\frac{3}{2}')
    """
    answer = _EMPTY_SET.sub(r"\\emptyset ", answer).strip()
    answer = _IMAGINARY_UNIT.sub("i", answer)
    answer = _TRIG_DEGREES.sub(lambda match: f"\\{match.group(1)}({match.group(3)}\\pi/180)", answer)
    return mixed_number(answer)


def judge_completion(text: str, solutions: list[str | None], verifier: Verifier) -> tuple[float | None, str]:
    """The score of one completion against its acceptable golds (the best verdict; None when no gold can be
    read), and the answer extracted from it (for the completions table)."""
    verdicts: list[float | None] = []
    answers: dict[bool, str | None] = {}
    shown = ""
    for solution in solutions:
        gold = None if solution is None else parse_gold(solution)
        if gold is None or gold.kind == UNREADABLE:
            verdicts.append(None)
            continue
        choice = gold.kind == CHOICE
        if choice not in answers:
            answers[choice] = completion_answer(text, choice=choice)
        answer = answers[choice]
        shown = shown or (answer or "")[:_ANSWER_PREVIEW]
        verdicts.append(judge_answer(gold, answer, verifier))
    judged = [verdict for verdict in verdicts if verdict is not None]
    return (max(judged) if judged else None), shown


def judge_answer(gold: Gold, answer: str | None, verifier: Verifier) -> float | None:
    """1.0 / 0.0 for an extracted ``answer`` (None: there was none), or None when the gold cannot be read."""
    if gold.kind == MATH:
        return _judge_math(gold, answer, verifier)
    if not answer:
        return 0.0
    if gold.kind == CHOICE:
        return float(predicted_choice(answer) == gold.choice)
    if gold.kind == WORDS:
        return float(normalized_words(answer) == gold.words)
    if gold.kind == TIME:
        time = clock_time(answer)
        return float(time is not None and gold.time is not None and same_time(gold.time, time))
    if gold.kind == LONG_INTEGER:
        return float(long_integer(answer) == gold.text)
    return None


def _judge_math(gold: Gold, answer: str | None, verifier: Verifier) -> float | None:
    if gold.local is None and not verifier.parses(gold.text):
        return None
    if not answer or (is_negated(answer) and not is_negated(gold.text)):
        return 0.0
    value, unit = split_unit(math_form(answer))
    if gold.unit and unit and gold.unit != unit:
        ratio = unit_ratio(unit, gold.unit)
        if ratio is None:
            return 0.0
        number = parse_plain_number(value)
        value = scaled(value, ratio, number.value if number is not None else None)
    if gold.local is not None:
        verdict = local_verdict(gold.local, value)
        if verdict is not None:
            return float(verdict)
    precision = _precision_verdict(gold, value, verifier)
    if precision is not None:
        return float(precision)
    return verifier.score(gold.text, value)


def _precision_verdict(gold: Gold, value: str, verifier: Verifier) -> bool | None:
    """A decimal on one side and an irrational number on the other: compared within the decimal's precision.

    True when they match; None when this rule does not apply or does not match (math-verify then decides).
    """
    if gold.number is not None and gold.number.place is not None:
        exact = _exact_value(value, verifier)
        return True if exact is not None and within_precision(gold.number, exact) else None
    answer_number = parse_plain_number(value)
    if answer_number is None or answer_number.place is None:
        return None
    exact = _exact_value(gold.text, verifier)
    return True if exact is not None and decimal_matches_exact(answer_number, exact) else None


def _exact_value(text: str, verifier: Verifier) -> Fraction | None:
    """The numeric value of an exact answer (``\\pi``, ``\\frac{\\sqrt{3}}{2}``, ``\\sin(\\pi/3)``), or None."""
    number = parse_plain_number(text)
    if number is not None:
        return None if number.place is not None else number.value
    form = closed_form(text)
    if form is not None:
        return form.approximate()
    return verifier.numeric_value(text)
