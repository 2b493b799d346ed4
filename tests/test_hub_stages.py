"""Training stages that push themselves (recipe push_to_hub) and stages that start from `repo@revision`,
against the fake Hub API in tests/hub_server.py (real `huggingface_hub` client code over HTTP, no network)."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hub_constants
import pytest
import torch
import yaml
from datasets import Dataset
from hub_server import FakeHub, patch_endpoint, validate_card_metadata
from huggingface_hub import HfApi, ModelCard, get_hf_file_metadata, hf_hub_url, snapshot_download
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.hub import CheckpointPusher, HubTargets, RetryPolicy, push_stage_output
from r1_trl.models import TinyBaseSpec, random_tiny_model
from r1_trl.pipeline import load_plan, run_pipeline
from r1_trl.stages import distill, sft
from r1_trl.stages.common import publish_stage, resolve_model, stage_publisher, trainer_args

REPO = "tester/tiny-r1"
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01)
TINY_EVAL = {"eval_size": 4, "eval_num_samples": 1, "eval_max_new_tokens": 8}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return random_tiny_model(tmp_path_factory.mktemp("random-tiny"))


@pytest.fixture(scope="module")
def sft_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def pair(a: int, b: int) -> dict[str, Any]:
        answer = f"<think>\n{a} + {b} = {a + b}.\n</think>\n<answer>\n{a + b}\n</answer>"
        return {
            "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
            "completion": [{"role": "assistant", "content": answer}],
        }

    path = tmp_path_factory.mktemp("data") / "cold_start"
    Dataset.from_list([pair(1, 2), pair(3, 4), pair(5, 1)]).save_to_disk(str(path))
    return path


@pytest.fixture
def hub() -> Any:
    with FakeHub() as server, patch_endpoint(server.endpoint):
        yield server


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache for this test, online: downloads really go to the (fake) Hub."""
    home = tmp_path / "hf-home"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hub_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    return home


def _sft_config(output_dir: Path, model: Path, dataset: Path, **overrides: Any) -> sft.SFTStageConfig:
    fields: dict[str, Any] = {
        "output_dir": str(output_dir),
        "model_name_or_path": str(model),
        "sft_dataset": str(dataset),
        "stage_name": "cold-start-sft",
        "prompt_template": "chat",
        "use_cpu": True,
        "report_to": "none",
        "per_device_train_batch_size": 3,
        "learning_rate": 3e-3,
        "logging_steps": 1,
        "seed": 0,
        "torch_num_threads": 1,
        **TINY_EVAL,
    }
    fields.update(overrides)
    return sft.SFTStageConfig(**fields)


def _tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def _commit_paths(body: bytes) -> set[str]:
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    return {line["value"]["path"] for line in lines if line["key"] in ("file", "lfsFile")}


