r"""Answers that are not mathematics: words, clock times, units, and answers that negate or hedge themselves.

Every function here is linear in its input (no regex that can backtrack without bound).
"""

from __future__ import annotations

import re

_FORMATTING_COMMANDS = ("\\text", "\\textbf", "\\textit", "\\mathrm", "\\mathbf", "\\textrm", "\\mbox", "\\operatorname")
_WORDS = re.compile(r"[A-Za-z][A-Za-z' -]*[A-Za-z]\.?")
# Lone words that name mathematical objects: a gold made of one of these is mathematics, not text.
_MATH_WORDS = frozenset({"pi", "e", "i", "oo", "inf", "infty", "infinity"})
# fmt: off
_NUMBER_WORDS = frozenset(
    {
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty",
        "forty", "fourty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "million",
        "billion", "trillion", "half", "halves", "third", "thirds", "quarter", "quarters", "dozen",
    }
)
_ARTICLES = frozenset({"the", "a", "an"})
_CONNECTIVES = frozenset({"so", "thus", "hence", "therefore", "and", "or", "but", "again", "then", "i", "think", "yes"})
# fmt: on
_NEGATION = re.compile(
    r"(?<![A-Za-z])(?:not|isn't|isnt|aren't|wasn't|cannot|can't|never|no|neither|nor|wrong|incorrect|false)"
    r"(?![A-Za-z])|\\neq?(?![A-Za-z])|≠|!=",
    re.IGNORECASE,
)
_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\s*(am|pm|a\.m\.?|p\.m\.?)?", re.IGNORECASE)
_ANCHOR = re.compile(
    r"(?:final\s+answer|the\s+answer|answer|result)\s*(?:is|was|would\s+be|will\s+be|=|:)\s*:?\s*", re.IGNORECASE
)


def without_formatting(text: str) -> str:
    r"""``text`` without ``\text{...}``-like wrappers (their content stays), ``**`` bold marks and ``$``, in one pass.

    >>> without_formatting(r"\textbf{\text{(B)}} **yes** $x$")
    '(B) yes x'
    >>> without_formatting("\\text{" * 3 + "A" + "}" * 3)
    'A'
    """
    out: list[str] = []
    wrapper_braces: list[bool] = []  # for each open brace: whether it opened a formatting wrapper
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == "\\":
            command = _formatting_command_at(text, index)
            if command is not None:
                index += len(command)
                while index < size and text[index] == " ":
                    index += 1
                if index < size and text[index] == "{":
                    wrapper_braces.append(True)
                    index += 1
                continue
            out.append(text[index : index + 2])
            index += 2
            continue
        if char == "{":
            wrapper_braces.append(False)
        elif char == "}" and wrapper_braces:
            if wrapper_braces.pop():
                index += 1
                continue
        elif char == "$" or (char == "*" and text.startswith("**", index)):
            index += 1 if char == "$" else 2
            continue
        out.append(char)
        index += 1
    return "".join(out).strip()


def _formatting_command_at(text: str, index: int) -> str | None:
    for command in _FORMATTING_COMMANDS:
        end = index + len(command)
        if text.startswith(command, index) and not (end < len(text) and text[end].isalpha()):
            return command
    return None


def after_last_anchor(text: str) -> str | None:
    """What follows the last "the answer is" / "Answer:" in ``text`` (all of ``text`` without one); None when an
    earlier "the answer is" states a different answer that is not retracted (several final answers).

    >>> after_last_anchor("B is wrong, the answer is C"), after_last_anchor("Final answer: 14."), after_last_anchor("14")
    ('C', '14.', '14')
    >>> after_last_anchor("the answer is 5 or the answer is 6") is None
    True
    >>> after_last_anchor("The answer is 5. So the answer is 5."), after_last_anchor("The answer is B. No, the answer is C")
    ('5.', 'C')
    """
    anchors = list(_ANCHOR.finditer(text))
    if not anchors or anchors[-1].end() == len(text):
        return text
    final = text[anchors[-1].end() :]
    for earlier, later in zip(anchors, anchors[1:], strict=False):
        statement = text[earlier.end() : later.start()]
        if not is_negated(statement) and _statement_key(statement) != _statement_key(final):
            return None
    return final


