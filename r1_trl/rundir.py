"""The run directory: what a stage leaves where, written so a kill never leaves a half-written file.

A stage's ``output_dir`` holds ``checkpoint/`` (the trained model), ``checkpoint-N/`` (the trainer's
resumable saves), ``results.json``, ``curves.png``, ``recipe.yaml`` and ``datasets/<name>/`` (each a saved
``datasets.Dataset`` with its ``stats.json``); a pipeline's run directory holds one such folder per stage
and ``manifest.json``. Every module reads these names from here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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


@contextmanager
def replaced_folder(target: str | Path) -> Iterator[Path]:
    """A staging folder next to ``target`` to fill; when the block ends normally it replaces ``target`` whole
    (on an error, or a kill, ``target`` is left as it was and the staging folder is removed or left as a
    ``.<name>.staging-*`` folder that `remove_stale_staging` clears)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer writes it last when it saves a checkpoint-N
HUB_PUSH_STAGING_PREFIX = ".hub-push-"  # hard-linked snapshots of checkpoints being pushed (r1_trl.hub)


def _is_temporary(name: str) -> bool:
    return name.startswith((".tmp", "tmp")) or name.endswith((".tmp", ".partial"))


def checkpoint_problem(path: str | Path) -> str | None:
    """Why a ``checkpoint-N`` cannot be resumed from (None: it can): a save cut off by a kill leaves no
    ``trainer_state.json``, an empty or truncated one, or temporary files of a write that never finished."""
    path = Path(path)
    state = path / TRAINER_STATE_FILE
    if not state.is_file():
        return f"no {TRAINER_STATE_FILE}"
    try:
        parsed = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"unreadable {TRAINER_STATE_FILE} ({type(error).__name__}: empty or truncated)"
    if not isinstance(parsed, dict):
        return f"{TRAINER_STATE_FILE} is not a JSON object"
    leftovers = sorted(item.name for item in path.rglob("*") if _is_temporary(item.name))
    if leftovers:
        return f"temporary files of an unfinished write: {', '.join(leftovers[:3])}"
    return None


def last_checkpoint(output_dir: str | Path, remove_incomplete: bool = False) -> str | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``, so an interrupted stage resumes from it.

    Newer incomplete ones (see `checkpoint_problem`) are skipped with a warning, and deleted with
    ``remove_incomplete`` (the main process of a launch passes it; every rank skips the same ones), so the
    trainer's next save of that step starts from an empty folder.
    """
    from transformers.trainer_utils import sort_checkpoints  # what the Trainer rotates checkpoints by

    if not Path(output_dir).is_dir():
        return None
    for path in reversed(sort_checkpoints(str(output_dir))):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping the incomplete %s (%s)%s", Path(path).name, problem,
                       "; removing it" if remove_incomplete else "")  # fmt: skip
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return None


def complete_checkpoints(output_dir: str | Path) -> list[str]:
    """Every ``checkpoint-N`` in ``output_dir`` that a run could resume from, oldest first."""
    from transformers.trainer_utils import sort_checkpoints

    if not Path(output_dir).is_dir():
        return []
    return [path for path in sort_checkpoints(str(output_dir)) if checkpoint_problem(path) is None]


def checkpoint_step(path: str | Path) -> int:
    """The global step a complete ``checkpoint-N`` was saved at (its trainer state, else its name)."""
    state = json.loads(Path(path, TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    return int(state.get("global_step") or Path(path).name.rsplit("-", 1)[-1])


def remove_stale_push_snapshots(output_dir: str | Path) -> list[Path]:
    """Delete checkpoint snapshots that pushes of a killed run left in ``output_dir`` (nothing reads them)."""
    stale = sorted(Path(output_dir).glob(f"{HUB_PUSH_STAGING_PREFIX}*")) if Path(output_dir).is_dir() else []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale
