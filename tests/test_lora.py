"""LoRA/PEFT (TRL's ModelConfig fields in a recipe): GRPO and SFT learn through an adapter; the adapter is
saved, reloads, merges on request, and is what evaluation, later stages and the Hub card see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1_trl import adapters, checkpoints
from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.generation import SamplingSettings, generate
from r1_trl.models import load_or_build_tiny_base
from r1_trl.recipes import load_recipe
from r1_trl.stages.common import resolve_model, train_and_save
from r1_trl.stages.sft import SFTStageConfig, load_sft_dataset
from r1_trl.trainers import R1SFTTrainer

REPO = Path(__file__).resolve().parents[1]
LORA_RECIPE = REPO / "recipes" / "variants" / "lora.yaml"
GPU_LORA_RECIPE = REPO / "recipes" / "Qwen2.5-1.5B" / "r1_zero_lora.yaml"


def readable(a: int, b: int) -> str:
    return f"<think>\nFirst, {a} + {b} = {a + b}.\nSo the answer is {a + b}.\n</think>\n<answer>\n{a + b}\n</answer>"


def pair(a: int, b: int) -> dict:
    return {"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
            "completion": [{"role": "assistant", "content": readable(a, b)}]}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    """The pretrained tiny base: an adapter adapts a pretrained model. (On the randomly initialised model of the
    full-weight SFT test, an all-linear rank-16 adapter at its settings only brings the loss from 5.8 to 3.7 in
    120 steps and reproduces none of the three completions; frozen random embeddings carry no features.)"""
    return load_or_build_tiny_base()


@pytest.fixture(scope="module")
def sft_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pairs"
    Dataset.from_list([pair(1, 2), pair(3, 4), pair(5, 1)]).save_to_disk(str(path))
    return path


def sft_config(tmp_path: Path, dataset: Path, model: Path, **overrides: object) -> SFTStageConfig:
    fields = {"output_dir": str(tmp_path / "sft"), "sft_dataset": str(dataset), "model_name_or_path": str(model),
              "use_cpu": True, "report_to": "none", "save_strategy": "no", "logging_steps": 10,
              "per_device_train_batch_size": 3, "lr_scheduler_type": "constant", "seed": 0, "torch_num_threads": 1,
              "use_peft": True, "lora_target_modules": ["all-linear"]}  # fmt: skip
    fields.update(overrides)
    config = SFTStageConfig(**fields)
    config.apply_runtime_settings()
    return config


def test_recipe_takes_trl_model_config_fields() -> None:
    config = load_recipe(LORA_RECIPE, ["--lora_r", "8", "--lora_target_modules", "q_proj", "k_proj"])
    assert config.use_peft and config.lora_r == 8
    lora = adapters.peft_config(config)
    assert lora.r == 8 and lora.lora_alpha == 32 and set(lora.target_modules) == {"q_proj", "k_proj"}
    assert adapters.peft_config(load_recipe(REPO / "recipes" / "tiny" / "r1_zero.yaml")) is None


def test_gpu_lora_recipe_parses_with_a_merged_all_linear_adapter() -> None:
    config = load_recipe(GPU_LORA_RECIPE, ["--use_vllm", "false", "--bf16", "false"])
    lora = adapters.peft_config(config)
    assert config.merge_adapter and lora.r == 64 and lora.target_modules == "all-linear"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"lora_r": 0}, "lora_r"), ({"merge_adapter": True, "use_peft": False}, "merge_adapter"),
     ({"load_in_4bit": True}, "load_in_4bit"), ({"lora_dropout": 1.5}, "lora_dropout")],
)  # fmt: skip
def test_invalid_peft_fields_are_named(tmp_path: Path, overrides: dict, field: str) -> None:
    values = {"output_dir": str(tmp_path), "use_cpu": True, "report_to": "none", "use_peft": True, **overrides}
    with pytest.raises(RecipeError, match=rf"^{field}:"):
        R1GRPOConfig(**values)


def test_lora_sft_learns_and_the_adapter_saves_reloads_and_merges(
    tmp_path: Path, tiny_model: Path, sft_dataset: Path
) -> None:
    """The full-weight SFT test's thresholds (tests/test_stage_sft.py): loss / 10, the three completions
    reproduced greedily; here through an all-linear adapter at the same learning rate, from the tiny base."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    dataset = load_sft_dataset(sft_dataset)
    config = sft_config(tmp_path, sft_dataset, tiny_model, max_steps=120, learning_rate=3e-3, merge_adapter=True)
    torch.manual_seed(0)
    trainer = R1SFTTrainer(model=str(tiny_model), args=config, train_dataset=dataset, processing_class=tokenizer)
    counts = adapters.trainable_parameters(trainer.model)
    assert 0 < counts["trainable_parameters"] < 0.3 * counts["total_parameters"]
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses[-1] < 0.1 * losses[0]

    checkpoint = tmp_path / "sft" / "checkpoint"
    checkpoints.save_trained_model(trainer, checkpoint, tokenizer)
    adapter_dir = tmp_path / "sft" / adapters.ADAPTER_DIR
    assert adapters.is_adapter(adapter_dir) and not adapters.is_adapter(checkpoint)
    assert not (adapter_dir / "model.safetensors").exists()  # only the adapter's weights
    assert adapters.adapter_base(adapter_dir) == (str(tiny_model), None)
    summary = adapters.stage_adapter(tmp_path / "sft")
    assert summary["merged"] is True and summary["r"] == 16 and summary["base_model"] == str(tiny_model)

    expected = [row["completion"][0]["content"] for row in dataset]
    sampling = SamplingSettings(max_new_tokens=40, temperature=0)
    merged = AutoModelForCausalLM.from_pretrained(checkpoint)  # a plain full model
    reloaded = checkpoints.load_causal_lm(str(adapter_dir))  # base + adapter, merged in memory
    for model in (merged, reloaded):
        assert [o[0].strip() for o in generate(model, tokenizer, dataset["prompt"], sampling)] == expected
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert [o[0].strip() for o in generate(base, tokenizer, dataset["prompt"], sampling)] != expected

    # A later stage (or vLLM) naming the adapter folder gets a merged copy, cached.
    cache = tmp_path / "cache"
    path = checkpoints.full_model_path(str(adapter_dir), cache_dir=cache)
    assert path != str(adapter_dir) and (Path(path) / "config.json").is_file()
    assert checkpoints.full_model_path(str(adapter_dir), cache_dir=cache) == path
    assert [o[0].strip() for o in generate(AutoModelForCausalLM.from_pretrained(path), tokenizer,
                                           dataset["prompt"], sampling)] == expected  # fmt: skip
    assert AutoTokenizer.from_pretrained(path).chat_template == tokenizer.chat_template


