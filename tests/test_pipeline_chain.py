"""The whole R1 chain on the tiny model with minimal budgets: every stage runs and reads its predecessors'
outputs, the manifest records every stage, the generated datasets exist where the next stages read them, and
every training stage's held-out samples (evaluation details) are pushed as a dataset next to its checkpoint."""

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hub_server import FakeHub, patch_endpoint
from huggingface_hub import DatasetCard, ModelCard

from r1_trl.pipeline import load_plan, run_pipeline, summary_table
from r1_trl.recipes import recipe_path
from r1_trl.stages import STAGES

# Long enough for the chat stages' readable answers (~60 tokens) to finish, so their metrics mean something.
SMALL_EVAL = {"eval_size": 8, "eval_num_samples": 2, "eval_max_new_tokens": 96}
SMALL_GRPO = {"max_steps": 2, "train_size": 32, "per_device_train_batch_size": 8, "num_generations": 4,
              "max_completion_length": 32, "logging_steps": 1}
REPO = "tester/r1-tiny"
DATA_REPO = "tester/r1-tiny-datasets"
BUDGETS = {
    "r1-zero": {**SMALL_EVAL, **SMALL_GRPO},
    "cold-start-data": {"train_size": 400, "eval_size": 8, "target_size": 200, "batch_problems": 128},
    # the recipe's own SFT budget (~1 min): rejection sampling needs a model that writes well-formed answers
    "cold-start-sft": SMALL_EVAL,
    "reasoning-rl": {**SMALL_EVAL, **SMALL_GRPO},
    "rejection-sampling": {"train_size": 96, "eval_size": 8, "num_generations": 4},
    # the recipe's own budget too (3 epochs over the few rejection-sampled rows here, seconds): SFT 2 restarts
    # from the base, and the distill teacher (rl-all, two steps on from it) must write well-formed answers
    "sft-2": SMALL_EVAL,
    "rl-all": {**SMALL_EVAL, **SMALL_GRPO, "general_eval_size": 4},
    "distill": {**SMALL_EVAL, "train_size": 96, "teacher_num_samples": 4, "max_steps": 3,
                "per_device_train_batch_size": 4},
}


def write_small_pipeline(folder: Path, run_dir: Path, push: dict | None = None, processes: int = 1) -> Path:
    """The tiny pipeline with every stage's recipe cut to the minimal budgets above; for ``processes`` > 1
    the per-device batch is divided so that the global batch (and so the number of steps) stays the same."""
    folder.mkdir(parents=True, exist_ok=True)
    source = yaml.safe_load(recipe_path("tiny/pipeline.yaml").read_text())
    stages = []
    for entry in source["stages"]:
        recipe = yaml.safe_load(recipe_path(f"tiny/{entry['recipe']}").read_text())
        recipe.update(BUDGETS[entry["stage"]])
        if processes > 1 and entry["stage"] not in ("cold-start-data", "rejection-sampling"):
            per_device = recipe.get("per_device_train_batch_size", 8)
            assert per_device % processes == 0, (entry["stage"], per_device)
            recipe["per_device_train_batch_size"] = per_device // processes
        (folder / entry["recipe"]).write_text(yaml.safe_dump(recipe))
        stages.append(entry)
    pipeline = {"run_dir": str(run_dir), "seed": 1, "stages": stages, **({"push": push} if push else {})}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    return folder / "pipeline.yaml"


@pytest.fixture(scope="module")
def one_process_chain(tmp_path_factory):
    """The chain in this process, pushing to a local Hub: (run dir, manifest, what the Hub received)."""
    tmp_path = tmp_path_factory.mktemp("chain")
    plan = load_plan(write_small_pipeline(tmp_path, tmp_path / "run",
                                          {"enabled": True, "repo_id": REPO, "dataset_repo_id": DATA_REPO}))
    assert [s.stage for s in plan.stages] == list(STAGES)
    started = time.perf_counter()
    with FakeHub() as hub, patch_endpoint(hub.endpoint):
        manifest = run_pipeline(plan)
        model_branches = hub.branches(REPO)
        dataset_branches = hub.branches(DATA_REPO, repo_type="dataset")
        model_cards = {stage: ModelCard(hub.files(REPO, stage)["README.md"].decode()) for stage in model_branches
                       if stage != "main"}
        dataset_files = {stage: hub.files(DATA_REPO, stage, "dataset") for stage in dataset_branches
                         if stage != "main"}
    print(f"one-process chain: {time.perf_counter() - started:.0f} s")
    return Path(plan.run_dir), manifest, (model_branches, dataset_branches, model_cards, dataset_files)


