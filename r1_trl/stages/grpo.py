"""The GRPO training stage shared by R1-Zero and reasoning RL: prompts from the recipe's task, rule rewards.

The two stages differ only in their recipes (rewards, start checkpoint) and in whether the held-out metrics
include language consistency.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer, Trainer

from r1_trl.configs import R1GRPOConfig
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.plotting import plot_training_curves
from r1_trl.stages.common import eval_settings, resolve_model
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.trainers import R1GRPOTrainer


def run_grpo_stage(config: R1GRPOConfig, stage: str, language_metric: bool = False) -> dict[str, Any]:
    """Evaluate the start model, train with GRPO, save the checkpoint, evaluate again, write artifacts.

    Artifacts in ``config.output_dir``: ``checkpoint/`` (the trained model), ``results.json`` (held-out
    metrics before/after and the training log), ``datasets/eval_details`` (the held-out samples of the
    trained model behind the "after" metrics, one row per prompt), ``curves.png`` and ``recipe.yaml``. With
    ``push_to_hub`` the stage pushes itself (``r1_trl.hub.StagePublisher``): saved checkpoints to
    ``{stage}-step-{N}`` branches during training, then the final checkpoint to the stage's branch.
    """
    config.apply_runtime_settings()
    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    train, held_out = build_prompt_datasets(PromptSpec.from_config(config))

    def build_trainer(args: R1GRPOConfig, callbacks: list) -> Trainer:
        return R1GRPOTrainer(model=model_path, args=args, train_dataset=train, processing_class=tokenizer,
                             callbacks=callbacks)  # fmt: skip

    def describe(trainer: Trainer) -> dict[str, Any]:
        lengths = [row["completions/mean_length"] for row in trainer.state.log_history
                   if "completions/mean_length" in row]  # fmt: skip
        return {
            "mean_completion_length_first": lengths[0] if lengths else None,
            "mean_completion_length_last": lengths[-1] if lengths else None,
            "train_prompts": len(train),
            "held_out_prompts": len(held_out),
        }

    def plot(history: list, path: Any, before: dict, after: dict) -> Any:
        return plot_training_curves(history, path, f"{stage}: GRPO rewards", held_out={"before": before, "after": after})

    return run_training_stage(TrainingStage(
        name=stage, config=config, model_path=model_path, tokenizer=tokenizer, held_out=held_out,
        settings=eval_settings(config, language_metric), build_trainer=build_trainer, plot=plot,
        describe=describe,
    ))  # fmt: skip
