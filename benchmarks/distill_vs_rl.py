"""The paper's distillation claim in the tiny world: SFT on teacher samples vs RL alone, same student base.

Runs the ``distill`` stage (recipes/tiny/distill.yaml) under several variants and seeds and writes a table
(``summary.md``, ``summary.json``) to ``--run-dir``. Per seed the "recipe" variant samples the teacher; the others
reuse that teacher set (``--teacher_dataset``) unless they change how the teacher is sampled; every variant
of a seed is scored on the same held-out set. Without "recipe" among the variants, each samples its own.

    PYTHONPATH=. python benchmarks/distill_vs_rl.py --teacher runs/tiny-r1/rl-all/checkpoint \\
        --run-dir /tmp/distill-bench --seeds 42 1 --variants recipe seconds steps rl_x4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import distill

# name -> (recipe overrides, does it sample the teacher itself?)
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "recipe": ([], True),
    "seconds": (["--twin_budget", "seconds"], False),  # the teacher's sampling is a sunk cost (paper's framing)
    "steps": (["--twin_budget", "steps"], False),
    "rl_x4": (["--twin_budget_scale", "4"], False),
    "sft_3_epochs": (["--num_train_epochs", "3", "--learning_rate", "5e-4"], False),
    "teacher_k4": (["--teacher_num_samples", "4"], True),
    "on_policy": (["--on_policy_steps", "20", "--on_policy_kwargs",
                   json.dumps({"beta": 0.5, "learning_rate": 1e-4, "per_device_train_batch_size": 16,
                               "max_completion_length": 48})], False),
    "same_size_student": (["--student_tiny_spec", "{}"], False),
    "two_layer_student": (["--student_tiny_spec", json.dumps({"hidden_size": 96, "num_layers": 2,
                                                              "intermediate_size": 256, "pretrain_steps": 600})],
                          False),
}
COLUMNS = ("seed", "variant", "student_params", "before", "distilled", "rl_only_twin", "gain", "student_steps",
           "twin_steps", "budget", "stage_seconds")


def run_variant(teacher: str, run_dir: Path, seed: int, variant: str, teacher_set: Path | None,
                extra: list[str]) -> dict[str, Any]:
    overrides, samples_teacher = VARIANTS[variant]
    args = ["--teacher_model", teacher, "--seed", str(seed), "--output_dir", str(run_dir / f"seed{seed}" / variant)]
    if teacher_set is not None and not samples_teacher:
        args += ["--teacher_dataset", str(teacher_set)]
    config = load_recipe(recipe_path("tiny/distill.yaml"), [*args, *overrides, *extra], distill.DistillConfig)
    started = time.perf_counter()
    results = distill.run(config)
    comparison = results["comparison"]
    twin = results["rl_only_twin"]
    budget = comparison.get("budget", {})
    return {
        "seed": seed,
        "variant": variant,
        "student_params": results["parameters"]["student"],
        "before": results["before"]["accuracy"],
        "distilled": results["metrics"]["accuracy"],
        "rl_only_twin": twin["metrics"]["accuracy"] if twin else None,
        "gain": comparison.get("accuracy_gain_of_distillation"),
        "student_steps": comparison["student_steps"],
        "twin_steps": comparison.get("twin_steps"),
        "budget": f"{budget.get('steps', '')}{budget.get('mode', '')}"
                  + (f" {budget['seconds']:.1f}s {budget['clock']}" if "seconds" in budget else "")
                  + (f" x{budget['scale']:g}" if budget.get("scale", 1.0) != 1.0 else ""),
        "stage_seconds": time.perf_counter() - started,
        "teacher_kept": results["teacher_data"]["kept"],
        "format": {"before": results["before"]["format_rate"], "distilled": results["metrics"]["format_rate"],
                   "rl_only_twin": twin["metrics"]["format_rate"] if twin else None},
        "pass@k": {"distilled": results["metrics"].get("pass@4"),
                   "rl_only_twin": twin["metrics"].get("pass@4") if twin else None},
        "teacher_dataset": results["datasets"]["teacher"],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="Teacher checkpoint (the pipeline's final model).")
    parser.add_argument("--run-dir", default="/tmp/distill-bench", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--variants", nargs="+", default=["recipe", "seconds", "steps"], choices=list(VARIANTS))
    parser.add_argument("--teacher-dataset", type=Path, default=None,
                        help="A teacher set of an earlier run to reuse (one seed only) instead of sampling one.")
    parser.add_argument("--set", nargs=argparse.REMAINDER, default=[], help="Extra recipe overrides for every run.")
    args = parser.parse_args(argv)
    if args.teacher_dataset and len(args.seeds) > 1:
        parser.error("--teacher-dataset: a teacher set belongs to one seed's prompts; pass a single --seeds value")
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        teacher_set: Path | None = args.teacher_dataset
        # "recipe" runs first: its teacher set is the one the other variants reuse.
        for variant in sorted(args.variants, key=lambda name: name != "recipe"):
            row = run_variant(args.teacher, args.run_dir, seed, variant, teacher_set, args.set)
            if variant == "recipe":
                teacher_set = Path(row["teacher_dataset"])
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
            args.run_dir.mkdir(parents=True, exist_ok=True)
            (args.run_dir / "summary.json").write_text(json.dumps(rows, indent=2))
            (args.run_dir / "summary.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
