"""Validating recipe and pipeline files before any compute (``r1-trl check-recipe``): errors name the field."""

from __future__ import annotations

from pathlib import Path

import yaml

from r1_trl.pipeline import load_plan
from r1_trl.recipes import load_recipe
from r1_trl.stages import STAGES
from r1_trl.targets import header_num_processes, validating_for


def check_recipe(path: str | Path, target: str = "local", num_processes: int | None = None) -> str | None:
    """None when the recipe (or pipeline, with every stage recipe it names) parses and validates, else the
    error message (which names the field).

    ``target``: the machine it is validated for ('local': this one; 'gpu': a GPU machine with vLLM, see
    `r1_trl.targets`). ``num_processes``: the launch it is validated for; None: the one its header states
    (``--num_processes N``), else this process's.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
        processes = num_processes if num_processes is not None else header_num_processes(path)
        with validating_for(target, processes):
            if isinstance(raw, dict) and "stages" in raw:
                return _check_pipeline(path)
            load_recipe(path)
    except (ValueError, TypeError, FileNotFoundError, yaml.YAMLError) as error:
        return str(error)
    except SystemExit as error:  # argparse rejects a malformed value
        return f"invalid value in recipe (argparse exit {error.code})"
    return None


def _check_pipeline(path: str | Path) -> str | None:
    plan = load_plan(path)
    for stage in plan.stages:
        config_class = STAGES[stage.stage].config_class
        try:
            load_recipe(stage.recipe, ["--output_dir", str(plan.run_dir / stage.stage)], config_class)
        except (ValueError, TypeError) as error:
            return f"stage {stage.stage} ({stage.recipe.name}): {error}"
    return None
