"""reasoning-gym as a dataset builder (reasoning_gym:<task>) and as a verifier (the reasoning_gym reward)."""

from __future__ import annotations

import json
import time

import pytest
import reasoning_gym
from hypothesis import given, settings
from hypothesis import strategies as st

import reward_funcs
from r1_trl.data.builders import PromptSpec, build_prompt_datasets, load_problems
from r1_trl.data.tasks.reasoning_gym import TaskSpec, parse_tasks, reasoning_gym_dataset, split_of
from reward_funcs import reasoning_gym as rg_reward

SMALL_CHAIN_SUM = {"min_terms": 2, "max_terms": 3, "max_digits": 1}


def tagged(answer: object) -> str:
    return f"<think>working</think><answer>{answer}</answer>"


def test_train_and_held_out_are_disjoint_and_distinct() -> None:
    spec = PromptSpec(dataset_name="reasoning_gym:chain_sum", task_kwargs=SMALL_CHAIN_SUM, train_size=300,
                      eval_size=50, template="none", seed=3)
    train, held_out = build_prompt_datasets(spec)
    assert len(train) == 300 and len(held_out) == 50  # nothing dropped by n-gram decontamination
    assert not set(train["prompt"]) & set(held_out["prompt"])
    assert len(set(held_out["prompt"])) == 50 and len(set(train["prompt"])) == 300
    assert all(split_of(p) == "test" for p in held_out["prompt"])
    assert all(split_of(p) == "train" for p in train["prompt"])
    again = load_problems(spec, "test", 50)
    assert list(again["prompt"]) == list(held_out["problem"])  # reproducible from the seed


def test_weights_and_per_task_configs() -> None:
    tasks = parse_tasks("reasoning_gym:chain_sum,basic_arithmetic",
                        {"chain_sum": {"weight": 3, **SMALL_CHAIN_SUM}, "basic_arithmetic": {"max_digits": 1}})
    rows = reasoning_gym_dataset(400, tasks, seed=0, split="train")
    share = list(rows["task"]).count("chain_sum") / len(rows)
    assert 0.68 < share < 0.82  # weight 3 : 1
    for row in rows.select(range(40)):
        record = json.loads(row["reasoning_gym"])
        if record["task"] == "chain_sum":
            assert record["config"] == SMALL_CHAIN_SUM and record["entry"]["metadata"]["num_terms"] <= 3
    with pytest.raises(ValueError, match="not among the tasks"):
        parse_tasks("reasoning_gym:chain_sum,basic_arithmetic", {"chain_sum": {}, "countdown": {}})
    with pytest.raises(ValueError, match="unknown reasoning-gym task"):
        parse_tasks("reasoning_gym:no_such_task")
    with pytest.raises(ValueError, match="gave only"):
        reasoning_gym_dataset(50, [TaskSpec("chain_sum", {"min_terms": 2, "max_terms": 2, "max_digits": 1})],
                              split="test")  # only 200 distinct one-digit sums exist, 1 in 10 held out


def test_question_template_rephrases_but_the_verifier_sees_the_entry() -> None:
    tasks = parse_tasks("reasoning_gym:chain_sum", {**SMALL_CHAIN_SUM, "question_template": "What is {expression}?"})
    row = reasoning_gym_dataset(1, tasks, split="test")[0]
    entry = json.loads(row["reasoning_gym"])["entry"]
    assert row["prompt"] == f"What is {entry['metadata']['expression']}?"
    assert entry["question"].startswith("State the final answer")
    with pytest.raises(ValueError, match="fields available"):
        reasoning_gym_dataset(1, parse_tasks("reasoning_gym:chain_sum", {"question_template": "{nope}"}))


@pytest.mark.parametrize("task", ["chain_sum", "basic_arithmetic", "gsm_symbolic", "leg_counting", "word_sorting"])
def test_gold_answers_score_one_through_the_stored_column(task: str) -> None:
    rows = reasoning_gym_dataset(6, parse_tasks(f"reasoning_gym:{task}"), seed=1, split="test")
    reward = reward_funcs.get("reasoning_gym")
    column = list(rows["reasoning_gym"])
    assert reward([tagged(s) for s in rows["solution"]], reasoning_gym=column) == [1.0] * 6
    wrong = reward([tagged("definitely wrong 123456789") for _ in column], reasoning_gym=column)
    assert all(score is not None and score < 1.0 for score in wrong)


def test_scores_match_the_dataset_verifier() -> None:
    dataset = reasoning_gym.create_dataset("chain_sum", size=5, seed=7, **SMALL_CHAIN_SUM)
    column = [json.dumps({"task": "chain_sum", "config": SMALL_CHAIN_SUM, "entry": entry}) for entry in dataset]
    answers = ["0", "1", str(dataset[2]["answer"]), "-3", str(dataset[4]["answer"])]
    expected = [dataset.score_answer(a, entry) for a, entry in zip(answers, dataset, strict=True)]
    assert rg_reward.reasoning_gym_reward([tagged(a) for a in answers], reasoning_gym=column) == expected


def test_rows_without_entry_are_unscorable_and_odd_completions_score_zero() -> None:
    reward = reward_funcs.get("reasoning_gym")
    entry = reasoning_gym_dataset(1, parse_tasks("reasoning_gym:chain_sum", SMALL_CHAIN_SUM), split="test")
    value = entry["reasoning_gym"][0]
    assert reward(["<answer>1</answer>"] * 3, reasoning_gym=[None, "{bad json", '{"task": "nope", "entry": {}}']) == [
        None, None, None]
    scores = reward(["", "<answer></answer>", "x" * 50_000, [{"role": "assistant", "content": "<answer>?"}]],
                    reasoning_gym=[value] * 4)
    assert scores == [0.0, 0.0, 0.0, 0.0]


def test_a_hanging_verifier_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(answer, entry):
        time.sleep(30)
        return 1.0

    monkeypatch.setattr(rg_reward, "_scorer", lambda task, config: slow)
    value = json.dumps({"task": "chain_sum", "config": {}, "entry": {"question": "q", "answer": "1", "metadata": {}}})
    started = time.perf_counter()
    assert rg_reward.reasoning_gym_reward(["<answer>1</answer>"], reasoning_gym=[value], timeout=0.5) == [0.0]
    assert time.perf_counter() - started < 5


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_string_gets_a_float(text: str) -> None:
    value = json.dumps({"task": "chain_sum", "config": {},
                        "entry": {"question": "State the final answer to the following arithmetic problem: 1 + 2 =",
                                  "answer": "3", "metadata": {"source_dataset": "chain_sum"}}})
    (score,) = reward_funcs.get("reasoning_gym")([text], reasoning_gym=[value])
    assert isinstance(score, float) and 0.0 <= score <= 1.0
