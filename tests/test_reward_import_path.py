"""Rewards named by import path in a recipe (``my_pkg.rewards:my_reward``), as TRL's scripts accept them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import reward_funcs
from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.recipe_checks import check_recipe

REWARDS_MODULE = """
def short_answer(completions, **kwargs):
    return [1.0 if len(str(c)) < 10 else 0.0 for c in completions]

def fragile(completions, **kwargs):
    return [1.0 / len(str(c)) for c in completions]

class Scorer:
    @staticmethod
    def exact(completions, solution, **kwargs):
        return [float(str(c).strip() == s) for c, s in zip(completions, solution)]

NOT_CALLABLE = 3
"""


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "my_user_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rewards.py").write_text(textwrap.dedent(REWARDS_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_user_pkg.rewards"
    for name in [m for m in sys.modules if m.startswith("my_user_pkg")]:
        del sys.modules[name]


@pytest.mark.parametrize("separator", [":", "."])
def test_import_path_resolves_guarded_and_named(user_package: str, separator: str) -> None:
    name = f"{user_package}{separator}short_answer"
    reward = reward_funcs.get(name)
    assert reward(["14", "a much longer answer"]) == [1.0, 0.0]
    assert reward.__name__ == name  # TRL logs rewards/<name>/mean
    fragile = reward_funcs.get(f"{user_package}:fragile")
    assert fragile(["ab", ""]) == [0.5, None]  # the registry's guard: one failing completion scores None


def test_nested_attribute_and_kwargs(user_package: str) -> None:
    exact = reward_funcs.get(f"{user_package}:Scorer.exact")
    assert exact(["4", "5"], solution=["4", "4"]) == [1.0, 0.0]


def test_recipe_mixes_registry_names_and_import_paths(tmp_path: Path, user_package: str) -> None:
    config = R1GRPOConfig(output_dir=str(tmp_path / "out"), reward_funcs=["accuracy", f"{user_package}:short_answer"],
                          reward_weights=[1.0, 0.5], use_cpu=True, report_to="none")  # fmt: skip
    assert config.reward_funcs[1] == f"{user_package}:short_answer"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("my_user_pkg.rewards:missing", "has no attribute 'missing'"),
        ("my_user_pkg.nowhere:short_answer", "cannot import 'my_user_pkg.nowhere'"),
        ("my_user_pkg.rewards:NOT_CALLABLE", "not a function"),
        ("no_such_reward", "unknown reward 'no_such_reward'"),
    ],
)
def test_bad_entry_fails_at_recipe_check_naming_it(tmp_path: Path, user_package: str, entry: str, message: str) -> None:
    with pytest.raises(RecipeError) as error:
        R1GRPOConfig(output_dir=str(tmp_path / "out"), reward_funcs=["accuracy", entry], use_cpu=True, report_to="none")
    assert str(error.value).startswith("reward_funcs: ") and entry in str(error.value) and message in str(error.value)
    recipe = tmp_path / "r1_zero.yaml"
    recipe.write_text(f"reward_funcs: [accuracy, '{entry}']\noutput_dir: {tmp_path / 'out'}\nuse_cpu: true\n")
    problem = check_recipe(recipe)
    assert problem is not None and entry in problem


def test_grpo_trainer_scores_with_an_imported_reward(tmp_path: Path, user_package: str) -> None:
    from r1_trl.trainers import build_reward_funcs

    rewards = build_reward_funcs(["format", f"{user_package}.short_answer"])
    assert [reward.__name__ for reward in rewards] == ["format", f"{user_package}.short_answer"]
    assert rewards[1](["<answer>1</answer>", "1"]) == [0.0, 1.0]
