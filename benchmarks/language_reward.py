"""The paper's language-consistency ablation in the tiny world: reasoning RL with and without the reward.

Runs the ``reasoning-rl`` stage (recipes/tiny/reasoning_rl.yaml) from the same start checkpoint twice per
seed, once with the recipe's reward weights and once with the language-consistency weight set to 0 (the
reward is still computed and logged, it just no longer moves the advantages), so both runs see the same
prompts, seed, steps and held-out set. Prints before / with / without side by side and writes
``summary.md``, ``summary.json`` and ``language_curves.png`` (the logged language reward per step) to
``--run-dir``.

    PYTHONPATH=. python benchmarks/language_reward.py --start runs/tiny/cold-start-sft/checkpoint \\
        --run-dir /tmp/language-bench --seeds 42 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from r1_trl.plotting import plt, save_figure, series
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import reasoning_rl

RECIPE = "tiny/reasoning_rl.yaml"
LANGUAGE_REWARD = "language_consistency"
METRICS = ("accuracy", "accuracy/en", "accuracy/zh", "language_consistency", "language_consistency/en",
           "language_consistency/zh", "format_rate", "mean_length")
CURVE_KEY = f"rewards/{LANGUAGE_REWARD}/mean"


def weights_without_language(config: Any) -> list[float]:
    names = list(config.reward_funcs)
    if LANGUAGE_REWARD not in names:
        raise SystemExit(f"{RECIPE} has no {LANGUAGE_REWARD} reward to ablate (reward_funcs: {names})")
    weights = list(config.reward_weights or [1.0] * len(names))
    weights[names.index(LANGUAGE_REWARD)] = 0.0
    return weights


def run_arm(start: str, run_dir: Path, seed: int, arm: str, extra: list[str]) -> dict[str, Any]:
    args = ["--model_name_or_path", start, "--seed", str(seed), "--output_dir", str(run_dir / f"seed{seed}" / arm),
            *extra]
    config = load_recipe(recipe_path(RECIPE), args)
    if arm == "without":
        config.reward_weights = weights_without_language(config)
    results = reasoning_rl.run(config)
    curve = list(zip(*series(results["log_history"], CURVE_KEY), strict=True))
    return {"seed": seed, "arm": arm, "weights": list(config.reward_weights), "before": results["before"],
            "after": results["after"], "curve": curve, "seconds": results["train"]["seconds"]}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| seed | metric | before | with language reward | without | with - without |", "|---|---|---|---|---|---|"]
    for seed in sorted({row["seed"] for row in rows}):
        arms = {row["arm"]: row for row in rows if row["seed"] == seed}
        if set(arms) != {"with", "without"}:
            continue
        for metric in METRICS:
            before = arms["with"]["before"].get(metric)
            with_, without = arms["with"]["after"].get(metric), arms["without"]["after"].get(metric)
            if with_ is None or without is None:
                continue
            lines.append(f"| {seed} | {metric} | {before:.3f} | {with_:.3f} | {without:.3f} | {with_ - without:+.3f} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(7, 4))
    for row in rows:
        if row["curve"]:
            steps, values = zip(*row["curve"], strict=True)
            axis.plot(steps, values, label=f"seed {row['seed']}, {row['arm']} language reward",
                      linestyle="-" if row["arm"] == "with" else "--")
    axis.set_xlabel("GRPO step")
    axis.set_ylabel("language consistency of the samples")
    axis.set_title("Reasoning RL with and without the language-consistency reward")
    axis.legend()
    return save_figure(figure, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", required=True, help="Start checkpoint (the pipeline's cold-start-sft checkpoint).")
    parser.add_argument("--run-dir", default="/tmp/language-bench", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--set", nargs=argparse.REMAINDER, default=[], help="Extra recipe overrides for both arms.")
    args = parser.parse_args(argv)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for arm in ("with", "without"):
            rows.append(run_arm(args.start, args.run_dir, seed, arm, args.set))
            (args.run_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (args.run_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"curves: {plot(rows, args.run_dir / 'language_curves.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
