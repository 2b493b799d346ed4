r"""The ``accuracy`` reward: 1.0 when the final answer of a completion equals the gold answer, else 0.0.

The answer is the content of the last ``<answer>...</answer>`` block, else the last ``\boxed{}``, else the
last number (or ``$...$`` span) of the completion. The gold (``solution`` column) may be a bare answer
(``14``, ``\frac{1}{3}``, ``(1,2)``, ``B``) or a full solution with a ``\boxed{}`` or a GSM8K ``#### 72``.

Equality is math-verify's: LaTeX and plain expressions, fractions vs decimals, thousands separators,
units, percent and degree signs, ordered tuples and intervals vs unordered sets, ``x = 3`` vs ``3``.
Multiple-choice letters (``B``, ``(B)``, ``B) 42``) are compared directly. A gold answer that cannot be
parsed scores None (TRL skips it), never 1.0.

Speed: when both sides are simple (numbers, fractions, radicals and multiples of pi, tuples, intervals
and sets of them: most answers) they are compared exactly in-process, without SymPy; gold answers are
parsed once and cached; everything else is batched to a math-verify worker process, each distinct
(gold, answer) pair once per call.

Why not ``trl.rewards.accuracy_reward`` (or ``reasoning_accuracy_reward``): it switches math-verify's
timeouts off whenever it runs outside the main thread (they rely on ``signal.alarm``), so one completion
such as ``\boxed{9^{9^{9^{9}}}}`` can hang a training step; it also ignores ``<answer>`` tags and only
reads LaTeX, so a plain ``<answer>14</answer>`` is not found.
Here every answer is bounded by a wall-clock ``timeout`` enforced by killing the worker process, which
works on any thread and inside DataLoader workers; an answer that runs out of time scores 0.0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reward_funcs._math_extract import completion_answer, gold_answer, gold_choice, predicted_choice
from reward_funcs._math_local import LocalAnswer, local_verdict, parse_locally
from reward_funcs._text import Completion, completion_to_text
from reward_funcs._verify_client import validate_timeout, verify_pairs
from reward_funcs.registry import RewardFunc, register

DEFAULT_TIMEOUT = 5.0  # seconds per answer that needs the verifier
_GOLD_CACHE_SIZE = 16384


@dataclass(frozen=True)
class GoldAnswer:
    """A gold answer, parsed once: its bare text, its choice letter, and its in-process reading if it has one."""

    text: str
    choice: str | None = None
    local: LocalAnswer | None = None


@functools.lru_cache(maxsize=_GOLD_CACHE_SIZE)
def parse_gold(solution: str) -> GoldAnswer | None:
    r"""Parse a gold solution; None when it holds no answer at all.

    >>> parse_gold(r"so the answer is $\boxed{\frac{1}{2}}$").local.value.value
    Fraction(1, 2)
    >>> parse_gold("(B)").choice, parse_gold("   ") is None
    ('B', True)
    """
    answer = gold_answer(solution)
    if not answer:
        return None
    choice = gold_choice(answer)
    if choice is not None:
        return GoldAnswer(answer, choice=choice)
    return GoldAnswer(answer, local=parse_locally(answer))


class _NeedsVerifier:
    """Marks an answer that only the math-verify worker can judge."""


_NEEDS_VERIFIER = _NeedsVerifier()


def _judge_locally(gold: GoldAnswer, answer: str | None) -> float | _NeedsVerifier:
    if gold.choice is not None:
        return 1.0 if answer and predicted_choice(answer) == gold.choice else 0.0
    if gold.local is None:
        return _NEEDS_VERIFIER  # even for an empty answer: only the verifier knows whether the gold parses
    if not answer:
        return 0.0
    verdict = local_verdict(gold.local, answer)
    return _NEEDS_VERIFIER if verdict is None else float(verdict)


def _gold_alternatives(solution: Any) -> list[str]:
    """A row's gold answers: one string, or several acceptable ones given as a list."""
    if solution is None:
        return []
    if isinstance(solution, list | tuple):
        return [str(item) for item in solution if item is not None]
    return [str(solution)]


def _combine(verdicts: list[float | None]) -> float | None:
    """Correct if any acceptable gold matches; None only when no gold could be parsed."""
    judged = [verdict for verdict in verdicts if verdict is not None]
    return max(judged) if judged else None


def accuracy(
    completions: list[Completion],
    solution: list[Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log_extra: Callable[[str, list], None] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    r"""1.0 when a completion's final answer equals its gold ``solution``, 0.0 when not, None when the gold is unparseable.

    ``solution`` holds one gold per completion (or a list of acceptable golds per completion).
    ``timeout`` bounds the seconds spent on any one answer that needs the math-verify worker.

    >>> accuracy(["<think>12+2</think><answer>14</answer>", r"... so \boxed{\dfrac{2}{6}}"], solution=["14", r"\frac{1}{3}"])
    [1.0, 1.0]
    >>> accuracy([[{"role": "assistant", "content": "<answer>x = 3</answer>"}], "<answer>(2, 1)</answer>"], solution=["3", "(1, 2)"])
    [1.0, 0.0]
    >>> accuracy(["<answer>1</answer>"], solution=[r"\frac{"])
    [None]
    """
    if solution is None:
        raise ValueError("the accuracy reward needs the gold answers: a `solution` column in the dataset")
    timeout = validate_timeout(timeout)
    size = len(completions)
    if isinstance(solution, list | tuple):
        if len(solution) != size:
            raise ValueError(f"got {len(solution)} gold solutions for {size} completions")
        golds = list(solution)
    else:
        golds = [solution] * size  # one gold for the whole batch
    verdicts: list[list[float | None]] = [[] for _ in range(size)]
    answers: list[str] = [""] * size
    pending: dict[tuple[str, str], list[int]] = {}  # identical (gold, answer) pairs are verified once
    for index, (completion, row_solution) in enumerate(zip(completions, golds, strict=True)):
        text = completion_to_text(completion)
        for alternative in _gold_alternatives(row_solution):
            gold = parse_gold(alternative)
            if gold is None:
                verdicts[index].append(None)
                continue
            answer = completion_answer(text, choice=gold.choice is not None)
            answers[index] = answers[index] or (answer or "")
            verdict = _judge_locally(gold, answer)
            if isinstance(verdict, _NeedsVerifier):
                pending.setdefault((gold.text, answer or ""), []).append(index)
            else:
                verdicts[index].append(verdict)
    timeouts = 0
    if pending:
        pairs = list(pending)
        result = verify_pairs(pairs, timeout)
        timeouts = result.timeouts
        for pair, score in zip(pairs, result.scores, strict=True):
            for index in pending[pair]:
                verdicts[index].append(score)
    if log_metric is not None:
        log_metric("accuracy/timeouts", float(timeouts))
    if log_extra is not None:
        log_extra("accuracy/answer", answers)
    return [_combine(row) for row in verdicts]


@register("accuracy", factory=True)
def build_accuracy(timeout: float = DEFAULT_TIMEOUT) -> RewardFunc:
    """The ``accuracy`` reward with a per-answer ``timeout`` in seconds: ``get("accuracy", timeout=2.0)``.

    >>> build_accuracy(timeout=2.0)(["<answer>50\\%</answer>"], solution=["0.5"])
    [1.0]
    """
    timeout = validate_timeout(timeout)
    return functools.wraps(accuracy)(functools.partial(accuracy, timeout=timeout))
