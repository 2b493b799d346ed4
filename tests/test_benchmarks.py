"""Evaluation benchmarks (AIME 2024, MATH-500, GPQA-Diamond, HumanEval, LiveCodeBench) on local files in the
Hub datasets' real schemas, verified the way held-out evaluation verifies them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest

import reward_funcs
from r1_trl.data.benchmarks import (
    CHOICE_LETTERS,
    decode_test_cases,
    humaneval_rows_from_file,
    load_gpqa_diamond,
    load_humaneval,
    load_livecodebench,
    shuffled_choices,
)
from r1_trl.data.builders import PromptSpec, build_eval_dataset, evaluation_split
from r1_trl.data.loaders import load_task_dataset
from reward_funcs.sandbox import is_usable

FIXTURES = Path(__file__).parent / "fixtures"
needs_sandbox = pytest.mark.skipif(not is_usable(), reason="the code sandbox does not work on this machine")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def fenced(program: str) -> str:
    return f"<think>done</think>\n```python\n{program}\n```"


# --- math -----------------------------------------------------------------------------------------------


def test_aime_2024_and_math500_from_hub_schema_files() -> None:
    aime = load_task_dataset("aime2024", path=str(FIXTURES / "aime_2024_train.jsonl"))
    assert list(aime["solution"]) == ["40", "996"] and set(aime["task"]) == {"aime"}
    assert evaluation_split("aime2024") == "train"  # HuggingFaceH4/aime_2024 has only a train split
    spec = PromptSpec(dataset_name="math500", dataset_path=str(FIXTURES / "math500_test.jsonl"), eval_size=2)
    math500 = build_eval_dataset(spec)
    assert len(math500) == 2 and set(math500["benchmark"]) == {"math500"}
    assert math500[0]["prompt"].endswith(f"User: {math500[0]['problem']}. Assistant:")


# --- GPQA-Diamond ---------------------------------------------------------------------------------------


def test_gpqa_choices_shuffled_with_a_fixed_seed_and_gold_letter_recorded() -> None:
    rows = load_gpqa_diamond(path=str(FIXTURES / "gpqa_diamond.csv"))
    assert len(rows) == 3 and evaluation_split("gpqa_diamond") == "train"
    raw = datasets.load_dataset("csv", data_files=str(FIXTURES / "gpqa_diamond.csv"), split="train")
    for row, source in zip(rows, raw, strict=True):
        assert row["choices"][CHOICE_LETTERS.index(row["solution"])] == source["Correct Answer"]
        assert sorted(row["choices"]) == sorted(source[c] for c in ("Correct Answer", "Incorrect Answer 1",
                                                                     "Incorrect Answer 2", "Incorrect Answer 3"))
        for letter, choice in zip(CHOICE_LETTERS, row["choices"], strict=True):
            assert f"{letter}) {choice}" in row["prompt"]
    again = load_gpqa_diamond(path=str(FIXTURES / "gpqa_diamond.csv"))
    assert list(again["choices"]) == list(rows["choices"])  # same seed, same order
    orders = {tuple(shuffled_choices("q", "c", ["x", "y", "z"], seed)[0]) for seed in range(20)}
    assert len(orders) > 1  # the order depends on the seed: the gold is not always "A"
    assert len({row["solution"] for row in load_gpqa_diamond(path=str(FIXTURES / "gpqa_diamond.csv"), seed=3)} |
               set(rows["solution"])) > 1


def test_gpqa_answer_letter_is_verified() -> None:
    rows = load_gpqa_diamond(path=str(FIXTURES / "gpqa_diamond.csv"))
    gold = rows[0]["solution"]
    wrong = next(letter for letter in CHOICE_LETTERS if letter != gold)
    accuracy = reward_funcs.get("accuracy")
    completions = [f"<think>...</think><answer>{gold}</answer>", f"The answer is ({gold}).",
                   f"<answer>{wrong}</answer>", "<answer>7.0 m/s</answer>"]
    assert accuracy(completions, solution=[gold] * 4) == [1.0, 1.0, 0.0, 0.0]


# --- HumanEval ------------------------------------------------------------------------------------------


@needs_sandbox
def test_humaneval_canonical_solutions_pass_and_broken_ones_fail() -> None:
    rows = load_humaneval()
    assert len(rows) == 164 and len(set(rows["entry_point"])) > 150
    code = reward_funcs.get("code", num_workers=4)
    infos = list(rows["verification_info"])
    started = time.perf_counter()
    canonical = code([fenced(solution) for solution in rows["solution"]], verification_info=infos)
    broken = code([fenced(raw["prompt"] + "    return None\n") for raw in humaneval_rows_from_file()],
                  verification_info=infos)
    elapsed = time.perf_counter() - started
    assert [task for task, score in zip(rows["task_id"], canonical, strict=True) if score != 1.0] == []
    assert [task for task, score in zip(rows["task_id"], broken, strict=True) if score != 0.0] == []
    print(f"HumanEval: 164 canonical + 164 broken solutions scored in {elapsed:.1f}s")


def test_humaneval_local_file_and_prompt(tmp_path: Path) -> None:
    source = humaneval_rows_from_file()[:2]
    path = tmp_path / "HumanEval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in source))
    rows = load_humaneval(path=str(path))
    assert list(rows["task_id"]) == ["HumanEval/0", "HumanEval/1"]
    assert source[0]["prompt"] in rows[0]["prompt"] and "```python" in rows[0]["prompt"]
    assert json.loads(rows[0]["verification_info"])["test_cases"][0]["code"].endswith("check(has_close_elements)\n")


# --- LiveCodeBench --------------------------------------------------------------------------------------


def test_livecodebench_tests_decoded_from_public_and_private_cases() -> None:
    rows = load_livecodebench(path=str(FIXTURES / "livecodebench_test.jsonl"))
    stdin_tests = json.loads(rows[0]["verification_info"])["test_cases"]
    assert [t["output"] for t in stdin_tests] == ["3\n", "6\n", "0\n"]  # 1 public + 2 private (encoded)
    functional = json.loads(rows[1]["verification_info"])["test_cases"]
    assert len(functional) == 2 and all(t["type"] == "assert" and "Solution().runningSum" in t["code"]
                                        for t in functional)
    assert "class Solution" in rows[1]["prompt"] and "standard input" in rows[0]["prompt"]
    public_only = load_livecodebench(path=str(FIXTURES / "livecodebench_test.jsonl"), include_private=False)
    assert len(json.loads(public_only[0]["verification_info"])["test_cases"]) == 1


def test_livecodebench_blob_with_code_is_refused() -> None:
    import base64
    import pickle
    import zlib

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = base64.b64encode(zlib.compress(pickle.dumps(Payload()))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_test_cases(blob)


@needs_sandbox
def test_livecodebench_solutions_scored_in_the_sandbox() -> None:
    rows = load_livecodebench(path=str(FIXTURES / "livecodebench_test.jsonl"))
    good = [fenced("a, b = map(int, input().split())\nprint(a + b)"),
            fenced("from typing import List\nfrom itertools import accumulate\n\nclass Solution:\n"
                   "    def runningSum(self, nums: List[int]) -> List[int]:\n        return list(accumulate(nums))")]
    bad = [fenced("print(3)"),
           fenced("class Solution:\n    def runningSum(self, nums):\n        return nums")]
    code = reward_funcs.get("code")
    infos = list(rows["verification_info"])
    assert code(good, verification_info=infos) == [1.0, 1.0]
    assert code(bad, verification_info=infos) == pytest.approx([1 / 3, 1 / 2])  # "print(3)" passes the public test