# ---- gap 1: a stage pushes its checkpoints itself ----------------------------------------------------------
def test_sft_stage_pushes_step_branches_in_the_background_and_the_final_checkpoint(
    hub: FakeHub, tmp_path: Path, tiny_model: Path, sft_dataset: Path
) -> None:
    output_dir = tmp_path / "cold-start-sft"
    config = _sft_config(
        output_dir,
        tiny_model,
        sft_dataset,
        max_steps=3,
        save_strategy="steps",
        save_steps=1,
        push_to_hub=True,
        hub_model_id=REPO,
        hub_push_attempts=3,
        hub_push_backoff=0.01,
    )
    hub.fail(r"/commit/cold-start-sft-step-1$", times=2, status=500)  # transient: retried
    # No step commit may complete before training has saved its last checkpoint: if saving waited for its
    # upload, training would never get there (the watcher gives up after 60 s and the test fails).
    released = threading.Event()
    hub.hold(r"/commit/cold-start-sft-step-", until=released)
    observed: dict[str, Any] = {}

    def release_once_training_is_past_all_saves() -> None:
        deadline = time.monotonic() + 60
        while not (output_dir / "checkpoint-3").is_dir() and time.monotonic() < deadline:
            time.sleep(0.01)
        observed["trained_to_the_end_while_pushes_were_held"] = (output_dir / "checkpoint-3").is_dir()
        observed["step_commits_done_by_then"] = [
            r.path for r in hub.requests_matching("POST", r"/commit/cold-start-sft-step-") if r.status == 200
        ]
        released.set()

    watcher = threading.Thread(target=release_once_training_is_past_all_saves, daemon=True)
    watcher.start()
    results = sft.run(config)
    watcher.join(timeout=5)

    assert observed == {"trained_to_the_end_while_pushes_were_held": True, "step_commits_done_by_then": []}
    step_refs = [f"{REPO}@cold-start-sft-step-{n}" for n in (1, 2, 3)]
    assert results["hub"] == {
        "model": f"{REPO}@cold-start-sft",
        "checkpoints": step_refs,
        "failed_checkpoints": [],
    }
    assert json.loads((output_dir / "results.json").read_text())["hub"] == results["hub"]
    statuses = [r.status for r in hub.requests_matching("POST", r"/commit/cold-start-sft-step-1$")]
    assert statuses == [500, 500, 200]

    assert hub.branches(REPO) == {"main", "cold-start-sft", *(ref.split("@")[1] for ref in step_refs)}
    for step in (1, 2, 3):
        files = hub.files(REPO, f"cold-start-sft-step-{step}")
        local = output_dir / f"checkpoint-{step}"
        assert files["model.safetensors"] == (local / "model.safetensors").read_bytes(), step
        assert json.loads(files["trainer_state.json"])["global_step"] == step
        assert "optimizer.pt" not in files and "tokenizer.json" in files
        assert (local / "optimizer.pt").is_file()  # the local checkpoint is complete and stays
    assert not list(output_dir.glob(".hub-push-*"))  # upload snapshots cleaned up

    final = hub.files(REPO, "cold-start-sft")
    checkpoint = output_dir / "checkpoint"
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert final[name] == (checkpoint / name).read_bytes(), name
    for name in ("results.json", "recipe.yaml", "curves.png"):
        assert final[name] == (output_dir / name).read_bytes(), name
    assert yaml.safe_load(final["recipe.yaml"])["push_to_hub"] is True  # the recipe keeps the switch
    card = ModelCard(final["README.md"].decode())
    assert validate_card_metadata(str(card), "model") == []
    assert {"r1-trl", "sft", "cold-start-sft"} <= set(card.data.tags)
    finite = {k: v for k, v in results["metrics"].items() if isinstance(v, float | int) and math.isfinite(v)}
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == finite
    assert "accuracy" in finite
    lineage = json.loads(final["manifest.json"])["stages"]["cold-start-sft"]
    assert lineage["status"] == "done" and lineage["checkpoint"] == "cold-start-sft/checkpoint"
    assert lineage["inputs"]["datasets"]["train"] == str(sft_dataset)

    # TRL's own push (output_dir to main on every save and on save_model) stayed off
    assert hub.requests_matching("POST", r"/commit/main$") == []
    assert set(hub.files(REPO, "main")) == {".gitattributes"}


def test_distill_stage_pushes_the_student_to_its_branch_and_nothing_to_main(
    hub: FakeHub, tmp_path: Path, tiny_model: Path
) -> None:
    student = random_tiny_model(
        tmp_path / "student",
        TinyBaseSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
    )
    output_dir = tmp_path / "distill"
    config = distill.DistillConfig(
        output_dir=str(output_dir), model_name_or_path=str(student), teacher_model=str(tiny_model),
        task_kwargs={"levels": [2]}, train_size=8, teacher_num_samples=1, teacher_max_new_tokens=8,
        per_device_train_batch_size=4, max_steps=2, learning_rate=1e-3, save_strategy="steps", save_steps=1,
        use_cpu=True, report_to="none", gradient_checkpointing=False, logging_steps=1, disable_tqdm=True, seed=3,
        torch_num_threads=1, push_to_hub=True, hub_model_id=REPO, hub_push_attempts=2, hub_push_backoff=0.01,
        **TINY_EVAL,
    )
    train, _ = build_prompt_datasets(PromptSpec.from_config(config))
    answers = {row["problem"]: row for row in train}

    def solving_teacher(prompts: list[Any]) -> list[list[str]]:
        rows = [next(row for problem, row in answers.items() if problem in prompt) for prompt in prompts]
        steps = ["\n".join(row["steps"]) for row in rows]
        return [[f" <think>\n{s}\n</think>\n<answer>\n{row['solution']}\n</answer>"] for s, row in zip(
            steps, rows, strict=True)]

    results = distill.run(config, sampler=solving_teacher)

    step_refs = [f"{REPO}@distill-step-{n}" for n in (1, 2)]
    assert results["hub"] == {"model": f"{REPO}@distill", "checkpoints": step_refs, "failed_checkpoints": []}
    assert json.loads((output_dir / "results.json").read_text())["hub"] == results["hub"]
    assert results["train"]["steps"] == 2
    assert hub.branches(REPO) == {"main", "distill", "distill-step-1", "distill-step-2"}
    for step in (1, 2):
        files = hub.files(REPO, f"distill-step-{step}")
        local = output_dir / f"checkpoint-{step}"
        assert files["model.safetensors"] == (local / "model.safetensors").read_bytes(), step
        assert json.loads(files["trainer_state.json"])["global_step"] == step and "optimizer.pt" not in files

    final = hub.files(REPO, "distill")
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert final[name] == (output_dir / "checkpoint" / name).read_bytes(), name
    for name in ("results.json", "recipe.yaml", "curves.png"):
        assert final[name] == (output_dir / name).read_bytes(), name
    assert yaml.safe_load(final["recipe.yaml"])["push_to_hub"] is True and config.push_to_hub is True
    card = ModelCard(final["README.md"].decode())
    assert validate_card_metadata(str(card), "model") == [] and {"r1-trl", "sft", "distill"} <= set(card.data.tags)
    finite = {k: v for k, v in results["metrics"].items() if isinstance(v, float | int) and math.isfinite(v)}
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == finite
    lineage = json.loads(final["manifest.json"])["stages"]["distill"]
    assert lineage["status"] == "done" and lineage["checkpoint"] == "distill/checkpoint"
    assert lineage["inputs"]["model"] == str(student)

    # TRL's own push stayed off, and the stage pushes no data itself (the teacher set goes with `r1-trl push`)
    assert hub.requests_matching("POST", r"/commit/main$") == []
    assert set(hub.files(REPO, "main")) == {".gitattributes"}
    assert not [r for r in hub.requests if "datasets" in r.path]
    assert (output_dir / "datasets" / "teacher" / "stats.json").is_file()


