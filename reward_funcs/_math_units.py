r"""Units of one quantity in another: ``5000 m`` is ``5 km``, ``90 min`` is ``1.5 h``, ``500 cents`` is ``\$5``.

Only linear units of one dimension convert (length, area and volume as powers of length, mass, time,
capacity, money, speed); everything else must be written the same on both sides. Temperatures and angles
never convert (an offset, or a unit a problem may mean either way).
"""

from __future__ import annotations

from fractions import Fraction

# canonical unit (as `reward_funcs._math_numbers.canonical_unit` spells it) -> (dimension, size in base units)
_UNITS: dict[str, tuple[str, Fraction]] = {
    "mm": ("length", Fraction(1, 1000)), "cm": ("length", Fraction(1, 100)), "m": ("length", Fraction(1)),
    "km": ("length", Fraction(1000)), "in": ("length", Fraction(254, 10000)), "ft": ("length", Fraction(3048, 10000)),
    "yd": ("length", Fraction(9144, 10000)), "mi": ("length", Fraction(1609344, 1000)),
    "mg": ("mass", Fraction(1, 1000)), "g": ("mass", Fraction(1)), "kg": ("mass", Fraction(1000)),
    "lb": ("mass", Fraction(45359237, 100000)), "oz": ("mass", Fraction(45359237, 1600000)),
    "ms": ("time", Fraction(1, 1000)), "s": ("time", Fraction(1)), "min": ("time", Fraction(60)),
    "h": ("time", Fraction(3600)), "day": ("time", Fraction(86400)), "week": ("time", Fraction(604800)),
    "ml": ("capacity", Fraction(1, 1000)), "l": ("capacity", Fraction(1)),
    "cent": ("money", Fraction(1, 100)), "dollar": ("money", Fraction(1)),
    "mph": ("speed", Fraction(1609344, 3600000)), "kph": ("speed", Fraction(1000, 3600)),
}  # fmt: skip
_MAX_POWER = 3


def _dimension(unit: str) -> tuple[str, int, Fraction] | None:
    base, _, power_text = unit.partition("^")
    if base not in _UNITS:
        return None
    power = int(power_text) if power_text.isdigit() else (1 if not power_text else 0)
    if not 1 <= power <= _MAX_POWER:
        return None
    dimension, size = _UNITS[base]
    return dimension, power, size**power


def unit_ratio(unit: str, target: str) -> Fraction | None:
    """How many ``target`` one ``unit`` is, when both measure the same thing; None when they do not.

    >>> unit_ratio("km", "m"), unit_ratio("min", "h"), unit_ratio("m^2", "cm^2"), unit_ratio("km", "kg")
    (Fraction(1000, 1), Fraction(1, 60), Fraction(10000, 1), None)
    """
    source, wanted = _dimension(unit), _dimension(target)
    if source is None or wanted is None or source[:2] != wanted[:2]:
        return None
    return source[2] / wanted[2]


def scaled(value: str, ratio: Fraction, number: Fraction | None) -> str:
    r"""``value`` times ``ratio``, in a form math-verify reads: exact digits when ``number`` (the parsed value)
    is given, else a product.

    >>> scaled("5000", Fraction(1, 1000), Fraction(5000)), scaled("1", Fraction(1, 3), Fraction(1))
    ('5', '\\frac{1}{3}')
    >>> scaled(r"2\sqrt{3}", Fraction(100), None)
    '100 \\cdot \\left(2\\sqrt{3}\\right)'
    """
    if number is not None:
        product = number * ratio
        if product.denominator == 1:
            return str(product.numerator)
        return rf"\frac{{{product.numerator}}}{{{product.denominator}}}"
    factor = str(ratio.numerator) if ratio.denominator == 1 else rf"\frac{{{ratio.numerator}}}{{{ratio.denominator}}}"
    return rf"{factor} \cdot \left({value}\right)"
