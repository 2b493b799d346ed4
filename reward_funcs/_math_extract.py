"""Find the final answer in a completion or a gold solution, as a short string ready for verification.

Every function here is linear in the input (no regex that can backtrack without bound), because a
reward must never hang on a malicious or degenerate completion.
"""

from __future__ import annotations

import re

from reward_funcs._math_text import after_last_anchor, is_negated, without_formatting

_ANSWER_OPEN = re.compile(r"<answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer\s*>", re.IGNORECASE)
_BOX_COMMANDS = ("\\boxed", "\\fbox")
# How many trailing \boxed occurrences to try when the last ones are truncated (unbalanced braces).
_MAX_BOX_ATTEMPTS = 8

_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s*\\?%)?")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$\$?")
_PAREN_CLOSE = re.compile(r"\\\)")
_BRACKET_CLOSE = re.compile(r"\\\]")

_GOLD_CHOICE = re.compile(r"\(?([A-J])\)?\.?|\(([A-J])\)\s+\S.*|([A-J])\)\s+\S.*", re.DOTALL)
# A letter that picks an option: "(b)", "B", "B) 42", "c) 7", "(A) twelve", "B because ...".
_PAREN_LETTER = re.compile(r"\(\s*([A-Ja-j])\s*\)(?P<rest>.*)", re.DOTALL)
_MARKED_LETTER = re.compile(r"([A-Ja-j])[.:)](?P<rest>(?:\s.*)?)", re.DOTALL)
_BARE_LETTER = re.compile(r"([A-Ja-j])")
_LETTER_THEN_TEXT = re.compile(r"([A-J])\s+(?P<rest>.*)", re.DOTALL)
_OPTION_WORDS = re.compile(r"(?:(?:the\s+)?(?:correct\s+)?(?:option|choice)\s*(?:is\s*)?:?\s*)", re.IGNORECASE)
# Another option named after the first: "B or C", "A and D", "(A), (C)", "A/B", "A) 12 B) 13".
_ANOTHER_LETTER = re.compile(
    r"\(\s*([A-Ja-j])\s*\)|(?:\b(?:or|and)\s+|[,/&;]\s*)\(?([A-J])\)?(?![A-Za-z])|(?<![A-Za-z\\])([A-J])[.:)](?!\S)"
)
# "7 is correct", "7 is the answer", "7 is the final answer": the answer is 7 ("7 is not correct" is not matched).
_AFFIRMATION = re.compile(
    r"\s+(?:is|would\s+be)\s+(?:(?:the\s+)?(?:correct|right|final)(?:\s+answer)?|the\s+answer)\s*[.!]?\s*\Z",
    re.IGNORECASE,
)
_AFFIRMATION_TAIL = 48  # characters: the affirmation is searched for at the end only (linear time)
_ANCHORED_CHOICE = re.compile(
    r"(?:answer|option|choice)(?:\s+is)?\s*:?\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE
)


def answer_tag_content(text: str) -> str | None:
    """The content of the last closed ``<answer>...</answer>`` block, or None.

    >>> answer_tag_content("<think>2+2</think><answer> 4 </answer>")
    ' 4 '
    >>> answer_tag_content("no tags here") is None
    True
    """
    last_close = None
    for last_close in _ANSWER_CLOSE.finditer(text):  # noqa: B007 - we want the last one
        pass
    if last_close is None:
        return None
    last_open = None
    for last_open in _ANSWER_OPEN.finditer(text, 0, last_close.start()):  # noqa: B007
        pass
    if last_open is None:
        return None
    return text[last_open.end() : last_close.start()]


def last_boxed_content(text: str) -> str | None:
    r"""The argument of the last complete ``\boxed{...}`` (or ``\fbox{...}``), or None.

    >>> last_boxed_content(r"so \boxed{1} or rather \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    >>> last_boxed_content(r"\boxed 7"), last_boxed_content(r"\boxed{unclosed") is None
    ('7', True)
    """
    end = len(text)
    for _ in range(_MAX_BOX_ATTEMPTS):
        start = max(text.rfind(command, 0, end) for command in _BOX_COMMANDS)
        if start < 0:
            return None
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        content = _box_argument(text, start + len(command))
        if content is not None:
            return content
        end = start
    return None


