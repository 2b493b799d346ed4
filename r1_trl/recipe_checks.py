"""Validating recipe and pipeline files before any compute (``r1-trl check-recipe``): errors name the field."""

from __future__ import annotations

from pathlib import Path

import yaml

from r1_trl.pipeline import load_plan
from r1_trl.recipes import load_recipe
from r1_trl.stages import STAGES


def check_recipe(path: str | Path) -> str | None:
    """None when the recipe (or pipeline, with every stage recipe it names) parses and validates, else the
    error message (which names the field)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
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
