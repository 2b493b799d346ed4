"""Every reward the registry returns pickles and unpickles to an equal-scoring guarded callable.

TRL pickles reward functions to send them to other processes (its async GRPO trainer, multiprocess reward
workers), so a reward that is a local closure cannot be used there.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reward_funcs
from reward_funcs.registry import GuardedReward, NamedReward

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def length_scorer(prompts: list[Any], responses: list[str]) -> list[float]:
    """Stands in for a reward model: a module-level function, so the reward that holds it pickles."""
    return [len(response) / 10.0 - 1.0 for response in responses]


CONFIG: dict[str, dict[str, Any]] = {
    "helpfulness_rm": {"scorer": length_scorer},
    "harmlessness_rm": {"scorer": length_scorer},
    "soft_overlong_punishment": {"max_completion_len": 100, "soft_punish_cache": 20},
    "code": {"time_limit": 2.0},
    "binary_code": {"time_limit": 2.0},
}
GYM_ENTRY = json.dumps({"task": "chain_sum", "config": {}, "entry": {
    "question": "2 + 2 =", "answer": "4", "metadata": {"source_dataset": "chain_sum", "expression": "2 + 2"}}})
CODE_INFO = {"language": "python", "test_cases": [{"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"}]}
COMPLETIONS = [
    "<think>Two plus two is four. Step 1: add.</think>\n<answer>4</answer>",
    "<think>hmm</think><answer>(7 - 3) * 5 + 2 = 22</answer>",
    "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
    "<answer>\\frac{1}{2}</answer>",
]
COLUMNS: dict[str, list[Any]] = {
    "prompts": ["What is 2+2?"] * 4,
    "solution": ["4", "22", "3", "0.5"],
    "numbers": [[2, 2], [7, 3, 5, 2], [1, 2], [1, 2]],
    "target": [4, 22, 3, 1],
    "language": ["en"] * 4,
    "prompt_type": ["general", "reasoning", "general", "reasoning"],
    "reasoning_gym": [GYM_ENTRY] * 4,
    "verification_info": [CODE_INFO] * 4,
    "completion_ids": [[1] * 10, [1] * 85, [1] * 95, [1] * 200],
}


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "unguarded"])
@pytest.mark.parametrize("name", reward_funcs.names())
def test_reward_pickles_to_an_equal_scoring_callable(name: str, guard: bool) -> None:
    reward = reward_funcs.get(name, guard=guard, **CONFIG.get(name, {}))
    copy = pickle.loads(pickle.dumps(reward))
    assert copy is not reward and copy.__name__ == name
    assert isinstance(copy, GuardedReward if guard else NamedReward)
    expected = reward(COMPLETIONS, **COLUMNS)
    assert copy(COMPLETIONS, **COLUMNS) == expected
    first_row = {key: value[:1] for key, value in COLUMNS.items()}
    assert copy(COMPLETIONS[:1], **first_row) == reward(COMPLETIONS[:1], **first_row)


def _fragile(completions: list[str], **kwargs: Any) -> list[float]:
    return [1.0 / len(completion) for completion in completions]


def test_guard_survives_the_round_trip() -> None:
    copy = pickle.loads(pickle.dumps(reward_funcs.guarded(_fragile, "fragile")))
    assert copy(["ab", ""]) == [0.5, None] and copy.__name__ == "fragile"


def test_unpickled_in_a_fresh_process_scores_the_same() -> None:
    reward = reward_funcs.get("accuracy", timeout=3.0)
    completions = ["<answer>\\frac{2}{4}</answer>", "<answer>x+1</answer>", "<answer>B</answer>"]
    golds = ["0.5", "1+x", "C"]
    program = (
        "import pickle, sys\n"
        "reward = pickle.loads(sys.stdin.buffer.read())\n"
        f"print(reward({completions!r}, solution={golds!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        input=pickle.dumps(reward),
        capture_output=True,
        timeout=180,
        check=True,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.decode().strip() == str(reward(completions, solution=golds)) == "[1.0, 1.0, 0.0]"


def test_prompt_type_routing_pickles() -> None:
    from reward_funcs.model_based import only_for_prompt_types

    routed = only_for_prompt_types(reward_funcs.get("accuracy"), "reasoning", "accuracy")
    copy = pickle.loads(pickle.dumps(routed))
    kwargs = {"solution": ["4", "4"], "prompt_type": ["reasoning", "general"]}
    assert copy(["<answer>4</answer>"] * 2, **kwargs) == routed(["<answer>4</answer>"] * 2, **kwargs) == [1.0, None]
