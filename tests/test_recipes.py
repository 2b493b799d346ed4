"""Every recipe under recipes/ parses into its config dataclass; `r1-trl check-recipe` rejects broken ones.

A recipe is parsed with the class of the code that runs it: a stage recipe (named in a pipeline, or named
after its stage: ``rl_all.yaml`` -> ``rl-all``) with that stage module's ``CONFIG_CLASS``, as ``r1-trl
pipeline`` and ``r1-trl <stage>`` do; a reward-model recipe (read by rl-all's ``reward_model_recipe``) with
``RewardModelConfig``; any other one with ``load_recipe``'s own choice (GRPO or SFT).

GPU recipes ask for vLLM (``use_vllm: true``) and bf16, which this CPU-only machine cannot provide:
``R1GRPOConfig`` rejects ``use_vllm`` when the ``vllm`` package is missing, and transformers rejects
``bf16`` without a bf16-capable GPU. To validate those recipes exactly as written (no field changed), the
``gpu_machine`` fixture parses them as ``r1-trl check-recipe --target gpu`` does
(``r1_trl.targets.validating_for("gpu")``: only the two presence probes answer as on a GPU machine; the
process-count rules are tested in test_check_recipe_target.py). Separately, the real environment is checked
to reject the same recipes naming ``use_vllm``, and to accept them once the GPU-only fields are overridden
on the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from r1_trl import cli
from r1_trl.configs import R1GRPOConfig
from r1_trl.pipeline import load_plan
from r1_trl.recipes import config_class_for, load_recipe
from r1_trl.stages import STAGES
from r1_trl.targets import validating_for
from r1_trl.trainers import build_reward_funcs

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
ACCELERATE_CONFIGS = RECIPES / "accelerate_configs"
SLURM_SCRIPT = RECIPES / "slurm" / "grpo_multinode.sh"
DOCS = REPO / "README.md"
TINY_R1_ZERO = RECIPES / "tiny" / "r1_zero.yaml"
CPU_FOLDERS = ("tiny", "variants")
NOT_STAGE_RECIPES = ("accelerate_configs", "slurm")
REWARD_MODEL_RECIPE = "reward_model"
VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def _yaml_files() -> list[Path]:
    return sorted(
        path for path in RECIPES.rglob("*.yaml")
        if not set(path.relative_to(RECIPES).parts) & set(NOT_STAGE_RECIPES)
    )


def _is_pipeline(path: Path) -> bool:
    return "stages" in yaml.safe_load(path.read_text())


STAGE_RECIPES = [p for p in _yaml_files() if not _is_pipeline(p)]
PIPELINES = [p for p in _yaml_files() if _is_pipeline(p)]
GPU_RECIPES = [p for p in STAGE_RECIPES if p.relative_to(RECIPES).parts[0] not in CPU_FOLDERS]
CPU_RECIPES = [p for p in STAGE_RECIPES if p not in GPU_RECIPES]
# recipe file -> the stage a pipeline runs it as (read directly: test_pipelines_* validates the pipelines)
PIPELINE_STAGES = {
    (pipeline.parent / entry.get("recipe", "")).resolve(): entry.get("stage")
    for pipeline in PIPELINES
    for entry in yaml.safe_load(pipeline.read_text())["stages"]
}


def config_class(path: Path) -> type:
    """The dataclass the code that runs ``path`` parses it with (see the module docstring)."""
    stage = PIPELINE_STAGES.get(path.resolve(), path.stem.replace("_", "-"))
    if stage in STAGES:
        return STAGES[stage].config_class
    if path.stem == REWARD_MODEL_RECIPE:
        from r1_trl.stages.reward_model import RewardModelConfig

        return RewardModelConfig
    return config_class_for(yaml.safe_load(path.read_text()))


def parse(path: Path, overrides: list[str] | None = None) -> Any:
    return load_recipe(path, overrides, config_class(path))


def _id(path: Path) -> str:
    return str(path.relative_to(RECIPES))


def _raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


GPU_GRPO_RECIPES = [p for p in GPU_RECIPES if issubclass(config_class(p), R1GRPOConfig)]


@pytest.fixture
def gpu_machine() -> Iterator[None]:
    """Parse as for a GPU machine with vLLM (see module doc)."""
    with validating_for("gpu"):
        yield


def _check_rewards_build_and_run(config: R1GRPOConfig) -> None:
    """The recipe's reward names + reward_kwargs build, and each rule reward scores a sample without raising."""
    completion: Any = "<think>2 + 3 = 5</think><answer>5</answer>"
    if config.prompt_template == "chat":
        completion = [{"role": "assistant", "content": completion}]
    model_based = set(getattr(config, "general_reward_funcs", ()))  # need trained reward models to build
    names = [name for name in config.reward_funcs if name not in model_based]
    for name, func in zip(names, build_reward_funcs(names, config.reward_kwargs), strict=True):
        raw = getattr(func, "__wrapped__", func)  # bypass the guard: a misconfigured reward must raise here
        scores = raw([completion], solution=["5"], prompts=["What is 2 + 3?"], completion_ids=[[1, 2, 3]])
        assert len(scores) == 1 and (scores[0] is None or isinstance(scores[0], float)), (name, scores)


