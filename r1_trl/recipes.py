"""Finding bundled recipes and parsing a recipe YAML into its stage's config dataclass.

(Checking recipe and pipeline files before any compute, ``r1-trl check-recipe``, is `r1_trl.recipe_checks`.)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from trl import TrlParser

from r1_trl.configs import R1GRPOConfig, R1SFTConfig
from r1_trl.stages import AUXILIARY_STAGES, STAGES

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
    stage = recipe.get("stage_name") or (Path(path).stem.replace("_", "-") if path else None)
    known = {**STAGES, **AUXILIARY_STAGES}
    if stage in known:
        return known[stage].config_class
    return R1GRPOConfig if "reward_funcs" in recipe or "num_generations" in recipe else R1SFTConfig


def load_recipe(path: str | Path, overrides: list[str] | None = None, config_class: type | None = None):
    """Parse a recipe YAML (plus ``--field value`` overrides) into its config dataclass with TRL's parser."""
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping")
    config_class = config_class or config_class_for(raw, path)
    (config,) = TrlParser(config_class).parse_args_and_config(["--config", str(path), *(overrides or [])])
    return config