def test_a_final_push_that_fails_is_recorded_and_pushed_later(
    hub: FakeHub, tmp_path: Path, tiny_model: Path, sft_dataset: Path
) -> None:
    output_dir = tmp_path / "sft-2"
    config = _sft_config(
        output_dir, tiny_model, sft_dataset, stage_name="sft-2", push_to_hub=True, hub_model_id=REPO,
        hub_layout="repo", hub_push_attempts=3, hub_push_backoff=0.01,
    )
    random_tiny_model(output_dir / "checkpoint", seed=1)
    results: dict[str, Any] = {"stage": "sft-2", "metrics": {"accuracy": 0.25, "format_rate": float("nan")}}
    (output_dir / "results.json").write_text(json.dumps(results))
    before = {p.name: p.read_bytes() for p in (output_dir / "checkpoint").iterdir()}
    publisher = stage_publisher(config, "sft-2")
    assert publisher is not None
    hub.fail(r"/commit/", times=3, status=503)

    publish_stage(publisher, config, output_dir, results)

    assert results["hub"]["model"] is None and "after 3 attempts" in results["hub"]["error"]
    assert f"{REPO}-sft-2" in results["hub"]["error"]
    assert json.loads((output_dir / "results.json").read_text())["hub"] == results["hub"]
    assert {p.name: p.read_bytes() for p in (output_dir / "checkpoint").iterdir()} == before
    assert "model.safetensors" not in hub.files(f"{REPO}-sft-2", "main")

    # the outage is over: the same output directory pushes as it is (one repo per stage with hub_layout repo)
    publish_stage(publisher, config, output_dir, results)
    assert results["hub"] == {"model": f"{REPO}-sft-2@main", "checkpoints": [], "failed_checkpoints": []}
    pushed = hub.files(f"{REPO}-sft-2", "main")
    assert pushed["model.safetensors"] == before["model.safetensors"]
    card = ModelCard(pushed["README.md"].decode())
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"accuracy": 0.25}


