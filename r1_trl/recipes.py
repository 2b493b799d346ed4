"""Finding bundled recipes and validating recipe files before any compute (``r1-trl check-recipe``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def recipes_root() -> Path:
    """The ``recipes/`` folder: the repository's in a checkout, the wheel's copy when installed."""
    if REPO_RECIPES.is_dir():
        return REPO_RECIPES
    return Path(str(resources.files("r1_trl"))) / "bundled_recipes"


def recipe_path(relative: str) -> Path:
    path = recipes_root() / relative
    if not path.is_file():
        raise FileNotFoundError(f"no bundled recipe {relative!r} under {recipes_root()}")
    return path


def config_class_for(recipe: dict, path: str | Path | None = None) -> type:
    """The config dataclass of a recipe: its stage's (from ``stage_name`` or the file name, e.g.
    ``rejection_sampling.yaml``), else GRPO when it lists rewards, else SFT."""
    from r1_trl.configs import R1GRPOConfig, R1SFTConfig
    from r1_trl.stages import AUXILIARY_STAGES, STAGES

    stage = recipe.get("stage_name") or (Path(path).stem.replace("_", "-") if path else None)
    known = {**STAGES, **AUXILIARY_STAGES}
    if stage in known:
        return known[stage].config_class
    return R1GRPOConfig if "reward_funcs" in recipe or "num_generations" in recipe else R1SFTConfig


def load_recipe(path: str | Path, overrides: list[str] | None = None, config_class: type | None = None):
    """Parse a recipe YAML (plus ``--field value`` overrides) into its config dataclass with TRL's parser."""
    from trl import TrlParser

    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping")
    config_class = config_class or config_class_for(raw, path)
    (config,) = TrlParser(config_class).parse_args_and_config(["--config", str(path), *(overrides or [])])
    return config


def check_recipe(path: str | Path, target: str = "local", num_processes: int | None = None) -> str | None:
    """None when the recipe (or pipeline, with every stage recipe it names) parses and validates, else the
    error message (which names the field).

    ``target``: the machine it is validated for ('local': this one; 'gpu': a GPU machine with vLLM, see
    `r1_trl.targets`). ``num_processes``: the launch it is validated for; None: the one its header states
    (``--num_processes N``), else this process's.
    """
    from r1_trl.targets import header_num_processes, validating_for

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
    from r1_trl.pipeline import load_plan
    from r1_trl.stages import STAGES

    plan = load_plan(path)
    for stage in plan.stages:
        config_class = STAGES[stage.stage].config_class
        try:
            load_recipe(stage.recipe, ["--output_dir", str(plan.run_dir / stage.stage)], config_class)
        except (ValueError, TypeError) as error:
            return f"stage {stage.stage} ({stage.recipe.name}): {error}"
    return None
