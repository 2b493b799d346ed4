"""The one training-stage runner: evaluate -> train (resuming) -> save -> evaluate -> results, plots, Hub.

A training stage (R1-Zero, reasoning RL, the SFT stages, RL for all scenarios) describes itself as a
`TrainingStage` and hands it to `run_training_stage`. Under ``accelerate launch`` every rank runs all of it:
both held-out evaluations are sharded across the ranks (`r1_trl.generation.generate_sharded`), sampling
engines are released before the trainer is built and after the last evaluation, and only the main process
writes results, details, plots and recipe and pushes, while the others wait at the closing barrier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.state import AcceleratorState
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback

from r1_trl.adapters import stage_adapter, trainable_parameters
from r1_trl.evaluation import EvalSettings, HeldOutEvalCallback, evaluate_model, split_eval_details
from r1_trl.generation import EngineSettings, free_memory, release_engines
from r1_trl.stages.common import (
    CURVES_FILE,
    DATASETS_DIR,
    EVAL_DETAILS_DATASET,
    RESULTS_FILE,
    publish_stage,
    save_eval_details,
    save_recipe,
    stage_publisher,
    train_and_save,
    trainer_args,
    write_json_atomic,
)

# (model path or id, with per-sample completions?) -> (held-out metrics, readable samples or {})
Evaluate = Callable[[str, bool], tuple[dict[str, Any], dict[str, Any]]]
BuildTrainer = Callable[[Any, list[TrainerCallback]], Trainer]
Plot = Callable[[list[dict[str, Any]], Path, dict[str, Any], dict[str, Any]], Any]


@dataclass
class TrainingStage:
    """What is particular to one training stage; `run_training_stage` does the rest."""

    name: str
    config: Any  # the stage recipe: a TRL TrainingArguments subclass with r1-trl's stage fields
    model_path: str  # the resolved starting checkpoint
    tokenizer: PreTrainedTokenizerBase
    held_out: Dataset
    settings: EvalSettings
    build_trainer: BuildTrainer  # (trainer args, callbacks) -> trainer
    plot: Plot
    describe: Callable[[Trainer], dict[str, Any]] = lambda trainer: {}  # stage entries of results["train"]
    results: dict[str, Any] = field(default_factory=dict)  # stage entries of results.json
    evaluate: Evaluate | None = None  # default: `evaluate_model` on ``held_out``, sharded across ranks

    def evaluate_checkpoint(self, model: str, with_completions: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.evaluate is not None:
            return self.evaluate(model, with_completions)
        metrics = evaluate_model(model, self.tokenizer, self.held_out, self.settings, show_progress=True,
                                 return_completions=with_completions, engine=EngineSettings.from_config(self.config),
                                 sharded=True)  # fmt: skip
        return metrics, {}


def run_training_stage(stage: TrainingStage) -> dict[str, Any]:
    """Run ``stage``; returns its results (``{"stage": name}`` on the non-main ranks)."""
    started = time.perf_counter()
    config = stage.config
    output_dir = Path(config.output_dir)
    before, samples_before = stage.evaluate_checkpoint(stage.model_path, False)
    release_engines()  # the trainer (and TRL's own colocated engine) gets the memory

    publisher = stage_publisher(config, stage.name)
    callbacks = publisher.callbacks() if publisher else []
    if config.eval_every_steps > 0:
        callbacks.append(HeldOutEvalCallback(stage.held_out, stage.tokenizer, stage.settings, config.eval_every_steps))
    # A trainer built earlier in this process (another pipeline stage, rl-all's reward models) leaves accelerate's
    # state behind, and under DeepSpeed a second Accelerator refuses the plugin the new trainer passes. Clear it,
    # as transformers does when its TrainingArguments set up their devices (the process group stays).
    AcceleratorState._reset_state(reset_partial_state=False)
    trainer = stage.build_trainer(trainer_args(config, publisher), callbacks)
    checkpoint, train_seconds = train_and_save(trainer, output_dir, stage.tokenizer)
    accelerator, state = trainer.accelerator, trainer.state
    described = {**trainable_parameters(trainer.model), **stage.describe(trainer)}
    del trainer
    free_memory()

    evaluation, samples_after = stage.evaluate_checkpoint(str(checkpoint), True)
    release_engines()
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return {"stage": stage.name}
    after, details = split_eval_details(evaluation, stage.held_out, stage.settings)
    details_path = save_eval_details(details, output_dir / DATASETS_DIR / EVAL_DETAILS_DATASET,
                                     _reasoning_metrics(after), stage.settings, checkpoint)  # fmt: skip
    results: dict[str, Any] = {
        "stage": stage.name,
        "model": config.model_name_or_path,
        "start_model_path": stage.model_path,
        "checkpoint": str(checkpoint.resolve()),
        "before": before,
        "after": after,
        "metrics": after,
        **stage.results,
        "datasets": {**stage.results.get("datasets", {}), EVAL_DETAILS_DATASET: str(details_path.resolve())},
        "train": {"steps": state.global_step, "seconds": train_seconds, **described},
        "adapter": stage_adapter(output_dir),
        "log_history": state.log_history,
    }
    if samples_before or samples_after:
        results["general_samples"] = {"before": samples_before, "after": samples_after}
    results["seconds"] = time.perf_counter() - started
    write_json_atomic(output_dir / RESULTS_FILE, results)
    stage.plot(state.log_history, output_dir / CURVES_FILE, before, after)
    save_recipe(config, output_dir)
    publish_stage(publisher, config, output_dir, results)
    accelerator.wait_for_everyone()
    return results


def _reasoning_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics the held-out details describe (reward-model means of general prompts are not theirs)."""
    return {key: value for key, value in metrics.items() if not key.startswith("general/")}
