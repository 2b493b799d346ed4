"""R1-Zero: GRPO straight from a base model, rule-based rewards only (accuracy + format)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from r1_trl.configs import R1GRPOConfig
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.evaluation import HeldOutEvalCallback, evaluate_model
from r1_trl.plotting import plot_training_curves
from r1_trl.stages.common import (
    CURVES_FILE,
    EVAL_DETAILS_DATASET,
    RESULTS_FILE,
    eval_settings,
    evaluate_with_details,
    publish_stage,
    resolve_model,
    save_recipe,
    stage_publisher,
    train_and_save,
    trainer_args,
    write_json_atomic,
)
from r1_trl.trainers import R1GRPOTrainer

logger = logging.getLogger(__name__)

STAGE = "r1-zero"
CONFIG_CLASS = R1GRPOConfig


def run_grpo_stage(config: R1GRPOConfig, stage: str = STAGE, language_metric: bool = False) -> dict[str, Any]:
    """Evaluate the start model, train with GRPO, save the checkpoint, evaluate again, write artifacts.

    Artifacts in ``config.output_dir``: ``checkpoint/`` (the trained model), ``results.json`` (held-out
    metrics before/after and the training log), ``datasets/eval_details`` (the held-out samples of the
    trained model behind the "after" metrics, one row per prompt), ``curves.png`` and ``recipe.yaml``. With ``push_to_hub`` the
    stage pushes itself (``r1_trl.hub.StagePublisher``): saved checkpoints to ``{stage}-step-{N}`` branches
    during training, then the final checkpoint to the stage's branch before returning.
    """
    started = time.perf_counter()
    config.apply_runtime_settings()
    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    spec = PromptSpec.from_config(config)
    train, held_out = build_prompt_datasets(spec)
    settings = eval_settings(config, language_metric)

    before = evaluate_model(model_path, tokenizer, held_out, settings, show_progress=True)
    publisher = stage_publisher(config, stage)
    callbacks = publisher.callbacks() if publisher else []
    if config.eval_every_steps > 0:
        callbacks.append(HeldOutEvalCallback(held_out, tokenizer, settings, config.eval_every_steps))
    trainer = R1GRPOTrainer(
        model=model_path,
        args=trainer_args(config, publisher),
        train_dataset=train,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    output_dir = Path(config.output_dir)
    checkpoint, train_seconds = train_and_save(trainer, output_dir, tokenizer)
    results: dict[str, Any] = {"stage": stage}
    if trainer.accelerator.is_main_process:
        after, details = evaluate_with_details(str(checkpoint), tokenizer, held_out, settings, output_dir, checkpoint)
        history = trainer.state.log_history
        lengths = [row["completions/mean_length"] for row in history if "completions/mean_length" in row]
        results.update(
            {
                "model": config.model_name_or_path,
                "start_model_path": model_path,
                "checkpoint": str(checkpoint),
                "before": before,
                "after": after,
                "metrics": after,
                "datasets": {EVAL_DETAILS_DATASET: str(details.resolve())},
                "train": {
                    "steps": trainer.state.global_step,
                    "seconds": train_seconds,
                    "mean_completion_length_first": lengths[0] if lengths else None,
                    "mean_completion_length_last": lengths[-1] if lengths else None,
                    "train_prompts": len(train),
                    "held_out_prompts": len(held_out),
                },
                "log_history": history,
                "seconds": time.perf_counter() - started,
            }
        )
        write_json_atomic(output_dir / RESULTS_FILE, results)
        plot_training_curves(history, output_dir / CURVES_FILE, f"{stage}: GRPO rewards",
                             held_out={"before": before, "after": after})
        save_recipe(config, output_dir)
        publish_stage(publisher, config, output_dir, results)
    return results



def run(config: R1GRPOConfig) -> dict[str, Any]:
    return run_grpo_stage(config, STAGE, language_metric="languages" in (config.task_kwargs or {}))