def test_trainer_gets_trl_push_off_and_the_step_pusher() -> None:
    config = R1GRPOConfig(
        output_dir="/tmp/r1-trl-push", use_cpu=True, report_to="none", per_device_train_batch_size=4,
        num_generations=2, push_to_hub=True, hub_model_id=REPO,
    )
    publisher = stage_publisher(config, "r1-zero")
    assert publisher is not None
    args = trainer_args(config, publisher)
    assert args.push_to_hub is False and config.push_to_hub is True
    assert args.hub_model_id == REPO and args.output_dir == config.output_dir
    assert [type(c) for c in publisher.callbacks()] == [CheckpointPusher]

    config.hub_push_checkpoints = False
    assert stage_publisher(config, "r1-zero").callbacks() == []  # type: ignore[union-attr]
    config.push_to_hub = False
    assert stage_publisher(config, "r1-zero") is None
    assert trainer_args(config, None) is config


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"push_to_hub": True}, "hub_model_id"),
        ({"push_to_hub": True, "hub_model_id": "no-owner"}, "hub_model_id"),
        ({"push_to_hub": True, "hub_model_id": REPO, "hub_revision": "dev"}, "hub_revision"),
        ({"hub_push_attempts": 0}, "hub_push_attempts"),
        ({"hub_push_backoff": -1.0}, "hub_push_backoff"),
    ],
)
def test_bad_push_fields_name_the_field(overrides: dict[str, Any], field_name: str) -> None:
    base = {"output_dir": "/tmp/r1-trl-push", "use_cpu": True, "report_to": "none",
            "per_device_train_batch_size": 4, "num_generations": 2}
    with pytest.raises(RecipeError, match=f"^{field_name}:"):
        R1GRPOConfig(**base, **overrides)


# ---- gap 2: the next stage starts from repo@revision -------------------------------------------------------
def _push_earlier_stage(tmp_path: Path, seed: int) -> Path:
    """A finished cold-start SFT stage (a tiny model of its own) pushed to branch `cold-start-sft`."""
    stage_dir = tmp_path / "earlier" / "cold-start-sft"
    random_tiny_model(stage_dir / "checkpoint", seed=seed)
    (stage_dir / "results.json").write_text(json.dumps({"metrics": {"accuracy": 0.0}}))
    ref = push_stage_output(
        stage_dir, "cold-start-sft", HubTargets(REPO, retry=FAST_RETRY), entry={"inputs": {"model": "tiny"}}
    )
    assert ref == f"{REPO}@cold-start-sft"
    return stage_dir / "checkpoint"


def test_a_pushed_revision_downloads_like_from_the_hub(hub: FakeHub, tmp_path: Path, hf_home: Path) -> None:
    pushed = _push_earlier_stage(tmp_path, seed=3)
    head = hub.history(REPO, "cold-start-sft")[0].oid
    weights = (pushed / "model.safetensors").read_bytes()

    with pytest.raises(ValueError, match="model_revision"):
        resolve_model(f"{REPO}@cold-start-sft", "main")

    info = HfApi().model_info(REPO, revision="cold-start-sft", files_metadata=True)
    assert info.sha == head
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    metadata = get_hf_file_metadata(hf_hub_url(REPO, "model.safetensors", revision="cold-start-sft"))
    assert (metadata.commit_hash, metadata.etag, metadata.size) == (
        head, hashlib.sha256(weights).hexdigest(), len(weights)
    )

    snapshot = Path(snapshot_download(REPO, revision="cold-start-sft"))
    assert snapshot == hf_home / "hub" / "models--tester--tiny-r1" / "snapshots" / head
    for path in pushed.iterdir():
        assert (snapshot / path.name).read_bytes() == path.read_bytes(), path.name
    assert (snapshot / "model.safetensors").resolve().name == hashlib.sha256(weights).hexdigest()
    # what the stages do with 'repo@revision': that snapshot, a local folder (nothing can fall back to main)
    assert resolve_model(f"{REPO}@cold-start-sft") == (str(snapshot), None)
    assert resolve_model(REPO, "cold-start-sft") == (str(snapshot), None)
    assert resolve_model(f"{REPO}@{head}") == (str(snapshot), None)

    model = AutoModelForCausalLM.from_pretrained(REPO, revision="cold-start-sft")
    assert _tensors_equal(model.state_dict(), AutoModelForCausalLM.from_pretrained(pushed).state_dict())
    text = "What is 3 + 4? <think>"
    assert AutoTokenizer.from_pretrained(REPO, revision="cold-start-sft")(text)["input_ids"] == (
        AutoTokenizer.from_pretrained(pushed)(text)["input_ids"]
    )
    with pytest.raises((OSError, ValueError)):
        AutoModelForCausalLM.from_pretrained(REPO)  # main has no model: the revision is what counts


