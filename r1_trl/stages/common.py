"""What every stage does around its trainer: resolve the model, evaluate, write results and curves, push."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from r1_trl.checkpoints import (  # noqa: F401  (re-exported: stages resolve models through here)
    NOT_LOADED_PATTERNS,
    download_revision,
    resolve_model,
    save_model_files,
    save_trained_model,
)
from r1_trl.evaluation import EvalSettings, evaluate_model, split_eval_details
from r1_trl.rundir import (  # noqa: F401  (re-exported: the stages read the layout through here too)
    CHECKPOINT_DIR,
    CURVES_FILE,
    DATASETS_DIR,
    EVAL_DETAILS_DATASET,
    RECIPE_FILE,
    RESULTS_FILE,
    STATS_FILE,
    TRAINER_STATE_FILE,
    checkpoint_step,
    last_checkpoint,
    remove_stale_push_snapshots,
    remove_stale_staging,
    save_dataset_atomic,
    write_json_atomic,
)

if TYPE_CHECKING:
    from r1_trl.hub import StagePublisher

def eval_settings(config: Any, language_metric: bool = False) -> EvalSettings:
    return EvalSettings(
        num_samples=config.eval_num_samples,
        temperature=config.eval_temperature,
        top_p=config.eval_top_p,
        max_new_tokens=config.eval_max_new_tokens,
        seed=config.seed + 1,
        language_metric=language_metric,
    )


def recipe_dict(config: Any) -> dict[str, Any]:
    """The recipe fields that differ from the dataclass defaults, plus the stage-defining ones."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        default = item.default if item.default is not dataclasses.MISSING else (
            item.default_factory() if item.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        if value != default and not item.name.startswith("_"):
            values[item.name] = _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def save_recipe(config: Any, output_dir: str | Path) -> Path:
    path = Path(output_dir) / RECIPE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe_dict(config), sort_keys=True))
    return path


