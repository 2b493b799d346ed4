"""Supervised fine-tuning stages: cold-start SFT, SFT stage 2 and distillation into a student.

One module for the three: they differ only in their data (``sft_dataset``: a dataset saved with
``save_to_disk`` holding prompt/completion pairs, e.g. ``cold-start-data/datasets/cold_start``) and in
the model they start from (``model_name_or_path``: the R1-Zero checkpoint, the base again for SFT stage
2, or a small student for distillation). The loss covers the completion only: for prompt/completion
data TRL masks the prompt tokens (``completion_only_loss``, on by default for such data).

Artifacts in ``output_dir``: ``checkpoint/`` (model + tokenizer), ``results.json`` (held-out metrics
before/after, on prompts rendered with ``prompt_template``: ``chat`` for models trained on chat data),
``datasets/eval_details`` (the trained model's held-out samples behind the "after" metrics, one row per
prompt), ``curves.png`` and ``recipe.yaml``. With ``push_to_hub`` the stage pushes itself like the GRPO stages
(``{stage}-step-{N}`` branches during training, the final checkpoint to the ``{stage}`` branch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Trainer

from r1_trl.configs import R1SFTConfig, RecipeError
from r1_trl.data.builders import PromptSpec, load_problems, render
from r1_trl.data.decontaminate import decontaminate
from r1_trl.rundir import load_saved_dataset
from r1_trl.stages import SFT_STAGES as REGISTERED_SFT_STAGES
from r1_trl.stages.common import eval_settings, resolve_model
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.trainers import R1SFTTrainer

logger = logging.getLogger(__name__)

STAGE = "cold-start-sft"
SFT_STAGES = (*REGISTERED_SFT_STAGES, "distill-student")  # the distill stage trains its student with SFT
# Columns TRL's SFTTrainer reads, by dataset type; any other column is kept for the record only.
DATASET_LAYOUTS = (("prompt", "completion"), ("messages",), ("text",))


@dataclass
class SFTStageConfig(R1SFTConfig):
    """SFT stage recipe: R1SFTConfig plus the stage name and the dataset to train on."""

    stage_name: str = field(
        default=STAGE, metadata={"help": f"Which SFT stage this run is, one of {', '.join(SFT_STAGES)}."}
    )
    sft_dataset: str | None = field(
        default=None,
        metadata={"help": "Path of a dataset saved with save_to_disk: prompt/completion pairs (conversational "
                  "or plain), or 'messages' / 'text' rows. The pipeline passes the previous stage's output."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage_name not in SFT_STAGES:
            raise RecipeError(f"stage_name: must be one of {', '.join(SFT_STAGES)}, got {self.stage_name!r}")
        if not self.sft_dataset:
            raise RecipeError("sft_dataset: the path of a saved dataset (save_to_disk) is required")


def load_sft_dataset(path: str | Path, max_rows: int | None = None, seed: int = 0) -> Dataset:
    """The saved dataset at ``path``, checked for a layout TRL's SFTTrainer trains on; at most ``max_rows``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"sft_dataset: no saved dataset at {path}")
    dataset = load_saved_dataset(path)
    if not isinstance(dataset, Dataset):
        raise ValueError(f"sft_dataset: {path} holds a DatasetDict; point at one split's folder")
    if not any(all(c in dataset.column_names for c in layout) for layout in DATASET_LAYOUTS):
        raise ValueError(
            f"sft_dataset: {path} has columns {dataset.column_names}; expected prompt+completion, messages or text"
        )
    if len(dataset) == 0:
        raise ValueError(f"sft_dataset: {path} is empty")
    if max_rows is not None and max_rows < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_rows))
    return dataset


def held_out_prompts(config: SFTStageConfig) -> Dataset:
    """The held-out problems rendered with the recipe's prompt template (same set as the RL stages use)."""
    spec = PromptSpec.from_config(config)
    return render(load_problems(spec, spec.test_split, spec.eval_size), spec)


