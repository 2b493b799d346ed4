"""Runs the R1 stages in order, each reading the outputs of the stages before it.

A pipeline YAML names the run directory and the stages::

    run_dir: runs/tiny-r1
    stages:
      - stage: r1-zero
        recipe: r1_zero.yaml                     # relative to the pipeline file
      - stage: cold-start-sft
        recipe: cold_start_sft.yaml
        set: {model_name_or_path: "@r1-zero/checkpoint"}   # "@<stage>/<path>": an earlier stage's output

``manifest.json`` in the run directory records, per stage: status, inputs, outputs, config, seed,
metrics and timings. Re-running skips finished stages; an interrupted stage runs again and its trainer
resumes from its newest ``checkpoint-N``; ``--from STAGE`` re-runs that stage and every later one.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from r1_trl.distributed import launch_state
from r1_trl.generation import release_engines
from r1_trl.recipes import load_recipe
from r1_trl.rundir import MANIFEST_FILE, read_manifest, write_json_atomic
from r1_trl.stages import STAGES
from r1_trl.stages.common import recipe_dict

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "@"


@dataclass
class StagePlan:
    stage: str
    recipe: Path
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelinePlan:
    run_dir: Path
    stages: list[StagePlan]
    seed: int | None = None
    push: dict[str, Any] = field(default_factory=dict)


def load_plan(path: str | Path, run_dir: str | Path | None = None) -> PipelinePlan:
    """Parse and validate a pipeline YAML (every error names the offending key)."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "stages" not in raw:
        raise ValueError(f"{path}: a pipeline needs a 'stages' list")
    stages = []
    for index, entry in enumerate(raw["stages"]):
        name = entry.get("stage")
        if name not in STAGES:
            raise ValueError(f"stages[{index}].stage: unknown stage {name!r}; known: {', '.join(STAGES)}")
        recipe = (path.parent / entry.get("recipe", "")).resolve()
        if not recipe.is_file():
            raise ValueError(f"stages[{index}].recipe: {recipe} does not exist")
        stages.append(StagePlan(name, recipe, dict(entry.get("set") or {})))
    names = [s.stage for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stages: a stage appears twice in {names}")
    for index, plan in enumerate(stages):
        for key, value in plan.set.items():
            if isinstance(value, str) and value.startswith(REFERENCE_PREFIX):
                source = value[1:].split("/", 1)[0]
                if source not in names[:index]:
                    raise ValueError(f"stages[{index}].set.{key}: {value!r} refers to {source!r}, "
                                     "which does not run before this stage")
    return PipelinePlan(
        run_dir=Path(run_dir or raw.get("run_dir", "runs/r1")),
        stages=stages,
        seed=raw.get("seed"),
        push=dict(raw.get("push") or {}),
    )


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, or a new one for a run directory that has none yet."""
    if (run_dir / MANIFEST_FILE).is_file():
        return read_manifest(run_dir)
    return {"run_id": uuid.uuid4().hex[:12], "created": _now(), "stages": {}}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _resolve(value: Any, run_dir: Path) -> Any:
    if isinstance(value, str) and value.startswith(REFERENCE_PREFIX):
        return str((run_dir / value[1:]).resolve())
    return value


def _relative(path: str | None, run_dir: Path) -> str | None:
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def _overrides(plan: StagePlan, run_dir: Path, seed: int | None) -> list[str]:
    values = {key: _resolve(value, run_dir) for key, value in plan.set.items()}
    values["output_dir"] = str(run_dir / plan.stage)
    if seed is not None:
        values.setdefault("seed", seed)
    args: list[str] = []
    for key, value in values.items():
        args += [f"--{key}", json.dumps(value) if isinstance(value, dict | list) else str(value)]
    return args


def run_pipeline(
    plan: PipelinePlan, from_stage: str | None = None, only: list[str] | None = None
) -> dict[str, Any]:
    """Run every stage not yet done (or from ``from_stage`` on); returns the manifest.

    Under ``accelerate launch`` every rank runs every stage (the stages share their work out); only the main
    process writes the manifest and pushes, and the ranks start each stage together.
    """
    state = launch_state()
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(run_dir)
    state.wait_for_everyone()  # every rank has read the manifest before the main process rewrites it
    names = [s.stage for s in plan.stages]
    if from_stage is not None:
        if from_stage not in names:
            raise ValueError(f"--from: {from_stage!r} is not a stage of this pipeline ({', '.join(names)})")
        for name in names[names.index(from_stage):]:
            if name in manifest["stages"]:
                manifest["stages"][name]["status"] = "pending"
    for stage_plan in plan.stages:
        if only and stage_plan.stage not in only:
            continue
        entry = manifest["stages"].get(stage_plan.stage, {})
        if entry.get("status") == "done":
            logger.info("skipping %s: done", stage_plan.stage)
            print(f"[pipeline] {stage_plan.stage}: done, skipped")
            continue
        _run_stage(stage_plan, plan, manifest, write=state.is_main_process)
        release_engines()  # nothing a stage sampled with outlives it
        state.wait_for_everyone()
    return manifest


def _run_stage(stage_plan: StagePlan, plan: PipelinePlan, manifest: dict[str, Any], write: bool = True) -> None:
    run_dir = plan.run_dir
    module = STAGES[stage_plan.stage].load()
    overrides = _overrides(stage_plan, run_dir, plan.seed)
    if "stage_name" in getattr(module.CONFIG_CLASS, "__dataclass_fields__", {}):
        overrides += ["--stage_name", stage_plan.stage]
    config = load_recipe(stage_plan.recipe, overrides, module.CONFIG_CLASS)
    resumed = manifest["stages"].get(stage_plan.stage, {}).get("status") == "running"
    entry: dict[str, Any] = {
        "status": "running",
        "output_dir": stage_plan.stage,
        "recipe": str(stage_plan.recipe),
        "inputs": {key: _relative(_resolve(value, run_dir), run_dir) if str(value).startswith(REFERENCE_PREFIX)
                   else value for key, value in stage_plan.set.items()},
        "config": recipe_dict(config),
        "seed": getattr(config, "seed", None),
        "command": shlex.join(["r1-trl", *sys.argv[1:]]) if sys.argv else "",
        "timings": {"start": _now()},
        "resumed": resumed,
    }
    entry["inputs"].setdefault("model", entry["inputs"].get("model_name_or_path", getattr(config, "model_name_or_path", None)))
    manifest["stages"][stage_plan.stage] = entry
    if write:
        write_json_atomic(run_dir / MANIFEST_FILE, manifest)
    print(f"[pipeline] {stage_plan.stage}: running ({'resuming' if resumed else 'fresh'})")
    started = time.perf_counter()
    try:
        results = module.run(config)
    except BaseException:
        entry["status"] = "failed"
        entry["timings"]["end"] = _now()
        if write:
            write_json_atomic(run_dir / MANIFEST_FILE, manifest)
        raise
    entry.update(
        {
            "status": "done",
            "checkpoint": _relative(results.get("checkpoint"), run_dir),
            "datasets": {name: _relative(path, run_dir) for name, path in (results.get("datasets") or {}).items()},
            "metrics": results.get("metrics", {}),
        }
    )
    entry["timings"].update({"end": _now(), "seconds": round(time.perf_counter() - started, 1)})
    if not write:
        return
    write_json_atomic(run_dir / MANIFEST_FILE, manifest)
    if plan.push.get("enabled"):
        _push_stage(stage_plan.stage, plan)


def _push_stage(stage: str, plan: PipelinePlan) -> None:
    from r1_trl.hub import push_run

    push_run(
        plan.run_dir,
        plan.push["repo_id"],
        plan.push.get("dataset_repo_id"),
        layout=plan.push.get("layout", "branch"),
        private=plan.push.get("private"),
        no_push=bool(plan.push.get("no_push", False)),
        stages=[stage],
    )


def summary_table(manifest: dict[str, Any]) -> str:
    """Per stage: held-out accuracy with its standard error over prompts (±), format rate, language
    consistency (overall and per prompt language), mean length."""
    columns = [("accuracy", "accuracy"), ("format", "format_rate"), ("language", "language_consistency"),
               ("length", "mean_length")]
    per_language = sorted({key for entry in manifest["stages"].values() for key in (entry.get("metrics") or {})
                           if key.startswith("language_consistency/")})
    columns[3:3] = [(f"lang/{key.split('/', 1)[1]}", key) for key in per_language]
    columns[1:1] = [("±", "accuracy_stderr")]
    lines = [f"{'stage':<20}" + "".join(f"{title:>11}" for title, _ in columns) + f"{'seconds':>10}"]
    for name, entry in manifest["stages"].items():
        metrics = entry.get("metrics") or {}
        cells = "".join(f"{metrics[key]:>11.3f}" if isinstance(metrics.get(key), int | float) else f"{'-':>11}"
                        for _, key in columns)
        seconds = entry.get("timings", {}).get("seconds")
        lines.append(f"{name:<20}{cells}{seconds if seconds is not None else '-':>10}")
    return "\n".join(lines)