def _check_parsed(path: Path, config: Any) -> None:
    assert type(config) is config_class(path)
    if isinstance(config, R1GRPOConfig):
        _check_rewards_build_and_run(config)


def test_the_recipe_tree_has_the_promised_recipes() -> None:
    names = {_id(p) for p in STAGE_RECIPES}
    chain = ("cold_start_data", "cold_start_sft", "reasoning_rl", "rejection_sampling", "sft_2", "rl_all")
    for expected in ("tiny/r1_zero.yaml", "Qwen2.5-Math-7B/r1_zero.yaml", "Qwen2.5-1.5B/r1_zero.yaml",
                     "DeepSeek-R1-Distill-Qwen-1.5B/grpo.yaml", "Qwen2.5-1.5B/distill.yaml",
                     *(f"Qwen2.5-1.5B/{stage}.yaml" for stage in chain)):
        assert expected in names
    assert RECIPES / "Qwen2.5-1.5B" / "pipeline.yaml" in PIPELINES


@pytest.mark.parametrize("path", CPU_RECIPES, ids=_id)
def test_cpu_recipes_parse_on_this_machine(path: Path) -> None:
    _check_parsed(path, parse(path))


@pytest.mark.parametrize("path", GPU_RECIPES, ids=_id)
def test_gpu_recipes_parse_as_written(path: Path, gpu_machine: None) -> None:
    config = parse(path)
    _check_parsed(path, config)
    assert getattr(config, "bf16", True) is True


def _gpu_only_overrides(path: Path) -> list[str]:
    fields = {item.name for item in dataclasses.fields(config_class(path))}
    return [arg for name in ("bf16", "use_vllm") if name in fields for arg in (f"--{name}", "false")]


@pytest.mark.parametrize("path", GPU_RECIPES, ids=_id)
def test_gpu_recipes_parse_on_cpu_with_gpu_fields_overridden(path: Path) -> None:
    config = parse(path, _gpu_only_overrides(path))
    assert getattr(config, "bf16", False) is False and getattr(config, "use_vllm", False) is False


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here")
@pytest.mark.parametrize("path", GPU_GRPO_RECIPES, ids=_id)
def test_gpu_grpo_recipes_are_rejected_without_vllm_naming_the_field(path: Path) -> None:
    with pytest.raises(ValueError, match=r"^use_vllm: vLLM is requested but not installed"):
        parse(path)


@pytest.mark.parametrize("path", GPU_RECIPES, ids=_id)
def test_gpu_recipes_state_hardware_memory_and_launch(path: Path) -> None:
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert re.search(r"GPUs: \d+ x \d+ GB", header), f"{_id(path)}: no 'GPUs: N x M GB' line"
    assert re.search(r"[Ee]xpected memory: ~\d+(-\d+)? GB per GPU", header), f"{_id(path)}: no memory estimate"
    assert "accelerate" in header


@pytest.mark.parametrize("path", GPU_GRPO_RECIPES, ids=_id)
def test_gpu_grpo_recipes_use_vllm_colocate_and_state_the_paper_loss(path: Path) -> None:
    raw = _raw(path)
    assert raw["use_vllm"] is True and raw["vllm_mode"] == "colocate"
    # Written out, not left to TRL's defaults (which are the DAPO loss and beta=0).
    assert (raw["loss_type"], raw["beta"], raw["scale_rewards"]) == ("grpo", 0.001, "group")


