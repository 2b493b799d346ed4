"""Readable long chain-of-thought for arithmetic problems, in the prompt's language.

This is the "readable format" of R1's cold-start data: reasoning, a verification, then a summary.
Two output layouts: ``think`` (``<think>…</think><answer>…</answer>``) and ``special_token``
(the paper's ``|special_token|<reasoning>|special_token|<summary>``).
"""

from __future__ import annotations

from collections.abc import Sequence

SPECIAL_TOKEN = "|special_token|"
OUTPUT_FORMATS = ("think", "special_token")

PHRASES = {
    "en": {"first": "First, {step}.", "then": "Then, {step}.", "check": "Check: {check}, so it holds.",
           "summary": "So the answer is {answer}.", "summary_head": "Summary: the answer is {answer}."},
    "zh": {"first": "首先，{step}。", "then": "然后，{step}。", "check": "验算：{check}，结果正确。",
           "summary": "所以答案是 {answer}。", "summary_head": "总结：答案是 {answer}。"},
}


def check_step(steps: Sequence[str]) -> str | None:
    """Verification line: the last step read backwards (``a + b = c`` -> ``c - b = a``)."""
    left, _, result = steps[-1].partition(" = ")
    parts = left.split(" ")
    if len(parts) != 3:
        return None
    a, op, b = parts
    inverse = {"+": "-", "-": "+"}.get(op)
    if inverse is None:
        return None
    return f"{result} {inverse} {b} = {a}"


def readable_reasoning(steps: Sequence[str], answer: str, language: str = "en") -> str:
    """Readable reasoning lines in ``language``.

    >>> print(readable_reasoning(["3 * 4 = 12", "2 + 12 = 14"], "14"))
    First, 3 * 4 = 12.
    Then, 2 + 12 = 14.
    Check: 14 - 12 = 2, so it holds.
    So the answer is 14.
    """
    phrases = PHRASES.get(language)
    if phrases is None:
        raise ValueError(f"no reasoning phrases for language {language!r}; known: {sorted(PHRASES)}")
    lines = [phrases["first" if i == 0 else "then"].format(step=step) for i, step in enumerate(steps)]
    check = check_step(steps) if steps else None
    if check:
        lines.append(phrases["check"].format(check=check))
    lines.append(phrases["summary"].format(answer=answer))
    return "\n".join(lines)


def readable_completion(
    steps: Sequence[str], answer: str, language: str = "en", output_format: str = "think"
) -> str:
    """A whole readable completion in one of ``OUTPUT_FORMATS``.

    >>> readable_completion(["1 + 1 = 2"], "2", output_format="special_token").startswith(SPECIAL_TOKEN)
    True
    """
    reasoning = readable_reasoning(steps, answer, language)
    if output_format == "think":
        return f" <think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"
    if output_format == "special_token":
        summary = PHRASES[language]["summary_head"].format(answer=answer)
        return f"{SPECIAL_TOKEN}{reasoning}{SPECIAL_TOKEN}{summary}"
    raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
