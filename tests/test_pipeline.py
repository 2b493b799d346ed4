"""Pipeline runner: plan validation, manifest, skip finished stages, --from, kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from r1_trl.models import random_tiny_model
from r1_trl.pipeline import load_plan, run_pipeline, summary_table

REPO = Path(__file__).resolve().parents[1]
TINY_R1_ZERO = REPO / "recipes" / "tiny" / "r1_zero.yaml"


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    return random_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def write_pipeline(tmp_path, model, max_steps=2, extra=None):
    recipe = yaml.safe_load(TINY_R1_ZERO.read_text())
    recipe.update({"model_name_or_path": str(model), "max_steps": max_steps, "train_size": 64, "eval_size": 8,
                   "eval_num_samples": 2, "per_device_train_batch_size": 8, "num_generations": 4,
                   "max_completion_length": 16, "eval_max_new_tokens": 16, **(extra or {})})
    (tmp_path / "r1_zero.yaml").write_text(yaml.safe_dump(recipe))
    pipeline = {"run_dir": str(tmp_path / "run"), "seed": 3, "stages": [{"stage": "r1-zero", "recipe": "r1_zero.yaml"}]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    return path


def test_plan_errors_name_the_key(tmp_path):
    (tmp_path / "r.yaml").write_text("model_name_or_path: tiny\n")
    bad = {
        "unknown stage": ({"stages": [{"stage": "r2", "recipe": "r.yaml"}]}, "stages\\[0\\].stage"),
        "missing recipe": ({"stages": [{"stage": "r1-zero", "recipe": "nope.yaml"}]}, "stages\\[0\\].recipe"),
        "forward reference": (
            {"stages": [{"stage": "r1-zero", "recipe": "r.yaml", "set": {"model_name_or_path": "@distill/checkpoint"}}]},
            "stages\\[0\\].set.model_name_or_path",
        ),
    }
    for name, (content, pattern) in bad.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(yaml.safe_dump(content))
        with pytest.raises(ValueError, match=pattern):
            load_plan(path)


def test_run_writes_manifest_and_skips_finished_stages(tmp_path, random_model, capsys):
    plan = load_plan(write_pipeline(tmp_path, random_model))
    manifest = run_pipeline(plan)
    entry = manifest["stages"]["r1-zero"]
    assert entry["status"] == "done" and entry["checkpoint"] == "r1-zero/checkpoint"
    assert entry["seed"] == 3 and entry["config"]["max_steps"] == 2
    assert set(entry["metrics"]) >= {"accuracy", "format_rate", "mean_length"}
    assert entry["timings"]["seconds"] > 0
    on_disk = json.loads((plan.run_dir / "manifest.json").read_text())
    assert on_disk["stages"]["r1-zero"]["status"] == "done"
    assert "r1-zero" in summary_table(on_disk)

    mtime = (plan.run_dir / "r1-zero" / "results.json").stat().st_mtime
    run_pipeline(plan)
    assert "done, skipped" in capsys.readouterr().out
    assert (plan.run_dir / "r1-zero" / "results.json").stat().st_mtime == mtime

    run_pipeline(plan, from_stage="r1-zero")
    assert (plan.run_dir / "r1-zero" / "results.json").stat().st_mtime > mtime


@pytest.mark.slow
def test_killed_stage_resumes_from_its_last_checkpoint(tmp_path, random_model):
    path = write_pipeline(tmp_path, random_model, max_steps=8,
                          extra={"save_strategy": "steps", "save_steps": 2, "logging_steps": 1})
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "r1_trl.cli", "pipeline", "--config", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run_dir / "r1-zero" / "checkpoint-4").is_dir():
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint-4 within 300 s"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["r1-zero"]["status"] == "running"
    assert not (run_dir / "r1-zero" / "checkpoint").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "r1-zero: running (resuming)" in resumed.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    entry = manifest["stages"]["r1-zero"]
    assert entry["status"] == "done" and entry["resumed"] is True
    results = json.loads((run_dir / "r1-zero" / "results.json").read_text())
    assert results["train"]["steps"] == 8
    logged_steps = [row["step"] for row in results["log_history"] if "loss" in row]
    assert logged_steps == sorted(set(logged_steps)), "resumed run repeated steps"
    assert min(logged_steps) <= 4 < max(logged_steps)


def test_a_checkpoint_cut_off_while_saving_is_skipped_on_resume(tmp_path):
    from r1_trl.stages.common import last_checkpoint

    assert last_checkpoint(tmp_path / "missing") is None
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12").mkdir()  # killed mid-save: weights maybe, no trainer state yet
    (tmp_path / "checkpoint-12" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "checkpoint-final-notes").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric order, not lexical
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-12")