def test_reasoning_rl_and_distilled_model_recipes_configure_their_rewards(gpu_machine: None) -> None:
    reasoning = parse(RECIPES / "Qwen2.5-1.5B" / "reasoning_rl.yaml")
    assert reasoning.reward_funcs == ["accuracy", "format", "language_consistency"]
    assert reasoning.reward_weights == [1.0, 0.2, 0.2]
    distilled = parse(RECIPES / "DeepSeek-R1-Distill-Qwen-1.5B" / "grpo.yaml")
    assert distilled.prompt_template == "chat" and distilled.reward_kwargs["format"]["think_prefilled"] is True
    format_reward = build_reward_funcs(["format"], distilled.reward_kwargs)[0]
    # The chat template opened <think>: completions start inside the reasoning and end with a summary.
    assert format_reward([[{"role": "assistant", "content": "2 + 3 = 5\n</think>\n\nSo \\boxed{5}."}]]) == [1.0]
    assert format_reward([[{"role": "assistant", "content": "So \\boxed{5}."}]]) == [0.0]


# Each variant is the tiny R1-Zero recipe with only its own loss settings changed (README table).
VARIANT_FIELDS = {
    "dr_grpo": {"loss_type", "scale_rewards", "beta"},
    "dapo": {"loss_type", "beta", "epsilon_high", "mask_truncated_completions", "dynamic_sampling",
             "reward_funcs", "reward_weights", "reward_kwargs"},
    "gspo": {"importance_sampling_level", "beta", "epsilon", "epsilon_high", "steps_per_generation",
             "generation_batch_size"},
}
DERIVED_FROM_OUTPUT_DIR = {"output_dir", "logging_dir", "run_name"}


@pytest.mark.parametrize("variant", sorted(VARIANT_FIELDS))
def test_variants_differ_from_the_paper_grpo_only_in_their_loss(variant: str) -> None:
    paper, config = load_recipe(TINY_R1_ZERO), load_recipe(RECIPES / "variants" / f"{variant}.yaml")
    changed = {
        item.name for item in dataclasses.fields(R1GRPOConfig)
        if getattr(paper, item.name) != getattr(config, item.name)
    } - DERIVED_FROM_OUTPUT_DIR
    assert changed == VARIANT_FIELDS[variant]
    assert (paper.loss_type, paper.beta, paper.scale_rewards) == ("grpo", 0.001, "group")


@pytest.mark.parametrize("path", PIPELINES, ids=_id)
def test_pipelines_chain_recipes_of_their_folder(path: Path) -> None:
    plan = load_plan(path)  # checks stage names, recipe files and that "@stage/..." inputs come earlier
    assert plan.stages and all(stage.recipe.parent == path.parent for stage in plan.stages)
    assert all(stage.recipe in [p.resolve() for p in STAGE_RECIPES] for stage in plan.stages)


# --- r1-trl check-recipe ---------------------------------------------------------------------------------


def _write_recipe(directory: Path, name: str, **changes: Any) -> Path:
    recipe = yaml.safe_load(TINY_R1_ZERO.read_text())
    recipe.update(changes)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


BROKEN_RECIPES = {
    "no-model": ({"model_name_or_path": None}, "model_name_or_path"),
    "empty-dataset": ({"dataset_name": ""}, "dataset_name"),
    "unknown-reward": ({"reward_funcs": ["accuracy", "formatt"]}, "reward_funcs"),
    "batch-not-divisible": ({"num_generations": 3}, "num_generations"),
    "vllm-without-vllm": ({"use_vllm": True}, "use_vllm"),
    "weights-length": ({"reward_weights": [1.0]}, "reward_weights"),
    "bad-template": ({"prompt_template": "llama3"}, "prompt_template"),
    "reward-kwargs-for-unused-reward": ({"reward_kwargs": {"cosine_scaled": {"max_len": 64}}}, "reward_kwargs"),
    "misspelt-field": ({"learning_rat": 1e-5}, "learning_rat"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_RECIPES))
def test_check_recipe_rejects_broken_recipes_naming_the_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changes, field_name = BROKEN_RECIPES[case]
    if case == "vllm-without-vllm" and VLLM_INSTALLED:
        pytest.skip("vLLM is installed here")
    path = _write_recipe(tmp_path, case, **changes)
    assert cli.main(["check-recipe", str(path)]) == 1
    output = capsys.readouterr().out
    assert output.startswith(f"FAIL {path}: ") and field_name in output, output
    if case not in ("batch-not-divisible", "misspelt-field"):  # ours: the message starts with the field
        assert output.startswith(f"FAIL {path}: {field_name}"), output


