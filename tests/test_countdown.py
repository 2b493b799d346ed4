"""Countdown task generator and its reward."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

import reward_funcs
from r1_trl.data.tasks.countdown import (
    countdown_dataset,
    countdown_splits,
    random_problem,
    split_of,
)
from reward_funcs.countdown import countdown_reward, evaluate_equation, extract_equation

# --- generator ------------------------------------------------------------------------------------------


def test_dataset_schema_and_row_contents() -> None:
    ds = countdown_dataset(20, seed=3, min_numbers=3, max_numbers=6)
    assert ds.column_names == ["prompt", "solution", "numbers", "target", "task"]
    for row in ds:
        assert row["task"] == "countdown"
        assert row["solution"] == str(row["target"])
        assert 3 <= len(row["numbers"]) <= 6
        assert all(1 <= n <= 100 for n in row["numbers"])
        assert 1 <= row["target"] <= 1000
        assert row["prompt"].startswith(f"Using the numbers {row['numbers']}, create an equation that equals")
        assert f"equals {row['target']}." in row["prompt"]
        assert "<answer>" in row["prompt"] and "exactly once" in row["prompt"]


def test_deterministic_per_seed() -> None:
    first = countdown_dataset(30, seed=7, max_numbers=5)
    again = countdown_dataset(30, seed=7, max_numbers=5)
    other = countdown_dataset(30, seed=8, max_numbers=5)
    assert first.to_list() == again.to_list()
    assert first.to_list() != other.to_list()
    # a smaller request is a prefix of a larger one
    assert countdown_dataset(10, seed=7, max_numbers=5).to_list() == first.to_list()[:10]


def test_difficulty_is_the_operand_count() -> None:
    counts = Counter(
        len(numbers) for numbers in countdown_dataset(400, seed=0, min_numbers=3, max_numbers=6)["numbers"]
    )
    assert set(counts) == {3, 4, 5, 6}
    assert min(counts.values()) > 60  # roughly uniform
    assert set(
        Counter(len(n) for n in countdown_dataset(50, seed=0, min_numbers=5, max_numbers=5)["numbers"])
    ) == {5}


@pytest.mark.parametrize("operand_count", [3, 4, 5, 6])
def test_every_generated_problem_is_solvable(operand_count: int) -> None:
    rng = random.Random(operand_count)
    for _ in range(300):
        problem = random_problem(rng, operand_count, max_number=50, max_target=500)
        value, literals = evaluate_equation(problem.equation)
        assert value == problem.target
        assert sorted(literals) == sorted(problem.numbers)
        assert 1 <= problem.target <= 500
        completion = f"<think>...</think><answer>{problem.equation}</answer>"
        assert countdown_reward([completion], numbers=[list(problem.numbers)], target=[problem.target]) == [
            1.0
        ]


def test_train_and_test_are_disjoint() -> None:
    splits = countdown_splits(300, 60, seed=1, min_numbers=3, max_numbers=3, max_number=20)
    assert (len(splits["train"]), len(splits["test"])) == (300, 60)

    def keys(ds: Dataset) -> set[tuple[tuple[int, ...], int]]:
        return {(tuple(sorted(r["numbers"])), r["target"]) for r in ds}

    train_keys, test_keys = keys(splits["train"]), keys(splits["test"])
    assert len(train_keys) == 300 and len(test_keys) == 60  # no duplicates within a split
    assert not train_keys & test_keys


def test_split_depends_only_on_the_problem() -> None:
    rng = random.Random(0)
    problem = random_problem(rng, 4)
    same_problem_other_order = type(problem)(tuple(reversed(problem.numbers)), problem.target, "n/a")
    assert split_of(problem) == split_of(same_problem_other_order)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_numbers": 2, "max_numbers": 4},
        {"min_numbers": 3, "max_numbers": 7},
        {"min_numbers": 5, "max_numbers": 4},
        {"split": "validation"},
        {"max_number": 2000},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        countdown_dataset(5, **kwargs)


def test_exhausted_problem_space_is_an_error() -> None:
    with pytest.raises(ValueError, match="distinct"):
        countdown_dataset(1000, min_numbers=3, max_numbers=3, max_number=2, max_target=6)


def test_empty_dataset_keeps_schema() -> None:
    ds = countdown_dataset(0)
    assert len(ds) == 0 and ds.column_names == ["prompt", "solution", "numbers", "target", "task"]


# --- reward ---------------------------------------------------------------------------------------------

NUMBERS, TARGET = [3, 5, 7, 2], 22


def score(answer: str, numbers: list[int] | None = None, target: object = TARGET) -> float | None:
    return countdown_reward([answer], numbers=[numbers or NUMBERS], target=[target])[0]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<answer>(7 - 3) * 5 + 2</answer>", 1.0),
        ("<answer>2 + 5 * (7 - 3)</answer>", 1.0),
        ("<answer>(7 - 3) * 5 + 2 = 22</answer>", 1.0),
        ("<answer>22 = 2 + (7 - 3) * 5</answer>", 1.0),
        ("<answer>$(7 - 3) \\times 5 + 2$</answer>", 1.0),
        ("<answer>(7 − 3) × 5 + 2.</answer>", 1.0),
        ("<ANSWER>(7-3)*5+2</ANSWER>", 1.0),
        ("<answer>3 + 5</answer> no wait <answer>(7 - 3) * 5 + 2</answer>", 1.0),
        ("I think it is\n(7 - 3) * 5 + 2\n", 1.0),  # no tags: the last line
        ("<answer>(7 - 3) * 5 + 2 = 23</answer>", 0.0),  # a false equation
        ("<answer>7 * 3 + 5 - 2 * 1</answer>", 0.0),  # a number not given
        ("<answer>7 * 3 + 2 - 5 + 5</answer>", 0.0),  # 5 used twice
        ("<answer>(7 - 3) * 5</answer>", 0.0),  # 2 unused, wrong value
        ("<answer>7 * 3 + (5 - 2) * 0</answer>", 0.0),
        ("<answer>22</answer>", 0.0),
        ("<answer>7 / (5 - 5) + 3 + 2</answer>", 0.0),  # division by zero
        ("<answer>(7 - 3) * 5 + 2 = 22 = 22</answer>", 0.0),
        ("<answer>(7 - 3) ** 5 + 2</answer>", 0.0),
        ("<answer>(7 - 3) * 5 + 2.0</answer>", 0.0),
        ("<answer></answer>", 0.0),
        ("", 0.0),
    ],
)
def test_reward_cases(completion: str, expected: float) -> None:
    assert score(completion) == expected


def test_reward_is_exact_with_fractions() -> None:
    assert score("<answer>7 / 3 * 3</answer>", numbers=[7, 3, 3], target=7) == 1.0
    assert score("<answer>(1 + 1 / 3) * 6</answer>", numbers=[1, 1, 3, 6], target=8) == 1.0


def test_unary_minus_allowed() -> None:
    assert score("<answer>-3 + 5 * 7 - 2 * 5</answer>", numbers=[3, 5, 7, 2, 5], target=22) == 1.0


def test_target_as_string_and_conversational_completion() -> None:
    assert score("<answer>(7 - 3) * 5 + 2</answer>", target="22") == 1.0
    conversation = [{"role": "assistant", "content": "<think>x</think><answer>(7 - 3) * 5 + 2</answer>"}]
    assert countdown_reward([conversation], numbers=[NUMBERS], target=[TARGET]) == [1.0]


def test_missing_columns_score_none() -> None:
    assert countdown_reward(["<answer>1 + 2</answer>"]) == [None]
    assert countdown_reward(["<answer>1 + 2</answer>"], numbers=[[1, 2]]) == [None]
    assert countdown_reward(["<answer>1 + 2</answer>"], numbers=[None], target=[3]) == [None]
    assert countdown_reward(["<answer>1 + 2</answer>"], numbers=[["a"]], target=[3]) == [None]


@pytest.mark.parametrize(
    "attack",
    [
        "<answer>__import__('os').system('echo pwned')</answer>",
        "<answer>(lambda: 22)()</answer>",
        "<answer>9**9**9**9</answer>",
        "<answer>" + "9" * 100_000 + "</answer>",
        "<answer>" + "(" * 5000 + "1" + ")" * 5000 + "</answer>",
        "<answer>" + "-" * 250 + "22</answer>",
        "<answer>" * 200_000,
        "x" * 1_000_000,
    ],
)
def test_hostile_inputs_are_rejected_quickly(attack: str) -> None:
    start = time.perf_counter()
    assert score(attack) == 0.0
    assert time.perf_counter() - start < 1.0


def test_extract_equation() -> None:
    assert extract_equation("a\n<answer> 1 + 2 </answer>\nb") == "1 + 2"
    assert extract_equation("unclosed <answer> 1 + 2") == "unclosed <answer> 1 + 2"
    assert extract_equation("line one\n\n 3 * 4 \n  \n") == "3 * 4"


def test_registered_and_guarded() -> None:
    reward = reward_funcs.get("countdown")
    assert reward.__name__ == "countdown"
    assert reward(
        ["<answer>(7 - 3) * 5 + 2</answer>", "nope"], numbers=[NUMBERS] * 2, target=[TARGET] * 2
    ) == [
        1.0,
        0.0,
    ]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("0123456789+-*/()= .<>answer/\n\\×$")), max_size=400))
def test_never_raises(text: str) -> None:
    assert countdown_reward(
        [text, f"<answer>{text}</answer>"], numbers=[NUMBERS] * 2, target=[TARGET] * 2
    ) in (
        [0.0, 0.0],
        [0.0, 1.0],
        [1.0, 0.0],
        [1.0, 1.0],
    )
