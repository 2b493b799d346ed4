"""What every stage does around its trainer: resolve the model, evaluate, write results and curves."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from r1_trl.configs import TINY_MODEL
from r1_trl.evaluation import EvalSettings

CHECKPOINT_DIR = "checkpoint"
RESULTS_FILE = "results.json"
CURVES_FILE = "curves.png"
RECIPE_FILE = "recipe.yaml"
STATS_FILE = "stats.json"


def resolve_model(name_or_path: str, revision: str | None = None) -> tuple[str, str | None]:
    """'tiny' -> the cached tiny base (built on first use); 'repo@rev' -> (repo, rev); else unchanged."""
    if name_or_path == TINY_MODEL:
        from r1_trl.models import load_or_build_tiny_base

        return str(load_or_build_tiny_base()), None
    if "@" in name_or_path and not Path(name_or_path).exists():
        repo, _, rev = name_or_path.partition("@")
        return repo, revision or rev
    return name_or_path, revision


def eval_settings(config: Any, language_metric: bool = False) -> EvalSettings:
    return EvalSettings(
        num_samples=config.eval_num_samples,
        temperature=config.eval_temperature,
        max_new_tokens=config.eval_max_new_tokens,
        seed=config.seed + 1,
        language_metric=language_metric,
    )


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=2, default=str)
    os.replace(staging, path)
    return path


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


def save_dataset_atomic(dataset: Any, path: str | Path, stats: dict[str, Any]) -> Path:
    """Write a ``datasets.Dataset`` and its ``stats.json`` to ``path`` so that ``path`` is either absent, the
    old complete dataset, or the new complete one: everything goes to a staging folder next to it first and
    is renamed into place at the end. Staging folders left by an interrupted earlier run are removed."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.staging-", dir=path.parent))
    retired = path.parent / f".{path.name}.retired-{uuid.uuid4().hex}"
    try:
        # an empty dataset must still get one shard, or load_from_disk cannot read it back
        dataset.save_to_disk(str(staging), **({"num_shards": 1} if len(dataset) == 0 else {}))
        write_json_atomic(staging / STATS_FILE, stats)
        if path.exists():
            os.replace(path, retired)  # a directory cannot be replaced by rename while it has files
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)
    return path


def remove_stale_staging(path: Path) -> list[Path]:
    """Delete staging/retired folders an interrupted write left next to ``path``."""
    stale = [*path.parent.glob(f".{path.name}.staging-*"), *path.parent.glob(f".{path.name}.retired-*")]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir``, so an interrupted stage resumes from it."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def train_and_save(trainer: Any, output_dir: str | Path, tokenizer: Any) -> tuple[Path, float]:
    """Train (resuming from the newest checkpoint if any), save the final model (gathered under ZeRO-3)
    to ``output_dir/checkpoint`` with its tokenizer; returns the checkpoint path and training seconds."""
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    seconds = time.perf_counter() - started
    checkpoint = Path(output_dir) / CHECKPOINT_DIR
    trainer.save_model(str(checkpoint))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(checkpoint)
    return checkpoint, seconds