def test_adapter_records_the_hub_base_and_later_stages_load_it_merged(
    tmp_path: Path, tiny_model: Path, sft_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = sft_config(tmp_path, sft_dataset, tiny_model, max_steps=2, learning_rate=3e-3)
    trainer = R1SFTTrainer(model=str(tiny_model), args=config, train_dataset=load_sft_dataset(sft_dataset),
                           processing_class=tokenizer)  # fmt: skip
    trainer.train()
    checkpoint, _ = train_and_save(trainer, tmp_path / "run", tokenizer)
    assert adapters.is_adapter(checkpoint) and (checkpoint / "tokenizer.json").is_file()

    monkeypatch.setenv("R1_TRL_CACHE", str(tmp_path / "cache"))
    path, revision = resolve_model(str(checkpoint))  # what a later stage's model_name_or_path goes through
    assert revision is None and path.startswith(str(tmp_path / "cache")) and not adapters.is_adapter(path)
    merged = AutoModelForCausalLM.from_pretrained(path)
    in_memory = checkpoints.load_causal_lm(str(checkpoint))
    ids = torch.tensor([tokenizer("What is 1 + 2?")["input_ids"]])
    assert torch.allclose(merged(ids).logits, in_memory(ids).logits, atol=1e-5)

    # A base named as a Hub id is recorded as such (the adapter then loads anywhere), with its revision.
    adapters.record_base(checkpoint, "Qwen/Qwen2.5-1.5B@v1", None)
    assert adapters.adapter_base(checkpoint) == ("Qwen/Qwen2.5-1.5B", "v1")


def test_model_card_says_lora_adapter_of_which_base(tmp_path: Path, tiny_model: Path, sft_dataset: Path) -> None:
    from r1_trl.cards import ModelCardContext, Ref, build_model_card

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = sft_config(tmp_path, sft_dataset, tiny_model, max_steps=1, learning_rate=3e-3)
    trainer = R1SFTTrainer(model=str(tiny_model), args=config, train_dataset=load_sft_dataset(sft_dataset),
                           processing_class=tokenizer)  # fmt: skip
    train_and_save(trainer, tmp_path / "cold-start-sft", tokenizer)
    manifest = {"run_id": "r", "stages": {"cold-start-sft": {"status": "done", "output_dir": "cold-start-sft",
                                                             "checkpoint": "cold-start-sft/checkpoint"}}}  # fmt: skip
    card = build_model_card(ModelCardContext(
        manifest=manifest, stage="cold-start-sft", run_dir=tmp_path, pushed_ref="you/run@cold-start-sft",
        base_model=Ref("Qwen/Qwen2.5-1.5B"), datasets={}, stage_refs={},
    ))  # fmt: skip
    text = str(card)
    assert "This is a LORA adapter** (rank 16" in text and "of the base model `Qwen/Qwen2.5-1.5B`" in text
    assert 'AutoPeftModelForCausalLM.from_pretrained("you/run", revision="cold-start-sft")' in text
    assert card.data.library_name == "peft" and "lora" in card.data.tags and card.data.base_model == "Qwen/Qwen2.5-1.5B"


@pytest.mark.slow
def test_lora_r1_zero_learns_format_and_accuracy(tmp_path: Path) -> None:
    """The full-weight R1-Zero demo test's thresholds (tests/test_r1_zero.py), through a LoRA adapter."""
    output_dir = tmp_path / "lora"
    completed = subprocess.run(
        [sys.executable, "-m", "r1_trl.cli", "grpo", "--config", str(LORA_RECIPE), "--output_dir", str(output_dir)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((output_dir / "results.json").read_text())
    before, after, train = results["before"], results["after"], results["train"]
    print(json.dumps({"before": before, "after": after, "train": train}, indent=2))
    assert after["format_rate"] >= 0.9
    assert after["accuracy"] >= before["accuracy"] + 0.10
    assert after["format_rate"] >= before["format_rate"] + 0.3
    assert train["mean_completion_length_last"] > train["mean_completion_length_first"]
    assert train["trainable_parameters"] < 0.05 * train["total_parameters"]
    checkpoint = output_dir / "checkpoint"
    assert adapters.is_adapter(checkpoint) and not (checkpoint / "model.safetensors").exists()
    assert results["adapter"]["r"] == 16 and results["adapter"]["merged"] is False
