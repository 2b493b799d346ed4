"""The one training-stage runner: evaluate -> train (resuming) -> save -> evaluate -> results, plots, Hub.

Every training stage (R1-Zero, reasoning RL, the SFT stages, RL for all scenarios, the distilled student,
the reward models) describes itself as a `TrainingStage` and hands it to `run_training_stage`; a rerun after
a kill resumes the trainer from the newest complete ``checkpoint-N`` in ``output_dir``.

Under ``accelerate launch`` every rank runs all of it:
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
    # How held-out prompts are sampled. None for a stage not evaluated by sampling (the reward model scores
    # preference pairs in its own `evaluate`): no eval details, no in-training held-out evaluation.
    settings: EvalSettings | None
    build_trainer: BuildTrainer  # (trainer args, callbacks) -> trainer
    plot: Plot
    describe: Callable[[Trainer], dict[str, Any]] = lambda trainer: {}  # stage entries of results["train"]
    results: dict[str, Any] = field(default_factory=dict)  # stage entries of results.json
    evaluate: Evaluate | None = None  # default: `evaluate_model` on ``held_out``, sharded across ranks
    # Further training of the saved checkpoint (in place) once the trainer is freed, before the final
    # evaluation; returns stage entries of results.json (distill's on-policy step).
    post_train: Callable[[Path], dict[str, Any]] | None = None
    publish: bool = True  # False: no Hub branch of its own (a config without r1-trl's hub fields)

    def __post_init__(self) -> None:
        if self.settings is None and self.evaluate is None:
            raise ValueError(f"{self.name}: a stage without sampling settings needs its own evaluate")

    def evaluate_checkpoint(self, model: str, with_completions: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.evaluate is not None:
            return self.evaluate(model, with_completions)
        assert self.settings is not None  # checked in __post_init__
        metrics = evaluate_model(model, self.tokenizer, self.held_out, self.settings, show_progress=True,
                                 return_completions=with_completions, engine=EngineSettings.from_config(self.config),
                                 sharded=True)  # fmt: skip
        return metrics, {}


def run_training_stage(stage: TrainingStage) -> dict[str, Any]:
    """Run ``stage``; returns its results (only ``stage`` and ``checkpoint`` on the non-main ranks)."""
    started = time.perf_counter()
    config = stage.config
    output_dir = Path(config.output_dir)
    before, samples_before = stage.evaluate_checkpoint(stage.model_path, False)
    release_engines()  # the trainer (and TRL's own colocated engine) gets the memory

    publisher = stage_publisher(config, stage.name) if stage.publish else None
    callbacks = publisher.callbacks() if publisher else []
    if stage.settings is not None and config.eval_every_steps > 0:
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
    post_trained = stage.post_train(checkpoint) if stage.post_train else {}

    evaluation, samples_after = stage.evaluate_checkpoint(str(checkpoint), True)
    release_engines()
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return {"stage": stage.name, "checkpoint": str(checkpoint.resolve())}
    datasets = dict(stage.results.get("datasets", {}))
    after = evaluation
    if stage.settings is not None:
        after, details = split_eval_details(evaluation, stage.held_out, stage.settings)
        details_path = save_eval_details(details, output_dir / DATASETS_DIR / EVAL_DETAILS_DATASET,
                                         _reasoning_metrics(after), stage.settings, checkpoint)  # fmt: skip
        datasets[EVAL_DETAILS_DATASET] = str(details_path.resolve())
    results: dict[str, Any] = {
        "stage": stage.name,
        "model": config.model_name_or_path,
        "start_model_path": stage.model_path,
        "checkpoint": str(checkpoint.resolve()),
        "before": before,
        "after": after,
        "metrics": after,
        **stage.results,
        **post_trained,
        "datasets": datasets,
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
