r"""The ``accuracy`` reward: 1.0 when the final answer of a completion equals the gold answer, else 0.0.

The answer is the content of the last ``<answer>...</answer>`` block, else the last ``\boxed{}``, else the
last number (or ``$...$`` span) of the completion; within it, what follows a last "the answer is". The gold
(``solution`` column) may be a bare answer (``14``, ``\frac{1}{3}``, ``(1,2)``, ``B``, ``Yes``) or a full
solution with a ``\boxed{}`` or a GSM8K ``#### 72``; a list of golds accepts any of them.

Equality is math-verify's for mathematics (LaTeX and plain expressions, fractions vs decimals, thousands
separators, percent signs, ordered tuples and intervals vs unordered sets, ``x = 3`` vs ``3``), with what a
policy could otherwise be paid for closed (see :mod:`reward_funcs._math_judge`): an answer that names several
different values or choices, or negates itself, scores 0; units must match when both sides have them;
numbers match within the gold's own precision, not a fixed epsilon; a gold made of words is compared as
text; a multiple-choice gold (``B``, ``(A) 12``) on its letter. A gold that cannot be read (``\frac{``, a
number spelled out in words) scores None (TRL skips it), never 1.0.

Time is bounded: extraction and judging run in a pool of worker processes (``num_workers``, each job at
most ``timeout`` seconds, then 0.0), independent completions in parallel and identical (completion, gold)
rows once. With ``batch_timeout`` the call returns within that many seconds whatever the completions hold;
completions not judged by then score None and are counted in the ``accuracy/unfinished`` metric.

Why not ``trl.rewards.accuracy_reward`` (or ``reasoning_accuracy_reward``): it switches math-verify's
timeouts off whenever it runs outside the main thread (they rely on ``signal.alarm``), so one completion
such as ``\boxed{9^{9^{9^{9}}}}`` can hang a training step; it also ignores ``<answer>`` tags and only
reads LaTeX, so a plain ``<answer>14</answer>`` is not found.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from reward_funcs._text import Completion, completion_to_text
from reward_funcs._verify_client import (
    DEFAULT_NUM_WORKERS,
    validate_num_workers,
    validate_timeout,
    verify_rows,
)
from reward_funcs.registry import RewardFunc, register

DEFAULT_TIMEOUT = 5.0  # seconds per completion
# No batch deadline unless asked (training passes the recipe's `reward_batch_timeout`): evaluation and data
# generation judge thousands of completions in one call, each bounded by `timeout` anyway.
DEFAULT_BATCH_TIMEOUT: float | None = None


def _gold_alternatives(solution: Any) -> list[str | None]:
    """A row's gold answers: one, or several acceptable ones given as a list; None for one that has no text."""
    if solution is None:
        return []
    items = solution if isinstance(solution, list | tuple) else [solution]
    return [_gold_text(item) for item in items if item is not None]


def _gold_text(gold: Any) -> str | None:
    try:
        return gold if isinstance(gold, str) else str(gold)
    except (ValueError, TypeError, RecursionError):  # e.g. an int of more than 4,300 digits
        return None


def accuracy(
    completions: list[Completion],
    solution: list[Any] | Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    batch_timeout: float | None = DEFAULT_BATCH_TIMEOUT,
    num_workers: int | None = None,
    log_extra: Callable[[str, list], None] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    r"""1.0 when a completion's final answer equals its gold ``solution``, 0.0 when not, None when the gold is unreadable.

    ``solution`` holds one gold per completion (or a list of acceptable golds per completion). ``timeout``
    bounds the seconds spent on one completion; ``batch_timeout`` (if given) the seconds of the whole call,
    after which completions not yet judged are None; ``num_workers`` judge at once.

    >>> accuracy(["<think>12+2</think><answer>14</answer>", r"... so \boxed{\dfrac{2}{6}}"], solution=["14", r"\frac{1}{3}"])
    [1.0, 1.0]
    >>> accuracy([[{"role": "assistant", "content": "<answer>x = 3</answer>"}], "<answer>(2, 1)</answer>"], solution=["3", "(1, 2)"])
    [1.0, 0.0]
    >>> accuracy(["<answer>1</answer>", "<answer>B or C</answer>", "<answer>5 km</answer>"], solution=[r"\frac{", "B", "5 m"])
    [None, 0.0, 0.0]
    """
    if solution is None:
        raise ValueError("the accuracy reward needs the gold answers: a `solution` column in the dataset")
    timeout = validate_timeout(timeout)
    if batch_timeout is not None:
        batch_timeout = validate_timeout(batch_timeout, "batch_timeout")
    workers = DEFAULT_NUM_WORKERS if num_workers is None else validate_num_workers(num_workers)
    size = len(completions)
    if isinstance(solution, list | tuple):
        if len(solution) != size:
            raise ValueError(f"got {len(solution)} gold solutions for {size} completions")
        golds = list(solution)
    else:
        golds = [solution] * size  # one gold for the whole batch
    jobs: dict[tuple[str, tuple[str | None, ...]], int] = {}  # identical rows are judged once
    row_jobs: list[int | None] = []
    for completion, row_solution in zip(completions, golds, strict=True):
        alternatives = tuple(_gold_alternatives(row_solution))
        if not any(alternative is not None for alternative in alternatives):
            row_jobs.append(None)  # no gold: unscorable, nothing to judge
            continue
        row_jobs.append(jobs.setdefault((completion_to_text(completion), alternatives), len(jobs)))
    keys = list(jobs)
    result = verify_rows([text for text, _ in keys], [list(row) for _, row in keys], timeout, batch_timeout, workers)
    scores = [None if job is None else result.scores[job] for job in row_jobs]
    if log_metric is not None:
        log_metric("accuracy/timeouts", float(result.timeouts))
        if batch_timeout is not None:
            unfinished = sum(job is not None and result.answers[job] is None for job in row_jobs)
            log_metric("accuracy/unfinished", float(unfinished))
    if log_extra is not None:
        log_extra("accuracy/answer", ["" if job is None else (result.answers[job] or "") for job in row_jobs])
    return scores


@register("accuracy", factory=True)
def build_accuracy(
    timeout: float = DEFAULT_TIMEOUT,
    batch_timeout: float | None = DEFAULT_BATCH_TIMEOUT,
    num_workers: int | None = None,
) -> RewardFunc:
    """The ``accuracy`` reward configured: ``get("accuracy", timeout=2.0, batch_timeout=30, num_workers=4)``.

    >>> build_accuracy(timeout=2.0)(["<answer>50\\%</answer>"], solution=["0.5"])
    [1.0]
    """
    timeout = validate_timeout(timeout)
    if batch_timeout is not None:
        validate_timeout(batch_timeout, "batch_timeout")
    if num_workers is not None:
        validate_num_workers(num_workers)
    return functools.wraps(accuracy)(
        functools.partial(accuracy, timeout=timeout, batch_timeout=batch_timeout, num_workers=num_workers)
    )
