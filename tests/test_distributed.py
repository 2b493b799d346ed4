"""Real 2-process launches on CPU with the repository's accelerate configs (DeepSpeed ZeRO-3 and DDP).

Each test runs ``accelerate launch --config_file recipes/accelerate_configs/<config>.yaml --num_processes 2
--mixed_precision no`` (process count and precision overridden on the launch line, as the configs document)
and checks what the run left on disk. DeepSpeed runs on CPU through its CPU accelerator; its shared-memory
comm op is compiled on first use (~40 s once, cached in ~/.cache/torch_extensions afterwards). On CPU,
accelerate replaces FSDP by plain multi-CPU data parallelism, so fsdp.yaml cannot be exercised here
(tests/test_recipes.py parses it).

This file is also the worker script that ``accelerate launch`` starts in every process (see ``_worker``):

* ``probe <r1-trl command and args>``: that command unchanged, except that right after ``trainer.train()``
  every rank runs the trained model (still sharded under ZeRO-3) on a fixed input and saves the logits.
  The test compares them with the logits of the saved checkpoint reloaded by ``from_pretrained``.
* ``rank-consistency OUT_DIR``: builds the datasets, scores fixed completions and shards the prompts the
  way training does, and writes one JSON per rank.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
ACCELERATE_CONFIGS = RECIPES / "accelerate_configs"
TINY_R1_ZERO = RECIPES / "tiny" / "r1_zero.yaml"
NUM_PROCESSES = 2
LAUNCH_TIMEOUT_SECONDS = 420
PROBE_TEXT = "User: What is 3 + 4 * 2?. Assistant: <think>"
PROBE_FILE = "probe-rank{rank}.pt"
STEPS = 2

# A few steps of the tiny R1-Zero recipe on a random model. An untrained model never earns the accuracy
# or format reward, so every group would have zero advantage and the weights would not move; a unigram
# token-repetition penalty differs between random completions and gives the groups a learning signal.
GRPO_OVERRIDES = [
    "--max_steps", str(STEPS), "--per_device_train_batch_size", "4", "--num_generations", "4",
    "--max_completion_length", "24", "--train_size", "64", "--eval_size", "2", "--eval_num_samples", "1",
    "--eval_max_new_tokens", "8", "--learning_rate", "1e-3", "--logging_steps", "1",
    "--reward_funcs", "accuracy", "format", "repetition_penalty", "--reward_weights", "1.0", "0.5", "1.0",
    "--reward_kwargs", json.dumps({"repetition_penalty": {"ngram_size": 1, "unit": "tokens"}}),
]

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


# --- test side ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(config: str, script_args: list[str], workdir: Path, name: str) -> float:
    """Run ``accelerate launch`` with 2 CPU processes; returns the wall time, fails with the log tail."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ACCELERATE_CONFIGS / config),
        "--num_processes", str(NUM_PROCESSES), "--num_machines", "1", "--mixed_precision", "no",
        "--main_process_port", str(_free_port()),
        *script_args,
    ]
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": python_path,  # the package may not be installed; editable installs work either way
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_SECONDS
    )
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    (workdir / f"{name}.log").write_text(output)
    print(f"{name}: accelerate launch took {seconds:.1f} s")
    assert result.returncode == 0, f"{name}: exit code {result.returncode} after {seconds:.0f} s\n{output[-6000:]}"
    return seconds


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from r1_trl.models.tiny import random_tiny_model

    return random_tiny_model(tmp_path_factory.mktemp("random-tiny"))