def _box_argument(text: str, position: int) -> str | None:
    """The braced (or single-token) argument of a box command whose name ends at ``position``."""
    if position < len(text) and text[position].isalpha():
        return None  # a longer command name such as \boxedsomething
    while position < len(text) and text[position] == " ":
        position += 1
    if position >= len(text):
        return None
    if text[position] != "{":
        token = re.match(r"[^\s$]+", text[position:])
        return token.group(0) if token and position > 0 and text[position - 1] == " " else None
    depth = 0
    index = position
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2  # an escaped character, e.g. \{ or \}, does not open or close a group
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[position + 1 : index]
        index += 1
    return None


def strip_math_delimiters(answer: str) -> str:
    r"""Remove what surrounds a bare answer: whitespace, a final full stop, ``$...$``, ``\(...\)``, ``\[...\]``.

    Linear in the length of ``answer`` (it moves two indices instead of copying the text per step).

    >>> strip_math_delimiters(r" $\frac{1}{3}$. ")
    '\\frac{1}{3}'
    >>> strip_math_delimiters(r"\(x = 3\)"), strip_math_delimiters("1" + " ." * 5)
    ('x = 3', '1')
    """
    start, end = 0, len(answer)
    while True:
        before = (start, end)
        while start < end and answer[start].isspace():
            start += 1
        while end > start and answer[end - 1].isspace():
            end -= 1
        if end > start and answer[end - 1] == "." and not (end - 2 >= start and answer[end - 2] == "."):
            end -= 1
            continue
        for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            inner_start, inner_end = start + len(opener), end - len(closer)
            if (
                inner_end >= inner_start
                and answer.startswith(opener, start)
                and answer.endswith(closer, inner_start, end)
                and answer.find(opener, inner_start, inner_end) < 0
                and not (inner_end > inner_start and answer[inner_end - 1] == "\\")
            ):
                start, end = inner_start, inner_end
                break
        if (start, end) == before:
            return answer[start:end]


def last_number_or_math(text: str) -> str | None:
    r"""Whichever ends last: the last number or the last ``$...$`` / ``\(...\)`` / ``\[...\]`` span.

    >>> last_number_or_math("We get 12 apples, then 2 more: 14 in total.")
    '14'
    >>> last_number_or_math(r"The probability is $\frac{1}{3}$.")
    '\\frac{1}{3}'
    """
    candidates: list[tuple[int, str]] = []
    number = None
    for number in _NUMBER.finditer(text):  # noqa: B007
        pass
    if number is not None:
        candidates.append((number.end(), number.group(0)))
    dollar_span = _last_dollar_span(text)
    if dollar_span is not None:
        candidates.append(dollar_span)
    for closer, opener in ((_PAREN_CLOSE, "\\("), (_BRACKET_CLOSE, "\\[")):
        close = None
        for close in closer.finditer(text):  # noqa: B007
            pass
        if close is None:
            continue
        start = text.rfind(opener, 0, close.start())
        if start >= 0:
            candidates.append((close.end(), text[start + 2 : close.start()]))
    if not candidates:
        return None
    return strip_math_delimiters(max(candidates, key=lambda candidate: candidate[0])[1]) or None


def _last_dollar_span(text: str) -> tuple[int, str] | None:
    """The last ``$...$`` or ``$$...$$`` span, pairing unescaped dollar signs from the left."""
    delimiters = list(_UNESCAPED_DOLLAR.finditer(text))
    if len(delimiters) < 2:
        return None
    pair_end = len(delimiters) - (len(delimiters) % 2)
    opener, closer = delimiters[pair_end - 2], delimiters[pair_end - 1]
    return closer.end(), text[opener.end() : closer.start()]