def test_check_recipe_accepts_the_grpo_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in CPU_RECIPES if config_class(p) is R1GRPOConfig]
    assert len(paths) >= 4
    assert cli.main(["check-recipe", *paths]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok   {p}" for p in paths]


def test_check_recipe_accepts_every_cpu_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-recipe", *map(str, CPU_RECIPES)]) == 0, capsys.readouterr().out


def test_check_recipe_command_line(tmp_path: Path) -> None:
    broken = _write_recipe(tmp_path, "broken", reward_weights=[1.0, 0.5, 0.1])
    result = subprocess.run(
        [sys.executable, "-m", "r1_trl.cli", "check-recipe", str(TINY_R1_ZERO), str(broken)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert f"ok   {TINY_R1_ZERO}" in lines
    assert any(line.startswith(f"FAIL {broken}: reward_weights: 3 weights for 2") for line in lines), lines


# --- accelerate configs, Slurm example, docs ----------------------------------------------------------------

ACCELERATE_EXPECTED = {
    "zero3.yaml": ("DEEPSPEED", {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True,
                                 "offload_optimizer_device": "none", "offload_param_device": "none"}),
    "zero3_offload.yaml": ("DEEPSPEED", {"zero_stage": 3, "zero3_save_16bit_model": True,
                                         "offload_optimizer_device": "cpu", "offload_param_device": "cpu"}),
    "zero2.yaml": ("DEEPSPEED", {"zero_stage": 2}),
    "ddp.yaml": ("MULTI_GPU", {}),
    "fsdp.yaml": ("FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT",
                           "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}),
}


def test_accelerate_configs_are_the_expected_set() -> None:
    assert sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")) == sorted(ACCELERATE_EXPECTED)


@pytest.mark.parametrize("name", sorted(ACCELERATE_EXPECTED))
def test_accelerate_configs_parse_with_the_expected_keys(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    distributed_type, plugin = ACCELERATE_EXPECTED[name]
    raw = yaml.safe_load((ACCELERATE_CONFIGS / name).read_text())
    assert raw["distributed_type"] == distributed_type
    assert raw["num_machines"] == 1 and raw["num_processes"] >= 2 and raw["mixed_precision"] == "bf16"
    assert raw["use_cpu"] is False
    section = raw.get("deepspeed_config") or raw.get("fsdp_config") or {}
    assert plugin.items() <= section.items()
    loaded = load_config_from_file(str(ACCELERATE_CONFIGS / name))  # accelerate's own loader accepts it
    assert loaded.distributed_type.value == distributed_type


def test_slurm_example_is_valid_bash_and_cluster_neutral() -> None:
    text = SLURM_SCRIPT.read_text()
    subprocess.run(["bash", "-n", str(SLURM_SCRIPT)], check=True)
    sbatch = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert sbatch and not any(re.search(r"--(partition|account|qos|reservation|constraint)\b|-p |-A ", s)
                              for s in sbatch)
    assert "trl vllm-serve" in text and "--vllm_mode server" in text and "accelerate launch" in text
    for variable in ("RECIPE", "ACCELERATE_CONFIG"):
        default = re.search(rf"^{variable}=\$\{{{variable}:-([^}}]+)\}}", text, re.MULTILINE)
        assert default and (REPO / default.group(1)).is_file(), variable


def test_docs_reference_existing_recipes_and_real_config_fields() -> None:
    text = DOCS.read_text()
    for reference in sorted(set(re.findall(r"recipes/[\w./-]+\.(?:yaml|sh)", text))):
        assert (REPO / reference).is_file(), reference
    fields = {item.name for item in dataclasses.fields(R1GRPOConfig)}
    table = [line for line in text.splitlines() if line.startswith("|") and "loss_type" in line]
    assert len(table) >= 4, "the GRPO variants table is missing"
    named = [name for row in table for name in re.findall(r"`(\w+): [^`]*`", row)]
    assert {"loss_type", "beta", "scale_rewards", "epsilon_high", "importance_sampling_level",
            "mask_truncated_completions", "dynamic_sampling"} <= set(named)
    unknown = sorted(set(named) - fields)
    assert not unknown, f"docs name fields R1GRPOConfig does not have: {unknown}"


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_no_recipe_syncs_its_reference_model_only_at_the_end(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    if not raw.get("sync_ref_model") or not raw.get("max_steps"):
        return
    every, steps = raw["ref_model_sync_steps"], raw["max_steps"]
    assert every < steps and steps % every != 0, (
        f"ref_model_sync_steps {every} with max_steps {steps}: a sync at the last step only costs a full gather"
    )
