"""``reasoning_gym`` reward: score the extracted answer with the reasoning-gym entry's own verifier.

The row's ``reasoning_gym`` column (written by ``r1_trl.data.tasks.reasoning_gym``) is a JSON string (or
dict) ``{"task": name, "config": {...}, "entry": {"question", "answer", "metadata"}}``. The answer is the
``<answer>`` content of the completion (else the last ``\\boxed{}``, else the last number or expression) and
the score is ``dataset.score_answer(answer, entry)`` of a dataset built with the entry's task and config.
reasoning-gym gives partial credit on some tasks (e.g. 0.01 for a wrong but well-formed answer); the score
is returned as it is. Rows without a usable entry score None; a verifier that raises scores 0.0 (logged),
and one that runs longer than ``timeout`` seconds scores 0.0 and is left behind on a daemon thread.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from reward_funcs._math_extract import completion_answer
from reward_funcs._text import Completion, column, completion_to_text
from reward_funcs.registry import register

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_CHARS = 10_000  # longer answers are not passed to the verifier (and score 0.0)


def parse_entry(value: Any) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(task, config, entry) from a ``reasoning_gym`` column value, or None when it is unusable.

    >>> parse_entry('{"task": "chain_sum", "config": {}, "entry": {"question": "1 + 1 =", "answer": "2", "metadata": {}}}')[0]
    'chain_sum'
    >>> parse_entry("not json") is None, parse_entry(None) is None
    (True, True)
    """
    record = value
    if isinstance(record, str | bytes):
        try:
            record = json.loads(record)
        except (ValueError, RecursionError):
            return None
    if not isinstance(record, dict):
        return None
    task, config, entry = record.get("task"), record.get("config") or {}, record.get("entry")
    if not isinstance(task, str) or not isinstance(config, dict) or not isinstance(entry, dict):
        return None
    if "answer" not in entry or not isinstance(entry.get("metadata", {}), dict):
        return None
    return task, config, entry


@functools.lru_cache(maxsize=64)
def _scorer(task: str, config_json: str) -> Callable[[str | None, dict[str, Any]], float]:
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(task, size=1, seed=0, **json.loads(config_json))
    return dataset.score_answer


def _score_with_timeout(
    scorer: Callable[[str | None, dict[str, Any]], float], answer: str | None, entry: dict[str, Any], timeout: float
) -> float:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(float(scorer(answer, entry)))
        except Exception as error:  # noqa: BLE001 - a task's verifier may raise anything on odd answers
            result.append(error)

    worker = threading.Thread(target=run, daemon=True, name="reasoning-gym-verifier")
    worker.start()
    worker.join(timeout)
    if not result:
        logger.warning("reasoning-gym verifier timed out after %.1fs on answer %.80r; scored 0.0", timeout, answer)
        return 0.0
    outcome = result[0]
    if isinstance(outcome, Exception):
        logger.warning("reasoning-gym verifier raised %r on answer %.80r; scored 0.0", outcome, answer)
        return 0.0
    return outcome if math.isfinite(outcome) else 0.0


def extract_answer(text: str) -> str | None:
    """The answer a reasoning-gym verifier sees: ``<answer>`` content, else the last box or number.

    >>> extract_answer("<think>4 - 1 = 3</think><answer> 3 </answer>"), extract_answer("so it is 7.")
    ('3', '7')
    """
    return completion_answer(text)


@register("reasoning_gym")
def reasoning_gym_reward(
    completions: list[Completion], *, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any
) -> list[float | None]:
    """The reasoning-gym verifier's score of each completion's answer (None when the row has no entry).

    >>> row = {"task": "chain_sum", "config": {}, "entry": {"question": "State the final answer to the "
    ...        "following arithmetic problem: 4 - 1 =", "answer": "3", "metadata": {"source_dataset": "chain_sum"}}}
    >>> reasoning_gym_reward(["<answer>3</answer>", "<answer>4</answer>", "no answer"],
    ...                      reasoning_gym=[row, row, row])
    [1.0, 0.0, 0.0]
    """
    size = len(completions)
    scores: list[float | None] = []
    for completion, value in zip(completions, column(kwargs, "reasoning_gym", size), strict=True):
        parsed = parse_entry(value)
        if parsed is None:
            scores.append(None)
            continue
        task, config, entry = parsed
        try:
            scorer = _scorer(task, json.dumps(config, sort_keys=True))
        except Exception as error:  # noqa: BLE001 - unknown task or a config the task rejects
            logger.warning("reasoning-gym task %r with config %r is unusable (%r); scored None", task, config, error)
            scores.append(None)
            continue
        answer = extract_answer(completion_to_text(completion))
        if answer is not None and len(answer) > MAX_ANSWER_CHARS:
            scores.append(0.0)
            continue
        scores.append(_score_with_timeout(scorer, answer, entry, timeout))
    return scores
