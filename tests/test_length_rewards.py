"""Length-shaped rewards (``length``, ``cosine_scaled``, ``soft_overlong_punishment``) and ``repetition_penalty``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trl.rewards import get_repetition_penalty_reward, get_soft_overlong_punishment

import reward_funcs
import reward_funcs.length  # noqa: F401 - registers the rewards
import reward_funcs.repetition  # noqa: F401
from reward_funcs.length import cosine_schedule, kimi_length_scores
from reward_funcs.repetition import repetition_share, text_words


def as_standard(text: str) -> str:
    return text


def as_conversational(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(params=[as_standard, as_conversational], ids=["standard", "conversational"])
def wrap(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    return request.param


def ends_with_solution(completions: list[Any], solution: list[str], **kwargs: Any) -> list[float | None]:
    """A stand-in judge: correct when the completion text ends with the gold; None for an empty gold."""
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [None if not gold else float(text.endswith(gold)) for text, gold in zip(texts, solution, strict=True)]


# --- length (Kimi 1.5) -------------------------------------------------------------------------------------


def test_kimi_formula_on_one_group() -> None:
    # lengths 10..50: lam = 0.5, 0.25, 0, -0.25, -0.5
    lengths = [10, 20, 30, 40, 50]
    assert kimi_length_scores(lengths, [True] * 5) == [0.5, 0.25, 0.0, -0.25, -0.5]
    assert kimi_length_scores(lengths, [False] * 5) == [0.0, 0.0, 0.0, -0.25, -0.5]
    assert kimi_length_scores([7, 7, 7], [True, False, None]) == [0.0, 0.0, 0.0]


def test_length_reward_groups_by_prompt(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("length", correctness=ends_with_solution)
    texts = ["4", "so 4", "long wrong 5", "3", "a much longer reasoning then 3"]
    prompts = ["2+2?", "2+2?", "2+2?", "1+2?", "1+2?"]
    solution = ["4", "4", "4", "3", "3"]
    scores = reward([wrap(t) for t in texts], prompts=prompts, solution=solution)
    # group 2+2: lengths 1, 4, 12 -> lam 0.5, 0.5 - 3/11, -0.5; group 1+2: lengths 1, 30 -> 0.5, -0.5
    expected = [0.5, 0.5 - 3 / 11, -0.5, 0.5, -0.5]
    assert scores == pytest.approx(expected)


def test_length_reward_groups_conversational_prompts(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("length", correctness=ends_with_solution)
    question_a = [{"role": "user", "content": "2+2?"}]
    question_b = [{"role": "user", "content": "2+3?"}]
    texts = ["4", "long 4", "5", "long 5"]
    scores = reward([wrap(t) for t in texts], prompts=[question_a, question_a, question_b, question_b],
                    solution=["4", "4", "5", "5"])
    assert scores == [0.5, -0.5, 0.5, -0.5]


def test_length_reward_without_prompts_treats_the_batch_as_one_group() -> None:
    reward = reward_funcs.get("length", correctness=ends_with_solution)
    assert reward(["4", "xxxx4", "xxxxxxxx4"], solution=["4"] * 3) == [0.5, 0.0, -0.5]


def test_length_reward_counts_tokens_when_ids_are_given() -> None:
    reward = reward_funcs.get("length", correctness=ends_with_solution)
    # Characters say the first is shortest; the token ids say it is the longest.
    scores = reward(["4", "xxxx4", "xxxxxxxx4"], solution=["4"] * 3, completion_ids=[[0] * 9, [0] * 5, [0] * 1])
    assert scores == [-0.5, 0.0, 0.5]


def test_length_reward_undecided_correctness_scores_none() -> None:
    reward = reward_funcs.get("length", correctness=ends_with_solution)
    assert reward(["4", "xxxx4", "xxxxxxxx4"], solution=["4", "", "4"]) == [0.5, None, -0.5]


def test_length_reward_keeps_logging_hooks_away_from_the_judge() -> None:
    seen: dict[str, Any] = {}

    def judge(completions: list[Any], **kwargs: Any) -> list[float | None]:
        seen.update(kwargs)
        return [1.0] * len(completions)

    logged: list[Any] = []
    reward = reward_funcs.get("length", correctness=judge)
    reward(["a", "bb"], solution=["a", "b"], log_extra=lambda *a: logged.append(a), log_metric=lambda *a: None)
    assert "solution" in seen and "log_extra" not in seen and "log_metric" not in seen


def test_length_reward_with_a_judge_of_the_wrong_size_is_unscored() -> None:
    reward = reward_funcs.get("length", correctness=lambda completions, **kwargs: [1.0] * 3)
    assert reward(["a", "bb"], solution=["a", "b"]) == [None, None]


def test_length_reward_defaults_to_the_accuracy_reward(wrap: Callable[[str], Any]) -> None:
    pytest.importorskip("reward_funcs.accuracy")
    reward = reward_funcs.get("length")
    texts = ["<answer>14</answer>", "<think>3*4=12, 2+12=14</think><answer>14</answer>",
             "<think>3*4=12, 2+12=15</think><answer>15</answer>"]
    scores = reward([wrap(t) for t in texts], solution=["14"] * 3, prompts=["2+3*4?"] * 3)
    assert scores[0] == 0.5 and scores[1] < 0.5 and scores[2] == -0.5


# --- cosine_scaled -----------------------------------------------------------------------------------------


def test_cosine_endpoints_and_midpoint() -> None:
    reward = reward_funcs.get("cosine_scaled", max_len=100, correctness=ends_with_solution)
    ids = [[0] * n for n in (0, 50, 100, 0, 50, 100)]
    texts = ["4", "4", "4", "5", "5", "5"]
    scores = reward(texts, solution=["4"] * 6, completion_ids=ids)
    assert scores == pytest.approx([1.0, 0.75, 0.5, -1.0, -0.75, -0.5])


def test_cosine_is_monotonic_and_clamped_past_max_len() -> None:
    reward = reward_funcs.get("cosine_scaled", max_len=100, correctness=ends_with_solution)
    lengths = [0, 10, 50, 99, 100, 101, 150, 200, 1000]
    correct = reward(["4"] * len(lengths), solution=["4"] * len(lengths), completion_ids=[[0] * n for n in lengths])
    wrong = reward(["5"] * len(lengths), solution=["4"] * len(lengths), completion_ids=[[0] * n for n in lengths])
    assert correct == sorted(correct, reverse=True) and wrong == sorted(wrong)
    assert correct[4:] == [0.5] * 5 and wrong[4:] == [-0.5] * 5
    # The unclamped schedule (open-r1) comes back up: at twice max_len it pays the short-answer reward again.
    unclamped = 0.5 + 0.5 * (1.0 - 0.5) * (1.0 + math.cos(200 / 100 * math.pi))
    assert unclamped == pytest.approx(1.0) and correct[7] == 0.5


def test_cosine_counts_characters_without_ids(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("cosine_scaled", max_len=10, correctness=ends_with_solution)
    scores = reward([wrap("xxxx4"), wrap("x" * 30 + "4"), wrap("xxxx5")], solution=["4", "4", "4"])
    assert scores == pytest.approx([0.75, 0.5, -0.75])


def test_cosine_custom_values_and_undecided() -> None:
    reward = reward_funcs.get(
        "cosine_scaled", max_len=10, min_value_wrong=-2.0, max_value_wrong=0.0, min_value_correct=1.0,
        max_value_correct=3.0, correctness=ends_with_solution,
    )
    assert reward(["4", "5", "4"], solution=["4", "4", ""], completion_ids=[[], [], []]) == [3.0, -2.0, None]


def test_cosine_schedule_direct() -> None:
    assert cosine_schedule(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("options", [{"max_len": 0}, {"max_len": -5}, {"max_len": 1.5}, {"min_value_wrong": math.nan}])
def test_cosine_rejects_bad_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        reward_funcs.get("cosine_scaled", **options)


# --- soft_overlong_punishment ------------------------------------------------------------------------------


def test_overlong_punishment_follows_dapo_eq13() -> None:
    reward = reward_funcs.get("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=20)
    lengths = [0, 79, 80, 81, 90, 99, 100, 101, 500]
    scores = reward(["x"] * len(lengths), completion_ids=[[1] * n for n in lengths])
    assert scores == pytest.approx([0.0, 0.0, 0.0, -0.05, -0.5, -0.95, -1.0, -1.0, -1.0])


def test_overlong_punishment_agrees_with_trl_on_every_length() -> None:
    ours = reward_funcs.get("soft_overlong_punishment", max_completion_len=64, soft_punish_cache=16)
    trl_reward = get_soft_overlong_punishment(64, 16)
    ids = [[0] * n for n in range(0, 80)]
    assert ours(["x"] * len(ids), completion_ids=ids) == trl_reward(ids)


def test_overlong_punishment_without_cache_is_a_step() -> None:
    reward = reward_funcs.get("soft_overlong_punishment", max_completion_len=10, soft_punish_cache=0)
    assert reward(["a"] * 3, completion_ids=[[0] * 10, [0] * 11, []]) == [0.0, -1.0, 0.0]


def test_overlong_punishment_estimates_tokens_from_characters(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=20)
    assert reward([wrap("x" * 320), wrap("x" * 360), wrap("x" * 1000)]) == [0.0, -0.5, -1.0]
    per_char = reward_funcs.get(
        "soft_overlong_punishment", max_completion_len=100, soft_punish_cache=20, chars_per_token=1.0
    )
    assert per_char([wrap("x" * 90)]) == [-0.5]


@pytest.mark.parametrize(
    "options",
    [
        {"max_completion_len": 0, "soft_punish_cache": 0},
        {"max_completion_len": 10, "soft_punish_cache": 11},
        {"max_completion_len": 10, "soft_punish_cache": -1},
        {"max_completion_len": 10.0, "soft_punish_cache": 2},
        {"max_completion_len": 10, "soft_punish_cache": 2, "chars_per_token": 0.0},
    ],
)
def test_overlong_punishment_rejects_bad_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        reward_funcs.get("soft_overlong_punishment", **options)


def test_overlong_punishment_needs_its_lengths() -> None:
    with pytest.raises(TypeError):
        reward_funcs.get("soft_overlong_punishment")


# --- repetition_penalty ------------------------------------------------------------------------------------


def test_repetition_penalty_on_words(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("repetition_penalty", ngram_size=3, max_penalty=-1.0)
    texts = [
        "the quick brown fox jumps over the lazy dog",
        "wait wait wait wait wait wait",  # 4 trigrams, 1 unique
        "The Cat sat. the cat sat. THE CAT SAT.",  # case-insensitive words
        "too short",
        "",
    ]
    scores = reward([wrap(t) for t in texts])
    assert scores[0] == 0.0 and scores[1] == pytest.approx(-0.75)
    assert scores[2] == pytest.approx(-(1 - 3 / 7))  # 7 trigrams of "the cat sat." x3, 3 distinct
    assert scores[3:] == [0.0, 0.0]


def test_repetition_penalty_splits_cjk_characters(wrap: Callable[[str], Any]) -> None:
    reward = reward_funcs.get("repetition_penalty", ngram_size=2, max_penalty=-0.5)
    assert text_words("答案是四答案是四") == list("答案是四答案是四")
    assert reward([wrap("答案是四答案是四"), wrap("我们先计算和")]) == pytest.approx([-0.5 * (1 - 4 / 7), 0.0])


def test_repetition_penalty_on_tokens_reuses_trl() -> None:
    reward = reward_funcs.get("repetition_penalty", ngram_size=2, max_penalty=-2.0, unit="tokens")
    ids = [[1, 2, 3, 4], [5, 5, 5, 5, 5], [7]]
    assert reward(["a", "b", "c"], completion_ids=ids) == [0.0, -1.5, 0.0]
    with pytest.raises(ValueError, match="completion_ids"):
        reward_funcs.get("repetition_penalty", unit="tokens", guard=False)(["a"])


@pytest.mark.parametrize(
    "options", [{"max_penalty": 0.5}, {"ngram_size": 0}, {"ngram_size": 2.0}, {"unit": "chars"}, {"max_penalty": -math.inf}]
)
def test_repetition_penalty_rejects_bad_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        reward_funcs.get("repetition_penalty", **options)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "b", "c", "dd"]), max_size=40), ngram_size=st.integers(1, 5))
def test_word_penalty_matches_trl_on_the_same_sequence(words: list[str], ngram_size: int) -> None:
    ours = reward_funcs.get("repetition_penalty", ngram_size=ngram_size, max_penalty=-1.0)([" ".join(words)])
    ids = [["a", "b", "c", "dd"].index(word) for word in words]
    assert ours == pytest.approx(get_repetition_penalty_reward(ngram_size=ngram_size, max_penalty=-1.0)([ids]))
    assert -1.0 <= ours[0] <= 0.0
    assert repetition_share(words, ngram_size) == pytest.approx(-ours[0])