def evaluate_with_details(
    model: Any,
    tokenizer: Any,
    held_out: Any,
    settings: EvalSettings,
    output_dir: str | Path,
    checkpoint: str | Path,
    name: str = EVAL_DETAILS_DATASET,
    engine: Any = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate ``model`` (the trained ``checkpoint``, or that model loaded) on ``held_out`` like
    ``evaluate_model``, sharded across the ranks of a launch (every rank calls this), and save what was
    sampled as ``output_dir/datasets/<name>`` from the main process: one row per prompt (see
    `r1_trl.evaluation.eval_details`). Returns the metrics (exactly ``evaluate_model``'s) and the path."""
    from r1_trl.distributed import launch_state
    from r1_trl.generation import EngineSettings

    evaluation = evaluate_model(model, tokenizer, held_out, settings, show_progress=True, return_completions=True,
                                engine=engine or EngineSettings(), sharded=True)  # fmt: skip
    metrics, details = split_eval_details(evaluation, held_out, settings)
    path = Path(output_dir) / DATASETS_DIR / name
    state = launch_state()
    if state.is_main_process:
        save_eval_details(details, path, metrics, settings, checkpoint)
    state.wait_for_everyone()
    return metrics, path


def save_eval_details(
    details: Any, path: str | Path, metrics: dict[str, Any], settings: EvalSettings, checkpoint: str | Path
) -> Path:
    """Save evaluation details with their ``stats.json``: prompt and sample counts, the metrics they
    produced, the sampling settings and the evaluated checkpoint (``source_checkpoint``, which the Hub
    dataset card names as the set's generator)."""
    stats = {
        "num_prompts": len(details),
        "samples_per_prompt": settings.num_samples,
        "source_checkpoint": str(Path(checkpoint).resolve()) if Path(checkpoint).exists() else str(checkpoint),
        "metrics": {
            key: value
            for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        },
        "eval_settings": dataclasses.asdict(settings),
    }
    return save_dataset_atomic(details, path, stats)


def resume_point(trainer: Any, output_dir: str | Path) -> str | None:
    """The checkpoint an interrupted run resumes from, announced as "resuming from checkpoint-N (step N of M)".

    The main process first removes what a killed run left half-done: incomplete ``checkpoint-N`` folders
    (`r1_trl.rundir.checkpoint_problem`) and snapshots of checkpoint pushes."""
    main = trainer.accelerator.is_main_process
    if main:
        remove_stale_push_snapshots(output_dir)
    resume = last_checkpoint(output_dir, remove_incomplete=main)
    trainer.accelerator.wait_for_everyone()
    if resume is not None and main:
        step = checkpoint_step(resume)
        total = trainer.args.max_steps
        if total <= 0:
            total = json.loads(Path(resume, TRAINER_STATE_FILE).read_text(encoding="utf-8")).get("max_steps", "?")
        print(f"resuming from {Path(resume).name} (step {step} of {total}) in {output_dir}", flush=True)
    return resume


def train_and_save(trainer: Any, output_dir: str | Path, tokenizer: Any) -> tuple[Path, float]:
    """Train (resuming from the newest complete checkpoint if any, see `resume_point`), save the final model
    (gathered under ZeRO-3) to ``output_dir/checkpoint`` with its tokenizer; returns the checkpoint path and
    training seconds."""
    started = time.perf_counter()
    resume = resume_point(trainer, output_dir)
    checkpoint = Path(output_dir) / CHECKPOINT_DIR
    if resume is not None and 0 < trainer.args.max_steps <= checkpoint_step(resume):
        finish_from_last_checkpoint(trainer, resume, checkpoint, tokenizer)
        return checkpoint, time.perf_counter() - started
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    save_trained_model(trainer, checkpoint, tokenizer)  # an adapter (merged on request) or the full model
    return checkpoint, seconds


def finish_from_last_checkpoint(trainer: Any, resume: str, checkpoint: Path, tokenizer: Any) -> None:
    """A run killed after its last training step (while saving the final model, evaluating or pushing): its
    newest checkpoint-N already holds the trained model. (Resuming ``train()`` from it would take one step
    past ``max_steps``.) The trainer's state comes from the checkpoint, the callbacks see a training run
    with nothing left to do (pushes of saved checkpoints a kill interrupted are made there), and the model
    files of checkpoint-N become ``checkpoint`` as `save_trained_model` would have written them."""
    from transformers import TrainerState

    trainer.state = TrainerState.load_from_json(str(Path(resume) / TRAINER_STATE_FILE))
    handler, args = trainer.callback_handler, trainer.args
    trainer.control = handler.on_train_begin(args, trainer.state, trainer.control)
    if trainer.accelerator.is_main_process:
        save_model_files(Path(resume), checkpoint, tokenizer, args)
    trainer.accelerator.wait_for_everyone()
    trainer.control = handler.on_train_end(args, trainer.state, trainer.control)


# ---- Hub pushes of a training stage (recipe push_to_hub) ----------------------------------------------------
def stage_publisher(config: Any, stage: str) -> StagePublisher | None:
    """The stage's own Hub pushes when the recipe sets ``push_to_hub`` (see `r1_trl.hub.StagePublisher`)."""
    if not getattr(config, "push_to_hub", False):
        return None
    from r1_trl.hub import HubTargets, RetryPolicy, StagePublisher

    target = HubTargets(
        config.hub_model_id,
        config.hub_dataset_id,
        config.hub_layout,
        private=config.hub_private_repo,
        token=config.hub_token,
        retry=RetryPolicy(attempts=config.hub_push_attempts, base_delay=config.hub_push_backoff),
    )
    return StagePublisher(target, stage, push_checkpoints=config.hub_push_checkpoints)


def trainer_args(config: Any, publisher: StagePublisher | None) -> Any:
    """The arguments the trainer gets. When the stage pushes itself, a copy with TRL's own push off: the
    Trainer would otherwise push ``output_dir`` to ``main`` on every save and on ``save_model``, a second
    copy of what the stage pushes to its branches. The recipe itself (``recipe.yaml``) keeps ``push_to_hub``."""
    if publisher is None:
        return config
    args = copy.copy(config)
    args.push_to_hub = False
    return args


def publish_stage(
    publisher: StagePublisher | None, config: Any, output_dir: str | Path, results: dict[str, Any]
) -> None:
    """After a stage wrote its artifacts: wait for the checkpoint pushes, record the Hub refs in
    ``results["hub"]`` and ``results.json``, then push the final checkpoint (blocking). A push that failed for
    good is recorded there as ``hub.error``; the checkpoints are never touched."""
    if publisher is None:
        return
    output_dir = Path(output_dir)
    results["hub"] = publisher.wait_for_checkpoints()
    write_json_atomic(output_dir / RESULTS_FILE, results)
    error = publisher.push_final(output_dir, lineage_entry(config, results))
    if error is not None:
        results["hub"].update({"model": None, "error": error})
        write_json_atomic(output_dir / RESULTS_FILE, results)


def lineage_entry(config: Any, results: dict[str, Any]) -> dict[str, Any]:
    """A stage's record for the pushed manifest (the fields a pipeline manifest entry has)."""
    model = config.model_name_or_path
    if config.model_revision and "@" not in model:
        model = f"{model}@{config.model_revision}"
    prompts = config.dataset_path or config.dataset_name
    return {
        "checkpoint": CHECKPOINT_DIR,
        "inputs": {
            "model": model,
            "datasets": {"train": getattr(config, "sft_dataset", None) or prompts, "eval": prompts},
        },
        "config": recipe_dict(config),
        "seed": config.seed,
        "metrics": {
            key: value
            for key, value in (results.get("metrics") or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        },
        "reward_funcs": list(getattr(config, "reward_funcs", None) or []),
        "reward_weights": list(getattr(config, "reward_weights", None) or []) or None,
        "command": shlex.join(["r1-trl", *sys.argv[1:]]),
        "timings": {"seconds": results.get("seconds")},
    }