def completion_answer(text: str, *, choice: bool = False) -> str | None:
    r"""The final answer of a completion: ``<answer>`` content, else the last ``\boxed{}``, else the last number.

    Inside ``<answer>`` tags a ``\boxed{}`` is unwrapped; a tagged or boxed answer is cut to what follows its
    last "the answer is" and loses a closing "is correct". With ``choice=True`` (the gold is a letter) the
    fallback looks for "answer is (B)" instead of a number.

    >>> completion_answer("<think>3*4=12, 2+12=14</think><answer>$14$</answer>")
    '14'
    >>> completion_answer("<answer>12 is wrong, the answer is 14.</answer>"), completion_answer("<answer>7 is correct</answer>")
    ('14', '7')
    >>> completion_answer(r"... hence \boxed{(1, 2)}")
    '(1, 2)'
    >>> completion_answer("So the answer is (C).", choice=True)
    'C'
    """
    tagged = answer_tag_content(text)
    if tagged is not None:
        boxed_inside = last_boxed_content(tagged)
        return _final_statement(boxed_inside if boxed_inside is not None else tagged)
    boxed = last_boxed_content(text)
    if boxed is not None:
        return _final_statement(boxed)
    if choice:
        anchored = None
        for anchored in _ANCHORED_CHOICE.finditer(text):  # noqa: B007
            pass
        if anchored is not None:
            return anchored.group(1).upper()
    return last_number_or_math(text)


def _final_statement(answer: str) -> str | None:
    """An answer without its delimiters, cut to what follows its last "the answer is" (if it has one), without a
    closing "is correct" / "is the answer"."""
    statement = after_last_anchor(strip_math_delimiters(answer))
    if statement is None:
        return None  # "the answer is 5 or the answer is 6": several final answers
    answer = strip_math_delimiters(statement)
    tail_start = max(0, len(answer) - _AFFIRMATION_TAIL)
    affirmation = _AFFIRMATION.search(answer, tail_start)
    if affirmation is not None and affirmation.start() > 0:
        answer = strip_math_delimiters(answer[: affirmation.start()])
    return answer or None


def gold_answer(solution: str) -> str:
    r"""The answer part of a gold solution: the last ``\boxed{}``, else what follows ``####`` (GSM8K), else all of it.

    >>> gold_answer(r"Half of 6 is $3$, so the answer is $\boxed{\frac{1}{3}}$.")
    '\\frac{1}{3}'
    >>> gold_answer("Natalia sold 48/2 = 24 clips in May.\n#### 72")
    '72'
    >>> gold_answer(" 14 ")
    '14'
    """
    boxed = last_boxed_content(solution)
    if boxed is not None:
        return _final_statement(boxed) or ""
    marker = solution.rfind("####")
    if marker >= 0:
        return _final_statement(solution[marker + 4 :]) or ""
    return _final_statement(solution) or ""


def gold_choice(answer: str) -> str | None:
    r"""The letter of a multiple-choice gold answer (``B``, ``(B)``, ``\text{(B)}``, ``(A) 12``), or None.

    >>> gold_choice(r"\text{(B)}"), gold_choice("(A) 12"), gold_choice("x") is None, gold_choice("A B") is None
    ('B', 'A', True, True)
    """
    match = _GOLD_CHOICE.fullmatch(without_formatting(answer))
    return next(letter for letter in match.groups() if letter) if match else None


def predicted_choice(answer: str) -> str | None:
    """The one letter a predicted answer picks, upper-cased; None when it picks none, several, or negates it.

    >>> predicted_choice("(b)"), predicted_choice("B) 42"), predicted_choice("c) 7"), predicted_choice("42") is None
    ('B', 'B', 'C', True)
    >>> predicted_choice("B or C"), predicted_choice("A and D"), predicted_choice("B is wrong"), predicted_choice("a = 5")
    (None, None, None, None)
    >>> predicted_choice("A) 12 B) 13 C) 14"), predicted_choice("(A) A triangle.")
    (None, 'A')
    """
    statement = after_last_anchor(without_formatting(answer))
    if statement is None:
        return None
    text = strip_math_delimiters(statement)
    text = _OPTION_WORDS.sub("", text, count=1) if _OPTION_WORDS.match(text) else text
    for pattern in (_PAREN_LETTER, _MARKED_LETTER, _BARE_LETTER, _LETTER_THEN_TEXT):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        letter = match.group(1).upper()
        rest = match.groupdict().get("rest") or ""
        others = {"".join(named).upper() for named in _ANOTHER_LETTER.findall(rest)}
        if others - {letter} or is_negated(rest):
            return None
        return letter
    return None
