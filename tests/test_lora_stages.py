"""LoRA in the reward-model, rl-all and distill stages: each trains an adapter with ``use_peft``, saves it (merged on
request), and the next consumer loads it (the RL reward-model rewards, held-out evaluation, the on-policy step).
(LoRA SFT and GRPO learning, reloading and cards: tests/test_lora.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from r1_trl import adapters, checkpoints
from r1_trl.models import TinyBaseSpec, random_tiny_model
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import distill, rl_all
from r1_trl.stages.reward_model import RewardModelConfig
from r1_trl.stages.reward_model import run as run_reward_model
from r1_trl.trainers import build_reward_func
from reward_funcs.model_based import reward_model_scorer

QUESTION = [{"role": "user", "content": "What is the capital of Kenya?"}]
GOOD, BAD = "The capital of Kenya is Nairobi.", "I don't know."


@pytest.fixture(scope="module")
def lora_reward_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A helpfulness reward model trained through an all-linear LoRA adapter (the tiny recipe's 24 steps, a 5x
    higher learning rate), checkpoint/ = the adapter."""
    config = load_recipe(recipe_path("tiny/reward_model.yaml"), [
        "--output_dir", str(tmp_path_factory.mktemp("rm") / "helpfulness"), "--train_size", "384", "--eval_size",
        "64", "--logging_steps", "8", "--use_peft", "true", "--lora_target_modules", "all-linear",
        "--learning_rate", "5e-3",
    ], RewardModelConfig)  # fmt: skip
    return run_reward_model(config)


def test_lora_reward_model_learns_and_its_adapter_is_what_scores(lora_reward_model: dict, tmp_path: Path) -> None:
    """The full-weight test's thresholds (tests/test_reward_models.py): held-out pair accuracy > 0.8 and at least
    half the untrained head's error gone (full weights on these pairs: 0.81 -> 0.94; this adapter: -> 0.94)."""
    results = lora_reward_model
    after, before = results["after"]["pairwise_accuracy"], results["before"]["pairwise_accuracy"]
    assert after > 0.8 and 1 - after <= (1 - before) / 2, (before, after)
    assert results["train"]["trl_eval_accuracy"] == pytest.approx(after, abs=1 / 64)  # scored as trained
    train = results["train"]
    assert train["trainable_parameters"] < 0.2 * train["total_parameters"]

    checkpoint = Path(results["checkpoint"])
    assert adapters.is_adapter(checkpoint) and not (checkpoint / "model.safetensors").exists()
    config = adapters.adapter_config(checkpoint)
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    weights = load_file(checkpoint / "adapter_model.safetensors")
    assert any("score" in key for key in weights)  # the trained head travels with the adapter
    assert results["adapter"]["merged"] is False and results["adapter"]["r"] == 16

    # Reloaded merged (what a later consumer gets): a one-output sequence classifier scoring as in the stage.
    merged = Path(checkpoints.full_model_path(str(checkpoint), cache_dir=tmp_path / "cache"))
    model = AutoModelForSequenceClassification.from_pretrained(merged)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    scores = reward_model_scorer(str(merged))([QUESTION, QUESTION], [GOOD, BAD])
    assert scores[0] > scores[1]
    # merge_adapter's merge (merge_into) writes the same model as a full checkpoint folder.
    target = checkpoints.merge_into(checkpoint, tmp_path / "merged")
    assert reward_model_scorer(str(target))([QUESTION, QUESTION], [GOOD, BAD]) == pytest.approx(scores, abs=1e-5)


def test_rl_all_rewards_load_a_lora_reward_model(lora_reward_model: dict) -> None:
    """rl-all's reward-model rewards (and any GRPO recipe's ``reward_kwargs.model_path``) take the adapter folder."""
    reward = build_reward_func("helpfulness_rm", {"model_path": lora_reward_model["checkpoint"], "sigmoid": False})
    good, bad = reward([GOOD, BAD], prompts=[QUESTION, QUESTION], prompt_type=["general", "general"])
    assert good > bad


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_tiny_model(tmp_path_factory.mktemp("policy") / "model")


