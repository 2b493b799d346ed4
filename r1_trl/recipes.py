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


def config_class_for(recipe: dict) -> type:
    """GRPO recipes list reward functions; SFT recipes do not."""
    from r1_trl.configs import R1GRPOConfig, R1SFTConfig

    return R1GRPOConfig if "reward_funcs" in recipe or "num_generations" in recipe else R1SFTConfig


def load_recipe(path: str | Path, overrides: list[str] | None = None, config_class: type | None = None):
    """Parse a recipe YAML (plus ``--field value`` overrides) into its config dataclass with TRL's parser."""
    from trl import TrlParser

    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping")
    config_class = config_class or config_class_for(raw)
    (config,) = TrlParser(config_class).parse_args_and_config(["--config", str(path), *(overrides or [])])
    return config


def check_recipe(path: str | Path) -> str | None:
    """None when the recipe parses and validates, else the error message (which names the field)."""
    try:
        load_recipe(path)
    except (ValueError, TypeError, FileNotFoundError, yaml.YAMLError) as error:
        return str(error)
    except SystemExit as error:  # argparse rejects a malformed value
        return f"invalid value in recipe (argparse exit {error.code})"
    return None
