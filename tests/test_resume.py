"""Resuming a killed stage: the run says where it resumes from, skips and cleans checkpoints a kill cut off while
saving, and pushes checkpoints whose Hub push a kill interrupted; the rerun finishes with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from hub_server import FakeHub

from r1_trl.models import load_or_build_tiny_base
from r1_trl.rundir import checkpoint_problem, complete_checkpoints, last_checkpoint

REPO = Path(__file__).resolve().parents[1]
SFT_RECIPE = REPO / "recipes" / "tiny" / "cold_start_sft.yaml"
HUB_REPO = "tester/resume"


def write_checkpoint(folder: Path, step: int, state: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if state is None:
        state = json.dumps({"global_step": step, "max_steps": 10})
    (folder / "trainer_state.json").write_text(state)
    return folder


def test_incomplete_checkpoints_are_named_skipped_and_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_checkpoint(tmp_path / "checkpoint-2", 2)
    missing = tmp_path / "checkpoint-4"
    missing.mkdir()
    empty = write_checkpoint(tmp_path / "checkpoint-6", 6, state="")
    truncated = write_checkpoint(tmp_path / "checkpoint-8", 8, state='{"global_step": 8, "log_hist')
    leftover = write_checkpoint(tmp_path / "checkpoint-10", 10)
    (leftover / ".tmp_model.safetensors").write_bytes(b"half")
    assert checkpoint_problem(tmp_path / "checkpoint-2") is None
    assert "no trainer_state.json" in checkpoint_problem(missing)
    assert "empty or truncated" in checkpoint_problem(empty) and "empty or truncated" in checkpoint_problem(truncated)
    assert ".tmp_model.safetensors" in checkpoint_problem(leftover)
    assert complete_checkpoints(tmp_path) == [str(tmp_path / "checkpoint-2")]

    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")  # without removal: all stay
    assert all(path.is_dir() for path in (missing, empty, truncated, leftover))
    with caplog.at_level("WARNING"):
        assert last_checkpoint(tmp_path, remove_incomplete=True) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert "skipping the incomplete checkpoint-10" in caplog.text and "removing it" in caplog.text


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def row(a: int, b: int) -> dict[str, Any]:
        answer = f"<think>\n{a} + {b} = {a + b}.\n</think>\n<answer>\n{a + b}\n</answer>"
        return {"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                "completion": [{"role": "assistant", "content": answer}]}  # fmt: skip

    path = tmp_path_factory.mktemp("data") / "pairs"
    Dataset.from_list([row(a, b) for a in range(1, 5) for b in range(1, 5)]).save_to_disk(str(path))
    return path


def sft_command(output_dir: Path, data: Path, max_steps: int, save_steps: int, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "r1_trl.cli", "sft", "--config", str(SFT_RECIPE), "--sft_dataset", str(data),
            "--model_name_or_path", str(load_or_build_tiny_base()), "--output_dir", str(output_dir),
            "--max_steps", str(max_steps), "--save_strategy", "steps", "--save_steps", str(save_steps),
            "--logging_steps", "1", "--per_device_train_batch_size", "4", "--warmup_steps", "0",
            "--eval_size", "4", "--eval_num_samples", "1", "--eval_max_new_tokens", "8", *extra]  # fmt: skip


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def assert_finished_without_loss(output_dir: Path, max_steps: int) -> dict[str, Any]:
    results = json.loads((output_dir / "results.json").read_text())
    assert results["train"]["steps"] == max_steps
    steps = [row["step"] for row in results["log_history"] if "loss" in row]
    assert steps == sorted(set(steps)) and steps[-1] == max_steps  # no repeated steps, trained to the end
    assert (output_dir / "checkpoint" / "model.safetensors").is_file()
    assert all(checkpoint_problem(path) is None for path in output_dir.glob("checkpoint-*"))
    assert not list(output_dir.glob(".hub-push-*"))
    return results


@pytest.mark.slow
def test_stage_killed_while_saving_resumes_from_the_last_complete_checkpoint(tmp_path: Path, sft_data: Path) -> None:
    output_dir = tmp_path / "sft"
    command = sft_command(output_dir, sft_data, max_steps=40, save_steps=10)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    cut: Path | None = None
    while cut is None:  # kill as soon as checkpoint-20 appears: mid-save, or just after it
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint-20 within 300 s"
        if (output_dir / "checkpoint-20").is_dir():
            cut = output_dir / "checkpoint-20"
        time.sleep(0.002)
    kill_group(process)
    # What a kill mid-save leaves (if this kill came after the save, make it so): no or a truncated trainer
    # state, and a temporary file of the weights write.
    state = cut / "trainer_state.json"
    if state.is_file():
        state.write_text(state.read_text()[:40])
    (cut / ".tmpa1b2c3").write_bytes(b"\0" * 1000)
    assert checkpoint_problem(cut) is not None and not (output_dir / "checkpoint").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipping the incomplete checkpoint-20" in resumed.stderr
    assert "resuming from checkpoint-10 (step 10 of 40)" in resumed.stdout
    assert_finished_without_loss(output_dir, 40)
    assert checkpoint_problem(cut) is None  # saved again, completely, by the rerun


@pytest.mark.slow
def test_stage_killed_during_a_hub_push_pushes_it_on_the_rerun(tmp_path: Path, sft_data: Path) -> None:
    output_dir = tmp_path / "cold-start-sft"
    command = sft_command(output_dir, sft_data, max_steps=6, save_steps=2, extra=(
        "--push_to_hub", "true", "--hub_model_id", HUB_REPO, "--hub_push_backoff", "0.01"))  # fmt: skip
    with FakeHub() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf")}
        env.pop("HF_HUB_OFFLINE", None)
        never = threading.Event()
        hub.hold(r"/commit/cold-start-sft-step-2$", until=never, timeout=120, then_status=503, times=1)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 300
        while not any(path.endswith("/commit/cold-start-sft-step-2") for path in hub.held):
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the push of checkpoint-2 never started"
            time.sleep(0.05)
        kill_group(process)  # while checkpoint-2's upload is in flight
        never.set()  # the held upload now fails: its client is gone
        if "cold-start-sft-step-2" in hub.branches(HUB_REPO):  # created before the commit that never came
            assert "trainer_state.json" not in hub.files(HUB_REPO, "cold-start-sft-step-2")

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resuming from checkpoint-" in resumed.stdout
        assert "checkpoint-2 was saved but its push did not finish; pushing it now" in resumed.stderr
        results = assert_finished_without_loss(output_dir, 6)
        assert hub.branches(HUB_REPO) >= {"cold-start-sft", *(f"cold-start-sft-step-{n}" for n in (2, 4, 6))}
        assert results["hub"]["failed_checkpoints"] == [] and "error" not in results["hub"]
        for step in (2, 4, 6):
            pushed = hub.files(HUB_REPO, f"cold-start-sft-step-{step}")
            local = output_dir / f"checkpoint-{step}"
            assert pushed["model.safetensors"] == (local / "model.safetensors").read_bytes(), step
            assert json.loads(pushed["trainer_state.json"])["global_step"] == step
        final = hub.files(HUB_REPO, "cold-start-sft")
        assert final["model.safetensors"] == (output_dir / "checkpoint" / "model.safetensors").read_bytes()
