"""Reward models (trl.RewardTrainer on synthetic pairs) and the reward-model-backed rewards."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from trl import RewardTrainer

import r1_trl.data.preferences
import r1_trl.stages.reward_model
import reward_funcs
import reward_funcs.model_based
from r1_trl.configs import RecipeError
from r1_trl.data.preferences import general_prompts, preference_pairs
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages.reward_model import RewardModelConfig, load_preference_splits, pair_views, run
from reward_funcs.model_based import final_summary, only_for_prompt_types

# Few steps, short held-out set: seconds per model on the tiny backbone.
FAST_OVERRIDES = ["--train_size", "384", "--eval_size", "64", "--logging_steps", "8"]


def _train(kind: str, output_dir: Path) -> dict:
    config = load_recipe(
        recipe_path("tiny/reward_model.yaml"),
        ["--preference_kind", kind, "--output_dir", str(output_dir), *FAST_OVERRIDES],
        RewardModelConfig,
    )
    return run(config)


@pytest.fixture(scope="module")
def helpfulness(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train("helpfulness", tmp_path_factory.mktemp("rm") / "helpfulness")


@pytest.fixture(scope="module")
def harmlessness(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train("harmlessness", tmp_path_factory.mktemp("rm") / "harmlessness")


QUESTION = [{"role": "user", "content": "What is the capital of Kenya?"}]
GOOD = "The capital of Kenya is Nairobi."
BAD = "I don't know."


@pytest.mark.parametrize("kind", ["helpfulness", "harmlessness"])
def test_reward_model_learns_held_out_preferences(kind: str, request: pytest.FixtureRequest) -> None:
    results = request.getfixturevalue(kind)
    metrics = results["metrics"]
    assert metrics["pairwise_accuracy"] > 0.8, metrics
    # Training at least halves the held-out error of the untrained value head (which already ranks 50-81% of
    # the pairs right on the base model's features, depending on the base).
    error_before = 1 - results["before"]["pairwise_accuracy"]
    assert 1 - metrics["pairwise_accuracy"] <= error_before / 2, (results["before"], metrics)
    # Our scorer (used by the RL rewards) and TRL's evaluation agree: same rendering as in training.
    assert results["train"]["trl_eval_accuracy"] == pytest.approx(metrics["pairwise_accuracy"], abs=1 / 64)
    checkpoint = Path(results["checkpoint"])
    assert (checkpoint / "config.json").is_file()
    assert json.loads((checkpoint / "config.json").read_text())["pad_token_id"] is not None
    written = json.loads((checkpoint.parent / "results.json").read_text())
    assert written["metrics"]["pairwise_accuracy"] == metrics["pairwise_accuracy"]
    assert Path(results["datasets"]["preferences_test"], "stats.json").is_file()


def test_reward_model_resumes_from_its_newest_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped run (here: max_steps 4) rerun with a larger budget trains only the missing steps, from checkpoint-4."""
    taken: list[int] = []
    original = RewardTrainer.training_step

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        taken.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RewardTrainer, "training_step", counted)
    output_dir = tmp_path / "rm"

    def stage(max_steps: int) -> dict:
        config = load_recipe(recipe_path("tiny/reward_model.yaml"), [
            "--output_dir", str(output_dir), *FAST_OVERRIDES, "--max_steps", str(max_steps), "--save_strategy",
            "steps", "--save_steps", "4", "--logging_steps", "1", "--lr_scheduler_type", "constant",
        ], RewardModelConfig)  # fmt: skip
        return run(config)

    first = stage(4)
    assert taken == [0, 1, 2, 3] and (output_dir / "checkpoint-4" / "trainer_state.json").is_file()
    taken.clear()
    second = stage(8)
    assert taken == [4, 5, 6, 7], taken  # resumed at step 4: the first four steps are not trained again
    assert second["train"]["steps"] == 8 and (output_dir / "checkpoint-8").is_dir()
    logged = [row for row in first["log_history"] if "loss" in row]
    assert [row for row in second["log_history"] if "loss" in row][:4] == logged  # history carried over
    assert json.loads((output_dir / "results.json").read_text())["train"]["steps"] == 8


def test_helpfulness_reward_scores_general_rows_only(helpfulness: dict) -> None:
    reward = reward_funcs.get("helpfulness_rm", model_path=helpfulness["checkpoint"])
    completions = [
        [{"role": "assistant", "content": GOOD}],
        [{"role": "assistant", "content": "<answer>14</answer>"}],
        [{"role": "assistant", "content": BAD}],
    ]
    scores = reward(
        completions,
        prompts=[QUESTION, [{"role": "user", "content": "What is 2 + 3 * 4?"}], QUESTION],
        prompt_type=["general", "reasoning", "general"],
    )
    assert scores[1] is None
    assert isinstance(scores[0], float) and isinstance(scores[2], float)
    assert 0.0 < scores[2] < scores[0] < 1.0  # sigmoid of the score: the on-topic answer wins


def test_helpfulness_sees_only_the_summary(helpfulness: dict) -> None:
    reward = reward_funcs.get("helpfulness_rm", model_path=helpfulness["checkpoint"], sigmoid=False)
    lovely_reasoning = f"<think>\n{GOOD} Happy to help. {GOOD}\n</think>\n<answer>\n{BAD}\n</answer>"
    scores = reward([lovely_reasoning, BAD, GOOD], prompts=[QUESTION] * 3)
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)
    assert scores[2] > scores[0] + 1.0  # not a constant model: the good answer itself is preferred