def test_rl_all_trains_an_adapter_with_lora_reward_models(
    tmp_path: Path, tiny_policy: Path, lora_reward_model: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rl-all with use_peft and merge_adapter: the policy's adapter is saved and merged; its missing reward models
    are trained as LoRA adapters from a recipe with use_peft, reused on a rerun, and score the general prompts."""
    monkeypatch.setenv("R1_TRL_CACHE", str(tmp_path / "cache"))
    rm_recipe = yaml.safe_load(recipe_path("tiny/reward_model.yaml").read_text())
    rm_recipe.update(model_name_or_path=str(tiny_policy), train_size=32, eval_size=8, max_steps=2, use_peft=True)
    (tmp_path / "rm.yaml").write_text(yaml.safe_dump(rm_recipe))
    config = rl_all.RLAllConfig(
        output_dir=str(tmp_path / "rl-all"), model_name_or_path=str(tiny_policy), task_kwargs={"levels": [2]},
        train_size=16, eval_size=2, prompt_template="chat", eval_num_samples=1, eval_max_new_tokens=8,
        general_share=0.5, general_eval_size=2, reward_funcs=["accuracy", "helpfulness_rm", "harmlessness_rm"],
        reward_weights=[1.0, 1.0, 1.0], reward_model_recipe=str(tmp_path / "rm.yaml"),
        helpfulness_model_path=lora_reward_model["checkpoint"], num_generations=4, per_device_train_batch_size=8,
        max_completion_length=8, max_steps=2, logging_steps=1, learning_rate=1e-3, use_cpu=True, torch_num_threads=1,
        bf16=False, save_strategy="no", report_to="none", seed=0, use_peft=True, merge_adapter=True,
    )  # fmt: skip

    results = rl_all.run(config)

    output = Path(config.output_dir)
    assert adapters.is_adapter(output / "adapter") and (output / "checkpoint" / "model.safetensors").is_file()
    assert results["adapter"]["merged"] is True and results["train"]["steps"] == 2
    harmlessness = Path(results["reward_models"]["harmlessness_rm"])
    assert adapters.is_adapter(harmlessness)
    assert rl_all.train_missing_reward_model(config, "harmlessness") == str(harmlessness)  # reused, not retrained
    for name in ("helpfulness_rm", "harmlessness_rm"):
        assert 0.0 < results["after"][f"general/{name}"] < 1.0
    AutoModelForCausalLM.from_pretrained(output / "checkpoint")  # a plain full model for evaluation and vLLM


TEACHER_SPEC = TinyBaseSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
STUDENT_SPEC = TinyBaseSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="module")
def distill_models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("distill-models")
    return SimpleNamespace(teacher=str(random_tiny_model(root / "teacher", TEACHER_SPEC)),
                           student=str(random_tiny_model(root / "student", STUDENT_SPEC)))  # fmt: skip


def _teacher(prompts: list) -> list[list[str]]:
    return [[" <think>\n1 + 1 = 2\n</think>\n<answer>\n2\n</answer>"] for _ in prompts]


@pytest.mark.parametrize("merge", [False, True])
def test_distill_student_trains_an_adapter_through_sft_and_the_on_policy_step(
    tmp_path: Path, distill_models: SimpleNamespace, merge: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The student's LoRA adapter is trained by SFT, then trained on by the on-policy step (same adapter, same
    frozen base), and saved as the stage's checkpoint (merged with merge_adapter); evaluation loads it."""
    monkeypatch.setenv("R1_TRL_CACHE", str(tmp_path / "cache"))
    config = distill.DistillConfig(
        output_dir=str(tmp_path / "distill"), model_name_or_path=distill_models.student,
        teacher_model=distill_models.teacher, task_kwargs={"levels": [2]}, train_size=8, eval_size=2,
        eval_num_samples=1, eval_max_new_tokens=8, teacher_num_samples=1, teacher_max_new_tokens=8,
        teacher_filters=["format"], per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2, use_cpu=True,
        report_to="none", save_strategy="no", gradient_checkpointing=False, logging_steps=1, disable_tqdm=True,
        seed=3, on_policy_steps=2, on_policy_kwargs={"max_completion_length": 8, "beta": 0.5}, use_peft=True,
        lora_target_modules=["all-linear"], merge_adapter=merge,
    )  # fmt: skip
    sft_adapter: dict[str, torch.Tensor] = {}
    original = distill.train_on_policy

    def spy(cfg, checkpoint, teacher, prompts):  # type: ignore[no-untyped-def]
        adapter_dir = checkpoints.stage_adapter_dir(checkpoint)
        sft_adapter.update(load_file(adapter_dir / "adapter_model.safetensors"))
        return original(cfg, checkpoint, teacher, prompts)

    monkeypatch.setattr(distill, "train_on_policy", spy)
    results = distill.run(config, sampler=_teacher)

    output = Path(config.output_dir)
    adapter_dir = output / ("adapter" if merge else "checkpoint")
    assert adapters.is_adapter(adapter_dir) and adapters.adapter_base(adapter_dir)[0] == distill_models.student
    assert results["adapter"]["merged"] is merge and results["on_policy"]["steps"] == 2
    assert (output / "checkpoint" / "model.safetensors").is_file() is merge
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    assert set(weights) == set(sft_adapter)  # the same adapter, trained on
    assert any(not torch.equal(weights[key], sft_adapter[key]) for key in sft_adapter)
    assert "accuracy" in results["after_sft"] and "accuracy" in results["after"]
    details = json.loads((Path(results["datasets"]["eval_details"]) / "stats.json").read_text())
    assert details["source_checkpoint"] == results["checkpoint"]
