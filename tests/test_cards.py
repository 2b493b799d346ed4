"""Card metrics: the manifest's metrics checked against the stage's results.json (r1_trl.cards.stage_metrics)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard

from r1_trl import cards
from r1_trl.hub import HubTargets, push_stage
from r1_trl.models import random_tiny_model

NAN = float("nan")


def _run_dir(tmp_path: Path, manifest_metrics: dict[str, Any], result_metrics: dict[str, Any]) -> Path:
    """A run with one finished SFT stage; both files go through JSON like the pipeline writes them."""
    run_dir = tmp_path / "run"
    stage_dir = run_dir / "sft-2"
    stage_dir.mkdir(parents=True)
    (stage_dir / "results.json").write_text(json.dumps({"metrics": result_metrics, "before": {"accuracy": 0.1}}))
    manifest = {
        "run_id": "nan-run",
        "stages": {
            "sft-2": {
                "status": "done",
                "output_dir": "sft-2",
                "checkpoint": "sft-2/checkpoint",
                "inputs": {"model": "tiny"},
                "metrics": manifest_metrics,
            }
        },
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def _entry(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "manifest.json").read_text())["stages"]["sft-2"]


def test_a_nan_metric_in_both_files_is_not_a_contradiction(tmp_path: Path) -> None:
    metrics = {"accuracy": 0.5, "language_consistency": NAN, "per_level": {"2": 0.5, "3": NAN}}
    run_dir = _run_dir(tmp_path, metrics, metrics)

    merged, before = cards.stage_metrics(run_dir, "sft-2", _entry(run_dir))

    assert merged["accuracy"] == 0.5 and math.isnan(merged["language_consistency"])
    assert math.isnan(merged["per_level"]["3"]) and before == {"accuracy": 0.1}
    assert cards.numeric_metrics(merged) == {"accuracy": 0.5}  # NaN stays out of model-index


@pytest.mark.parametrize(
    ("manifest_value", "result_value"),
    [(NAN, 0.5), (0.5, NAN), (0.5, 0.25), ({"3": NAN}, {"3": 0.5}), (NAN, None), (NAN, "nan")],
)
def test_a_nan_against_anything_else_is_still_a_contradiction(
    tmp_path: Path, manifest_value: Any, result_value: Any
) -> None:
    run_dir = _run_dir(tmp_path, {"accuracy": manifest_value}, {"accuracy": result_value})
    with pytest.raises(ValueError, match="contradict"):
        cards.stage_metrics(run_dir, "sft-2", _entry(run_dir))


def test_a_stage_with_a_nan_metric_pushes_with_a_card_that_leaves_it_out(tmp_path: Path) -> None:
    metrics = {"accuracy": 0.5, "format_rate": 1.0, "language_consistency": NAN}
    run_dir = _run_dir(tmp_path, metrics, metrics)
    random_tiny_model(run_dir / "sft-2" / "checkpoint")

    # the files a real push would commit
    ref = push_stage(run_dir, "sft-2", HubTargets("tester/tiny-r1"), no_push=True)

    assert ref == "tester/tiny-r1@sft-2"
    card = ModelCard((run_dir / "hub" / "models" / "tester" / "tiny-r1" / "sft-2" / "README.md").read_text())
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"accuracy": 0.5, "format_rate": 1.0}
