"""`r1-trl check-recipe --target gpu`: a GPU recipe validated on this CPU-only machine, for the launch its
header states (``accelerate launch ... --num_processes N``).

Every GPU recipe and GPU pipeline under recipes/ passes; a GPU recipe broken in one field fails naming that
field, including the rules that depend on the process count (TRL's batch and generation-batch
divisibility, vLLM tensor parallelism), which are checked for the header's count, not this process's 1.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import transformers.training_args
import yaml

from r1_trl import cli
from r1_trl.configs import R1GRPOConfig
from r1_trl.recipe_checks import check_recipe
from r1_trl.recipes import load_recipe
from r1_trl.targets import current_target, header_num_processes, validating_for

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
CPU_FOLDERS = ("tiny", "variants")
NOT_RECIPES = ("accelerate_configs", "slurm")
GPU_R1_ZERO = RECIPES / "Qwen2.5-1.5B" / "r1_zero.yaml"
GPU_PIPELINE_FOLDER = RECIPES / "Qwen2.5-1.5B"
VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None

GPU_FILES = sorted(
    path for path in RECIPES.rglob("*.yaml")
    if path.relative_to(RECIPES).parts[0] not in (*CPU_FOLDERS, *NOT_RECIPES)
)


def _id(path: Path) -> str:
    return str(path.relative_to(RECIPES))


def _launch_line(path: Path) -> str | None:
    return next((line for line in path.read_text().splitlines() if re.match(r"#\s*accelerate launch ", line)), None)


def test_there_are_gpu_recipes_and_pipelines() -> None:
    assert len(GPU_FILES) >= 12
    assert any("stages" in yaml.safe_load(path.read_text()) for path in GPU_FILES)


@pytest.mark.parametrize("path", GPU_FILES, ids=_id)
def test_every_gpu_recipe_passes_for_the_launch_its_header_states(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stated = header_num_processes(path)
    assert stated is not None and stated > 1, f"{_id(path)}: the header states no --num_processes"
    launch = _launch_line(path)
    assert launch is None or f"--num_processes {stated}" in launch, launch
    status = cli.main(["check-recipe", "--target", "gpu", str(path)])
    output = capsys.readouterr().out
    assert status == 0, output
    processes = stated or 1
    assert output == f"ok   {path} (target gpu, {processes} process{'es' if processes > 1 else ''})\n"


def _gpu_variant(directory: Path, name: str, changes: dict, header_processes: int | None = None) -> Path:
    """The 8-GPU R1-Zero recipe (header included) with ``changes`` applied; ``header_processes`` rewrites the
    header's launch line."""
    text = GPU_R1_ZERO.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    if header_processes is not None:
        header = re.sub(r"--num_processes \d+", f"--num_processes {header_processes}", header)
    recipe = {**yaml.safe_load(text), **changes}
    recipe = {key: value for key, value in recipe.items() if value is not None}
    path = directory / f"{name}.yaml"
    path.write_text(f"{header}\n{yaml.safe_dump(recipe)}")
    return path


def test_the_variant_helper_keeps_a_valid_recipe(tmp_path: Path) -> None:
    assert header_num_processes(GPU_R1_ZERO) == 8
    path = _gpu_variant(tmp_path, "unchanged", {})
    assert header_num_processes(path) == 8
    assert check_recipe(path, "gpu") is None


# case -> (changes, header's --num_processes (None: the recipe's 8), field the message must name). The recipe
# has per_device_train_batch_size 8, gradient_accumulation_steps 8, num_generations 16.
BROKEN_GPU_RECIPES: dict[str, tuple[dict, int | None, str]] = {
    # 8 x 6 x 1 = 48 completions per generation batch, not whole groups of 16
    "generation-batch-not-whole-groups": (
        {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 1}, 6, "generation_batch_size"),
    # 96 fits 1 process x 8 but not the header's 8 processes x 8 = 64 per step
    "generation-batch-not-a-multiple-of-the-global-batch": ({"generation_batch_size": 96}, None,
                                                            "generation_batch_size"),
    "generation-batch-and-steps-both-set": ({"generation_batch_size": 512, "steps_per_generation": 8}, None,
                                            "generation_batch_size"),
    "tensor-parallel-not-dividing-the-processes": ({"vllm_tensor_parallel_size": 3}, None,
                                                   "vllm_tensor_parallel_size"),
    "unknown-reward": ({"reward_funcs": ["accuracy", "formatt"]}, None, "reward_funcs"),
    "reward-weights-length": ({"reward_weights": [1.0]}, None, "reward_weights"),
    "reward-kwargs-for-unused-reward": ({"reward_kwargs": {"cosine_scaled": {"max_len": 64}}}, None, "reward_kwargs"),
    "unknown-template": ({"prompt_template": "llama3"}, None, "prompt_template"),
    "unknown-generation-backend": ({"generation_backend": "tpu"}, None, "generation_backend"),
    "memory-share-above-one": ({"vllm_gpu_memory_utilization": 1.5}, None, "vllm_gpu_memory_utilization"),
    "zero-eval-size": ({"eval_size": 0}, None, "eval_size"),
    "no-dataset": ({"dataset_name": ""}, None, "dataset_name"),
    "misspelt-field": ({"learning_rat": 1e-6}, None, "learning_rat"),
    "push-without-repo": ({"push_to_hub": True}, None, "hub_model_id"),
    "bf16-with-fp16": ({"fp16": True}, None, "fp16"),  # bf16's rules still hold: only the GPU probe differs
}


