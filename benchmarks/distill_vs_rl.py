"""The paper's distillation claim in the tiny world: SFT on teacher samples vs RL alone, same student base.

Per seed and variant, runs the ``distill`` stage (recipes/tiny/distill.yaml), then its RL-only twin: R1-Zero
GRPO on the same student base (``--twin``, default benchmarks/distill_vs_rl_twin.yaml) with the same training
prompts, seed and held-out set, stopped when it has used the student's budget: the student's optimizer steps
(SFT plus on-policy steps), or its training seconds with or without the teacher's sampling, on the wall clock
or as this process's CPU time. The twin goes through the same training-stage runner as every stage, into
``<variant>/rl_twin/`` (``results.json``, ``datasets/eval_details``, ``curves.png``); ``<variant>/comparison.json``
and ``comparison.png`` set the two side by side.

Writes a table (``summary.md``, ``summary.json``) to ``--run-dir``. Per seed the "recipe" variant samples the
teacher; the others reuse that teacher set (``--teacher_dataset``) unless they change how the teacher is
sampled; every variant of a seed is scored on the same held-out set. Without "recipe" among the variants,
each samples its own.

    PYTHONPATH=. python benchmarks/distill_vs_rl.py --teacher runs/tiny-r1/rl-all/checkpoint \\
        --run-dir /tmp/distill-bench --seeds 42 1 --variants recipe seconds steps rl_x4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoTokenizer, Trainer, TrainerCallback

from r1_trl.configs import R1GRPOConfig, RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.distributed import launch_state
from r1_trl.evaluation import evaluate_model
from r1_trl.generation import EngineSettings
from r1_trl.plotting import accuracy_bars, plot_training_curves, plt, save_figure, series
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.rundir import RESULTS_FILE, write_json_atomic
from r1_trl.stages import distill
from r1_trl.stages.common import eval_settings
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.trainers import R1GRPOTrainer

DISTILL_RECIPE = "tiny/distill.yaml"
TWIN_RECIPE = Path(__file__).with_name("distill_vs_rl_twin.yaml")
TWIN_STAGE = "rl-twin"
TWIN_DIR = "rl_twin"
TWIN_BUDGETS = ("steps", "seconds", "seconds_with_teacher")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
# Fields the twin takes from the distill recipe, so that it sees the same prompts, held-out set, seed and
# hardware settings as the student.
TWIN_INHERITS = (
    "dataset_name", "dataset_path", "dataset_train_split", "dataset_test_split", "task_kwargs", "train_size",
    "eval_size", "prompt_template", "system_prompt", "prefill_think", "decontaminate", "eval_num_samples",
    "eval_temperature", "eval_top_p", "eval_max_new_tokens", "torch_num_threads", *distill.SHARED_TRAINING_FIELDS,
)  # fmt: skip

# name -> (distill recipe overrides, twin setting overrides, does it sample the teacher itself?)
VARIANTS: dict[str, tuple[list[str], dict[str, Any], bool]] = {
    "recipe": ([], {}, True),
    "seconds": ([], {"budget": "seconds"}, False),  # the teacher's sampling is a sunk cost (paper's framing)
    "steps": ([], {"budget": "steps"}, False),
    "rl_x4": ([], {"scale": 4.0}, False),
    "sft_3_epochs": (["--num_train_epochs", "3", "--learning_rate", "5e-4"], {}, False),
    "teacher_k4": (["--teacher_num_samples", "4"], {}, True),
    "on_policy": (["--on_policy_steps", "20", "--on_policy_kwargs",
                   json.dumps({"beta": 0.5, "learning_rate": 1e-4, "per_device_train_batch_size": 16,
                               "max_completion_length": 48})], {}, False),
    "same_size_student": (["--student_tiny_spec", "{}"], {}, False),
    "two_layer_student": (["--student_tiny_spec", json.dumps({"hidden_size": 96, "num_layers": 2,
                                                              "intermediate_size": 256, "pretrain_steps": 600})],
                          {}, False),
}  # fmt: skip
COLUMNS = ("seed", "variant", "student_params", "before", "distilled", "rl_only_twin", "gain", "student_steps",
           "twin_steps", "budget", "stage_seconds")


# --- the twin's settings and budget ----------------------------------------------------------------------


@dataclass
class TwinSettings:
    """How the RL-only twin is trained and how much it may spend (benchmarks/distill_vs_rl_twin.yaml)."""

    budget: str = "seconds_with_teacher"  # one of TWIN_BUDGETS
    clock: str = "wall"  # how seconds budgets are measured, one of CLOCKS
    scale: float = 1.0  # multiplier of the budget
    grpo: dict[str, Any] = field(default_factory=dict)  # the twin's own R1GRPOConfig fields

    def __post_init__(self) -> None:
        if self.budget not in TWIN_BUDGETS:
            raise RecipeError(f"budget: must be one of {', '.join(TWIN_BUDGETS)}, got {self.budget!r}")
        if self.clock not in CLOCKS:
            raise RecipeError(f"clock: must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.scale <= 0:
            raise RecipeError(f"scale: must be > 0, got {self.scale}")
        known = {item.name for item in dataclasses.fields(R1GRPOConfig)}
        unknown = sorted(set(self.grpo) - known)
        if unknown:
            raise RecipeError(f"grpo: unknown field(s) {unknown} of R1GRPOConfig")
        clash = sorted({"model_name_or_path", "output_dir", *TWIN_INHERITS} & set(self.grpo))
        if clash:
            raise RecipeError(f"grpo: {clash} come from the distill recipe (same data, seed and budget as the student)")


def load_twin_settings(path: str | Path = TWIN_RECIPE, **overrides: Any) -> TwinSettings:
    values = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(values) - {item.name for item in dataclasses.fields(TwinSettings)})
    if unknown:
        raise RecipeError(f"{path}: unknown field(s) {unknown} (known: budget, clock, scale, grpo)")
    return TwinSettings(**{**values, **overrides})


def twin_config(config: distill.DistillConfig, settings: TwinSettings, student_path: str, output_dir: Path,
                max_steps: int | None) -> R1GRPOConfig:  # fmt: skip
    """The twin's recipe: ``settings.grpo`` plus the distill recipe's data, eval, seed and hardware fields."""
    values: dict[str, Any] = {"save_strategy": "no", **settings.grpo}
    values.update({name: getattr(config, name) for name in TWIN_INHERITS})
    values.update({"model_name_or_path": student_path, "output_dir": str(output_dir)})
    if max_steps is not None:
        values["max_steps"] = max_steps
    elif values.get("max_steps", -1) <= 0:
        values["max_steps"] = 100_000  # the time budget stops it; the cap only sizes the LR schedule
    return R1GRPOConfig(**values)


def student_cost(results: dict[str, Any]) -> tuple[int, distill.Elapsed]:
    """Optimizer steps and training time (wall, CPU) of the distilled student: SFT plus on-policy steps."""
    train, on_policy = results["train"], results.get("on_policy") or {}
    steps = train["steps"] + on_policy.get("steps", 0)
    wall = train["seconds"] + on_policy.get("seconds", 0.0)
    return steps, distill.Elapsed(wall, train["cpu_seconds"] + on_policy.get("cpu_seconds", 0.0))


def teacher_cost(results: dict[str, Any]) -> distill.Elapsed:
    """The teacher's sampling time, as recorded with the teacher set (also when it was reused)."""
    stats = results["teacher_data"]
    return distill.Elapsed(stats["generation_seconds"], stats.get("generation_cpu_seconds", stats["generation_seconds"]))


