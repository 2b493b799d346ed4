"""The run directory: what a stage leaves where, written so a kill never leaves a half-written file.

A stage's ``output_dir`` holds ``checkpoint/`` (the trained model), ``checkpoint-N/`` (the trainer's
resumable saves), ``results.json``, ``curves.png``, ``recipe.yaml`` and ``datasets/<name>/`` (each a saved
``datasets.Dataset`` with its ``stats.json``); a pipeline's run directory holds one such folder per stage
and ``manifest.json``. Every module reads these names from here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = "checkpoint"
RESULTS_FILE = "results.json"
CURVES_FILE = "curves.png"
RECIPE_FILE = "recipe.yaml"
STATS_FILE = "stats.json"
DATASETS_DIR = "datasets"
EVAL_DETAILS_DATASET = "eval_details"
MANIFEST_FILE = "manifest.json"


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``manifest.json``; a clear error when ``run_dir`` is not a run directory."""
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} an r1-trl run directory?")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
        raise ValueError(f"{path} has no 'stages' mapping")
    return manifest


def load_saved_dataset(path: str | Path) -> Any:
    """A dataset saved in a run directory, loaded into memory: ``map``/``filter`` on it (TRL's preprocessing
    does both) then write no ``cache-*.arrow`` files into the run's dataset folder."""
    from datasets import load_from_disk

    return load_from_disk(str(path), keep_in_memory=True)


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=2, default=str)
    os.replace(staging, path)
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
    """The newest complete ``checkpoint-N`` in ``output_dir``, so an interrupted stage resumes from it.

    A stage killed while saving leaves a ``checkpoint-N`` without ``trainer_state.json`` (the Trainer writes
    it last); resuming from that fails, so it is skipped for the previous one.
    """
    from transformers.trainer_utils import sort_checkpoints  # what the Trainer rotates checkpoints by

    if not Path(output_dir).is_dir():
        return None
    complete = [path for path in sort_checkpoints(str(output_dir)) if Path(path, "trainer_state.json").is_file()]
    return complete[-1] if complete else None
