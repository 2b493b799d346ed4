"""SFT stage (cold-start SFT, SFT stage 2, distillation): completion-only loss, learning, artifacts, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import AutoTokenizer

from r1_trl.configs import RecipeError
from r1_trl.generation import SamplingSettings, generate
from r1_trl.models import random_tiny_model
from r1_trl.recipes import load_recipe
from r1_trl.stages import sft
from r1_trl.stages.sft import SFTStageConfig, load_sft_dataset
from r1_trl.trainers import R1SFTTrainer

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny" / "cold_start_sft.yaml"


def readable(a: int, b: int) -> str:
    return f"<think>\nFirst, {a} + {b} = {a + b}.\nSo the answer is {a + b}.\n</think>\n<answer>\n{a + b}\n</answer>"


def pair(a: int, b: int) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
        "completion": [{"role": "assistant", "content": readable(a, b)}],
        "problem": f"What is {a} + {b}?",
        "language": "en",
    }


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_tiny_model(tmp_path_factory.mktemp("random-tiny"))


@pytest.fixture(scope="module")
def sft_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cold_start"
    Dataset.from_list([pair(1, 2), pair(3, 4), pair(5, 1)]).save_to_disk(str(path))
    return path


def trainer_config(tmp_path: Path, dataset: Path, **overrides: object) -> SFTStageConfig:
    fields = {
        "output_dir": str(tmp_path / "sft"),
        "sft_dataset": str(dataset),
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10,
        "per_device_train_batch_size": 3,
        "learning_rate": 3e-3,
        "lr_scheduler_type": "constant",
        "seed": 0,
        "torch_num_threads": 1,
    }
    fields.update(overrides)
    config = SFTStageConfig(**fields)
    config.apply_runtime_settings()
    return config


def test_loss_covers_the_completion_only(tmp_path: Path, tiny_model: Path, sft_dataset: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = trainer_config(tmp_path, sft_dataset, max_steps=1)
    trainer = R1SFTTrainer(model=str(tiny_model), args=config, train_dataset=load_sft_dataset(sft_dataset),
                           processing_class=tokenizer)
    assert trainer.completion_only_loss
    for row in trainer.train_dataset:
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        labels, input_ids = row["labels"], row["input_ids"]
        assert input_ids[: len(prompt_ids)] == prompt_ids
        assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)  # every prompt token is masked
        trained = labels[len(prompt_ids) :]
        assert trained == input_ids[len(prompt_ids) :] and -100 not in trained
        decoded = tokenizer.decode(trained)
        assert decoded.strip() == row["completion"][0]["content"] + tokenizer.eos_token  # and the model learns to stop


def test_training_memorises_a_handful_of_completions(tmp_path: Path, tiny_model: Path, sft_dataset: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    dataset = load_sft_dataset(sft_dataset)
    config = trainer_config(tmp_path, sft_dataset, max_steps=120)
    torch.manual_seed(0)
    trainer = R1SFTTrainer(model=str(tiny_model), args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses[-1] < 0.1 * losses[0]
    outputs = generate(trainer.model, tokenizer, dataset["prompt"], SamplingSettings(max_new_tokens=40, temperature=0))
    assert [o[0].strip() for o in outputs] == [row["completion"][0]["content"] for row in dataset]


def test_stage_restarts_from_a_given_model_and_writes_the_contract_artifacts(
    tmp_path: Path, tiny_model: Path, sft_dataset: Path
) -> None:
    output_dir = tmp_path / "sft-2"
    overrides = [
        "--model_name_or_path", str(tiny_model), "--sft_dataset", str(sft_dataset), "--output_dir", str(output_dir),
        "--stage_name", "sft-2", "--max_steps", "3", "--eval_size", "4", "--eval_num_samples", "2",
        "--eval_max_new_tokens", "8", "--per_device_train_batch_size", "3", "--logging_steps", "1",
    ]
    config = load_recipe(RECIPE, overrides, config_class=sft.CONFIG_CLASS)
    results = sft.run(config)

    checkpoint = output_dir / "checkpoint"
    assert results["stage"] == "sft-2" and results["checkpoint"] == str(checkpoint.resolve())
    assert (checkpoint / "config.json").exists() and (checkpoint / "tokenizer.json").exists()
    assert AutoTokenizer.from_pretrained(checkpoint).chat_template  # the chat template travels with the model
    assert results["start_model_path"] == str(tiny_model) and results["train"]["steps"] == 3
    assert results["train"]["completion_only_loss"] is True and results["train"]["train_rows"] == 3
    for key in ("accuracy", "format_rate", "language_consistency", "mean_length", "pass@2", "maj@2"):
        assert key in results["before"] and key in results["after"]
    assert results["metrics"] == results["after"] and results["after"]["num_prompts"] == 4
    assert results["inputs"]["sft_dataset"] == str(sft_dataset.resolve())
    details = load_from_disk(results["datasets"]["eval_details"])  # the "after" samples, one row per prompt
    assert results["datasets"]["eval_details"] == str((output_dir / "datasets" / "eval_details").resolve())
    assert len(details) == 4 and all(len(row) == 2 for row in details["completions"])
    written = json.loads((output_dir / "results.json").read_text())
    assert written["stage"] == "sft-2" and written["after"] == results["after"]
    assert (output_dir / "curves.png").stat().st_size > 0
    recipe = (output_dir / "recipe.yaml").read_text()
    assert "stage_name: sft-2" in recipe and f"model_name_or_path: {tiny_model}" in recipe


def test_tiny_recipe_parses_with_chat_prompts() -> None:
    config = load_recipe(RECIPE, config_class=SFTStageConfig)
    assert config.stage_name == "cold-start-sft" and config.prompt_template == "chat"
    assert config.completion_only_loss is True and config.torch_num_threads == 1 and config.use_cpu
    assert sft.STAGE == "cold-start-sft" and sft.CONFIG_CLASS is SFTStageConfig


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"stage_name": "pretraining"}, "stage_name"), ({"sft_dataset": None}, "sft_dataset")],
)
def test_invalid_fields_are_named(tmp_path: Path, overrides: dict, field: str) -> None:
    fields = {"output_dir": str(tmp_path), "sft_dataset": str(tmp_path), "use_cpu": True, "report_to": "none"}
    with pytest.raises(RecipeError, match=f"^{field}:"):
        SFTStageConfig(**{**fields, **overrides})


def test_load_sft_dataset_rejects_unusable_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="^sft_dataset:"):
        load_sft_dataset(tmp_path / "missing")
    Dataset.from_dict({"question": ["q"], "answer": ["a"]}).save_to_disk(str(tmp_path / "wrong"))
    with pytest.raises(ValueError, match="prompt\\+completion, messages or text"):
        load_sft_dataset(tmp_path / "wrong")
    Dataset.from_list([pair(i, 1) for i in range(1, 6)]).save_to_disk(str(tmp_path / "five"))
    assert len(load_sft_dataset(tmp_path / "five", max_rows=2)) == 2
