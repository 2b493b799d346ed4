"""Evaluation details: every training stage saves the held-out samples behind its "after" metrics, one row per
prompt, and the rows reproduce those metrics; pushed with the run as a dataset config with a card."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset, load_from_disk
from hub_server import FakeHub, patch_endpoint, validate_card_metadata
from huggingface_hub import DatasetCard
from transformers import AutoTokenizer

import reward_funcs
from r1_trl.cards import set_description
from r1_trl.configs import R1GRPOConfig
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.evaluation import (
    EvalSettings,
    evaluate_model,
    majority_correct,
    pass_at_k,
    score_completions,
    score_samples,
    split_eval_details,
)
from r1_trl.hub import push_run
from r1_trl.models import build_tiny_tokenizer
from r1_trl.stages import r1_zero, sft
from r1_trl.stages.common import eval_settings
from reward_funcs.extraction import completion_answer

REPO = "tester/details"
K = 2
TINY_EVAL = {"eval_size": 6, "eval_num_samples": K, "eval_max_new_tokens": 32}


def _flat(details: Dataset, column: str) -> list[Any]:
    return [value for row in details[column] for value in row]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def assert_details_reproduce(details: Dataset, metrics: dict[str, Any], k: int) -> None:
    """The rows alone give back every metric; the flags are what the rewards say about the stored samples."""
    assert len(details) == metrics["num_prompts"] and all(len(c) == k for c in details["completions"])
    completions = _flat(details, "completions")
    correct, formatted = _flat(details, "correct"), _flat(details, "formatted")
    assert metrics["accuracy"] == pytest.approx(_mean([float(c) for c in correct]))
    assert metrics["accuracy"] == pytest.approx(_mean(details["accuracy"]))
    assert metrics["format_rate"] == pytest.approx(_mean([float(f) for f in formatted]))
    assert metrics["mean_length"] == pytest.approx(_mean([float(n) for n in _flat(details, "completion_tokens")]))
    assert metrics[f"pass@{k}"] == pytest.approx(_mean([pass_at_k(k, sum(row), k) for row in details["correct"]]))
    majority = [float(majority_correct(a, c)) for a, c in zip(details["answers"], details["correct"], strict=True)]
    assert metrics[f"maj@{k}"] == pytest.approx(_mean(majority))
    solutions = [s for s in details["solution"] for _ in range(k)]
    assert correct == [s == 1.0 for s in reward_funcs.get("accuracy")(completions, solution=solutions)]
    assert formatted == [s == 1.0 for s in reward_funcs.get("format")(completions)]
    assert _flat(details, "answers") == [completion_answer(c) for c in completions]
    if "language_consistency" in metrics:
        scores = [s for s in _flat(details, "language_consistency") if s is not None]
        assert metrics["language_consistency"] == pytest.approx(_mean(scores))
    else:
        assert "language_consistency" not in details.column_names


def assert_stage_wrote_details(results: dict[str, Any], output_dir: Path, held_out: Dataset) -> Dataset:
    path = output_dir / "datasets" / "eval_details"
    assert results["datasets"]["eval_details"] == str(path.resolve())
    assert json.loads((output_dir / "results.json").read_text())["datasets"] == results["datasets"]
    assert [p.name for p in (output_dir / "datasets").iterdir()] == ["eval_details"]  # "before": no details
    for phase in ("before", "after"):
        assert not {"completions", "sample_scores"} & set(results[phase]), phase
    details = load_from_disk(str(path))
    assert details["problem"] == held_out["problem"] and details["solution"] == held_out["solution"]
    assert details["prompt"] == held_out["prompt"]
    assert_details_reproduce(details, results["after"], K)
    stats = json.loads((path / "stats.json").read_text())
    assert stats["num_prompts"] == len(held_out) and stats["samples_per_prompt"] == K
    assert stats["metrics"] == pytest.approx(results["after"])
    assert stats["eval_settings"]["num_samples"] == K and stats["eval_settings"]["max_new_tokens"] == 32
    assert stats["source_checkpoint"] == str(Path(results["checkpoint"]).resolve())
    return details


# ---- the helper, on known completions ---------------------------------------------------------------------
def test_details_rows_hold_the_scores_behind_the_metrics() -> None:
    tokenizer = build_tiny_tokenizer(["What is 2 + 3? 首先 所以答案是 <think> </think> <answer> </answer>"] * 10)
    rows = Dataset.from_dict({"prompt": ["What is 2 + 3?", "2 * 3 等于多少？"], "problem": ["2 + 3", "2 * 3"],
                              "solution": ["5", "6"], "language": ["en", "zh"], "steps": [1, 1]})
    completions = [
        ["<think>First, 2 + 3 = 5. So the answer is 5.</think><answer>5</answer>", "the answer is 4"],
        ["<think>首先，2 * 3 = 6。所以答案是 6。</think><answer>6</answer>",
         "<think>First, 2 * 3 = 7. So the answer is 7.</think><answer>7</answer>"],
    ]
    settings = EvalSettings(num_samples=2, language_metric=True)
    scores = score_samples(completions, rows, settings, tokenizer)
    metrics = score_completions(completions, rows, settings, tokenizer, scores)
    assert metrics == score_completions(completions, rows, settings, tokenizer)  # same numbers either way
    evaluation = {**metrics, "completions": completions, "sample_scores": scores}
    alone, details = split_eval_details(evaluation, rows, settings)

    assert alone == metrics
    assert details.column_names == ["prompt", "problem", "solution", "language", "completions", "correct",
                                    "formatted", "answers", "completion_tokens", "language_consistency",
                                    "accuracy"]
    assert details["correct"] == [[True, False], [True, False]] and details["accuracy"] == [0.5, 0.5]
    assert details["formatted"] == [[True, False], [True, True]]
    assert details["answers"] == [["5", "4"], ["6", "7"]]
    assert details["language_consistency"][1] == [1.0, 0.0]  # Chinese prompt: Chinese, then English reasoning
    assert_details_reproduce(details, metrics, 2)
    assert metrics["accuracy/zh"] == pytest.approx(_mean([float(c) for c in details["correct"][1]]))

    with pytest.raises(ValueError, match="groups of 2 completions"):
        split_eval_details({**evaluation, "completions": [g[:1] for g in completions]}, rows, settings)
    unmeasured = EvalSettings(num_samples=2)
    plain = split_eval_details(
        {"completions": completions, "sample_scores": score_samples(completions, rows, unmeasured, tokenizer)},
        rows, unmeasured,
    )[1]
    assert "language_consistency" not in plain.column_names and plain["correct"] == details["correct"]


def test_all_null_answers_keep_the_string_schema() -> None:
    tokenizer = build_tiny_tokenizer(["no answer here"] * 10)
    rows = Dataset.from_dict({"prompt": ["q"], "solution": ["5"]})
    settings = EvalSettings(num_samples=2)
    completions = [["no answer here", "none"]]
    evaluation = {"completions": completions, "sample_scores": score_samples(completions, rows, settings, tokenizer)}
    details = split_eval_details(evaluation, rows, settings)[1]
    assert details["answers"] == [[None, None]]
    assert str(details.features["answers"].feature.dtype) == "string"  # not "null": one schema for every run


# ---- the stages --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_grpo_stage_saves_details_that_reproduce_its_after_metrics(tmp_path: Path) -> None:
    config = R1GRPOConfig(
        output_dir=str(tmp_path / "r1-zero"), model_name_or_path="tiny", dataset_name="arithmetic",
        task_kwargs={"levels": [2]}, train_size=8, prompt_template="r1_zero", **TINY_EVAL,
        reward_funcs=["accuracy", "format"], num_generations=2, per_device_train_batch_size=4,
        max_completion_length=8, max_steps=1, learning_rate=1e-5, logging_steps=1, save_strategy="no",
        use_cpu=True, bf16=False, torch_num_threads=1, report_to="none", seed=3,
    )
    results = r1_zero.run(config)

    _, held_out = build_prompt_datasets(PromptSpec.from_config(config))
    details = assert_stage_wrote_details(results, tmp_path / "r1-zero", held_out)
    assert 0 < results["after"]["accuracy"] < 1  # the tiny base solves some: the flags are not all alike
    assert details["language"] == held_out["language"]
    # the metrics are what evaluate_model reports without details
    checkpoint = results["checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert evaluate_model(checkpoint, tokenizer, held_out, eval_settings(config)) == results["after"]

    # pushed with the run: its own config on the stage's dataset branch, the card naming the trained checkpoint
    manifest = {"run_id": "details", "stages": {"r1-zero": {
        "status": "done", "output_dir": "r1-zero", "checkpoint": "r1-zero/checkpoint", "inputs": {"model": "tiny"},
        "datasets": {"eval_details": "r1-zero/datasets/eval_details"}, "metrics": results["metrics"],
    }}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with FakeHub() as hub, patch_endpoint(hub.endpoint):
        pushed = push_run(tmp_path, REPO)
        files = hub.files(f"{REPO}-datasets", "r1-zero", "dataset")
    assert str(pushed["r1-zero"]["datasets"]["eval_details"]) == f"{REPO}-datasets@r1-zero"
    table = pq.read_table(io.BytesIO(files["eval_details/train-00000-of-00001.parquet"]))
    assert table.column("correct").to_pylist() == details["correct"]
    card = DatasetCard(files["README.md"].decode())
    assert validate_card_metadata(str(card), "dataset") == []
    assert [c["config_name"] for c in card.data.configs] == ["eval_details"]
    assert f"Generated by `{REPO}` at revision `r1-zero`." in card.text
    assert set_description("eval_details") in card.text
    assert f"| accuracy | {results['after']['accuracy']:.6g} |" in card.text


def test_sft_stage_saves_details_with_language_consistency(tmp_path: Path) -> None:
    def pair(a: int, b: int) -> dict[str, Any]:
        answer = f"<think>\nFirst, {a} + {b} = {a + b}.\nSo the answer is {a + b}.\n</think>\n<answer>\n{a + b}\n</answer>"
        return {"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                "completion": [{"role": "assistant", "content": answer}]}

    data = tmp_path / "cold_start"
    Dataset.from_list([pair(1, 2), pair(3, 4), pair(5, 1)]).save_to_disk(str(data))
    config = sft.SFTStageConfig(
        output_dir=str(tmp_path / "sft-2"), stage_name="sft-2", model_name_or_path="tiny", sft_dataset=str(data),
        dataset_name="arithmetic", task_kwargs={"levels": [2], "languages": ["en", "zh"]}, prompt_template="chat",
        **TINY_EVAL, max_steps=2, per_device_train_batch_size=3, learning_rate=1e-4, logging_steps=1,
        save_strategy="no", use_cpu=True, bf16=False, torch_num_threads=1, report_to="none", seed=0,
    )
    results = sft.run(config)

    details = assert_stage_wrote_details(results, tmp_path / "sft-2", sft.held_out_prompts(config))
    assert "language_consistency" in results["after"] and set(details["language"]) == {"en", "zh"}
    assert all(len(scores) == K for scores in details["language_consistency"])
    for language in ("en", "zh"):
        rows = [i for i, lang in enumerate(details["language"]) if lang == language]
        assert results["after"][f"accuracy/{language}"] == pytest.approx(_mean([details["accuracy"][i] for i in rows]))