def _statement_key(statement: str) -> str:
    """A stated answer without spacing, punctuation and the connecting words around it ("5. So" is "5")."""
    words = statement.replace("$", " ").split()
    while words and words[-1].strip(".,;:!").lower() in _CONNECTIVES:
        words.pop()
    return "".join(words).strip(".,;:!")


def is_word_answer(text: str) -> bool:
    r"""Whether a (gold) answer is made of words rather than mathematics: ``Yes``, ``\text{even}``, ``New York``.

    >>> is_word_answer(r"\text{Yes}"), is_word_answer("listen"), is_word_answer("x"), is_word_answer("2x + y")
    (True, True, False, False)
    >>> is_word_answer("pi"), is_word_answer("5 apples")
    (False, False)
    """
    plain = without_formatting(text)
    return (
        _WORDS.fullmatch(plain) is not None
        and sum(char.isalpha() for char in plain) >= 2
        and plain.lower().rstrip(".") not in _MATH_WORDS
    )


def normalized_words(text: str) -> str:
    r"""Words compared as text: formatting, case, punctuation and a leading article do not count.

    >>> normalized_words(r"\text{The Yes.}"), normalized_words(" New  York! ")
    ('yes', 'new york')
    """
    plain = without_formatting(text).casefold()
    words = "".join(char if char.isalnum() or char == "'" else " " for char in plain).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def has_number_words(text: str) -> bool:
    """Whether ``text`` spells out a number ("forty two"): such a gold cannot be compared as text or as a number.

    >>> has_number_words("Answer is forty two."), has_number_words("listen")
    (True, False)
    """
    return any(word.strip("'") in _NUMBER_WORDS for word in normalized_words(text).replace("-", " ").split())


def is_negated(answer: str) -> bool:
    r"""Whether an answer negates or disowns itself: ``7 is not correct``, ``not 7``, ``x \neq 7``, ``7 is wrong``.

    >>> is_negated("7 is not correct"), is_negated(r"x \neq 7"), is_negated("7"), is_negated("Nothing")
    (True, True, False, False)
    """
    return _NEGATION.search(answer) is not None


def clock_time(text: str) -> tuple[int, int, int, str | None] | None:
    """A clock time ``H:MM[:SS] [am|pm]`` as (hours, minutes, seconds, meridiem), or None.

    >>> clock_time("2:30"), clock_time("11:05:09 p.m."), clock_time("2:3") is None
    ((2, 30, 0, None), (11, 5, 9, 'pm'), True)
    """
    match = _TIME.fullmatch(without_formatting(text).strip().rstrip("."))
    if match is None:
        return None
    hours, minutes, seconds, meridiem = match.groups()
    return int(hours), int(minutes), int(seconds or 0), (meridiem.replace(".", "").lower() if meridiem else None)


def same_time(gold: tuple[int, int, int, str | None], answer: tuple[int, int, int, str | None]) -> bool:
    """Equal clock times; ``2:30`` matches ``2:30 pm`` and ``14:30`` matches ``2:30 pm`` (a side without am/pm).

    >>> same_time(clock_time("2:30 pm"), clock_time("14:30")), same_time(clock_time("2:30 pm"), clock_time("2:30 am"))
    (True, False)
    """
    if gold[1:3] != answer[1:3]:
        return False
    if gold[3] is not None and answer[3] is not None:
        return gold[0] % 12 == answer[0] % 12 and gold[3] == answer[3]
    return _on_24h(gold) % 12 == _on_24h(answer) % 12 if (gold[3] or answer[3]) else gold[0] == answer[0]


def _on_24h(time: tuple[int, int, int, str | None]) -> int:
    hours, _, _, meridiem = time
    return hours % 12 + (12 if meridiem == "pm" else 0) if meridiem else hours
