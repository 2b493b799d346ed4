r"""Exact values of closed-form LaTeX numbers built from integers, ``\frac``, ``\sqrt`` and ``\pi``.

A value is a finite sum of ``c * sqrt(m) * pi**k`` with rational ``c``, square-free ``m`` and integer ``k``.
Square roots of distinct square-free integers are linearly independent over the rationals and pi is
transcendental, so two values are equal exactly when their terms are; no SymPy needed. Anything outside
this small grammar (variables, decimals, functions, huge numbers) gives None and is left to math-verify.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal
from fractions import Fraction

_MAX_LENGTH = 200
_MAX_DEPTH = 20
_MAX_TERMS = 32
_MAX_EXPONENT = 16
_MAX_RADICAND = 10**8  # trial division up to 10**4 keeps sqrt cheap
_MAX_BITS = 2048
# A plain number or closed form stays far below 2**8192 (bounded digits, bits, terms and powers of pi).
_HUGE_LOG2 = 8192
_SMALL_LOG2 = 64

_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
_DIGITS = Context(prec=50)
_TOWER_LEVEL = re.compile(r"\s*(\d+)\s*(?:\^\s*(?:\{|(\d)(?!\d)))?")
_TOKEN = re.compile(r"\s*(\\[A-Za-z]+|\\[,;:! ]|\d+|[-+*/^(){}])")
_SPACING = frozenset({"\\,", "\\;", "\\:", "\\!", "\\ ", "\\left", "\\right", "\\displaystyle"})
_FRACTIONS = frozenset({"\\frac", "\\dfrac", "\\tfrac"})
_TIMES = frozenset({"*", "\\cdot", "\\times"})
# Tokens that may follow a factor with no operator in between (implicit multiplication): 2\sqrt{3}, 3\pi, 2(1+\pi).
# A number followed by \frac is left out on purpose: 1\frac{1}{2} may be meant as a mixed number.
_IMPLICIT_FACTOR_START = frozenset({"\\sqrt", "\\pi", "("})

Key = tuple[int, int]  # (square-free radicand, power of pi)


class ClosedForm:
    """An exact value ``sum(c * sqrt(m) * pi**k)``; equal values compare and hash equal."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict[Key, Fraction]) -> None:
        self.terms = {key: coefficient for key, coefficient in terms.items() if coefficient != 0}

    @classmethod
    def rational(cls, value: Fraction | int) -> ClosedForm:
        return cls({(1, 0): Fraction(value)})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClosedForm) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(frozenset(self.terms.items()))

    def __repr__(self) -> str:
        parts = [f"{c}*sqrt({m})*pi**{k}" for (m, k), c in sorted(self.terms.items())]
        return f"ClosedForm({' + '.join(parts) or '0'})"

    def __add__(self, other: ClosedForm) -> ClosedForm:
        terms = dict(self.terms)
        for key, coefficient in other.terms.items():
            terms[key] = terms.get(key, Fraction(0)) + coefficient
        return ClosedForm(terms)

    def __neg__(self) -> ClosedForm:
        return ClosedForm({key: -coefficient for key, coefficient in self.terms.items()})

    def __mul__(self, other: ClosedForm) -> ClosedForm:
        terms: dict[Key, Fraction] = {}
        for (m1, k1), c1 in self.terms.items():
            for (m2, k2), c2 in other.terms.items():
                # sqrt(m1) * sqrt(m2) = common * sqrt(m1/common * m2/common), and the radicand stays square-free
                common = _gcd(m1, m2)
                key = ((m1 // common) * (m2 // common), k1 + k2)
                terms[key] = terms.get(key, Fraction(0)) + c1 * c2 * common
        return ClosedForm(terms)

    def inverse(self) -> ClosedForm | None:
        """``1 / self`` for a single non-zero term; None otherwise (no rationalising of sums)."""
        if len(self.terms) != 1:
            return None
        ((radicand, pi_power), coefficient) = next(iter(self.terms.items()))
        return ClosedForm({(radicand, -pi_power): 1 / (coefficient * radicand)})

    def rational_value(self) -> Fraction | None:
        if not self.terms:
            return Fraction(0)
        if set(self.terms) == {(1, 0)}:
            return self.terms[(1, 0)]
        return None

    def approximate(self) -> Fraction:
        """The value to 50 significant digits (exactly when it is rational).

        >>> float(closed_form(r"2\\sqrt{2} + \\pi").approximate())
        5.970019778335983
        """
        rational = self.rational_value()
        if rational is not None:
            return rational
        total = Decimal(0)
        for (radicand, pi_power), coefficient in self.terms.items():
            term = _DIGITS.sqrt(Decimal(radicand)) * _DIGITS.power(_PI, pi_power)
            total = _DIGITS.add(total, _DIGITS.multiply(term, _DIGITS.divide(coefficient.numerator, coefficient.denominator)))
        return Fraction(total)

    def too_big(self) -> bool:
        return len(self.terms) > _MAX_TERMS or any(
            abs(k) > _MAX_EXPONENT
            or m.bit_length() > _MAX_BITS
            or c.numerator.bit_length() > _MAX_BITS
            or c.denominator.bit_length() > _MAX_BITS
            for (m, k), c in self.terms.items()
        )


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _square_free(n: int) -> tuple[int, int]:
    """``(outside, inside)`` with ``n == outside**2 * inside`` and ``inside`` square-free."""
    outside, inside, factor = 1, n, 2
    while factor * factor <= inside:
        while inside % (factor * factor) == 0:
            inside //= factor * factor
            outside *= factor
        factor += 1 if factor == 2 else 2
    return outside, inside


class _Unsupported(Exception):
    """The text is outside the closed-form grammar."""


def closed_form(text: str) -> ClosedForm | None:
    r"""The exact value of ``text``, or None when it is not a closed form this module understands.

    >>> closed_form(r"\sqrt{12}") == closed_form(r"2\sqrt{3}") == closed_form(r"\frac{6}{\sqrt{3}}")
    True
    >>> closed_form(r"\frac{\pi}{4}") == closed_form(r"\pi/4"), closed_form(r"\frac{\pi}{4}") == closed_form(r"\frac{\pi}{3}")
    (True, False)
    >>> closed_form("x + 1") is None, closed_form("0.5") is None
    (True, True)
    """
    if len(text) > _MAX_LENGTH:
        return None
    tokens = _tokens(text)
    if tokens is None or not tokens:
        return None
    parser = _Parser(tokens)
    try:
        value = parser.expression(0)
        if parser.position != len(tokens):
            return None
    except (_Unsupported, ZeroDivisionError):
        return None
    return None if value.too_big() else value


def _tokens(text: str) -> list[str] | None:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None if text[position:].strip() else tokens
        position = match.end()
        token = match.group(1)
        if token not in _SPACING:
            tokens.append(token)
    return tokens


class _Parser:
    """Recursive descent over tokens: expression := term (('+' | '-') term)*; term := power ((op)? power)*."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Unsupported
        self.position += 1
        return token

    def expression(self, depth: int) -> ClosedForm:
        if depth > _MAX_DEPTH:
            raise _Unsupported
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.take() == "-" else 1
        value = self.term(depth)
        value = -value if sign < 0 else value
        while self.peek() in ("+", "-"):
            operator = self.take()
            right = self.term(depth)
            value = value + (-right if operator == "-" else right)
            self._check(value)
        return value

    def term(self, depth: int) -> ClosedForm:
        value = self.power(depth)
        while True:
            token = self.peek()
            if token in _TIMES:
                self.take()
                value = value * self.power(depth)
            elif token == "/":
                self.take()
                inverse = self.power(depth).inverse()
                if inverse is None:
                    raise _Unsupported
                value = value * inverse
            elif token in _IMPLICIT_FACTOR_START:
                value = value * self.power(depth)
            else:
                return value
            self._check(value)

    def power(self, depth: int) -> ClosedForm:
        base = self.factor(depth)
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.argument(depth).rational_value()
        if exponent is None or exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT:
            raise _Unsupported
        result = ClosedForm.rational(1)
        for _ in range(abs(exponent.numerator)):
            result = result * base
            self._check(result)
        if exponent < 0:
            inverse = result.inverse()
            if inverse is None:
                raise _Unsupported
            result = inverse
        return result

    def factor(self, depth: int) -> ClosedForm:
        token = self.take()
        if token.isdigit():
            return ClosedForm.rational(int(token))
        if token == "\\pi":
            return ClosedForm({(1, 1): Fraction(1)})
        if token == "\\sqrt":
            return _square_root(self.argument(depth))
        if token in _FRACTIONS:
            if self.peek() is not None and self.peek().isdigit() and len(self.peek()) == 2:  # \frac12
                digits = self.take()
                numerator, denominator = (
                    ClosedForm.rational(int(digits[0])),
                    ClosedForm.rational(int(digits[1])),
                )
            else:
                numerator, denominator = self.argument(depth), self.argument(depth)
            inverse = denominator.inverse()
            if inverse is None:
                raise _Unsupported
            return numerator * inverse
        if token in ("(", "{"):
            value = self.expression(depth + 1)
            self.take(")" if token == "(" else "}")
            return value
        raise _Unsupported

    def argument(self, depth: int) -> ClosedForm:
        """A braced group or, as LaTeX allows, a single digit: ``\\sqrt{12}``, ``\\sqrt2``, ``^{2}``, ``^2``."""
        token = self.peek()
        if token == "{":
            return self.factor(depth)
        if token is not None and token.isdigit() and len(token) == 1:
            return self.factor(depth)
        raise _Unsupported

    @staticmethod
    def _check(value: ClosedForm) -> None:
        if value.too_big():
            raise _Unsupported


def _square_root(value: ClosedForm) -> ClosedForm:
    rational = value.rational_value()
    if rational is None or rational < 0:
        raise _Unsupported  # roots of irrationals and of negatives are left to math-verify
    if rational == 0:
        return ClosedForm.rational(0)
    radicand = rational.numerator * rational.denominator  # sqrt(p/q) = sqrt(p*q) / q
    if radicand > _MAX_RADICAND:
        raise _Unsupported
    outside, inside = _square_free(radicand)
    return ClosedForm({(inside, 0): Fraction(outside, rational.denominator)})


def is_huge_power(text: str) -> bool:
    r"""Whether ``text`` is a power tower of integers, like ``9^{9^{9^{9}}}``, worth more than ``2**8192``.

    Such a value cannot equal any plain number or closed form of this module, which all stay far
    smaller, while SymPy may spend minutes evaluating it; the magnitude is bounded with logarithms.

    >>> is_huge_power(r"9^{9^{9^{9}}}"), is_huge_power(r"2^{8193}"), is_huge_power(r"2^{10}"), is_huge_power(r"9^{9^{9}} - 1")
    (True, True, False, False)
    """
    if len(text) > _MAX_LENGTH:
        return False
    bases: list[int] = []
    position, closing = 0, 0
    while True:
        level = _TOWER_LEVEL.match(text, position)
        if level is None:
            return False
        bases.append(int(level.group(1)) if len(level.group(1)) <= 20 else 2**70)
        position = level.end()
        if level.group(2) is not None:  # a single-digit exponent ends the tower: 2^9
            bases.append(int(level.group(2)))
            break
        if not text[level.start() : level.end()].rstrip().endswith("{"):
            break
        closing += 1
    if text[position:].replace(" ", "") != "}" * closing:
        return False
    return _tower_log2(bases) > _HUGE_LOG2


def _tower_log2(bases: list[int]) -> float:
    """log2 of ``b0 ** b1 ** ... ** bn`` (right-associative); inf as soon as an exponent alone exceeds 2**64."""
    log2_value = math.log2(bases[-1]) if bases[-1] > 0 else -math.inf
    for base in reversed(bases[:-1]):
        if base <= 1 or log2_value == -math.inf:
            # 1**x and b**0 are 1 (log2 0); 0**x is 0 for x > 0
            log2_value = 0.0 if base == 1 or log2_value == -math.inf else -math.inf
            continue
        if log2_value > _SMALL_LOG2:
            return math.inf
        log2_value = 2**log2_value * math.log2(base)
    return log2_value