def test_pipeline_stage_starts_from_a_pushed_revision_and_pushes_once(
    hub: FakeHub, tmp_path: Path, hf_home: Path, tiny_model: Path
) -> None:
    pushed = _push_earlier_stage(tmp_path, seed=5)
    start = f"{REPO}@cold-start-sft"
    recipe = {
        "model_name_or_path": "tiny",  # replaced by the pipeline's `set`
        "dataset_name": "arithmetic",
        "train_size": 8,
        **TINY_EVAL,
        "prompt_template": "r1_zero",
        "reward_funcs": ["accuracy", "format"],
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "use_cpu": True,
        "bf16": False,
        "torch_num_threads": 1,
        "report_to": "none",
        "push_to_hub": True,
        "hub_model_id": REPO,
        "hub_push_attempts": 2,
        "hub_push_backoff": 0.01,
    }
    (tmp_path / "reasoning_rl.yaml").write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    pipeline = {
        "run_dir": str(run_dir),
        "stages": [{"stage": "reasoning-rl", "recipe": "reasoning_rl.yaml", "set": {"model_name_or_path": start}}],
        "push": {"enabled": True, "repo_id": REPO},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    hub.fail(r"/commit/reasoning-rl-step-1$", times=100, status=503)  # this step never makes it

    manifest = run_pipeline(load_plan(tmp_path / "pipeline.yaml"))

    entry = manifest["stages"]["reasoning-rl"]
    assert entry["status"] == "done" and entry["inputs"]["model_name_or_path"] == start
    stage_dir = run_dir / "reasoning-rl"
    results = json.loads((stage_dir / "results.json").read_text())
    assert results["train"]["steps"] == 2

    # the start weights came from the Hub revision into this test's empty cache, and are the pushed ones
    head = hub.history(REPO, "cold-start-sft")[0].oid
    snapshot = hf_home / "hub" / "models--tester--tiny-r1" / "snapshots" / head
    assert results["start_model_path"] == str(snapshot)
    pushed_weights = load_file(pushed / "model.safetensors")
    assert _tensors_equal(load_file(snapshot / "model.safetensors"), pushed_weights)
    assert hub.requests_matching("GET", r"^/_lfs/"), "weights should have been downloaded from the Hub"
    # ... and training started from them, not from another model of the same shape
    trained = load_file(stage_dir / "checkpoint" / "model.safetensors")
    other = load_file(tiny_model / "model.safetensors")

    def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return sum((a[name] - b[name]).abs().sum().item() for name in a)

    assert distance(trained, pushed_weights) < 0.1 * distance(other, pushed_weights)

    # step 1 failed for good (recorded, local checkpoint intact); step 2 and the final checkpoint are on the Hub
    assert results["hub"] == {
        "model": f"{REPO}@reasoning-rl",
        "checkpoints": [f"{REPO}@reasoning-rl-step-2"],
        "failed_checkpoints": [f"{REPO}@reasoning-rl-step-1"],
    }
    assert [r.status for r in hub.requests_matching("POST", r"/commit/reasoning-rl-step-1$")] == [503, 503]
    assert "model.safetensors" not in hub.files(REPO, "reasoning-rl-step-1")
    assert (stage_dir / "checkpoint-1" / "model.safetensors").is_file()
    step_2 = hub.files(REPO, "reasoning-rl-step-2")
    assert step_2["model.safetensors"] == (stage_dir / "checkpoint-2" / "model.safetensors").read_bytes()

    # both the stage and the pipeline push the stage to the same revision: the weights travel once, the
    # pipeline's commit only brings what changed (its manifest and the card made from it)
    stage_commit, pipeline_commit = [
        i for i, r in enumerate(hub.requests)
        if r.method == "POST" and r.path == f"/api/models/{REPO}/commit/reasoning-rl" and r.status == 200
    ]
    assert {"model.safetensors", "config.json"} <= _commit_paths(hub.requests[stage_commit].body)
    assert _commit_paths(hub.requests[pipeline_commit].body) <= {"README.md", "manifest.json", "results.json"}
    # the pipeline's push also brings the stage's generated set (its evaluation details) to the dataset repo:
    # those parquet files are the only large objects uploaded after the stage's own push
    data = hub.files(f"{REPO}-datasets", "reasoning-rl", "dataset")
    assert "eval_details/train-00000-of-00001.parquet" in data
    data_objects = {hashlib.sha256(content).hexdigest() for path, content in data.items() if path.endswith(".parquet")}
    uploads = {r.path.removeprefix("/_lfs/") for r in hub.requests[stage_commit:]
               if r.method == "PUT" and r.path.startswith("/_lfs/")}
    assert uploads <= data_objects
    final = hub.files(REPO, "reasoning-rl")
    assert final["model.safetensors"] == (stage_dir / "checkpoint" / "model.safetensors").read_bytes()
    assert json.loads(final["manifest.json"]) == json.loads((run_dir / "manifest.json").read_text())
    card = ModelCard(final["README.md"].decode())
    assert card.data.base_model == REPO and "cold-start-sft" in card.text
    assert hub.requests_matching("POST", r"/commit/main$") == []
