"""Reward/accuracy curves from a trainer's log history, as one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from r1_trl.rundir import RESULTS_FILE  # noqa: E402


def save_figure(figure: Any, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a figure; returns the path."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def accuracy_bars(axis: Any, bars: dict[str, float]) -> None:
    """Held-out accuracies as labelled bars on ``axis`` (0 to 1)."""
    axis.bar(list(bars), list(bars.values()), color="tab:blue")
    for x, value in enumerate(bars.values()):
        axis.text(x, value, f"{value:.3f}", ha="center", va="bottom")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("held-out accuracy (pass@1)")


def series(log_history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(row["step"], row[key]) for row in log_history
              if "step" in row and isinstance(row.get(key), int | float) and math.isfinite(row[key])]
    return [float(s) for s, _ in points], [float(v) for _, v in points]


def plot_training_curves(
    log_history: Sequence[dict[str, Any]],
    path: str | Path,
    title: str,
    held_out: dict[str, dict[str, float]] | None = None,
) -> Path:
    """Left: every ``rewards/*/mean`` and the total reward per step, plus held-out accuracy points.
    Right: mean completion length per step."""
    figure, (rewards_axis, length_axis) = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({k for row in log_history for k in row if k.startswith("rewards/") and k.endswith("/mean")})
    for key in ["reward", *keys]:
        steps, values = series(log_history, key)
        if steps:
            rewards_axis.plot(steps, values, label=key.removeprefix("rewards/").removesuffix("/mean"))
    steps, values = series(log_history, "eval/accuracy")
    if steps:
        rewards_axis.plot(steps, values, "o--", label="held-out accuracy")
    if held_out:
        last_step = max((row.get("step", 0) for row in log_history), default=0)
        for label, x, marker in (("before", 0, "s"), ("after", last_step, "D")):
            if label in held_out:
                rewards_axis.plot([x], [held_out[label]["accuracy"]], marker, color="black",
                                  label=f"held-out accuracy {label}")
    rewards_axis.set_xlabel("step")
    rewards_axis.set_ylabel("reward / accuracy")
    rewards_axis.set_title(title)
    rewards_axis.legend(fontsize=8)
    rewards_axis.grid(alpha=0.3)
    steps, values = series(log_history, "completions/mean_length")
    length_axis.plot(steps, values, color="tab:purple")
    length_axis.set_xlabel("step")
    length_axis.set_ylabel("mean completion length (tokens)")
    length_axis.set_title("completion length")
    length_axis.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_pipeline_curves(run_dir: str | Path, manifest: dict[str, Any], path: str | Path) -> Path:
    """One panel per stage that logged rewards: its reward components and completion length over steps."""
    import json

    histories = []
    for stage, entry in manifest["stages"].items():
        results = Path(run_dir) / entry.get("output_dir", stage) / RESULTS_FILE
        if results.is_file():
            history = json.loads(results.read_text()).get("log_history") or []
            if any("reward" in row for row in history):
                histories.append((stage, history))
    columns = max(1, len(histories))
    figure, axes = plt.subplots(1, columns, figsize=(4.5 * columns, 3.8), squeeze=False)
    for axis, (stage, history) in zip(axes[0], histories, strict=False):
        keys = sorted({k for row in history for k in row if k.startswith("rewards/") and k.endswith("/mean")})
        for key in ["reward", *keys]:
            steps, values = series(history, key)
            axis.plot(steps, values, label=key.removeprefix("rewards/").removesuffix("/mean"))
        axis.set_title(stage)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("reward")
    return save_figure(figure, path, dpi=90)