def twin_budget(settings: TwinSettings, steps: int, student: distill.Elapsed, teacher: distill.Elapsed) -> dict:
    """The twin's budget: the student's optimizer steps, or its training time (plus the teacher's sampling)."""
    if settings.budget == "steps":
        return {"mode": "steps", "scale": settings.scale, "steps": max(1, round(steps * settings.scale))}
    spent = student + (teacher if settings.budget == "seconds_with_teacher" else distill.Elapsed())
    return {"mode": settings.budget, "scale": settings.scale, "clock": settings.clock,
            "seconds": spent.on(settings.clock) * settings.scale}  # fmt: skip


class TimeBudget(TrainerCallback):
    """Stops training before the next step would take it past ``seconds`` on ``clock`` (judged by the mean
    step time so far), so the twin never gets more time than its budget; it always takes one step.

    The budget runs from ``start()`` or else from the start of the training loop.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started: float | None = None

    def start(self) -> None:
        self.started = self.clock()

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[override]
        if self.started is None:
            self.start()
        return control

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[override]
        elapsed = self.clock() - (self.started or 0.0)
        if _any_rank(elapsed + elapsed / max(state.global_step, 1) > self.seconds):
            control.should_training_stop = True
        return control


def _any_rank(flag: bool) -> bool:
    """``flag`` of any rank of the launch: ranks whose clocks disagree must still stop at the same step, or
    the ones that go on wait forever in their next collective."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# --- one comparison ---------------------------------------------------------------------------------------