def _state_dict(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    assert files, f"no safetensors weights in {path}: {sorted(p.name for p in path.iterdir())}"
    state: dict[str, Any] = {}
    for file in files:
        state.update(load_file(file))
    return state


def check_trained_checkpoint(output_dir: Path, initial: Path) -> dict[str, Any]:
    """``output_dir/checkpoint`` is a whole model (not shards) whose weights moved away from ``initial``."""
    import torch
    from transformers import AutoModelForCausalLM

    checkpoint = output_dir / "checkpoint"
    saved, start = _state_dict(checkpoint), _state_dict(initial)
    assert saved.keys() == start.keys()
    for name, tensor in saved.items():
        assert tensor.numel() > 0 and tensor.shape == start[name].shape, f"{name}: {tuple(tensor.shape)} is a shard"
    unchanged = [name for name in saved if torch.equal(saved[name], start[name])]
    assert not unchanged, f"training did not change {unchanged}"
    reloaded = AutoModelForCausalLM.from_pretrained(checkpoint)
    for name, tensor in reloaded.state_dict().items():
        if name in saved:
            assert torch.equal(tensor, saved[name]), name
    return saved


def check_probe_logits(output_dir: Path, expect_sharded: bool) -> None:
    """Logits computed by every rank inside the run equal those of the reloaded checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(output_dir / "checkpoint").eval()
    probes = [torch.load(output_dir / PROBE_FILE.format(rank=rank)) for rank in range(NUM_PROCESSES)]
    with torch.no_grad():
        logits = reloaded(input_ids=probes[0]["input_ids"]).logits
    for rank, probe in enumerate(probes):
        assert probe["world_size"] == NUM_PROCESSES
        torch.testing.assert_close(logits, probe["logits"], rtol=1e-5, atol=1e-5, msg=lambda m, r=rank: f"rank {r}: {m}")
        if expect_sharded:  # ZeRO-3 really partitioned the parameters during training
            assert probe["local_numel"] < probe["full_numel"], probe
        else:
            assert probe["local_numel"] == probe["full_numel"], probe
    assert probes[0]["full_numel"] == sum(p.numel() for p in reloaded.parameters())


def check_zero3_consolidation(step_dir: Path, saved: dict[str, Any]) -> None:
    """The gathered checkpoint equals DeepSpeed's own consolidation of the ZeRO-3 shards (zero_to_fp32)."""
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    assert list(step_dir.glob("global_step*/*zero_pp_rank_*")), f"no ZeRO shards in {step_dir}"
    consolidated = get_fp32_state_dict_from_zero_checkpoint(str(step_dir))
    missing = saved.keys() - consolidated.keys()
    assert not missing, f"not in the ZeRO shards: {sorted(missing)}"
    for name, tensor in saved.items():
        assert torch.equal(consolidated[name].to(tensor.dtype), tensor), name


def test_grpo_zero3_two_processes_saves_gathered_full_weights(tmp_path: Path, random_model: Path) -> None:
    output_dir = tmp_path / "zero3"
    launch(
        "zero3.yaml",
        [__file__, "probe", "grpo", "--config", str(TINY_R1_ZERO), "--model_name_or_path", str(random_model),
         *GRPO_OVERRIDES, "--save_strategy", "steps", "--save_steps", str(STEPS), "--output_dir", str(output_dir)],
        tmp_path,
        "grpo-zero3",
    )
    results = json.loads((output_dir / "results.json").read_text())
    assert results["train"]["steps"] == STEPS
    saved = check_trained_checkpoint(output_dir, random_model)
    check_probe_logits(output_dir, expect_sharded=True)
    check_zero3_consolidation(output_dir / f"checkpoint-{STEPS}", saved)


def test_held_out_evaluation_during_zero3_training_runs_on_every_rank(tmp_path: Path, random_model: Path) -> None:
    # Every forward under ZeRO-3 gathers weights from all ranks: a main-process-only evaluation deadlocked
    # here (measured: still hanging after 120 s, against ~25 s for the whole run now).
    output_dir = tmp_path / "zero3-eval"
    launch(
        "zero3.yaml",
        ["-m", "r1_trl.cli", "grpo", "--config", str(TINY_R1_ZERO), "--model_name_or_path", str(random_model),
         *GRPO_OVERRIDES, "--eval_every_steps", "1", "--output_dir", str(output_dir)],
        tmp_path,
        "grpo-zero3-eval",
    )
    results = json.loads((output_dir / "results.json").read_text())
    evaluations = [row for row in results["log_history"] if "eval/accuracy" in row]
    assert [row["step"] for row in evaluations] == [1.0, 2.0]
    assert all(0.0 <= row["eval/format_rate"] <= 1.0 for row in evaluations)


def test_grpo_ddp_two_processes_keeps_replicas_identical(tmp_path: Path, random_model: Path) -> None:
    output_dir = tmp_path / "ddp"
    launch(
        "ddp.yaml",
        [__file__, "probe", "grpo", "--config", str(TINY_R1_ZERO), "--model_name_or_path", str(random_model),
         *GRPO_OVERRIDES, "--output_dir", str(output_dir)],
        tmp_path,
        "grpo-ddp",
    )
    assert json.loads((output_dir / "results.json").read_text())["train"]["steps"] == STEPS
    check_trained_checkpoint(output_dir, random_model)
    check_probe_logits(output_dir, expect_sharded=False)


TINY_SFT = RECIPES / "tiny" / "cold_start_sft.yaml"


def _sft_available() -> bool:
    from r1_trl import cli

    return TINY_SFT.is_file() and "sft" in cli.HANDLERS


SFT_AVAILABLE = _sft_available()


def _write_sft_dataset(path: Path) -> Path:
    """A small conversational prompt/completion set, saved the way the SFT stage reads it."""
    from datasets import Dataset

    rows = [
        {"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
         "completion": [{"role": "assistant", "content": f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer>"}]}
        for a in range(1, 5) for b in range(1, 5)
    ]
    Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _sft_launch_args(random_model: Path, dataset: Path, output_dir: Path) -> list[str]:
    return [__file__, "probe", "sft", "--config", str(TINY_SFT), "--model_name_or_path", str(random_model),
            "--sft_dataset", str(dataset), "--max_steps", str(STEPS), "--per_device_train_batch_size", "2",
            "--eval_size", "2", "--eval_num_samples", "1", "--eval_max_new_tokens", "8", "--learning_rate", "1e-3",
            "--warmup_steps", "0", "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", str(STEPS),
            "--output_dir", str(output_dir)]


def test_sft_zero3_two_processes_saves_gathered_full_weights(tmp_path: Path, random_model: Path) -> None:
    assert SFT_AVAILABLE
    output_dir = tmp_path / "sft-zero3"
    dataset = _write_sft_dataset(tmp_path / "sft-data")
    launch("zero3.yaml", _sft_launch_args(random_model, dataset, output_dir), tmp_path, "sft-zero3")
    assert json.loads((output_dir / "results.json").read_text())["train"]["steps"] == STEPS
    saved = check_trained_checkpoint(output_dir, random_model)
    check_probe_logits(output_dir, expect_sharded=True)
    check_zero3_consolidation(output_dir / f"checkpoint-{STEPS}", saved)


def test_sft_ddp_two_processes_keeps_replicas_identical(tmp_path: Path, random_model: Path) -> None:
    output_dir = tmp_path / "sft-ddp"
    dataset = _write_sft_dataset(tmp_path / "sft-data")
    launch("ddp.yaml", _sft_launch_args(random_model, dataset, output_dir), tmp_path, "sft-ddp")
    assert json.loads((output_dir / "results.json").read_text())["train"]["steps"] == STEPS
    check_trained_checkpoint(output_dir, random_model)
    check_probe_logits(output_dir, expect_sharded=False)


def test_rewards_and_data_agree_across_ranks_and_shards_are_disjoint(tmp_path: Path) -> None:
    launch("ddp.yaml", [__file__, "rank-consistency", str(tmp_path)], tmp_path, "rank-consistency")
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(NUM_PROCESSES)]
    assert [r["rank"] for r in reports] == [0, 1] and {r["world_size"] for r in reports} == {NUM_PROCESSES}
    first, second = reports
    assert first["train_sha"] == second["train_sha"] and first["held_out_sha"] == second["held_out_sha"]
    assert first["rewards"] == second["rewards"]
    # The rewards are not trivially equal: the correct answer scores 1, the wrong one 0.
    accuracy = first["rewards"]["accuracy"]
    assert accuracy[0::4] == [1.0] * (len(accuracy) // 4) and accuracy[1::4] == [0.0] * (len(accuracy) // 4)
    num_prompts = first["num_train_prompts"]
    for key in ("split_between_processes", "dataloader"):
        shards = [set(r[key]) for r in reports]
        assert shards[0] and shards[1] and not shards[0] & shards[1], key
        assert shards[0] | shards[1] == set(range(num_prompts)), key
        assert all(len(r[key]) == len(set(r[key])) for r in reports), key


# --- worker side (runs inside `accelerate launch`) ------------------------------------------------------


def _sha(values: list[Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def _probe(argv: list[str]) -> int:
    """``r1-trl <command> ...`` with one addition: after training, every rank saves logits of the trained model."""
    import torch

    from r1_trl import cli
    from r1_trl.stages import grpo, sft

    def probed(trainer_class: type) -> type:
        class ProbedTrainer(trainer_class):  # type: ignore[misc, valid-type]
            def train(self, *args: Any, **kwargs: Any) -> Any:
                output = super().train(*args, **kwargs)
                self._save_probe()
                return output

            def _save_probe(self) -> None:
                # Under ZeRO-3 self.model is the engine's module: its parameters stay partitioned and are
                # gathered layer by layer during this forward, which every rank runs together.
                model = self.model
                input_ids = self.processing_class(PROBE_TEXT, return_tensors="pt")["input_ids"]
                was_training = model.training
                model.eval()
                with torch.no_grad():
                    logits = model(input_ids=input_ids).logits.float()
                model.train(was_training)
                parameters = list(model.parameters())
                probe = {
                    "input_ids": input_ids,
                    "logits": logits,
                    "local_numel": sum(p.numel() for p in parameters),
                    "full_numel": sum(getattr(p, "ds_numel", p.numel()) for p in parameters),
                    "world_size": self.accelerator.num_processes,
                }
                rank = self.accelerator.process_index
                torch.save(probe, Path(self.args.output_dir) / PROBE_FILE.format(rank=rank))

        return ProbedTrainer

    grpo.R1GRPOTrainer = probed(grpo.R1GRPOTrainer)
    sft.R1SFTTrainer = probed(sft.R1SFTTrainer)
    return cli.main(argv)


def _rank_consistency(output_dir: str) -> int:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    import reward_funcs
    from r1_trl.data.builders import PromptSpec, build_prompt_datasets
    from r1_trl.distributed import exit_distributed

    accelerator = Accelerator(cpu=True)
    spec = PromptSpec(dataset_name="arithmetic", task_kwargs={"levels": [2]}, train_size=64, eval_size=8, seed=0)
    train, held_out = build_prompt_datasets(spec)
    completions, solutions, prompts = [], [], []
    for row in held_out:
        gold = str(row["solution"])
        for text in (
            f"<think>Work it out step by step.</think><answer>{gold}</answer>",
            f"<think>Guess.</think><answer>{gold}7</answer>",
            f"The answer is {gold} {gold} {gold} {gold}",
            "<think>Sumamos los dos números y después multiplicamos el resultado.</think><answer>0</answer>",
        ):
            completions.append(text)
            solutions.append(gold)
            prompts.append(row["prompt"])
    rewards = {
        name: reward_funcs.get(name)(completions, solution=solutions, prompts=prompts)
        for name in ("accuracy", "format", "language_consistency", "repetition_penalty", "tag_count")
    }
    indices = list(range(len(train)))
    with accelerator.split_between_processes(indices) as local:
        split_indices = list(local)
    loader = accelerator.prepare(DataLoader(indices, batch_size=4, shuffle=True))
    loader_indices = [int(i) for batch in loader for i in batch]
    report = {
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "train_sha": _sha(list(zip(train["prompt"], train["solution"], strict=True))),
        "held_out_sha": _sha(list(zip(held_out["prompt"], held_out["solution"], strict=True))),
        "num_train_prompts": len(train),
        "rewards": rewards,
        "split_between_processes": split_indices,
        "dataloader": loader_indices,
    }
    Path(output_dir, f"rank{accelerator.process_index}.json").write_text(json.dumps(report))
    exit_distributed(0)
    return 0


def _worker(argv: list[str]) -> int:
    mode, rest = argv[0], argv[1:]
    if mode == "probe":
        return _probe(rest)
    if mode == "rank-consistency":
        return _rank_consistency(rest[0])
    raise SystemExit(f"unknown worker mode {mode!r}")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
