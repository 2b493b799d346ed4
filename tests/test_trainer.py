"""R1GRPOTrainer: reward names and options come from the recipe, run inside TRL's loop, and are guarded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import reward_funcs
from r1_trl.configs import R1GRPOConfig
from r1_trl.data.tasks.arithmetic import arithmetic_dataset
from r1_trl.data.templates import apply_template
from r1_trl.trainers import R1GRPOTrainer
from reward_funcs import registry

FLAKY = "test_trainer_flaky"
MAX_COMPLETION_LENGTH = 8


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    """The tiny model gains nothing from threads, and threads crawl when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from r1_trl.models.tiny import random_tiny_model

    return random_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def flaky_reward(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A user reward registered for this test only; it raises whenever a batch holds an odd token sum."""
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))  # registrations undone after the test
    outcomes = {"raised": 0, "scored": 0}

    @reward_funcs.register(FLAKY)
    def flaky(completions: list[Any], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        if any(sum(ids) % 2 for ids in completion_ids):
            outcomes["raised"] += 1
            raise ValueError("odd token sum")
        outcomes["scored"] += len(completions)
        return [1.0] * len(completions)

    return outcomes


def grpo_config(output_dir: Path, **overrides: Any) -> R1GRPOConfig:
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": MAX_COMPLETION_LENGTH,
        "max_steps": 2,
        "beta": 0.04,  # exercises the reference-model path, which needs the model as a path
    }
    settings.update(overrides)
    return R1GRPOConfig(**settings)


def arithmetic_prompts() -> Any:
    return apply_template(arithmetic_dataset(16, seed=0, levels=1), "r1_zero")


def test_reward_names_and_options_come_from_the_config(model_dir: Path, tmp_path: Path) -> None:
    config = grpo_config(
        tmp_path,
        reward_funcs=["accuracy", "format", "soft_overlong_punishment"],
        reward_kwargs={"soft_overlong_punishment": {"max_completion_len": MAX_COMPLETION_LENGTH, "soft_punish_cache": 4}},
    )
    trainer = R1GRPOTrainer(model=str(model_dir), args=config, train_dataset=arithmetic_prompts())
    assert trainer.reward_func_names == ["accuracy", "format", "soft_overlong_punishment"]
    accuracy, formatting, overlong = trainer.reward_funcs
    assert accuracy(["<think>x</think><answer>7</answer>"], solution=["7"]) == [1.0]
    assert formatting(["<think>x</think><answer>7</answer>", "7"]) == [1.0, 0.0]
    # The options reached the reward: 8 tokens with max 8 and a cache of 4 is the full punishment.
    assert overlong(["a", "b"], completion_ids=[[0] * 4, [0] * 8]) == [0.0, -1.0]


def test_explicit_reward_funcs_override_the_config(model_dir: Path, tmp_path: Path) -> None:
    def always_half(completions: list[Any], **kwargs: Any) -> list[float]:
        return [0.5] * len(completions)

    trainer = R1GRPOTrainer(
        model=str(model_dir), args=grpo_config(tmp_path), train_dataset=arithmetic_prompts(), reward_funcs=[always_half]
    )
    assert trainer.reward_func_names == ["always_half"]


def test_rewards_run_in_training_logged_by_name_and_guarded(
    model_dir: Path, tmp_path: Path, flaky_reward: dict[str, int]
) -> None:
    config = grpo_config(tmp_path, reward_funcs=["accuracy", "format", FLAKY])
    trainer = R1GRPOTrainer(model=str(model_dir), args=config, train_dataset=arithmetic_prompts())
    trainer.train()  # the flaky reward raises in every step; the guard must keep the steps alive

    assert trainer.state.global_step == 2
    steps = [row for row in trainer.state.log_history if "rewards/accuracy/mean" in row]
    assert len(steps) == 2
    for row in steps:
        for name in ("accuracy", "format"):
            assert 0.0 <= row[f"rewards/{name}/mean"] <= 1.0
        # Failing completions were scored None (skipped by TRL's nan-aware mean), not 0.0: the mean stays 1.
        assert row[f"rewards/{FLAKY}/mean"] == 1.0
        assert math.isfinite(row["loss"]) and "kl" in row
    assert flaky_reward["raised"] >= 2 and flaky_reward["scored"] >= 1
