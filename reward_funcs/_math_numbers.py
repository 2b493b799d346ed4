r"""Plain numbers (``1,234``, ``1 000``, ``-0.5``, ``\$3``, ``50\%``, ``\frac{1}{3}``, ``6.02e23``, ``12 cm``,
``30^\circ``) parsed and compared exactly with :class:`fractions.Fraction`, so that most answers are scored
without SymPy; and the units written after a value.

Two numbers are the same answer when their values are equal, or within the precision the gold is written
with (see :func:`numbers_match`): the tolerance follows the gold, never a fixed epsilon. A percentage also
matches its value without the percent sign and its value divided by 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_MAX_DIGITS = 1000  # longer digit strings go elsewhere (int() refuses > 4300 digits anyway)
_MAX_LENGTH = 200  # a longer answer is not a plain number; also bounds the work done here
_MAX_EXPONENT = 400  # 6.02e23 is read exactly; 1e99999 is not a plain number
# A decimal gold is a rounded value (any answer within half its last place matches) from this many significant
# digits; shorter decimals (0.5, 2.5) are exact values.
ROUNDED_GOLD_DIGITS = 3
# A decimal answer stands for an exact non-integer gold (1/3, 2/3) when it has at least this many significant
# digits and is the gold rounded or cut at its last place (0.333333, 0.666667, 0.666666).
DECIMAL_ANSWER_DIGITS = 6

_NUMBER = re.compile(
    r"(?P<sign>[-+−]?)\s*(?:\\\$|\$|€|£)?\s*"
    r"(?:"
    r"\\[dt]?frac\s*\{\s*(?P<frac_num>\d+)\s*\}\s*\{\s*(?P<frac_den>\d+)\s*\}"
    r"|\\[dt]?frac(?P<short_num>\d)(?P<short_den>\d)"
    r"|(?P<integer>\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d/])|\d+)(?P<decimal>\.\d+)?"
    r"(?:\s*/\s*(?P<denominator>\d+))?"
    r"|(?P<bare_decimal>\.\d+)"
    r")"
    r"(?:[eE](?P<exponent>[-+]?\d{1,4})(?!\d)"
    r"|\s*(?:\\times|\\cdot|×)\s*10\s*\^\s*(?:\{\s*(?P<braced_exponent>[-+−]?\d{1,4})\s*\}|(?P<digit_exponent>\d)))?"
    r"(?P<percent>\s*(?:\\%|%|percent(?![A-Za-z])))?"
)
_MIXED_NUMBER = re.compile(
    r"(?P<sign>[-−]?)\s*(?P<whole>\d{1,9})\s*"
    r"(?:\\[dt]?frac\s*\{\s*(?P<num>\d{1,9})\s*\}\s*\{\s*(?P<den>\d{1,9})\s*\}"
    r"|\\[dt]?frac(?P<short_num>\d)(?P<short_den>\d)"
    r"|\s(?P<slash_num>\d{1,9})\s*/\s*(?P<slash_den>\d{1,9}))"
)
_TRAILING_SPACE = re.compile(r"\s*\Z")
_THIN_SPACE_SEPARATOR = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\ |~)(?=\d{3}(?!\d))")
_UNIT_TOKEN = re.compile(
    r"(?P<space>\s*)(?:"
    r"(?P<degree>\^\s*\{?\s*\\circ\s*\}?|°|\\degree)"
    r"|\\(?:text|mathrm|mbox|textrm|rm)\s*\{(?P<text>[A-Za-z .]*)\}"
    r"|(?P<word>[A-Za-z]+)(?![A-Za-z])"
    r"|\\[,;:! ]|~"
    r")(?P<power>\s*\^\s*\{?\s*[23]\s*\}?)?"
)
_CURRENCY = {"\\$": "dollar", "$": "dollar", "€": "euro", "£": "pound sterling"}
# fmt: off
# Units that may follow a number without a space; any word of two letters or more may follow after one.
_ATTACHED_UNITS = frozenset(
    {
        "m", "cm", "mm", "km", "kg", "g", "mg", "s", "ms", "sec", "min", "h", "hr", "hrs", "ml", "mL", "L",
        "l", "ft", "in", "yd", "mi", "lb", "lbs", "oz", "mph", "kph", "cal", "kcal", "J", "kJ", "W", "kW", "V",
        "K", "N", "Pa", "Hz", "deg", "st", "nd", "rd", "th",
    }
)
# Words after a number that change its value, make it an expression, or make the answer a sentence.
_NOT_UNITS = frozenset(
    {
        "pi", "e", "i", "j", "sqrt", "root", "roots", "inf", "infinity", "ln", "log", "sin", "cos", "tan",
        "cot", "sec", "csc", "exp", "mod", "and", "or", "to", "times", "plus", "minus", "over", "divided",
        "by", "squared", "cubed", "hundred", "hundreds", "thousand", "thousands", "million", "millions",
        "billion", "billions", "trillion", "dozen", "dozens", "half", "halves", "third", "thirds", "quarter",
        "quarters", "tenths", "hundredths", "not", "no", "nor", "either", "neither", "but", "if", "then",
        "than", "else", "also", "maybe", "perhaps", "probably", "wrong", "incorrect", "false", "is", "are",
        "was", "were", "be", "isnt", "x", "y", "z", "n", "k",
    }
)
# Spellings of one unit; anything else is compared as written (lower-cased, a plural "s" dropped).
_UNIT_SYNONYMS = {
    "m": ("meter", "meters", "metre", "metres"), "cm": ("centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("millimeter", "millimeters", "millimetre", "millimetres"),
    "km": ("kilometer", "kilometers", "kilometre", "kilometres"), "in": ("inch", "inches"),
    "ft": ("foot", "feet"), "yd": ("yard", "yards"), "mi": ("mile", "miles"), "g": ("gram", "grams"),
    "kg": ("kilogram", "kilograms", "kgs"), "mg": ("milligram", "milligrams"),
    "s": ("second", "seconds", "sec", "secs"), "min": ("minute", "minutes", "mins"),
    "h": ("hour", "hours", "hr", "hrs"), "day": ("days",), "l": ("liter", "liters", "litre", "litres"),
    "ml": ("milliliter", "milliliters", "millilitre", "millilitres"), "lb": ("pound", "pounds", "lbs"),
    "oz": ("ounce", "ounces"), "deg": ("degree", "degrees", "°"), "dollar": ("dollars", "usd"),
    "cent": ("cents",), "euro": ("euros",), "mph": ("mi per h",), "kph": ("km per h",),
}
# fmt: on
_CANONICAL_UNIT = {spelling: unit for unit, spellings in _UNIT_SYNONYMS.items() for spelling in spellings}
_GENERIC_UNITS = frozenset({"unit", "units"})  # "square units": no unit of its own


@dataclass(frozen=True)
class PlainNumber:
    """A number as written: its exact value, whether it was a decimal, whether it carried a percent sign,
    and for a decimal the place value of its last digit (``0.01`` for ``3.14``) and its significant digits."""

    value: Fraction
    decimal: bool = False
    percent: bool = False
    place: Fraction | None = None
    significant: int = 0


def parse_plain_number(answer: str) -> PlainNumber | None:
    r"""Parse ``answer`` if it is a plain number with optional currency, percent sign and units; else None.

    >>> parse_plain_number(r"\$1,234.50")
    PlainNumber(value=Fraction(2469, 2), decimal=True, percent=False, place=Fraction(1, 100), significant=6)
    >>> parse_plain_number(r"\frac{1}{3}").value, parse_plain_number(r"30^\circ").value, parse_plain_number("1 000").value
    (Fraction(1, 3), Fraction(30, 1), Fraction(1000, 1))
    >>> parse_plain_number(r"6.02 \times 10^{23}").value == parse_plain_number("6.02e23").value == 602 * 10**21
    True
    >>> parse_plain_number("12 cm").value, parse_plain_number("2 pi"), parse_plain_number("5x")
    (Fraction(12, 1), None, None)
    """
    if len(answer) > _MAX_LENGTH:
        return None
    text = _THIN_SPACE_SEPARATOR.sub(",", answer.strip()).replace("\\!", "")
    match = _NUMBER.match(text)
    if match is None or _units(text, match.end()) is None:
        return None
    value = _value(match)
    if value is None:
        return None
    exponent = _exponent(match)
    if exponent is None:
        return None
    value *= Fraction(10) ** exponent
    if match.group("sign") in ("-", "−"):
        value = -value
    written_decimals = match.group("decimal") or match.group("bare_decimal")
    place, significant = None, 0
    if written_decimals or exponent:
        decimals = len(written_decimals) - 1 if written_decimals else 0
        place = Fraction(10) ** (exponent - decimals)
        digits = ((match.group("integer") or "") + (written_decimals or "")).replace(",", "").replace(".", "")
        significant = len(re.sub(r"\D", "", digits).lstrip("0")) or 1
    return PlainNumber(
        value,
        decimal=bool(written_decimals) or exponent < 0,
        percent=bool(match.group("percent")),
        place=place,
        significant=significant,
    )


def _exponent(match: re.Match[str]) -> int | None:
    written = match.group("exponent") or match.group("braced_exponent") or match.group("digit_exponent")
    if written is None:
        return 0
    exponent = int(written.replace("−", "-"))
    return exponent if abs(exponent) <= _MAX_EXPONENT else None


def _value(match: re.Match[str]) -> Fraction | None:
    groups = match.groupdict()
    if groups["frac_num"] is not None:
        numerator, denominator = groups["frac_num"], groups["frac_den"]
    elif groups["short_num"] is not None:
        numerator, denominator = groups["short_num"], groups["short_den"]
    elif groups["bare_decimal"] is not None:
        return Fraction(groups["bare_decimal"])
    else:
        integer = re.sub(r"[, \u00a0\u202f]", "", groups["integer"])
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


def _units(text: str, position: int) -> str | None:
    """The canonical unit written in ``text[position:]`` ("" for none), or None if anything else is there."""
    parts: list[str] = []
    while position < len(text):
        if _TRAILING_SPACE.match(text, position):
            break
        token = _UNIT_TOKEN.match(text, position)
        if token is None or token.end() == position:
            return None
        attached = not token.group("space") and position > 0 and text[position - 1].isdigit()
        words: list[str] = []
        if token.group("degree") is not None:
            words = ["deg"]
        elif token.group("word") is not None:
            if not _is_unit_word(token.group("word"), attached):
                return None
            words = [token.group("word")]
        elif token.group("text") is not None:
            words = token.group("text").replace(".", " ").split()
            if not all(_is_unit_word(word, False) for word in words):
                return None
        if words and token.group("power"):
            words[-1] += "^" + re.sub(r"\D", "", token.group("power"))
        parts.extend(words)
        position = token.end()
    return canonical_unit(" ".join(parts))


def _is_unit_word(word: str, attached: bool) -> bool:
    if word.lower() in _NOT_UNITS:
        return False
    if attached or len(word) == 1:
        return word in _ATTACHED_UNITS
    return True


def canonical_unit(unit: str) -> str:
    r"""One spelling per unit: ``centimeters`` and ``cm`` are ``cm``, ``square meters`` is ``m^2``, ``apples`` is ``apple``.

    >>> canonical_unit("square centimeters"), canonical_unit("Apples"), canonical_unit("km"), canonical_unit("m^2")
    ('cm^2', 'apple', 'km', 'm^2')
    """
    words = unit.lower().split()
    power = ""
    if words and words[0] in ("square", "sq", "cubic"):
        power = "^2" if words[0] != "cubic" else "^3"
        words = words[1:]
    words = [_singular(_CANONICAL_UNIT.get(word, word)) for word in words if word not in _GENERIC_UNITS]
    if not words:
        return ""
    phrase = " ".join(words)
    canonical = _CANONICAL_UNIT.get(phrase, phrase)
    return canonical + power if power and "^" not in canonical else canonical


def _singular(word: str) -> str:
    base, _, power = word.partition("^")
    if len(base) > 3 and base.endswith("s") and not base.endswith("ss"):
        base = base[:-1]
    return base + ("^" + power if power else "")


def split_unit(answer: str) -> tuple[str, str]:
    r"""``(value, unit)``: the unit written after (or, for currency, before) a value, canonical; "" for none.

    >>> split_unit("5 km"), split_unit(r"2\sqrt{3}\text{ cm}^2"), split_unit(r"\$4.50"), split_unit("x + 1")
    (('5', 'km'), ('2\\sqrt{3}', 'cm^2'), ('4.50', 'dollar'), ('x + 1', ''))
    >>> split_unit("14 or 15"), split_unit("30^\\circ")
    (('14 or 15', ''), ('30', 'deg'))
    """
    text = answer.strip()
    if len(text) > _MAX_LENGTH:
        return answer, ""
    currency = ""
    sign = text[:1] if text[:1] in "-−" else ""
    for symbol, name in _CURRENCY.items():
        if text[len(sign) :].startswith(symbol):
            currency, text = name, sign + text[len(sign) + len(symbol) :].lstrip()
            break
    for position in range(1, len(text)):
        if text[position - 1] not in "0123456789})]." and not text[position - 1].isspace():
            continue
        if text[position - 1].isspace() and (position < 2 or text[position - 2] not in "0123456789})]."):
            continue
        unit = _units(text, position)
        if unit:
            return text[:position].rstrip(), unit
    return text, currency


def mixed_number(answer: str) -> str:
    r"""A mixed number ``1 1/2`` / ``1\frac{1}{2}`` rewritten as an improper fraction; other answers unchanged.

    >>> mixed_number("1 1/2"), mixed_number(r"-2\frac{3}{4}"), mixed_number(r"1\frac{3}{2}"), mixed_number("11/2")
    ('\\frac{3}{2}', '-\\frac{11}{4}', '1\\frac{3}{2}', '11/2')
    """
    match = _MIXED_NUMBER.fullmatch(answer.strip())
    if match is None:
        return answer
    groups = match.groupdict()
    numerator = int(groups["num"] or groups["short_num"] or groups["slash_num"])
    denominator = int(groups["den"] or groups["short_den"] or groups["slash_den"])
    if not 0 < numerator < denominator:
        return answer  # 1\frac{3}{2} is not a mixed number: a product, left to math-verify
    whole = int(groups["whole"])
    return f"{groups['sign'] and '-'}\\frac{{{whole * denominator + numerator}}}{{{denominator}}}"


def numbers_match(gold: PlainNumber, prediction: PlainNumber) -> bool:
    """Whether two plain numbers are the same answer.

    Equal values always match. A decimal gold of at least ``ROUNDED_GOLD_DIGITS`` significant digits is a
    rounded value: an answer at least as precise matches within half its last place (``3.14`` and
    ``3.1416``; not ``1.0000001`` and ``1.0000002``). An exact non-integer gold (``1/3``) is matched by a
    decimal of at least ``DECIMAL_ANSWER_DIGITS`` significant digits within one unit of its last place.

    >>> numbers_match(parse_plain_number("1/3"), parse_plain_number("0.333333"))
    True
    >>> numbers_match(parse_plain_number("1/3"), parse_plain_number("0.33"))
    False
    >>> numbers_match(parse_plain_number("0.0000004"), parse_plain_number("0"))
    False
    >>> numbers_match(parse_plain_number("50%"), parse_plain_number("0.5"))
    True
    >>> numbers_match(parse_plain_number("50%"), parse_plain_number("5000%"))
    False
    """
    return any(
        _values_match(gold_value, gold_place, gold, predicted_value, predicted_place, prediction)
        for gold_value, gold_place in _readings(gold, prediction)
        for predicted_value, predicted_place in _readings(prediction, gold)
    )


def _readings(number: PlainNumber, other: PlainNumber) -> tuple[tuple[Fraction, Fraction | None], ...]:
    """``50%`` reads as 50 or 0.5 against a number without a percent sign, and as 50 against another percentage."""
    if number.percent and not other.percent:
        place = None if number.place is None else number.place / 100
        return (number.value, number.place), (number.value / 100, place)
    return ((number.value, number.place),)


def _values_match(
    gold: Fraction,
    gold_place: Fraction | None,
    gold_number: PlainNumber,
    prediction: Fraction,
    predicted_place: Fraction | None,
    predicted_number: PlainNumber,
) -> bool:
    if gold == prediction:
        return True
    if gold_place is not None:
        rounded_gold = gold_number.significant >= ROUNDED_GOLD_DIGITS
        as_precise = predicted_place is None or predicted_place <= gold_place
        return rounded_gold and as_precise and abs(prediction - gold) * 2 < gold_place
    if gold.denominator == 1 or predicted_place is None:
        return False  # integers are exact; so are two exact values that differ
    return predicted_number.significant >= DECIMAL_ANSWER_DIGITS and _rounded_or_cut(prediction, predicted_place, gold)


def within_precision(gold: PlainNumber, value: float | Fraction) -> bool:
    """Whether an exact value (an irrational closed form, evaluated) matches a decimal gold within its precision."""
    if gold.place is None or gold.significant < ROUNDED_GOLD_DIGITS:
        return False
    return any(
        place is not None and abs(Fraction(value) - reading) * 2 < place
        for reading, place in _readings(gold, PlainNumber(Fraction(0)))
    )


def decimal_matches_exact(answer: PlainNumber, value: float | Fraction) -> bool:
    """Whether a decimal answer of enough digits stands for an exact irrational value (``1.41421`` for ``\\sqrt{2}``)."""
    return (
        answer.place is not None
        and answer.significant >= DECIMAL_ANSWER_DIGITS
        and _rounded_or_cut(answer.value, answer.place, Fraction(value))
    )


def _rounded_or_cut(written: Fraction, place: Fraction, exact: Fraction) -> bool:
    """Whether ``written`` is ``exact`` rounded or cut (toward zero) at ``place``: ``0.666667`` and ``0.666666`` for 2/3."""
    cut = exact - written if exact >= 0 else written - exact
    return abs(exact - written) * 2 <= place or 0 <= cut < place
