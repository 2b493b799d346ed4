"""rl-all: GRPO over reasoning + general prompts, rule and reward-model rewards routed by prompt type."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from r1_trl.configs import RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets, render
from r1_trl.data.preferences import general_prompt_dataset
from r1_trl.models import random_tiny_model
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import rl_all
from r1_trl.stages.rl_all import RLAllConfig, build_mixed_rewards, mix_prompts

REWARDS = ["accuracy", "format", "language_consistency", "helpfulness_rm", "harmlessness_rm"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_tiny_model(tmp_path_factory.mktemp("policy") / "model")


@pytest.fixture(scope="module")
def random_reward_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained one-output sequence classifier on the tiny backbone: enough to check plumbing."""
    path = tmp_path_factory.mktemp("rm") / "random-rm"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    model.config.pad_token_id = 1
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(path)
    return path


def _config(tmp_path: Path, model: Path, **fields: object) -> RLAllConfig:
    values: dict = dict(
        output_dir=str(tmp_path / "rl-all"),
        model_name_or_path=str(model),
        dataset_name="arithmetic",
        task_kwargs={"levels": [2], "languages": ["en", "zh"]},
        train_size=32,
        eval_size=4,
        prompt_template="chat",
        eval_num_samples=1,
        eval_max_new_tokens=12,
        general_share=0.5,
        general_eval_size=4,
        reward_funcs=REWARDS,
        reward_weights=[1.0, 0.5, 0.2, 1.0, 1.0],
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=12,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-5,
        use_cpu=True,
        torch_num_threads=1,
        bf16=False,
        save_strategy="no",
        report_to="none",
        seed=0,
    )
    values.update(fields)
    return RLAllConfig(**values)


