"""DAPO dynamic sampling in R1GRPOTrainer: the rollout helpers, and real runs on a random tiny model.

The runs use prompts of two kinds: "Constant" prompts always get reward 1.0 (every such group has zero
variance), "Varying" prompts get the completion's position parity (every such group varies). So a row
reaches the loss with signal exactly when its prompt is a "Varying" one.

Run as a script (``torchrun --nproc_per_node 2 tests/test_dynamic_sampling.py MODEL OUT``) this file is
the worker of the two-process test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset, IterableDataset

from r1_trl.configs import R1GRPOConfig
from r1_trl.distributed import exit_distributed
from r1_trl.trainers import (
    R1GRPOTrainer,
    concat_rollouts,
    informative_rows_by_rank,
    masked_rows,
    select_rows,
    zero_variance_groups,
)

ROOT = Path(__file__).resolve().parents[1]
PAD = 9
NAN = float("nan")


# --- helpers ------------------------------------------------------------------------------------------


def test_zero_variance_groups_flags_flat_groups() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.5, 0.5])
    assert zero_variance_groups(rewards, 2).tolist() == [True, False, True]
    assert zero_variance_groups(rewards, 3).tolist() == [True, False]
    assert zero_variance_groups(torch.tensor([0.3, 0.1 + 0.2]), 2).tolist() == [True]  # float noise is flat


def test_zero_variance_groups_ignores_unscored_completions() -> None:
    rewards = torch.tensor([1.0, NAN, 1.0, NAN, NAN, NAN, 0.0, NAN, 2.0])
    # scored values equal / nothing scored / two different scored values
    assert zero_variance_groups(rewards, 3).tolist() == [True, True, False]


def test_zero_variance_groups_needs_every_column_flat() -> None:
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [0.0, 2.0]])
    assert zero_variance_groups(rewards, 2).tolist() == [False, True]


def test_zero_variance_groups_rejects_partial_groups() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        zero_variance_groups(torch.zeros(6), 4)


def test_informative_rows_follow_groups_across_processes() -> None:
    # 3 groups of 4 rows over 2 processes of 6 rows: the middle group spans both processes.
    rows = informative_rows_by_rank(torch.tensor([False, True, False]), 4, 2)
    assert rows.tolist() == [[True, True, True, True, False, False], [False, False, True, True, True, True]]
    with pytest.raises(ValueError, match="3 processes"):
        informative_rows_by_rank(torch.tensor([False, True]), 2, 3)


def make_rollout(prompts: list[list[int]], completions: list[list[int]], advantages: list[float]) -> dict[str, Any]:
    """A rollout dict shaped like TRL's: left-padded prompts, right-padded completions."""
    prompt_width = max(map(len, prompts))
    completion_width = max(map(len, completions))
    prompt_ids = torch.tensor([[PAD] * (prompt_width - len(p)) + p for p in prompts])
    completion_ids = torch.tensor([c + [PAD] * (completion_width - len(c)) for c in completions])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (completion_width - len(c)) for c in completions])
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": (prompt_ids != PAD).long(),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "old_per_token_logps": completion_mask * -0.5,
        "advantages": torch.tensor(advantages),
        "num_items_in_batch": completion_mask.sum(),
    }


def test_select_rows_slices_rows_and_keeps_batch_scalars() -> None:
    rollout = make_rollout([[1], [2, 3], [4]], [[5], [6, 7], [8]], [0.1, 0.2, 0.3])
    rollout["labels"] = ["a", "b", "c"]
    picked = select_rows(rollout, torch.tensor([2, 0]))
    assert picked["prompt_ids"].tolist() == [[PAD, 4], [PAD, 1]]
    assert picked["completion_mask"].tolist() == [[1, 0], [1, 0]]
    assert picked["advantages"].tolist() == pytest.approx([0.3, 0.1])
    assert picked["labels"] == ["c", "a"]
    assert picked["num_items_in_batch"] is rollout["num_items_in_batch"]


