import random

import pytest

from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.data.tasks.arithmetic import LEVELS, arithmetic_dataset, random_problem, solve, split_of
from r1_trl.data.templates import apply_template, chat_prompt, format_prompt, r1_zero_prompt


@pytest.mark.parametrize("level", LEVELS)
def test_answers_match_python_evaluation(level):
    rng = random.Random(level)
    for _ in range(300):
        problem = random_problem(rng, level)
        assert problem.answer == eval(problem.expression)  # noqa: S307 - our own generated digits/operators
        assert problem.steps[-1].endswith(f"= {problem.answer}")


def test_precedence_steps_follow_the_seed_example():
    assert solve(["2", "+", "3", "*", "4"]) == (14, ["3 * 4 = 12", "2 + 12 = 14"])
    assert solve(["(", "2", "+", "3", ")", "*", "4"]) == (20, ["2 + 3 = 5", "5 * 4 = 20"])


def test_splits_are_disjoint_and_deterministic():
    train = arithmetic_dataset(500, seed=1, levels=(1, 2, 3), split="train")
    test = arithmetic_dataset(100, seed=1, levels=(1, 2, 3), split="test")
    assert not set(train["prompt"]) & set(test["prompt"])
    assert arithmetic_dataset(50, seed=7)["prompt"] == arithmetic_dataset(50, seed=7)["prompt"]
    assert all(split_of(p.removeprefix("What is ").removesuffix("?")) == "test" for p in test["prompt"])
    assert len(set(train["prompt"])) == 500


def test_too_many_problems_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct"):
        arithmetic_dataset(10_000, levels=1, split="test")


def test_r1_zero_template_matches_the_paper():
    prompt = r1_zero_prompt("What is 2 + 3 * 4?")
    assert prompt.startswith("A conversation between User and Assistant.")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in prompt
    assert prompt.endswith("User: What is 2 + 3 * 4?. Assistant:")


def test_chat_format_and_prefill():
    assert chat_prompt("q", system_prompt="s") == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
    ]
    assert format_prompt("q", "none", prefill_think=True) == "q <think>"
    with pytest.raises(ValueError, match="think_prefilled"):
        format_prompt("q", "chat", prefill_think=True)
    with pytest.raises(ValueError, match="unknown prompt template"):
        format_prompt("q", "llama")


def test_apply_template_keeps_the_raw_problem():
    templated = apply_template(arithmetic_dataset(3, split="test"), "r1_zero")
    assert all(row["prompt"] == r1_zero_prompt(row["problem"]) for row in templated)


def test_build_prompt_datasets_templates_both_splits():
    train, held_out = build_prompt_datasets(PromptSpec(train_size=50, eval_size=20, task_kwargs={"levels": [2]}))
    assert len(held_out) == 20 and 0 < len(train) <= 50
    assert not set(train["problem"]) & set(held_out["problem"])
    assert all(p.endswith("Assistant:") for p in train["prompt"])


def test_unknown_dataset_names_the_field():
    with pytest.raises(ValueError, match="dataset_name"):
        build_prompt_datasets(PromptSpec(dataset_name="no-such-dataset"))


def test_language_weights_set_the_share_of_each_language():
    rows = arithmetic_dataset(500, seed=1, languages=("en", "zh"), language_weights=(0.99, 0.01))
    assert rows["language"].count("zh") == 5
    zh_rows = [i for i, lang in enumerate(rows["language"]) if lang == "zh"]
    assert min(b - a for a, b in zip(zh_rows, zh_rows[1:], strict=False)) >= 90  # spread out, not bunched
    equal = arithmetic_dataset(6, seed=1, languages=("en", "zh"))
    assert list(equal["language"]) == ["en", "zh"] * 3
    for weights in [(1.0,), (-1.0, 2.0), (0.0, 0.0)]:
        with pytest.raises(ValueError, match="language_weights"):
            arithmetic_dataset(4, seed=1, languages=("en", "zh"), language_weights=weights)


def test_task_kwargs_reach_the_arithmetic_builder_and_typos_are_named():
    spec = PromptSpec(dataset_name="arithmetic", task_kwargs={"levels": [2], "languages": ["en", "zh"],
                                                              "language_weights": [0.5, 0.5]},
                      train_size=8, eval_size=4, template="chat")
    train, _ = build_prompt_datasets(spec)
    assert list(train["language"]) == ["en", "zh"] * 4
    typo = PromptSpec(dataset_name="arithmetic", task_kwargs={"language": ["zh"]}, train_size=8, eval_size=4)
    with pytest.raises(ValueError, match="task_kwargs.*language"):
        build_prompt_datasets(typo)
