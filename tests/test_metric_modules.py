"""The project's metrics as `evaluate` modules: they load offline from the package and give `r1-trl eval`'s numbers."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

import r1_trl.metrics
from r1_trl.evaluation import EvalSettings, score_completions
from r1_trl.models import build_tiny_tokenizer
from reward_funcs.sandbox import is_usable


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))


MATH = (
    ["5", "6", "B", r"\frac{1}{2}"],
    [
        ["<answer>5</answer>", "<answer>4</answer>", "<answer>4</answer>", "<answer>5</answer>"],
        ["<answer>7</answer>", "<answer>7</answer>", "<answer>6</answer>", "<answer>8</answer>"],
        ["The answer is (B).", "<answer>A</answer>", "<answer>B</answer>", "so (C)"],
        [r"\boxed{0.5}", "<answer>1/2</answer>", "<answer>2</answer>", "nothing"],
    ],
)


def eval_metrics(rows: Dataset, completions: list[list[str]], pass_k: tuple[int, ...] = ()) -> dict[str, float]:
    tokenizer = build_tiny_tokenizer(["<answer> </answer> B 5"] * 10)
    return score_completions(completions, rows, EvalSettings(num_samples=len(completions[0]), pass_k=pass_k),
                             tokenizer)


def test_modules_load_offline_from_the_package() -> None:
    for name in r1_trl.metrics.NAMES:
        module_dir = r1_trl.metrics.path(name)
        assert (module_dir / f"{name}.py").is_file()
        assert r1_trl.metrics.load(name).name == name
    with pytest.raises(ValueError, match="unknown r1-trl metric"):
        r1_trl.metrics.path("bleu")


def test_same_numbers_as_r1_trl_eval_on_math_and_choice() -> None:
    references, predictions = MATH
    expected = eval_metrics(Dataset.from_dict({"prompt": ["p"] * 4, "solution": references}), predictions, (2,))
    accuracy = r1_trl.metrics.load("verified_accuracy").compute(predictions=predictions, references=references)
    passk = r1_trl.metrics.load("pass_at_k").compute(predictions=predictions, references=references, k=[2])
    cons = r1_trl.metrics.load("cons_at_k").compute(predictions=predictions, references=references)
    assert accuracy == {"accuracy": expected["accuracy"]}
    assert passk == {"pass@1": expected["pass@1"], "pass@2": expected["pass@2"], "pass@4": expected["pass@4"]}
    assert cons == {"cons@4": expected["cons@4"]}
    assert accuracy["accuracy"] == pytest.approx((2 + 1 + 2 + 2) / 16)
    assert cons["cons@4"] == pytest.approx(3 / 4)  # the fourth prompt's vote "0.5" (first of a tie) is right


@pytest.mark.skipif(not is_usable(), reason="the code sandbox does not work on this machine")
def test_same_numbers_as_r1_trl_eval_on_code() -> None:
    info = json.dumps({"test_cases": [{"type": "stdin_stdout", "input": "2\n", "output": "4\n"}]})
    predictions = [["```python\nprint(int(input()) * 2)\n```", "```python\nprint(4)\n```",
                    "```python\nprint(5)\n```"]]
    rows = Dataset.from_dict({"prompt": ["double"], "solution": [""], "verification_info": [info]})
    expected = eval_metrics(rows, predictions)
    passk = r1_trl.metrics.load("pass_at_k").compute(predictions=predictions, references=[info], verifier="code")
    assert passk == {"pass@1": expected["pass@1"], "pass@3": expected["pass@3"]}
    assert passk["pass@1"] == pytest.approx(2 / 3)