def train_rl_twin(config: distill.DistillConfig, settings: TwinSettings, student: dict[str, Any],
                  budget: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """R1-Zero GRPO on the student base within ``budget``, through the training-stage runner; its results."""
    student_path = student["student_base_path"]
    args = twin_config(config, settings, student_path, Path(config.output_dir) / TWIN_DIR, budget.get("steps"))
    tokenizer = AutoTokenizer.from_pretrained(student_path)
    train, held_out = build_prompt_datasets(PromptSpec.from_config(args))
    evaluation = eval_settings(args, language_metric=True)
    time_budget = TimeBudget(budget["seconds"], CLOCKS[budget["clock"]]) if "seconds" in budget else None
    clock = distill.CpuClock()

    def evaluate(model: str, with_completions: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        if model == student_path and not with_completions:
            return student["before"], {}  # the student base, already measured by the distill stage
        metrics = evaluate_model(model, tokenizer, held_out, evaluation, show_progress=True,
                                 return_completions=with_completions, engine=EngineSettings.from_config(args),
                                 sharded=True)  # fmt: skip
        return metrics, {}

    def build_trainer(trainer_args: R1GRPOConfig, callbacks: list) -> Trainer:
        extra = [clock] + ([time_budget] if time_budget else [])
        trainer = R1GRPOTrainer(model=student_path, args=trainer_args, train_dataset=train, processing_class=tokenizer,
                                callbacks=[*callbacks, *extra])  # fmt: skip
        if time_budget:
            # The runner times ``trainer.train()`` as a whole, set-up before the first step included (as it timed
            # the student's): the budget runs from here, or the twin overruns by its own set-up time.
            time_budget.start()
        return trainer

    def plot(history: list, path: Path, before: dict, after: dict) -> Any:
        return plot_training_curves(history, path, f"{TWIN_STAGE}: GRPO rewards", held_out={"before": before, "after": after})

    return run_training_stage(TrainingStage(
        name=TWIN_STAGE, config=args, model_path=student_path, tokenizer=tokenizer, held_out=held_out,
        settings=evaluation, build_trainer=build_trainer, plot=plot, evaluate=evaluate, publish=False,
        describe=lambda trainer: {"cpu_seconds": clock.seconds}, results={"budget": budget},
    ))  # fmt: skip


def comparison(student: dict[str, Any], twin: dict[str, Any]) -> dict[str, Any]:
    """Distilled student vs RL-only twin: the budgets each used and the held-out accuracy/format gap."""
    steps, cost = student_cost(student)
    return {
        "budget": twin["budget"],
        "student_steps": steps,
        "student_train_seconds": cost.wall,
        "student_train_cpu_seconds": cost.cpu,
        "twin_steps": twin["train"]["steps"],
        "twin_train_seconds": twin["train"]["seconds"],
        "twin_train_cpu_seconds": twin["train"]["cpu_seconds"],
        "accuracy": {"distilled": student["metrics"]["accuracy"], "rl_only_twin": twin["metrics"]["accuracy"]},
        "accuracy_gain_of_distillation": student["metrics"]["accuracy"] - twin["metrics"]["accuracy"],
        "format_rate": {"distilled": student["metrics"]["format_rate"],
                        "rl_only_twin": twin["metrics"]["format_rate"]},
    }


def compare(config: distill.DistillConfig, settings: TwinSettings,
            sampler: distill.Sampler | None = None) -> dict[str, Any]:  # fmt: skip
    """Distill (``sampler`` replaces the teacher's sampling: tests), then the twin within the student's budget.

    Returns ``{"student": distill results, "twin": twin results, "comparison": ...}``; every rank of a launch
    runs both, the main process writes ``comparison.json`` and ``comparison.png`` next to the student's run.
    """
    distill.run(config, sampler=sampler)
    output_dir = Path(config.output_dir)
    student = json.loads((output_dir / RESULTS_FILE).read_text())  # every rank: the budget needs the numbers
    steps, cost = student_cost(student)
    budget = twin_budget(settings, steps, cost, teacher_cost(student))
    twin = train_rl_twin(config, settings, student, budget)
    state = launch_state()
    if not state.is_main_process:
        return {"student": student, "twin": twin, "comparison": {}}
    summary = comparison(student, twin)
    write_json_atomic(output_dir / "comparison.json", summary)
    plot_comparison(student, twin, output_dir / "comparison.png")
    return {"student": student, "twin": twin, "comparison": summary}


def plot_comparison(student: dict[str, Any], twin: dict[str, Any], path: Path) -> Path:
    """Left: the student's SFT loss and the twin's mean reward per step. Right: held-out accuracy bars."""
    figure, (curve_axis, bar_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for history, key, label in ((student["log_history"], "loss", "student SFT loss"),
                                (twin["log_history"], "reward", "RL-only twin reward")):  # fmt: skip
        steps, values = series(history, key)
        if steps:
            curve_axis.plot(steps, values, label=label)
    curve_axis.set_xlabel("optimizer step")
    if curve_axis.get_legend_handles_labels()[0]:
        curve_axis.legend()
    bars = {"student base": student["before"]["accuracy"], "distilled": student["metrics"]["accuracy"],
            "RL-only twin": twin["metrics"]["accuracy"]}  # fmt: skip
    if student.get("teacher_metrics"):
        bars["teacher"] = student["teacher_metrics"]["accuracy"]
    accuracy_bars(bar_axis, bars)
    figure.suptitle("distill: SFT on teacher samples vs RL alone, same student base")
    return save_figure(figure, path)


# --- the benchmark ------------------------------------------------------------------------------------------


def run_variant(teacher: str, run_dir: Path, seed: int, variant: str, teacher_set: Path | None,
                extra: list[str], twin_recipe: Path = TWIN_RECIPE) -> dict[str, Any]:  # fmt: skip
    overrides, twin_overrides, samples_teacher = VARIANTS[variant]
    args = ["--teacher_model", teacher, "--seed", str(seed), "--output_dir", str(run_dir / f"seed{seed}" / variant)]
    if teacher_set is not None and not samples_teacher:
        args += ["--teacher_dataset", str(teacher_set)]
    config = load_recipe(recipe_path(DISTILL_RECIPE), [*args, *overrides, *extra], distill.DistillConfig)
    settings = load_twin_settings(twin_recipe, **twin_overrides)
    started = time.perf_counter()
    outcome = compare(config, settings)
    student, twin, summary = outcome["student"], outcome["twin"], outcome["comparison"]
    if not summary:  # a non-main rank of a launch: only the teacher set matters (the next variants reuse it)
        return {"seed": seed, "variant": variant, "teacher_dataset": student["datasets"]["teacher"]}
    budget = summary["budget"]
    return {
        "seed": seed,
        "variant": variant,
        "student_params": student["parameters"]["student"],
        "before": student["before"]["accuracy"],
        "distilled": student["metrics"]["accuracy"],
        "rl_only_twin": twin["metrics"]["accuracy"],
        "gain": summary["accuracy_gain_of_distillation"],
        "student_steps": summary["student_steps"],
        "twin_steps": summary["twin_steps"],
        "budget": f"{budget.get('steps', '')}{budget.get('mode', '')}"
                  + (f" {budget['seconds']:.1f}s {budget['clock']}" if "seconds" in budget else "")
                  + (f" x{budget['scale']:g}" if budget.get("scale", 1.0) != 1.0 else ""),
        "stage_seconds": time.perf_counter() - started,
        "teacher_kept": student["teacher_data"]["kept"],
        "format": {"before": student["before"]["format_rate"], **summary["format_rate"]},
        "pass@k": {"distilled": student["metrics"].get("pass@4"), "rl_only_twin": twin["metrics"].get("pass@4")},
        "teacher_dataset": student["datasets"]["teacher"],
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
    parser.add_argument("--twin", type=Path, default=TWIN_RECIPE, help="The twin's settings (budget, clock, grpo).")
    parser.add_argument("--set", nargs=argparse.REMAINDER, default=[], help="Extra distill recipe overrides.")
    args = parser.parse_args(argv)
    if args.teacher_dataset and len(args.seeds) > 1:
        parser.error("--teacher-dataset: a teacher set belongs to one seed's prompts; pass a single --seeds value")
    main_process = launch_state().is_main_process
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        teacher_set: Path | None = args.teacher_dataset
        # "recipe" runs first: its teacher set is the one the other variants reuse.
        for variant in sorted(args.variants, key=lambda name: name != "recipe"):
            row = run_variant(args.teacher, args.run_dir, seed, variant, teacher_set, args.set, args.twin)
            if variant == "recipe":
                teacher_set = Path(row["teacher_dataset"])
            rows.append(row)
            if main_process:
                print(markdown([row]).splitlines()[-1], flush=True)
                args.run_dir.mkdir(parents=True, exist_ok=True)
                (args.run_dir / "summary.json").write_text(json.dumps(rows, indent=2))
                (args.run_dir / "summary.md").write_text(markdown(rows) + "\n")
    if main_process:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