def test_concat_rollouts_repads_prompts_left_and_completions_right() -> None:
    narrow = make_rollout([[1]], [[5]], [1.0])
    wide = make_rollout([[2, 3, 4]], [[6, 7, 8]], [-1.0])
    merged = concat_rollouts([narrow, wide], pad_token_id=PAD)
    assert merged["prompt_ids"].tolist() == [[PAD, PAD, 1], [2, 3, 4]]
    assert merged["prompt_mask"].tolist() == [[0, 0, 1], [1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[5, PAD, PAD], [6, 7, 8]]
    assert merged["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert merged["old_per_token_logps"].tolist() == [[-0.5, 0.0, 0.0], [-0.5, -0.5, -0.5]]
    assert merged["advantages"].tolist() == [1.0, -1.0]
    assert "num_items_in_batch" not in merged  # a cross-process count: the caller recomputes it
    # Round trip: selecting the rows back gives the original rows (up to padding).
    assert select_rows(merged, torch.tensor([1]))["completion_ids"].tolist() == wide["completion_ids"].tolist()


def test_concat_rollouts_refuses_fields_it_cannot_merge() -> None:
    rollout = make_rollout([[1]], [[5]], [1.0])
    with pytest.raises(ValueError, match="pixel_values"):
        concat_rollouts([{**rollout, "pixel_values": torch.zeros(1, 3)}], pad_token_id=PAD)
    with pytest.raises(ValueError, match="different fields"):
        concat_rollouts([rollout, {k: v for k, v in rollout.items() if k != "old_per_token_logps"}], PAD)
    with pytest.raises(ValueError, match="nothing"):
        concat_rollouts([], PAD)


def test_masked_rows_removes_rows_from_the_loss() -> None:
    rollout = make_rollout([[1], [2]], [[5, 6], [7]], [0.7, -0.7])
    masked = masked_rows(rollout)
    assert masked["completion_mask"].sum() == 0
    assert masked["advantages"].tolist() == [0.0, 0.0]
    assert masked["completion_ids"] is rollout["completion_ids"]
    assert rollout["completion_mask"].sum() == 3  # the input is left untouched


# --- training runs ------------------------------------------------------------------------------------


def two_kind_prompts(n: int = 32) -> Dataset:
    return Dataset.from_list(
        [{"prompt": f"{'Constant' if i % 2 else 'Varying'} question {i}:"} for i in range(n)]
    )


def kind_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """1.0 for a Constant prompt; the row's position parity for a Varying one (groups are consecutive rows)."""
    return [1.0 if prompt.startswith("Constant") else float(i % 2) for i, prompt in enumerate(prompts)]


def constant_reward(completions: list[str], **kwargs: Any) -> list[float]:
    return [1.0] * len(completions)


class LossInputsRecorder(R1GRPOTrainer):
    """Records every batch that reaches the loss, with its prompts decoded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_batches: list[dict[str, Any]] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        prompts = [
            self.processing_class.decode(ids[mask.bool()])
            for ids, mask in zip(inputs["prompt_ids"], inputs["prompt_mask"], strict=True)
        ]
        self.loss_batches.append(
            {
                "prompts": prompts,
                "tokens": inputs["completion_mask"].sum(dim=1).tolist(),
                "advantages": inputs["advantages"].tolist(),
                "num_items_in_batch": int(inputs["num_items_in_batch"]),
            }
        )
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.loss_batches[-1]["loss"] = float(loss.detach())
        return loss


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
        "gradient_accumulation_steps": 2,  # steps_per_generation 2: one generation batch of 8 rows per step
        "max_completion_length": 6,
        "max_steps": 2,
        "learning_rate": 1e-4,
        "seed": 0,
    }
    settings.update(overrides)
    return R1GRPOConfig(**settings)


def train(model_dir: Path, config: R1GRPOConfig, reward: Any) -> LossInputsRecorder:
    trainer = LossInputsRecorder(
        model=str(model_dir), args=config, train_dataset=two_kind_prompts(), reward_funcs=[reward]
    )
    trainer.train()
    return trainer


def logged(trainer: R1GRPOTrainer, key: str) -> list[float]:
    return [row[key] for row in trainer.state.log_history if key in row]


def rows_reaching_loss(trainer: LossInputsRecorder) -> list[tuple[str, int]]:
    """(prompt, unmasked completion tokens) of every row that reached the loss."""
    return [
        (prompt, tokens)
        for batch in trainer.loss_batches
        for prompt, tokens in zip(batch["prompts"], batch["tokens"], strict=True)
    ]


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


def test_every_field_of_trls_rollout_is_one_dynamic_sampling_can_merge(model_dir: Path, tmp_path: Path) -> None:
    """TRL's rollout dict is private and grows between releases; dynamic sampling must know how to merge
    each of its fields. A new field fails here, by name, instead of deep inside a training run."""
    from r1_trl import trainers

    trainer = R1GRPOTrainer(model=str(model_dir), args=grpo_config(tmp_path), train_dataset=two_kind_prompts(),
                            reward_funcs=[kind_reward])  # fmt: skip
    batch = [{"prompt": f"Varying question {i}:"} for i in range(8)]
    rollout = trainer._generate_and_score_completions(batch)
    known = {*trainers._LEFT_PADDED, *trainers._RIGHT_PADDED, *trainers._PER_ROW, trainers._BATCH_COUNT}
    unknown = sorted(set(rollout) - known)
    assert not unknown, f"TRL's rollout has fields r1_trl/trainers.py cannot merge: {unknown}"
    assert {"prompt_ids", "completion_ids", "advantages"} <= set(rollout)


def test_dynamic_sampling_keeps_zero_variance_groups_out_of_the_loss(model_dir: Path, tmp_path: Path) -> None:
    trainer = train(model_dir, grpo_config(tmp_path, dynamic_sampling=True, dynamic_sampling_max_rounds=8), kind_reward)
    rows = rows_reaching_loss(trainer)
    assert len(rows) == 2 * 8  # 2 steps x (2 micro-batches of 4): the batch is refilled to full size
    assert all(prompt.startswith("Varying") for prompt, _ in rows), rows
    assert all(tokens > 0 for _, tokens in rows)
    assert sum(logged(trainer, "dynamic_sampling/rounds")) >= 1  # some batch had to be refilled
    assert logged(trainer, "dynamic_sampling/masked_share") == [0.0, 0.0]
    assert logged(trainer, "dynamic_sampling/kept_groups") == [2.0, 2.0]
    assert max(logged(trainer, "dynamic_sampling/zero_variance_share")) > 0
    # The token count used by the dapo loss is recomputed for the merged batch (one process: its own tokens).
    for first, second in zip(trainer.loss_batches[::2], trainer.loss_batches[1::2], strict=True):
        assert first["num_items_in_batch"] == second["num_items_in_batch"] == sum(first["tokens"] + second["tokens"])


def test_without_dynamic_sampling_zero_variance_groups_reach_the_loss(model_dir: Path, tmp_path: Path) -> None:
    trainer = train(model_dir, grpo_config(tmp_path), kind_reward)
    constant_rows = [(prompt, tokens) for prompt, tokens in rows_reaching_loss(trainer) if prompt.startswith("Constant")]
    assert constant_rows and all(tokens > 0 for _, tokens in constant_rows)
    assert not logged(trainer, "dynamic_sampling/rounds")


def test_after_the_round_cap_the_shortfall_is_masked(model_dir: Path, tmp_path: Path) -> None:
    config = grpo_config(tmp_path, dynamic_sampling=True, dynamic_sampling_max_rounds=1, max_steps=1)
    trainer = train(model_dir, config, constant_reward)
    rows = rows_reaching_loss(trainer)
    assert len(rows) == 8
    assert all(tokens == 0 for _, tokens in rows)  # every row masked: no signal anywhere
    assert all(advantage == 0.0 for batch in trainer.loss_batches for advantage in batch["advantages"])
    assert all(batch["num_items_in_batch"] == 0 for batch in trainer.loss_batches)
    assert all(math.isfinite(batch["loss"]) and batch["loss"] == 0.0 for batch in trainer.loss_batches)
    assert logged(trainer, "dynamic_sampling/rounds") == [1.0]
    assert logged(trainer, "dynamic_sampling/masked_share") == [1.0]
    assert logged(trainer, "dynamic_sampling/zero_variance_share") == [1.0]


def test_dynamic_sampling_needs_a_map_style_dataset(model_dir: Path, tmp_path: Path) -> None:
    stream = IterableDataset.from_generator(lambda: iter(two_kind_prompts()))
    with pytest.raises(ValueError, match="dynamic_sampling"):
        R1GRPOTrainer(
            model=str(model_dir),
            args=grpo_config(tmp_path, dynamic_sampling=True),
            train_dataset=stream,
            reward_funcs=[constant_reward],
        )


# --- two processes ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_stay_in_lockstep(model_dir: Path, tmp_path: Path) -> None:
    """Two CPU processes, one whole group each: their shortfalls differ, their rounds must not."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        __file__, str(model_dir), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]  # same rounds, same global shares, on both ranks
    assert sum(ranks[0]["metrics"]["dynamic_sampling/rounds"]) >= 1
    for rank in ranks:
        assert len(rank["prompts"]) == 3 * 4  # 3 steps x 4 rows per process
        assert all(prompt.startswith("Varying") for prompt in rank["prompts"]), rank["prompts"]
        assert all(tokens > 0 for tokens in rank["tokens"])


def _distributed_worker(model_dir: str, output_dir: str) -> None:
    config = grpo_config(
        Path(output_dir), per_device_train_batch_size=2, max_steps=3, dynamic_sampling=True,
        dynamic_sampling_max_rounds=8,
    )  # fmt: skip
    trainer = train(Path(model_dir), config, kind_reward)
    rows = rows_reaching_loss(trainer)
    keys = ("dynamic_sampling/rounds", "dynamic_sampling/kept_groups", "dynamic_sampling/masked_share")
    result = {
        "metrics": {key: logged(trainer, key) for key in keys},
        "prompts": [prompt for prompt, _ in rows],
        "tokens": [tokens for _, tokens in rows],
    }
    rank = trainer.accelerator.process_index
    (Path(output_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    exit_distributed(0)


if __name__ == "__main__":
    _distributed_worker(*sys.argv[1:3])
