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
    assert metrics["accuracy_stderr"] == pytest.approx(0.25)  # sample std 0.354 of (0.5, 1.0) over sqrt(2) prompts
    assert metrics["pass@2"] == pytest.approx(1.0)
    assert metrics["format_rate"] == pytest.approx(0.5)
    assert metrics["maj@2"] == pytest.approx(1.0)  # row 1: tie broken by first answer ("5", correct)
    assert metrics["mean_length"] > 0 and not math.isnan(metrics["mean_length"])


def test_bilingual_held_out_sets_report_each_language():
    tokenizer = build_tiny_tokenizer(["What is 2 + 3? 首先 所以答案是 <think> </think> <answer> </answer>"] * 10)
    rows = Dataset.from_dict({"prompt": ["What is 2 + 3?", "2 * 3 等于多少？"], "solution": ["5", "6"],
                              "language": ["en", "zh"]})
    completions = [
        ["<think>First, 2 + 3 = 5. So the answer is 5.</think><answer>5</answer>"] * 2,
        ["<think>首先，2 * 3 = 6。所以答案是 6。</think><answer>6</answer>",
         "<think>First, 2 * 3 = 7. So the answer is 7.</think><answer>7</answer>"],
    ]
    metrics = score_completions(completions, rows, EvalSettings(num_samples=2, language_metric=True), tokenizer)
    assert metrics["accuracy/en"] == 1.0 and metrics["accuracy/zh"] == 0.5
    assert metrics["language_consistency/en"] == 1.0
    assert metrics["language_consistency/zh"] == pytest.approx(0.5)  # one Chinese, one English reasoning
    assert metrics["language_consistency"] == pytest.approx(0.75)
    without = score_completions(completions, rows, EvalSettings(num_samples=2), tokenizer)
    assert "accuracy/zh" in without and "language_consistency/zh" not in without
    english_only = score_completions(completions[:1], rows.select([0]), EvalSettings(num_samples=2), tokenizer)
    assert not any("/" in key for key in english_only)
