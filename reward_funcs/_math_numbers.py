"""Plain numbers (``1,234``, ``-0.5``, ``\\$3``, ``50\\%``, ``\\frac{1}{3}``, ``12 cm``, ``30^\\circ``) parsed and compared
exactly with :class:`fractions.Fraction`, so that most answers are scored without SymPy.

The comparison follows math-verify's rules for numbers: exact equality, or equality after rounding to
six decimals when either side is written as a decimal; a percentage also matches its value without the
percent sign and its value divided by 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

FLOAT_ROUNDING = 6  # decimals, as math-verify's default ``float_rounding``
_MAX_DIGITS = 1000  # longer digit strings go to the verifier (int() refuses > 4300 digits anyway)
_MAX_LENGTH = 200  # a longer answer is not a plain number; also bounds the work done here

_NUMBER = re.compile(
    r"(?P<sign>[-+−]?)\s*(?:\\\$|\$|€|£)?\s*"
    r"(?:"
    r"\\[dt]?frac\s*\{\s*(?P<frac_num>\d+)\s*\}\s*\{\s*(?P<frac_den>\d+)\s*\}"
    r"|\\[dt]?frac(?P<short_num>\d)(?P<short_den>\d)"
    r"|(?P<integer>\d{1,3}(?:,\d{3})+|\d+)(?P<decimal>\.\d+)?(?:\s*/\s*(?P<denominator>\d+))?"
    r"|(?P<bare_decimal>\.\d+)"
    r")"
    r"(?P<percent>\s*(?:\\%|%|percent(?![A-Za-z])))?"
)
_TRAILING_SPACE = re.compile(r"\s*\Z")
_THIN_SPACE_SEPARATOR = re.compile(r"(?<=\d)(?:\\,|\{,\})(?=\d{3}(?!\d))")
_UNIT_TOKEN = re.compile(
    r"(?P<space>\s*)(?:"
    r"(?P<degree>\^\s*\{?\s*\\circ\s*\}?|°|\\degree)"
    r"|\\(?:text|mathrm|mbox|textrm|rm)\s*\{(?P<text>[A-Za-z .]*)\}"
    r"|(?P<word>[A-Za-z]+)(?![A-Za-z])"
    r"|\\[,;:! ]|~"
    r")(?:\s*\^\s*\{?\s*[23]\s*\}?)?"
)
# fmt: off
# Units that may follow a number without a space; any word of two letters or more may follow after one.
_ATTACHED_UNITS = frozenset(
    {
        "m", "cm", "mm", "km", "kg", "g", "mg", "s", "ms", "sec", "min", "h", "hr", "hrs", "ml", "mL", "L",
        "l", "ft", "in", "yd", "mi", "lb", "lbs", "oz", "mph", "kph", "cal", "kcal", "J", "kJ", "W", "kW", "V",
        "K", "N", "Pa", "Hz", "deg", "st", "nd", "rd", "th",
    }
)
# Words after a number that change its value or make it an expression rather than a unit.
_NOT_UNITS = frozenset(
    {
        "pi", "e", "i", "j", "sqrt", "root", "roots", "inf", "infinity", "ln", "log", "sin", "cos", "tan",
        "cot", "sec", "csc", "exp", "mod", "and", "or", "to", "times", "plus", "minus", "over", "divided",
        "by", "squared", "cubed", "hundred", "hundreds", "thousand", "thousands", "million", "millions",
        "billion", "billions", "trillion", "dozen", "dozens", "half", "halves", "third", "thirds", "quarter",
        "quarters", "tenths", "hundredths",
    }
)
# fmt: on


@dataclass(frozen=True)
class PlainNumber:
    """A number as written: its exact value, whether it was a decimal, and whether it carried a percent sign."""

    value: Fraction
    decimal: bool = False
    percent: bool = False


def parse_plain_number(answer: str) -> PlainNumber | None:
    r"""Parse ``answer`` if it is a plain number with optional currency, percent sign and units; else None.

    >>> parse_plain_number(r"\$1,234.50")
    PlainNumber(value=Fraction(2469, 2), decimal=True, percent=False)
    >>> parse_plain_number(r"\frac{1}{3}").value, parse_plain_number(r"30^\circ").value
    (Fraction(1, 3), Fraction(30, 1))
    >>> parse_plain_number("12 cm").value, parse_plain_number("2 pi"), parse_plain_number("5x")
    (Fraction(12, 1), None, None)
    """
    if len(answer) > _MAX_LENGTH:
        return None
    text = _THIN_SPACE_SEPARATOR.sub(",", answer.strip()).replace("\\!", "")
    match = _NUMBER.match(text)
    if match is None or not _only_units(text, match.end()):
        return None
    value = _value(match)
    if value is None:
        return None
    if match.group("sign") in ("-", "−"):
        value = -value
    decimal = bool(match.group("decimal") or match.group("bare_decimal"))
    return PlainNumber(value, decimal=decimal, percent=bool(match.group("percent")))


def _value(match: re.Match[str]) -> Fraction | None:
    groups = match.groupdict()
    if groups["frac_num"] is not None:
        numerator, denominator = groups["frac_num"], groups["frac_den"]
    elif groups["short_num"] is not None:
        numerator, denominator = groups["short_num"], groups["short_den"]
    elif groups["bare_decimal"] is not None:
        return Fraction(groups["bare_decimal"])
    else:
        integer = groups["integer"].replace(",", "")
        if len(integer) > _MAX_DIGITS:
            return None
        if groups["denominator"] is not None:
            if groups["decimal"]:
                return None  # 1.5/2 is an expression, leave it to the verifier
            numerator, denominator = integer, groups["denominator"]
        else:
            return Fraction(integer + (groups["decimal"] or ""))
    if len(numerator) > _MAX_DIGITS or len(denominator) > _MAX_DIGITS or int(denominator) == 0:
        return None
    return Fraction(int(numerator), int(denominator))


def _only_units(text: str, position: int) -> bool:
    """Whether ``text[position:]`` holds nothing but units, degree signs and spacing commands."""
    while position < len(text):
        if _TRAILING_SPACE.match(text, position):
            return True
        token = _UNIT_TOKEN.match(text, position)
        if token is None or token.end() == position:
            return False
        attached = not token.group("space") and position > 0 and text[position - 1].isdigit()
        if token.group("word") is not None and not _is_unit_word(token.group("word"), attached):
            return False
        if token.group("text") is not None and not all(
            _is_unit_word(word, False) for word in token.group("text").split()
        ):
            return False
        position = token.end()
    return True


def _is_unit_word(word: str, attached: bool) -> bool:
    if word.lower() in _NOT_UNITS:
        return False
    if attached or len(word) == 1:
        return word in _ATTACHED_UNITS
    return True


def numbers_match(gold: PlainNumber, prediction: PlainNumber) -> bool:
    """Whether two plain numbers are the same answer.

    >>> numbers_match(parse_plain_number("1/3"), parse_plain_number("0.333333"))
    True
    >>> numbers_match(parse_plain_number("1/3"), parse_plain_number("0.33"))
    False
    >>> numbers_match(parse_plain_number("50%"), parse_plain_number("0.5"))
    True
    >>> numbers_match(parse_plain_number("50%"), parse_plain_number("5000%"))
    False
    """
    rounded = gold.decimal or prediction.decimal
    return any(
        _values_match(gold_value, predicted_value, rounded)
        for gold_value in _readings(gold, prediction)
        for predicted_value in _readings(prediction, gold)
    )


def _readings(number: PlainNumber, other: PlainNumber) -> tuple[Fraction, ...]:
    """``50%`` reads as 50 or 0.5 against a number without a percent sign, and as 50 against another percentage."""
    if number.percent and not other.percent:
        return number.value, number.value / 100
    return (number.value,)


def _values_match(gold: Fraction, prediction: Fraction, rounded: bool) -> bool:
    if gold == prediction:
        return True
    return rounded and round(gold, FLOAT_ROUNDING) == round(prediction, FLOAT_ROUNDING)