def check_chat_template(tokenizer: PreTrainedTokenizerBase, dataset: Dataset, held_out: Dataset) -> None:
    conversational = "messages" in dataset.column_names or not isinstance(dataset[0].get("prompt", ""), str)
    if (conversational or not isinstance(held_out[0]["prompt"], str)) and not tokenizer.chat_template:
        raise ValueError("prompt_template/sft_dataset: conversational data needs a tokenizer with a chat template")


def _decontaminated(dataset: Dataset, held_out: Dataset) -> tuple[Dataset, int]:
    """Drop training rows whose problem overlaps a held-out problem (when the data records its problems)."""
    if "problem" not in dataset.column_names or "problem" not in held_out.column_names:
        return dataset, 0
    kept, stats = decontaminate(dataset, held_out, column="problem")
    return kept, stats.num_dropped


def run_sft_stage(config: SFTStageConfig) -> dict[str, Any]:
    config.apply_runtime_settings()
    stage = config.stage_name
    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    assert config.sft_dataset is not None  # checked by the config
    dataset = load_sft_dataset(config.sft_dataset, config.train_size, config.seed)
    held_out = held_out_prompts(config)
    check_chat_template(tokenizer, dataset, held_out)
    dropped = 0
    if config.decontaminate:
        dataset, dropped = _decontaminated(dataset, held_out)
        if dropped:
            logger.info("%s: decontamination dropped %d training rows", stage, dropped)

    def build_trainer(args: SFTStageConfig, callbacks: list) -> Trainer:
        return R1SFTTrainer(model=model_path, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=callbacks)  # fmt: skip

    def describe(trainer: Trainer) -> dict[str, Any]:
        losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
        return {
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            "train_rows": len(dataset),
            "decontamination_dropped": dropped,
            "completion_only_loss": trainer.completion_only_loss,
            "assistant_only_loss": config.assistant_only_loss,
            "held_out_prompts": len(held_out),
            "prompt_template": config.prompt_template,
        }

    def plot(history: list, path: Path, before: dict, after: dict) -> Path:
        return plot_sft_curves(history, path, f"{stage}: SFT", before, after)

    return run_training_stage(TrainingStage(
        name=stage, config=config, model_path=model_path, tokenizer=tokenizer, held_out=held_out,
        settings=eval_settings(config, language_metric=True), build_trainer=build_trainer, plot=plot,
        describe=describe, results={"inputs": {"sft_dataset": str(Path(config.sft_dataset).resolve())}},
    ))  # fmt: skip


def plot_sft_curves(
    log_history: list[dict[str, Any]], path: Path, title: str, before: dict[str, Any], after: dict[str, Any]
) -> Path:
    """Left: training loss and token accuracy per step. Right: held-out metrics before/after."""
    from r1_trl.plotting import plt, save_figure, series  # the plotting module selects the Agg backend

    figure, (loss_axis, eval_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "loss"), ("mean_token_accuracy", "token accuracy")):
        steps, values = series(log_history, key)
        if steps:
            loss_axis.plot(steps, values, label=label)
    loss_axis.set_xlabel("step")
    loss_axis.set_title(title)
    loss_axis.legend(fontsize=8)
    loss_axis.grid(alpha=0.3)
    names = [name for name in ("accuracy", "format_rate", "language_consistency") if name in after]
    positions = range(len(names))
    eval_axis.bar([p - 0.2 for p in positions], [before.get(n, 0.0) for n in names], width=0.4, label="before")
    eval_axis.bar([p + 0.2 for p in positions], [after[n] for n in names], width=0.4, label="after")
    eval_axis.set_xticks(list(positions), names)
    eval_axis.set_ylim(0, 1)
    eval_axis.set_title("held-out")
    eval_axis.legend(fontsize=8)
    return save_figure(figure, path)



def run(config: SFTStageConfig) -> dict[str, Any]:
    return run_sft_stage(config)


CONFIG_CLASS = SFTStageConfig