def test_harmlessness_sees_the_whole_output(harmlessness: dict) -> None:
    reward = reward_funcs.get("harmlessness_rm", model_path=harmlessness["checkpoint"], sigmoid=False)
    request = [{"role": "user", "content": "Write a mean message to my cousin."}]
    polite = "I can't help with that. Being mean to your cousin could hurt them."
    kind_thought = (
        "The user wants to be unkind to their cousin. That could hurt someone, so I should refuse politely."
    )
    rude_thought = "Their cousin sounds like a nitwit. I could call them a loser, but I will answer politely."
    kind = f"<think>\n{kind_thought}\n</think>\n<answer>\n{polite}\n</answer>"
    rude_inside = f"<think>\n{rude_thought}\n</think>\n<answer>\n{polite}\n</answer>"
    rude_answer = "Sure. Tell your cousin: you are a fool and a clown."
    scores = reward(
        [kind, rude_inside, rude_answer, polite], prompts=[request] * 4, prompt_type=["general"] * 4
    )
    assert scores[0] > scores[1]  # same summary, rude reasoning: only the whole output shows it
    assert scores[0] > scores[2]
    assert scores[3] != pytest.approx(scores[0], abs=1e-4)  # the reasoning is part of what is scored
    assert reward([kind], prompts=[request], prompt_type=["reasoning"]) == [None]


def test_spy_scorer_sees_summary_or_whole_output() -> None:
    seen: list[tuple] = []

    def spy(prompts: list, responses: list[str]) -> list[float]:
        seen.append((prompts, responses))
        return [0.0] * len(responses)

    output = "<think>\nplan\n</think>\n<answer>\nfinal\n</answer>"
    reward_funcs.get("helpfulness_rm", scorer=spy)([output], prompts=[QUESTION])
    reward_funcs.get("harmlessness_rm", scorer=spy)([output], prompts=[QUESTION])
    assert seen[0] == ([QUESTION], ["final"])
    assert seen[1] == ([QUESTION], [output])


def test_final_summary_layouts() -> None:
    assert final_summary("<think>a</think>\n<answer>\n  b  \n</answer>") == "b"
    assert final_summary(" <think>\nreasoning\n</think>\nThe answer is 4.") == "The answer is 4."
    assert final_summary("<think>never closed <answer>x</answer>") == ""
    assert final_summary("no tags") == "no tags"
    assert final_summary("<think>a</think><answer>unterminated") == "unterminated"
    assert final_summary("") == ""


def test_routing_wrapper_keeps_names_slices_columns_and_scatters_logs() -> None:
    received: dict = {}
    logged: list = []

    def echo(completions, solution=None, log_extra=None, **kwargs):
        received["solution"] = solution
        log_extra("echo/seen", list(completions))
        return [1.0] * len(completions)

    wrapped = only_for_prompt_types(echo, "reasoning", "echo")
    scores = wrapped(
        ["a", "b", "c"],
        solution=["1", None, "3"],
        prompt_type=["reasoning", "general", "reasoning"],
        log_extra=lambda column, values: logged.append((column, values)),
    )
    assert wrapped.__name__ == "echo"
    assert scores == [1.0, None, 1.0]
    assert received["solution"] == ["1", "3"]
    assert logged == [("echo/seen", ["a", None, "c"])]
    assert wrapped(["a"], prompt_type=["general"]) == [None]


def test_factories_need_exactly_one_model_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^model_path"):
        reward_funcs.get("helpfulness_rm")
    with pytest.raises(ValueError, match="^model_path"):
        reward_funcs.get("harmlessness_rm", model_path=str(tmp_path / "missing"))


def test_synthetic_splits_share_no_prompt_and_pairs_differ() -> None:
    train = {p.question for p in general_prompts("train")}
    test = {p.question for p in general_prompts("test")}
    assert train and test and not train & test
    for kind in ("helpfulness", "harmlessness"):
        pairs = preference_pairs(kind, 200, "test", seed=3)
        assert {row[0]["content"] for row in pairs["prompt"]} <= test
        assert all(c != r for c, r in zip(pairs["chosen"], pairs["rejected"], strict=True))
    kinds = set(preference_pairs("harmlessness", 200, "train")["rejection"])
    assert kinds == {"rude_answer", "rude_reasoning"}
    with pytest.raises(ValueError, match="preference kind"):
        preference_pairs("honesty", 4)


def test_preference_dataset_from_a_local_file(tmp_path: Path) -> None:
    rows = [{"chosen": f"Q{i}: good", "rejected": f"Q{i}: bad"} for i in range(20)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    config = RewardModelConfig(
        output_dir=str(tmp_path / "out"),
        preference_dataset=str(path),
        train_size=8,
        eval_size=5,
        use_cpu=True,
        report_to="none",
    )
    train, held_out = load_preference_splits(config)
    assert (len(train), len(held_out)) == (8, 5)
    assert not set(train["chosen"]) & set(held_out["chosen"])
    assert pair_views(held_out[0])[0] is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"prompt": "q", "answer": str(i)}) for i in range(3)))
    with pytest.raises(ValueError, match="^preference_dataset"):
        load_preference_splits(
            RewardModelConfig(
                output_dir=str(tmp_path),
                preference_dataset=str(bad),
                eval_size=1,
                train_size=None,
                use_cpu=True,
                report_to="none",
            )
        )


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="^preference_kind"):
        RewardModelConfig(output_dir=str(tmp_path), preference_kind="honesty")
    with pytest.raises(RecipeError, match="^eval_size"):
        RewardModelConfig(output_dir=str(tmp_path), eval_size=0)


@pytest.mark.parametrize(
    "module",
    [reward_funcs.model_based, r1_trl.data.preferences, r1_trl.stages.reward_model],
    ids=lambda module: module.__name__,
)
def test_docstring_examples(module: object) -> None:
    failures, attempted = doctest.testmod(module, raise_on_error=False)
    assert failures == 0 and attempted > 0
