import math

import pytest
from datasets import Dataset

from r1_trl.evaluation import EvalSettings, majority_correct, pass_at_k, score_completions
from r1_trl.models import build_tiny_tokenizer


def test_pass_at_k_matches_the_combinatorial_definition():
    # n=5 samples, c=2 correct: P(at least one correct among 2 drawn) = 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_majority_vote():
    assert majority_correct(["14", "14", "12"], [True, True, False])
    assert not majority_correct(["12", "12", "14"], [False, False, True])
    assert not majority_correct([None, None], [False, False])


def test_score_completions_on_known_answers():
    tokenizer = build_tiny_tokenizer(["What is 2 + 3? <think> 2 + 3 = 5 </think> <answer> 5 </answer>"] * 10)
    rows = Dataset.from_dict({"prompt": ["What is 2 + 3?", "What is 2 * 3?"], "solution": ["5", "6"]})
    completions = [
        ["<think>2 + 3 = 5</think><answer>5</answer>", "<think>x</think><answer>6</answer>"],
        ["the answer is 6", "6"],
    ]
    metrics = score_completions(completions, rows, EvalSettings(num_samples=2), tokenizer)
    assert metrics["accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["pass@2"] == pytest.approx(1.0)
    assert metrics["format_rate"] == pytest.approx(0.5)
    assert metrics["maj@2"] == pytest.approx(1.0)  # row 1: tie broken by first answer ("5", correct)
    assert metrics["mean_length"] > 0 and not math.isnan(metrics["mean_length"])
