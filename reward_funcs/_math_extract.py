"""Find the final answer in a completion or a gold solution, as a short string ready for verification.

Every function here is linear in the input (no regex that can backtrack without bound), because a
reward must never hang on a malicious or degenerate completion.
"""

from __future__ import annotations

import re

_ANSWER_OPEN = re.compile(r"<answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer\s*>", re.IGNORECASE)
_BOX_COMMANDS = ("\\boxed", "\\fbox")
# How many trailing \boxed occurrences to try when the last ones are truncated (unbalanced braces).
_MAX_BOX_ATTEMPTS = 8

_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s*\\?%)?")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$\$?")
_PAREN_CLOSE = re.compile(r"\\\)")
_BRACKET_CLOSE = re.compile(r"\\\]")

_FORMATTING_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm|mbox)\s*\{([^{}]*)\}")
_GOLD_CHOICE = re.compile(r"\(?([A-J])\)?")
_PREDICTED_CHOICE = re.compile(
    r"(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*:?\s*)?"
    r"\(?(?P<letter>[A-Ja-j])\)?(?P<rest>[.:)]?|[.:)]\s+.*|\s+.*)",
    re.IGNORECASE | re.DOTALL,
)
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

    >>> strip_math_delimiters(r" $\frac{1}{3}$. ")
    '\\frac{1}{3}'
    >>> strip_math_delimiters(r"\(x = 3\)")
    'x = 3'
    """
    previous = None
    while answer != previous:
        previous = answer
        answer = answer.strip()
        if answer.endswith(".") and not answer.endswith(".."):
            answer = answer[:-1].rstrip()
        for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            inner = answer[len(opener) : len(answer) - len(closer)]
            if (
                len(answer) >= len(opener) + len(closer)
                and answer.startswith(opener)
                and answer.endswith(closer)
                and opener not in inner
                and not inner.endswith("\\")
            ):
                answer = inner
                break
    return answer


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

    Inside ``<answer>`` tags a ``\boxed{}`` is unwrapped. With ``choice=True`` (the gold is a letter) the
    fallback looks for "answer is (B)" instead of a number.

    >>> completion_answer("<think>3*4=12, 2+12=14</think><answer>$14$</answer>")
    '14'
    >>> completion_answer(r"... hence \boxed{(1, 2)}")
    '(1, 2)'
    >>> completion_answer("So the answer is (C).", choice=True)
    'C'
    """
    tagged = answer_tag_content(text)
    if tagged is not None:
        boxed_inside = last_boxed_content(tagged)
        answer = strip_math_delimiters(boxed_inside if boxed_inside is not None else tagged)
        return answer or None
    boxed = last_boxed_content(text)
    if boxed is not None:
        return strip_math_delimiters(boxed) or None
    if choice:
        anchored = None
        for anchored in _ANCHORED_CHOICE.finditer(text):  # noqa: B007
            pass
        if anchored is not None:
            return anchored.group(1).upper()
    return last_number_or_math(text)


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
        return strip_math_delimiters(boxed)
    marker = solution.rfind("####")
    if marker >= 0:
        return strip_math_delimiters(solution[marker + 4 :])
    return strip_math_delimiters(solution)


def _without_formatting(answer: str) -> str:
    previous = None
    while answer != previous:
        previous = answer
        answer = _FORMATTING_WRAPPER.sub(r"\1", answer)
    return answer.replace("**", "").strip()


def gold_choice(answer: str) -> str | None:
    r"""The letter of a multiple-choice gold answer (``B``, ``(B)``, ``\text{(B)}``), or None.

    >>> gold_choice(r"\text{(B)}"), gold_choice("x") is None
    ('B', True)
    """
    match = _GOLD_CHOICE.fullmatch(_without_formatting(answer))
    return match.group(1) if match else None


def predicted_choice(answer: str) -> str | None:
    """The letter a predicted answer picks (``B``, ``(b)``, ``B) 42``, ``Answer: B``), upper-cased, or None.

    >>> predicted_choice("(b)"), predicted_choice("B) 42"), predicted_choice("42") is None
    ('B', 'B', True)
    """
    match = _PREDICTED_CHOICE.fullmatch(_without_formatting(answer))
    if match is None:
        return None
    letter = match.group("letter")
    if letter.islower() and match.group("rest").strip(" .:)"):
        return None  # "a = 5" names a variable; only a lone lower-case letter counts as a choice
    return letter.upper()