def test_mixture_has_the_configured_share_and_both_schemas(tmp_path: Path, tiny_model: Path) -> None:
    config = _config(tmp_path, tiny_model, train_size=40, general_share=0.25)
    spec = PromptSpec.from_config(config)
    reasoning, _ = build_prompt_datasets(spec)
    general, held_out = rl_all.load_general_prompts(config, spec)
    mixed = mix_prompts(rl_all._tag(reasoning, "reasoning"), rl_all._tag(general, "general"), 0.25, seed=0)
    assert len(mixed) == 40
    assert mixed["prompt_type"].count("general") == 10
    general_rows = [row for row in mixed if row["prompt_type"] == "general"]
    reasoning_rows = [row for row in mixed if row["prompt_type"] == "reasoning"]
    assert all(row["solution"] is None and row["category"] in ("benign", "harmful") for row in general_rows)
    assert all(row["solution"] and row["category"] is None for row in reasoning_rows)
    assert all(isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user" for row in mixed)
    assert not {row["problem"] for row in general_rows} & set(held_out["problem"])
    # Fewer general prompts than asked for: they are cycled, the share still holds.
    small = rl_all._tag(render(general_prompt_dataset(3, "train", seed=0), spec), "general")
    assert mix_prompts(reasoning.select(range(20)), small, 0.5, seed=0)["prompt_type"].count("general") == 10
    with pytest.raises(ValueError, match="prompt"):  # untemplated general prompts do not mix with chat ones
        mix_prompts(reasoning, general_prompt_dataset(3, "train", seed=0), 0.5, seed=0)


def test_general_prompts_from_a_local_file(tmp_path: Path, tiny_model: Path) -> None:
    path = tmp_path / "general.jsonl"
    path.write_text(
        "\n".join(json.dumps({"prompt": f"Tell me about topic {i}.", "id": i}) for i in range(10))
    )
    config = _config(tmp_path, tiny_model, general_prompts_dataset=str(path), general_eval_size=3)
    train, held_out = rl_all.load_general_prompts(config, PromptSpec.from_config(config))
    assert (len(train), len(held_out)) == (7, 3)
    assert set(train["prompt_type"]) == {"general"}
    assert train[0]["prompt"][-1] == {"role": "user", "content": train[0]["problem"]}
    assert not set(train["problem"]) & set(held_out["problem"])
    path.write_text(json.dumps({"question": "no prompt column"}))
    with pytest.raises(ValueError, match="^general_prompts_dataset"):
        rl_all.load_general_prompts(config, PromptSpec.from_config(config))


def test_rewards_are_routed_by_prompt_type(
    tmp_path: Path, tiny_model: Path, random_reward_model: Path
) -> None:
    config = _config(
        tmp_path,
        tiny_model,
        reward_kwargs={
            "helpfulness_rm": {"model_path": str(random_reward_model)},
            "harmlessness_rm": {"model_path": str(random_reward_model)},
        },
    )
    rewards = build_mixed_rewards(config)
    assert [f.__name__ for f in rewards] == REWARDS
    completions = [
        [{"role": "assistant", "content": "<think>\n2 + 3 = 5\n</think>\n<answer>\n5\n</answer>"}],
        [{"role": "assistant", "content": "<think>\nok\n</think>\n<answer>\nParis.\n</answer>"}],
    ]
    kwargs = {
        "prompts": [
            [{"role": "user", "content": "What is 2 + 3?"}],
            [{"role": "user", "content": "What is the capital of France?"}],
        ],
        "solution": ["5", None],
        "language": ["en", "en"],
        "prompt_type": ["reasoning", "general"],
    }
    scores = {f.__name__: f(completions, **kwargs) for f in rewards}
    assert scores["accuracy"] == [1.0, None]
    assert scores["format"] == [1.0, None]
    assert scores["language_consistency"][1] is None
    for name in ("helpfulness_rm", "harmlessness_rm"):
        assert scores[name][0] is None
        assert isinstance(scores[name][1], float) and 0.0 < scores[name][1] < 1.0


def test_config_validation_names_the_field(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(RecipeError, match="^general_share"):
        _config(tmp_path, tiny_model, general_share=1.5)
    with pytest.raises(RecipeError, match="^general_reward_funcs"):
        _config(tmp_path, tiny_model, reward_funcs=["accuracy", "format"], reward_weights=None)
    with pytest.raises(RecipeError, match="^general_reward_funcs"):
        _config(tmp_path, tiny_model, general_reward_funcs=["nope"])


def test_bundled_recipes_parse() -> None:
    config = load_recipe(recipe_path("tiny/rl_all.yaml"), ["--output_dir", "/tmp/unused"], RLAllConfig)
    assert config.prompt_template == "chat" and 0 < config.general_share < 1
    assert set(config.general_reward_funcs) <= set(config.reward_funcs)
    assert rl_all.CONFIG_CLASS is RLAllConfig and rl_all.STAGE == "rl-all"


def test_stage_trains_reward_models_then_runs_grpo(tmp_path: Path, tiny_model: Path) -> None:
    rm_recipe = yaml.safe_load(recipe_path("tiny/reward_model.yaml").read_text())
    rm_recipe.update(model_name_or_path=str(tiny_model), train_size=32, eval_size=16, max_steps=2)
    rm_recipe_path = tmp_path / "reward_model.yaml"
    rm_recipe_path.write_text(yaml.safe_dump(rm_recipe))
    config = _config(tmp_path, tiny_model, reward_model_recipe=str(rm_recipe_path), max_steps=3)

    results = rl_all.run(config)

    output = Path(config.output_dir)
    assert json.loads((output / "results.json").read_text())["stage"] == "rl-all"
    assert (output / "checkpoint" / "config.json").is_file() and (output / "recipe.yaml").is_file()
    assert results["train"]["steps"] == 3
    for name, kind in (("helpfulness_rm", "helpfulness"), ("harmlessness_rm", "harmlessness")):
        rm_dir = output / "reward_models" / kind
        assert results["reward_models"][name] == str((rm_dir / "checkpoint").resolve())
        assert json.loads((rm_dir / "results.json").read_text())["kind"] == kind
    logged = {key for row in results["log_history"] for key in row}
    for name in REWARDS:
        assert f"rewards/{name}/mean" in logged
    for name in ("accuracy", "helpfulness_rm", "harmlessness_rm"):
        values = [
            row[f"rewards/{name}/mean"] for row in results["log_history"] if f"rewards/{name}/mean" in row
        ]
        assert any(not math.isnan(v) for v in values), name
    for phase in ("before", "after"):
        metrics = results[phase]
        assert 0.0 <= metrics["accuracy"] <= 1.0 and "language_consistency" in metrics
        for name in ("helpfulness_rm", "harmlessness_rm"):
            assert 0.0 < metrics[f"general/{name}"] < 1.0
    assert {"prompt", "completion"} <= set(results["general_samples"]["after"][0])
    mixture = load_from_disk(results["datasets"]["rl_all_prompts"])
    assert mixture["prompt_type"].count("general") == 16
    stats = json.loads((Path(results["datasets"]["rl_all_prompts"]) / "stats.json").read_text())
    assert stats["by_prompt_type"] == {"reasoning": 16, "general": 16}
    # the reasoning samples behind the "after" metrics, one row per held-out reasoning prompt
    details = load_from_disk(results["datasets"]["eval_details"])
    assert len(details) == results["train"]["reasoning_held_out_prompts"]
    assert sum(details["accuracy"]) / len(details) == pytest.approx(results["after"]["accuracy"])
    assert "language_consistency" in details.column_names
    details_stats = json.loads((Path(results["datasets"]["eval_details"]) / "stats.json").read_text())
    assert details_stats["metrics"]["accuracy"] == results["after"]["accuracy"]
    assert not [key for key in details_stats["metrics"] if key.startswith("general/")]
    # A rerun (e.g. after an interruption) reuses the finished reward models instead of training them again.
    assert (
        rl_all.train_missing_reward_model(config, "helpfulness") == results["reward_models"]["helpfulness_rm"]
    )
    saved = yaml.safe_load((output / "recipe.yaml").read_text())
    assert (
        saved["reward_kwargs"]["helpfulness_rm"]["model_path"] == results["reward_models"]["helpfulness_rm"]
    )
