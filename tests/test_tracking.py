"""Held-out metrics reach the user's tracker through the trainer's logging (trackio offline here), and the console
shows one compact line per logging step instead of the metrics dict."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from r1_trl.console import CompactPrinter, CompactProgress, compact_line

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny" / "r1_zero.yaml"


def tracked_metrics(store: Path) -> dict[int, dict[str, float]]:
    """step -> metrics, as trackio stored them in its local database (one .db per project)."""
    (database,) = store.glob("*.db")
    by_step: dict[int, dict[str, float]] = {}
    with sqlite3.connect(database) as connection:
        for step, metrics in connection.execute("SELECT step, metrics FROM metrics"):
            by_step.setdefault(step, {}).update(json.loads(metrics))
    return by_step


@pytest.mark.skipif(__import__("importlib").util.find_spec("trackio") is None, reason="the tracking extra")
def test_offline_trackio_run_records_the_held_out_metrics(tmp_path: Path) -> None:
    output_dir, store = tmp_path / "run", tmp_path / "trackio"
    env = {**os.environ, "TRACKIO_DIR": str(store), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "r1_trl.cli", "grpo", "--config", str(RECIPE), "--max_steps", "4", "--eval_size", "8",
         "--eval_every_steps", "2", "--logging_steps", "1", "--report_to", "trackio", "--project", "r1-test",
         "--output_dir", str(output_dir)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    history = json.loads((output_dir / "results.json").read_text())["log_history"]
    held_out = {row["step"]: row["eval/accuracy"] for row in history if "eval/accuracy" in row}
    assert sorted(held_out) == [2, 4]
    tracked = tracked_metrics(store)
    # transformers' tracker callbacks prefix training-time keys with "train/"
    assert {step: tracked[step]["train/eval/accuracy"] for step in held_out} == pytest.approx(held_out)
    assert all("train/rewards/accuracy/mean" in tracked[step] for step in (1, 2, 3, 4))

    console = completed.stdout + completed.stderr
    assert "step 2/4 | loss " in console and "| held-out accuracy " in console
    assert "{'loss'" not in console and "'rewards/accuracy/mean'" not in console  # no raw metrics dict


def test_trainers_replace_the_dict_printers(tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback

    from r1_trl.models import load_or_build_tiny_base
    from r1_trl.stages.sft import SFTStageConfig
    from r1_trl.trainers import R1SFTTrainer

    base = load_or_build_tiny_base()
    data = Dataset.from_list([{"prompt": "1 + 1 =", "completion": " 2"}])
    for disable_tqdm, expected, replaced in ((False, CompactProgress, ProgressCallback), (True, CompactPrinter, PrinterCallback)):
        config = SFTStageConfig(output_dir=str(tmp_path), sft_dataset=str(tmp_path), use_cpu=True, report_to="none",
                                disable_tqdm=disable_tqdm, max_steps=1)  # fmt: skip
        trainer = R1SFTTrainer(model=str(base), args=config, train_dataset=data,
                               processing_class=AutoTokenizer.from_pretrained(base))  # fmt: skip
        kinds = [type(callback) for callback in trainer.callback_handler.callbacks]
        assert expected in kinds and replaced not in kinds


def test_compact_line_summarises_sft_and_the_end_of_training() -> None:
    assert compact_line({"loss": 1.5, "mean_token_accuracy": 0.75, "learning_rate": 0.003, "epoch": 2.0}, 5, 0) == (
        "step 5 | loss 1.5 | token_acc 0.75 | lr 0.003")
    assert compact_line({"train_runtime": 12.5, "train_loss": 0.5, "epoch": 1.0}, 10, 10) == (
        "done: 10 steps in 12.5 s | mean loss 0.5")
    assert compact_line({"epoch": 1.0}, 3, 10) is None
