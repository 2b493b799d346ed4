"""``r1-trl demo``: the offline end-to-end demonstration on the built-in tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages.common import CURVES_FILE, RESULTS_FILE

R1_ZERO_RECIPE = "tiny/r1_zero.yaml"
PIPELINE_RECIPE = "tiny/pipeline.yaml"
PIPELINE_CURVES = "pipeline_curves.png"


def before_after_table(results: dict[str, Any]) -> str:
    before, after = results["before"], results["after"]
    rows = [("held-out accuracy (pass@1)", "accuracy"), ("format rate", "format_rate"),
            ("mean completion length", "mean_length")]
    rows += [(key, key) for key in after if key.startswith(("pass@", "cons@")) and "/" not in key and key != "pass@1"]
    rows += [(key, key) for key in after if key.startswith("general/") and key.count("/") == 1]
    if "language_consistency" in after:
        rows.append(("language consistency", "language_consistency"))
    lines = [f"{'metric':<28}{'before':>10}{'after':>10}"]
    lines += [f"{label:<28}{before.get(key, float('nan')):>10.3f}{after[key]:>10.3f}" for label, key in rows]
    train = results.get("train", {})
    if train.get("mean_completion_length_first") is not None:
        lines.append(
            f"mean completion length over training: {train['mean_completion_length_first']:.1f} -> "
            f"{train['mean_completion_length_last']:.1f} tokens ({train['steps']} steps, {train['seconds']:.0f} s)"
        )
    return "\n".join(lines)


def run_r1_zero_demo(output_dir: str | Path, max_steps: int | None = None) -> dict[str, Any]:
    from r1_trl.stages import r1_zero

    overrides = ["--output_dir", str(output_dir)]
    if max_steps is not None:
        overrides += ["--max_steps", str(max_steps)]
    config = load_recipe(recipe_path(R1_ZERO_RECIPE), overrides)
    results = r1_zero.run(config)
    print(before_after_table(results))
    print(f"results: {Path(output_dir) / RESULTS_FILE}\nplot:    {Path(output_dir) / CURVES_FILE}")
    compact = {k: results[k] for k in ("before", "after", "train")}
    print(json.dumps(compact, indent=2))
    return results


def run_pipeline_demo(output_dir: str | Path) -> dict[str, Any]:
    """The whole R1 pipeline on the tiny model; prints the per-stage table and writes one PNG of curves."""
    from r1_trl.pipeline import load_plan, run_pipeline, summary_table
    from r1_trl.plotting import plot_pipeline_curves

    plan = load_plan(recipe_path(PIPELINE_RECIPE), run_dir=output_dir)
    manifest = run_pipeline(plan)
    print(summary_table(manifest))
    curves = plot_pipeline_curves(plan.run_dir, manifest, plan.run_dir / PIPELINE_CURVES)
    print(f"manifest: {plan.run_dir / 'manifest.json'}\nplot:     {curves}")
    return manifest
