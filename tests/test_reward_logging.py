"""What rewards log through TRL's ``log_extra``/``log_metric`` stays aligned with the rows in every case.

TRL appends every ``log_extra`` column to its completions table as it comes: a column with fewer (or more)
values than the batch has rows shifts every later row of the table.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

import reward_funcs
from reward_funcs.registry import guarded


class Recorder:
    """TRL's two hooks, recording every call."""

    def __init__(self) -> None:
        self.extra: list[tuple[str, list[Any]]] = []
        self.metrics: list[tuple[str, float]] = []

    def hooks(self) -> dict[str, Any]:
        return {"log_extra": lambda column, values: self.extra.append((column, list(values))),
                "log_metric": lambda name, value: self.metrics.append((name, value))}

    def assert_aligned(self, rows: int) -> None:
        columns = [column for column, _ in self.extra]
        assert len(columns) == len(set(columns)), f"a column logged twice in one call: {columns}"
        for column, values in self.extra:
            assert len(values) == rows, f"{column}: {len(values)} values for {rows} rows"
        names = [name for name, _ in self.metrics]
        assert len(names) == len(set(names)), f"a metric logged twice in one call: {names}"


def test_unscorable_gold_keeps_the_answer_column_aligned() -> None:
    recorder = Recorder()
    scores = reward_funcs.get("accuracy")(
        ["<answer>1</answer>", "<answer>1</answer>"], solution=["1", 10**5000], **recorder.hooks()
    )
    assert scores == [1.0, None]
    recorder.assert_aligned(2)
    assert dict(recorder.extra)["accuracy/answer"] == ["1", ""]  # a row without a usable gold is not judged
    assert dict(recorder.metrics) == {"accuracy/timeouts": 0.0}


def _logs_then_fails_on_empty(completions: list[str], log_extra: Any = None, log_metric: Any = None,
                              **kwargs: Any) -> list[float]:
    log_extra("length", [len(c) for c in completions])
    log_metric("calls", 1.0)
    return [1.0 / len(c) for c in completions]  # raises on "" after logging


def test_failed_batch_is_logged_once_from_the_row_retries() -> None:
    recorder = Recorder()
    scores = guarded(_logs_then_fails_on_empty, "fragile")(["ab", "", "abcd"], **recorder.hooks())
    assert scores == [0.5, None, 0.25]
    recorder.assert_aligned(3)
    assert recorder.extra == [("length", [2, None, 4])]  # the failed row's value was dropped with its call
    assert recorder.metrics == [("calls", 2.0)]  # summed over the rows that were scored


def test_single_row_that_fails_logs_nothing() -> None:
    recorder = Recorder()
    assert guarded(_logs_then_fails_on_empty, "fragile")([""], **recorder.hooks()) == [None]
    assert recorder.extra == [] and recorder.metrics == []


def _logs_badly(completions: list[str], log_extra: Any = None, log_metric: Any = None, **kwargs: Any) -> list[float]:
    log_extra("short", [1])
    log_extra("long", list(range(len(completions) + 3)))
    log_extra("twice", ["first"] * len(completions))
    log_extra("twice", ["second"] * len(completions))
    log_metric("twice", 1.0)
    log_metric("twice", 2.0)
    return [0.0] * len(completions)


def test_columns_of_the_wrong_length_are_padded_or_cut_and_logged_once() -> None:
    recorder = Recorder()
    guarded(_logs_badly, "bad")(["a", "b", "c"], **recorder.hooks())
    recorder.assert_aligned(3)
    assert dict(recorder.extra) == {"short": [1, None, None], "long": [0, 1, 2], "twice": ["second"] * 3}
    assert recorder.metrics == [("twice", 2.0)]


def test_hooks_absent_stay_absent() -> None:
    seen: dict[str, Any] = {}

    def spy(completions: list[str], **kwargs: Any) -> list[float]:
        seen.update(kwargs)
        return [0.0] * len(completions)

    guarded(spy, "spy")(["a"], solution=["1"])
    assert "log_extra" not in seen and "log_metric" not in seen


# Every registered reward, on batches whose rows break it in different ways.
def length_scorer(prompts: list[Any], responses: list[str]) -> list[float]:
    return [float(len(response)) for response in responses]


CONFIG: dict[str, dict[str, Any]] = {
    "helpfulness_rm": {"scorer": length_scorer},
    "harmlessness_rm": {"scorer": length_scorer},
    "soft_overlong_punishment": {"max_completion_len": 100, "soft_punish_cache": 20},
    "accuracy": {"timeout": 2.0},
    "code": {"time_limit": 2.0},
    "binary_code": {"time_limit": 2.0},
}
COMPLETIONS = ["<think>a</think><answer>4</answer>", "", "```python\nprint(3)\n```", "\\boxed{\\frac{1}{2}}"]
GOOD = {
    "solution": ["4", "1", "3", "0.5"],
    "numbers": [[2, 2]] * 4,
    "target": [4] * 4,
    "language": ["en"] * 4,
    "prompt_type": ["reasoning", "general", "reasoning", "general"],
    "reasoning_gym": [json.dumps({"task": "chain_sum", "config": {}, "entry": {"question": "2+2", "answer": "4",
                                  "metadata": {"source_dataset": "chain_sum", "expression": "2 + 2"}}})] * 4,
    "verification_info": [{"test_cases": [{"type": "stdin_stdout", "input": "", "output": "3\n"}]}] * 4,
}
JUNK = {
    "solution": [10**5000, None, object(), ["1", 10**5000]],
    "numbers": [None, "x", [10**5000], {}],
    "target": [object(), None, "x", 10**5000],
    "language": [None, 3, "xx", object()],
    "prompt_type": [None, 3, "general", object()],
    "reasoning_gym": ["{", None, 3, "[]"],
    "verification_info": ["{", None, 3, {"test_cases": "x"}],
}


@pytest.mark.parametrize("columns", [GOOD, JUNK], ids=["valid", "junk"])
@pytest.mark.parametrize("name", reward_funcs.names())
def test_every_reward_logs_one_value_per_row(name: str, columns: dict[str, list[Any]]) -> None:
    recorder = Recorder()
    reward = reward_funcs.get(name, **CONFIG.get(name, {}))
    scores = reward(COMPLETIONS, prompts=["q"] * 4, completion_ids=[[1] * 5] * 4, trainer_state=None,
                    **columns, **recorder.hooks())
    assert len(scores) == len(COMPLETIONS)
    recorder.assert_aligned(len(COMPLETIONS))
    by_column: dict[str, int] = defaultdict(int)
    for column, _ in recorder.extra:
        by_column[column] += 1
    assert all(count == 1 for count in by_column.values())
