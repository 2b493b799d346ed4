"""Structure rewards: the R1 ``<think>…</think><answer>…</answer>`` format, its tags, and step-by-step layout.

All checks use plain string counting and searching (no backtracking regex), so they run in linear time on
any input.

``think_prefilled=True`` is for chat templates that already open ``<think>`` at the end of the prompt
(R1-Distill style): the completion starts inside the reasoning, so it is scored as if that ``<think>``
were its first characters. A completion that opens another ``<think>`` then repeats the block.
"""

from __future__ import annotations

import re
from typing import Any

from reward_funcs._text import Completion, completion_to_text
from reward_funcs.registry import register

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
R1_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

STEPS_FOR_FULL_CREDIT = 3

# One alternative per kind of step marker. Every quantifier is bounded by a fixed character class that
# the next token cannot match, so the scan stays linear (``[ \t]*`` rather than ``\s*`` at line starts:
# ``\s*`` would re-scan runs of newlines from every line start).
_STEP_MARKERS = re.compile(
    r"\b[Ss]tep[ \t]?\d+[ \t]*[:.)]"  # Step 1: / step 2.
    r"|\bPaso[ \t]?\d+[ \t]*[:.)]"  # Spanish "Paso 1:"
    r"|第[ \t]?[一二三四五六七八九十百\d]+[ \t]?步"  # Chinese 第1步 / 第一步
    r"|^[ \t]*\d{1,3}[.)][ \t]"  # numbered list item at a line start: "1. " / "2) "
    r"|^[ \t]*[-*•][ \t]"  # bullet at a line start
    r"|\b(?:First|Firstly|Second|Secondly|Third|Thirdly|Next|Then|Finally|Lastly)[,:]"
    r"|(?:首先|其次|然后|接着|最后)[，,：:]",
    re.MULTILINE,
)


def _prefill(text: str, think_prefilled: bool) -> str:
    return THINK_OPEN + text if think_prefilled else text


def has_r1_format(text: str, *, think_prefilled: bool = False, answer_tag: bool = True) -> bool:
    """Whether ``text`` is exactly one think block followed by exactly one answer block.

    Only whitespace may come before ``<think>``, between ``</think>`` and ``<answer>`` and after
    ``</answer>``. The reasoning may be empty; the answer may not. With ``answer_tag=False`` the answer
    is the free text after ``</think>`` (R1-Distill style): it must be non-blank and hold no think tag.

    >>> has_r1_format("<think>2+2=4</think>\\n<answer>4</answer>\\n")
    True
    >>> has_r1_format("<think>a</think><answer>4</answer> extra")
    False
    >>> has_r1_format("2+2=4</think><answer>4</answer>", think_prefilled=True)
    True
    >>> has_r1_format("2+2=4\\n</think>\\n\\nThe answer is 4.", think_prefilled=True, answer_tag=False)
    True
    """
    text = _prefill(text, think_prefilled)
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
        return False
    before_think, _, rest = text.partition(THINK_OPEN)
    if before_think.strip() or THINK_CLOSE not in rest:
        return False
    after_think = rest.partition(THINK_CLOSE)[2].strip()
    if not answer_tag:
        return bool(after_think)
    if text.count(ANSWER_OPEN) != 1 or text.count(ANSWER_CLOSE) != 1:
        return False
    if not (after_think.startswith(ANSWER_OPEN) and after_think.endswith(ANSWER_CLOSE)):
        return False
    answer = after_think[len(ANSWER_OPEN) : -len(ANSWER_CLOSE)]
    return bool(answer.strip())


@register("format")
def r1_format(
    completions: list[Completion],
    *,
    think_prefilled: bool = False,
    answer_tag: bool = True,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 for the R1-Zero format ``<think>…</think><answer>…</answer>`` and nothing else, 0.0 otherwise.

    Options (``get("format", think_prefilled=True)``) are those of :func:`has_r1_format`.

    >>> r1_format(["<think>\\n3*4=12\\n</think>\\n<answer>12</answer>", "<answer>12</answer>"])
    [1.0, 0.0]
    >>> r1_format([[{"role": "assistant", "content": "<think>a</think><think>b</think><answer>1</answer>"}]])
    [0.0]
    """
    return [
        float(has_r1_format(completion_to_text(c), think_prefilled=think_prefilled, answer_tag=answer_tag))
        for c in completions
    ]


def well_placed_tags(text: str, tags: tuple[str, ...] = R1_TAGS) -> int:
    """How many of ``tags`` appear exactly once and in the expected order relative to each other.

    A tag that appears twice or more earns nothing, so repeating blocks does not pay. Among the tags that
    appear once, the largest subset whose positions follow the order of ``tags`` counts.

    >>> well_placed_tags("<think>a</think><answer>b</answer>")
    4
    >>> well_placed_tags("<answer>b</answer><think>a</think>")
    2
    >>> well_placed_tags("<think>a</think><think>b</think><answer>c</answer>")
    2
    """
    positions = [text.find(tag) for tag in tags if text.count(tag) == 1]
    # Longest increasing subsequence of positions; quadratic in the number of tags (at most 4 here).
    best: list[int] = []
    for index, position in enumerate(positions):
        best.append(1 + max((best[j] for j in range(index) if positions[j] < position), default=0))
    return max(best, default=0)


@register("tag_count")
def tag_count(completions: list[Completion], *, think_prefilled: bool = False, **kwargs: Any) -> list[float | None]:
    """Partial format credit: 0.25 for each of ``<think> </think> <answer> </answer>`` that is well placed.

    See :func:`well_placed_tags`. With ``think_prefilled=True`` the prompt's ``<think>`` counts as the
    completion's first tag.

    >>> tag_count(["<think>a</think><answer>b</answer>", "<think>a</think>", "</answer>b<answer>"])
    [1.0, 0.5, 0.25]
    >>> tag_count(["a</think><answer>b</answer>"], think_prefilled=True)
    [1.0]
    """
    return [
        well_placed_tags(_prefill(completion_to_text(c), think_prefilled)) / len(R1_TAGS) for c in completions
    ]


def count_steps(text: str) -> int:
    """The number of explicit step markers: "Step 1:", "1. ", bullets, "First,", "Finally,", "第1步", "首先，"...

    >>> count_steps("Step 1: add.\\nStep 2: divide.")
    2
    >>> count_steps("First, x=1.\\n- y=2\\n- z=3\\n3.14 is not a list item")
    3
    """
    return sum(1 for _ in _STEP_MARKERS.finditer(text))


@register("reasoning_steps")
def reasoning_steps(completions: list[Completion], **kwargs: Any) -> list[float | None]:
    """Reward explicit step-by-step structure: ``min(1, steps / 3)`` with steps counted by :func:`count_steps`.

    >>> reasoning_steps(["Step 1: a\\nStep 2: b\\nStep 3: c", "First, a. Then, b.", "just an answer"])
    [1.0, 0.6666666666666666, 0.0]
    """
    return [min(1.0, count_steps(completion_to_text(c)) / STEPS_FOR_FULL_CREDIT) for c in completions]