@pytest.mark.slow
def test_the_whole_chain_runs_and_records_lineage(one_process_chain):
    run_dir, manifest, (model_branches, dataset_branches, model_cards, dataset_files) = one_process_chain
    dataset_cards = {stage: DatasetCard(files["README.md"].decode()) for stage, files in dataset_files.items()}

    on_disk = json.loads((run_dir / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    for stage in STAGES:
        entry = on_disk["stages"][stage]
        assert entry["status"] == "done", stage
        assert (run_dir / stage / "results.json").is_file(), stage
        for path in entry["datasets"].values():
            assert (run_dir / path / "stats.json").is_file(), (stage, path)
    assert on_disk["stages"]["cold-start-sft"]["inputs"]["sft_dataset"] == "cold-start-data/datasets/cold_start"
    assert on_disk["stages"]["reasoning-rl"]["inputs"]["model_name_or_path"] == "cold-start-sft/checkpoint"
    assert on_disk["stages"]["sft-2"]["inputs"]["sft_dataset"] == "rejection-sampling/datasets/sft_mix"
    assert on_disk["stages"]["distill"]["inputs"]["teacher_model"] == "rl-all/checkpoint"
    for stage in ("r1-zero", "cold-start-sft", "reasoning-rl", "sft-2", "rl-all"):
        assert (run_dir / on_disk["stages"][stage]["checkpoint"] / "config.json").is_file(), stage
    table = summary_table(on_disk)
    assert all(stage in table for stage in STAGES)

    # pushing was on: one revision per trained stage, one dataset revision per stage with generated sets (the
    # data stages' sets; every training stage at least its evaluation details), and every model card's metrics
    # are the manifest's
    data_only = {"cold-start-data", "rejection-sampling"}
    trained = {s for s, e in on_disk["stages"].items() if e.get("checkpoint")}
    generating = {s for s, e in on_disk["stages"].items() if e.get("datasets")}
    assert trained == set(STAGES) - data_only
    assert generating == set(STAGES)
    assert model_branches - {"main"} == trained
    assert dataset_branches - {"main"} == generating
    for stage, files in dataset_files.items():
        entry = on_disk["stages"][stage]
        assert {c["config_name"] for c in dataset_cards[stage].data.configs} == set(entry["datasets"]), stage
        assert ("eval_details" in entry["datasets"]) == (stage in trained), stage
        if stage not in trained:
            continue
        # the held-out samples behind the stage's final metrics: one row per prompt, on the stage's data branch
        details = pq.read_table(io.BytesIO(files["eval_details/train-00000-of-00001.parquet"]))
        correct = [flag for row in details.column("correct").to_pylist() for flag in row]
        assert details.num_rows == SMALL_EVAL["eval_size"], stage
        assert len(correct) == SMALL_EVAL["eval_size"] * SMALL_EVAL["eval_num_samples"], stage
        assert sum(correct) / len(correct) == pytest.approx(entry["metrics"]["accuracy"]), stage
        assert f"Generated by `{REPO}` at revision `{stage}`." in dataset_cards[stage].text, stage
    assert set(on_disk["stages"]["distill"]["datasets"]) == {"teacher", "eval_details"}  # no RL twin: a benchmark
    for stage, card in model_cards.items():
        metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
        expected = {k: v for k, v in on_disk["stages"][stage]["metrics"].items() if isinstance(v, int | float)}
        assert metrics and set(metrics) <= set(expected), stage
        assert all(metrics[k] == pytest.approx(expected[k]) for k in metrics), stage
    for stage, card in dataset_cards.items():
        assert stage in card.text


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_whole_chain_under_accelerate_launch_on_two_processes(one_process_chain, tmp_path):
    """``r1-trl pipeline`` under ``accelerate launch`` (ZeRO-3 config, 2 CPU processes, half the per-device batch,
    so the same global batch as the 1-process run): every stage runs on both
    ranks, datasets are written once, checkpoints load, and every stage's held-out accuracy is within the
    1-process run's (two standard errors of the difference: sampling is seeded per batch, so the two runs
    differ only by training on two processes, and 8 held-out prompts make each accuracy noisy)."""
    from transformers import AutoModelForCausalLM

    reference_dir, reference, _ = one_process_chain
    pipeline = write_small_pipeline(tmp_path / "recipes", tmp_path / "run", processes=2)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(Path(__file__).resolve().parents[1] / "recipes" / "accelerate_configs" / "zero3.yaml"),
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--main_process_port",
               str(_free_port()), "-m", "r1_trl.cli", "pipeline", "--config", str(pipeline)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rows = []
    for stage in STAGES:
        entry = manifest["stages"][stage]
        assert entry["status"] == "done", stage
        for path in entry["datasets"].values():
            saved = run_dir / path
            assert (saved / "stats.json").is_file(), (stage, path)
            assert not list(saved.parent.glob(f".{saved.name}.*")), f"{stage}: staging left next to {path}"
            assert not list(saved.glob("cache-*.arrow")), f"{stage}: map caches inside {path}"
        if entry.get("checkpoint"):
            AutoModelForCausalLM.from_pretrained(run_dir / entry["checkpoint"])
            one, two = reference["stages"][stage]["metrics"], entry["metrics"]
            rows.append(f"{stage:<18} accuracy 1 process {one['accuracy']:.3f} ± {one['accuracy_stderr']:.3f}   "
                        f"2 processes {two['accuracy']:.3f} ± {two['accuracy_stderr']:.3f}")
            band = 2 * (one["accuracy_stderr"] ** 2 + two["accuracy_stderr"] ** 2) ** 0.5
            assert abs(two["accuracy"] - one["accuracy"]) <= band + 1e-9, rows[-1]
    reference_seconds = sum(e["timings"]["seconds"] for e in reference["stages"].values())
    print(f"pipeline wall time: 1 process {reference_seconds:.0f} s (stages), 2 processes {seconds:.0f} s (launch)")
    print("\n".join(rows))
    assert reference_dir != run_dir


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