@pytest.mark.parametrize("case", sorted(BROKEN_GPU_RECIPES))
def test_a_broken_gpu_recipe_fails_naming_the_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changes, header_processes, field_name = BROKEN_GPU_RECIPES[case]
    path = _gpu_variant(tmp_path, case, changes, header_processes)
    status = cli.main(["check-recipe", "--target", "gpu", str(path)])
    output = capsys.readouterr().out
    assert status == 1, output
    processes = header_processes or 8
    assert output.startswith(f"FAIL {path} (target gpu, {processes} processes): "), output
    assert field_name in output.split(": ", 1)[1], output


@pytest.mark.parametrize("case", ["generation-batch-not-whole-groups",
                                  "generation-batch-not-a-multiple-of-the-global-batch",
                                  "tensor-parallel-not-dividing-the-processes"])
def test_process_count_rules_use_the_header_count_and_the_command_line_overrides_it(
    case: str, tmp_path: Path
) -> None:
    changes, header_processes, field_name = BROKEN_GPU_RECIPES[case]
    path = _gpu_variant(tmp_path, case, changes, header_processes)
    assert field_name in (check_recipe(path, "gpu") or "")
    fitting = {"generation-batch-not-whole-groups": 16, "generation-batch-not-a-multiple-of-the-global-batch": 1,
               "tensor-parallel-not-dividing-the-processes": 6}[case]
    assert check_recipe(path, "gpu", num_processes=fitting) is None


def test_a_recipe_that_fits_one_process_but_not_its_launch_fails(tmp_path: Path) -> None:
    """Per-device 4 x 1 accumulation step: 4 completions on 1 process (not a group of 16), 32 on 8."""
    path = _gpu_variant(tmp_path, "small", {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1})
    assert check_recipe(path, "gpu") is None
    error = check_recipe(path, "gpu", num_processes=1)
    assert error and error.startswith("generation_batch_size (4) must be divisible by num_generations (16)")


def test_a_broken_stage_of_a_gpu_pipeline_fails_naming_the_stage_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "pipeline"
    folder.mkdir()
    for path in GPU_PIPELINE_FOLDER.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    assert check_recipe(folder / "pipeline.yaml", "gpu") is None
    sft_2 = folder / "sft_2.yaml"
    sft_2.write_text(sft_2.read_text() + "vllm_tensor_parallel_size: 3\n")
    error = check_recipe(folder / "pipeline.yaml", "gpu")
    assert error == "stage sft-2 (sft_2.yaml): vllm_tensor_parallel_size: 3 does not divide the 8 processes of the launch"


def test_a_bad_process_count_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-recipe", "--target", "gpu", "--num_processes", "0", str(GPU_R1_ZERO)]) == 1
    assert "--num_processes: must be >= 1" in capsys.readouterr().out


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here")
def test_the_local_target_still_needs_vllm_and_a_bf16_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-recipe", str(GPU_R1_ZERO)]) == 1
    assert "use_vllm: vLLM is requested but not installed" in capsys.readouterr().out
    assert cli.main(["check-recipe", str(RECIPES / "Qwen2.5-1.5B" / "sft_2.yaml")]) == 1
    assert "bf16" in capsys.readouterr().out


def test_validating_for_a_gpu_changes_nothing_after_it(tmp_path: Path) -> None:
    probe = transformers.training_args.is_torch_bf16_gpu_available
    with validating_for("gpu", 8) as target:
        assert current_target() is target and target.gpu and target.num_processes == 8
        config = load_recipe(GPU_R1_ZERO)
        assert config.world_size == 8 and config.generation_batch_size == 8 * 8 * 8
    assert transformers.training_args.is_torch_bf16_gpu_available is probe
    assert not current_target().gpu and current_target().num_processes is None
    assert config.world_size == 1  # outside: the process's own launch
    local = load_recipe(RECIPES / "tiny" / "r1_zero.yaml")
    assert isinstance(local, R1GRPOConfig) and local.world_size == 1 and local.bf16 is False


def test_validating_for_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="^--target: must be one of local, gpu"), validating_for("tpu"):
        pass


def test_header_num_processes_reads_only_the_leading_comment(tmp_path: Path) -> None:
    cases = {
        "#   accelerate launch --num_processes 4 \\\n#   -m r1_trl.cli grpo\nseed: 1\n": 4,
        "# Launch:\n\n#   accelerate launch --num_processes=2 -m r1_trl.cli sft\nseed: 1\n": 2,
        "# no launch line\nseed: 1\n# --num_processes 8\n": None,
        "seed: 1\n": None,
    }
    for index, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"{index}.yaml"
        path.write_text(text)
        assert header_num_processes(path) == expected, text
