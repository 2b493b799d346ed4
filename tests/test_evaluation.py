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


def test_paper_protocol_defaults() -> None:
    from r1_trl.configs import R1GRPOConfig
    from r1_trl.stages.common import eval_settings

    assert (EvalSettings().temperature, EvalSettings().top_p) == (0.6, 0.95)
    config = R1GRPOConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none")
    assert eval_settings(config).top_p == 0.95


def test_eval_sampling_uses_top_p(monkeypatch: pytest.MonkeyPatch) -> None:
    from r1_trl import evaluation

    seen = {}

    def fake_generate(model, tokenizer, prompts, sampling, engine=None, show_progress=False):
        seen["sampling"] = sampling
        return [["<answer>5</answer>"] * sampling.num_samples for _ in prompts]

    monkeypatch.setattr(evaluation, "generate", fake_generate)
    tokenizer = build_tiny_tokenizer(["<answer> 5 </answer>"] * 10)
    rows = Dataset.from_dict({"prompt": ["What is 2 + 3?"], "solution": ["5"]})
    metrics = evaluation.evaluate_model("unused", tokenizer, rows, EvalSettings(num_samples=2, top_p=0.8))
    assert seen["sampling"].top_p == 0.8 and seen["sampling"].temperature == 0.6
    assert metrics["accuracy"] == 1.0


def test_cons_at_k_pass_at_k_and_per_benchmark_metrics() -> None:
    tokenizer = build_tiny_tokenizer(["<think> </think> <answer> </answer> B 5"] * 10)
    rows = Dataset.from_dict({
        "prompt": ["math 1", "math 2", "choice 1"],
        "solution": ["5", "6", "B"],
        "benchmark": ["math", "math", "gpqa"],
    })
    completions = [
        ["<answer>5</answer>", "<answer>4</answer>", "<answer>4</answer>", "<answer>5</answer>"],  # 2/4, tie -> 5
        ["<answer>7</answer>", "<answer>7</answer>", "<answer>6</answer>", "<answer>8</answer>"],  # 1/4, vote 7
        ["The answer is (B).", "<answer>A</answer>", "<answer>B</answer>", "so (C)"],  # 2/4, vote B
    ]
    metrics = score_completions(completions, rows, EvalSettings(num_samples=4, pass_k=(2,)), tokenizer)
    assert metrics["accuracy"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert metrics["pass@1"] == pytest.approx(metrics["accuracy"])
    assert metrics["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2) + pass_at_k(4, 2, 2)) / 3)
    assert metrics["pass@4"] == 1.0
    assert metrics["cons@4"] == pytest.approx(2 / 3) and metrics["maj@4"] == metrics["cons@4"]
    assert metrics["accuracy/math"] == pytest.approx(0.375) and metrics["accuracy/gpqa"] == 0.5
    assert metrics["cons@4/math"] == 0.5 and metrics["cons@4/gpqa"] == 1.0
    assert metrics["num_prompts/math"] == 2.0


def test_rows_are_verified_by_code_reasoning_gym_or_gold_answer() -> None:
    import json

    from reward_funcs.sandbox import is_usable

    if not is_usable():
        pytest.skip("the code sandbox does not work on this machine")
    tokenizer = build_tiny_tokenizer(["<answer> </answer> def return"] * 10)
    code_info = json.dumps({"test_cases": [{"type": "assert", "code": "assert inc(1) == 2"}]})
    entry = json.dumps({"task": "chain_sum", "config": {}, "entry": {
        "question": "State the final answer to the following arithmetic problem: 4 - 1 =", "answer": "3",
        "metadata": {"source_dataset": "chain_sum"}}})
    rows = Dataset.from_dict({
        "prompt": ["code", "gym", "math"],
        "solution": ["def inc(x):\n    return x + 1", "3", "3"],
        "verification_info": [code_info, None, None],
        "reasoning_gym": [None, entry, None],
    })
    completions = [
        ["```python\ndef inc(x):\n    return x + 1\n```", "```python\ndef inc(x):\n    return None\n```"],
        ["<answer>3</answer>", "<answer>4</answer>"],
        ["<answer>3</answer>", "<answer>3.0</answer>"],
    ]
    metrics = score_completions(completions, rows, EvalSettings(num_samples=2), tokenizer)
    assert metrics["accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert metrics["cons@2"] == pytest.approx((1.0 + 1.0 + 1.0) / 3)  # ties go to the first answer


def test_a_chat_template_that_opens_think_counts_it_in_the_format_rate():
    """DeepSeek-R1-Distill's chat template ends its generation prompt with "<think>\\n": the completion starts
    inside the reasoning, and the held-out format rate must count the prompt's <think> as present."""
    from r1_trl.data.templates import chat_template_prefills_think

    tokenizer = build_tiny_tokenizer(["What is 2 + 3? <think> 2 + 3 = 5 </think> <answer> 5 </answer>"] * 10)
    rows = Dataset.from_dict({"prompt": [[{"role": "user", "content": "What is 2 + 3?"}]], "solution": ["5"]})
    completions = [["2 + 3 = 5\n</think>\n<answer>5</answer>", "<think>2 + 3 = 5</think><answer>5</answer>"]]
    assert not chat_template_prefills_think(tokenizer)
    assert score_completions(completions, rows, EvalSettings(num_samples=2), tokenizer)["format_rate"] == 0.5
    tokenizer.chat_template = tokenizer.chat_template.replace("Assistant:{%- endif -%}", "Assistant: <think>\n{%- endif -%}")
    assert chat_template_prefills_think(tokenizer)
    # prefilled: the first sample is well formed; the second opens a second <think> block
    assert score_completions(completions, rows, EvalSettings(num_samples=2), tokenizer)["format_rate"] == 0.5
    only_prefilled = [["2 + 3 = 5\n</think>\n<answer>5</answer>"]]
    assert score_completions(only_prefilled, rows, EvalSettings(num_samples=1), tokenizer)["format_rate"] == 1.0
    plain = Dataset.from_dict({"prompt": ["What is 2 + 3? <think>"], "solution": ["5"]})  # prefill_think, no chat
    assert score_completions(only_prefilled, plain, EvalSettings(num_samples=1), tokenizer)["format_rate"] == 1.0
