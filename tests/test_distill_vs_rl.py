"""benchmarks/distill_vs_rl.py: the distilled student against an RL-only twin on the same student base and budget."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from datasets import load_from_disk
from transformers import TrainerControl

from r1_trl.configs import RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.models import TinyBaseSpec, random_tiny_model
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.rundir import save_dataset_atomic
from r1_trl.stages.distill import DistillConfig, Elapsed, teacher_rows

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "distill_vs_rl.py"
TWIN_GRPO = {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 8,
             "gradient_checkpointing": False}  # fmt: skip


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distill_vs_rl", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_benchmark()


def tagged(steps: list[str], answer: str) -> str:
    return " <think>\n" + "\n".join(steps) + f"\n</think>\n<answer>\n{answer}\n</answer>"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("distill-bench-models")
    teacher = TinyBaseSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    student = TinyBaseSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    return SimpleNamespace(teacher=str(random_tiny_model(root / "teacher", teacher)),
                           student=str(random_tiny_model(root / "student", student)))  # fmt: skip


def config(tmp_path: Path, models: SimpleNamespace, **overrides) -> DistillConfig:
    values = dict(
        output_dir=str(tmp_path / "distill"), model_name_or_path=models.student, teacher_model=models.teacher,
        task_kwargs={"levels": [2]}, train_size=24, eval_size=4, eval_num_samples=2, eval_max_new_tokens=8,
        teacher_num_samples=2, teacher_max_new_tokens=8, per_device_train_batch_size=4, max_steps=2,
        learning_rate=1e-3, use_cpu=True, report_to="none", save_strategy="no", gradient_checkpointing=False,
        logging_steps=1, disable_tqdm=True, seed=3,
    )
    values.update(overrides)
    return DistillConfig(**values)


def solving_sampler(cfg: DistillConfig):
    """Fake teacher: per prompt one correct tagged answer, then a well-formed wrong one."""
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    answers = {row["problem"]: (row["steps"], row["solution"]) for row in train}

    def sample(prompts):
        groups = []
        for prompt in prompts:
            steps, solution = answers[next(p for p in answers if p in prompt)]
            groups.append([tagged(steps, solution), tagged(steps, str(int(solution) + 1))][: cfg.teacher_num_samples])
        return groups

    return sample


# --- settings and budget --------------------------------------------------------------------------------


def test_twin_recipe_parses_and_the_twin_inherits_the_distill_recipes_data():
    recipe = load_recipe(recipe_path("tiny/distill.yaml"), ["--teacher_model", "/tmp/teacher"], DistillConfig)
    settings = bench.load_twin_settings()
    assert (settings.budget, settings.clock) == ("seconds_with_teacher", "cpu")
    assert settings.grpo["reward_funcs"] == ["accuracy", "format"]
    twin = bench.twin_config(recipe, settings, "/tmp/student", Path("/tmp/twin"), max_steps=None)
    assert (twin.seed, twin.train_size, twin.eval_size) == (recipe.seed, recipe.train_size, recipe.eval_size)
    assert (twin.task_kwargs, twin.prompt_template) == (recipe.task_kwargs, recipe.prompt_template)
    assert twin.output_dir == "/tmp/twin" and twin.model_name_or_path == "/tmp/student"
    assert twin.max_steps == settings.grpo["max_steps"]  # the cap of a seconds budget
    assert bench.twin_config(recipe, settings, "/tmp/student", Path("/tmp/twin"), max_steps=5).max_steps == 5


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"budget": "flops"}, "budget"),
        ({"clock": "gpu"}, "clock"),
        ({"scale": 0}, "scale"),
        ({"grpo": {"seed": 1}}, "grpo"),
        ({"grpo": {"train_size": 9}}, "grpo"),
        ({"grpo": {"num_generationz": 2}}, "grpo"),
    ],
)
def test_twin_settings_errors_name_the_field(values, field):
    with pytest.raises(RecipeError, match=f"^{field}:"):
        bench.TwinSettings(**values)


def test_time_budget_stops_before_the_next_step_would_overrun():
    now = [100.0]
    budget = bench.TimeBudget(10.0, clock=lambda: now[0])
    control = TrainerControl()
    budget.on_train_begin(None, SimpleNamespace(global_step=0), control)
    now[0] = 104.0  # 2 steps of 2 s: the next ends at 6 s
    budget.on_step_end(None, SimpleNamespace(global_step=2), control)
    assert not control.should_training_stop
    now[0] = 109.0  # 3 steps of 3 s: the next would end at 12 s
    budget.on_step_end(None, SimpleNamespace(global_step=3), control)
    assert control.should_training_stop


def test_twin_budget_modes():
    student, sampling = Elapsed(wall=20.0, cpu=12.0), Elapsed(wall=5.0, cpu=4.0)
    steps = bench.TwinSettings(budget="steps")
    assert bench.twin_budget(steps, 7, student, sampling) == {"mode": "steps", "scale": 1.0, "steps": 7}
    assert bench.twin_budget(bench.TwinSettings(budget="steps", scale=2.0), 7, student, sampling)["steps"] == 14
    with_teacher = bench.TwinSettings(budget="seconds_with_teacher", clock="cpu")
    assert bench.twin_budget(with_teacher, 7, student, sampling)["seconds"] == 16.0
    alone = bench.TwinSettings(budget="seconds", scale=0.5)
    assert bench.twin_budget(alone, 7, student, sampling) == {
        "mode": "seconds", "scale": 0.5, "clock": "wall", "seconds": 10.0}


def test_student_cost_adds_the_on_policy_steps():
    results = {"train": {"steps": 2, "seconds": 3.0, "cpu_seconds": 2.0},
               "on_policy": {"steps": 1, "seconds": 1.0, "cpu_seconds": 0.5}}  # fmt: skip
    steps, cost = bench.student_cost(results)
    assert steps == 3 and (cost.wall, cost.cpu) == (4.0, 2.5)
    assert bench.student_cost({**results, "on_policy": None})[0] == 2


# --- the comparison -------------------------------------------------------------------------------------


def test_twin_trains_the_students_steps_and_is_scored_on_the_same_held_out_set(tmp_path, models):
    cfg = config(tmp_path, models, on_policy_steps=1, on_policy_kwargs={"max_completion_length": 8, "beta": 0.5})
    settings = bench.TwinSettings(budget="steps", grpo=TWIN_GRPO)

    outcome = bench.compare(cfg, settings, sampler=solving_sampler(cfg))

    student, twin, summary = outcome["student"], outcome["twin"], outcome["comparison"]
    out = Path(cfg.output_dir)
    assert twin["budget"] == {"mode": "steps", "scale": 1.0, "steps": 3}  # 2 SFT steps + 1 on-policy step
    assert twin["train"]["steps"] == 3 and Path(twin["checkpoint"], "config.json").is_file()
    assert Path(twin["checkpoint"]) == (out / "rl_twin" / "checkpoint").resolve()
    assert twin["before"] == student["before"] and twin["start_model_path"] == student["student_base_path"]
    for key in ("accuracy", "format_rate", "pass@2", "language_consistency"):
        assert key in twin["metrics"], key
    details = load_from_disk(twin["datasets"]["eval_details"])
    flags = [flag for row in details["correct"] for flag in row]
    assert len(details) == 4 and sum(flags) / len(flags) == pytest.approx(twin["metrics"]["accuracy"])
    assert summary["accuracy_gain_of_distillation"] == pytest.approx(
        student["metrics"]["accuracy"] - twin["metrics"]["accuracy"])
    assert (summary["student_steps"], summary["twin_steps"]) == (3, 3)
    assert json.loads((out / "comparison.json").read_text()) == json.loads(json.dumps(summary))
    assert (out / "comparison.png").stat().st_size > 0 and (out / "rl_twin" / "curves.png").is_file()


def test_timed_twin_stops_within_the_students_budget_plus_the_reused_teacher_sampling(tmp_path, models):
    cfg = config(tmp_path, models, max_steps=4, teacher_num_samples=1)
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    saved = tmp_path / "earlier" / "teacher"
    rows = teacher_rows([(i, tagged(train[i]["steps"], train[i]["solution"])) for i in range(8)], train)
    save_dataset_atomic(rows, saved, {"generation_seconds": 1.5, "generation_cpu_seconds": 1.0, "kept": 8})
    cfg.teacher_dataset = str(saved)

    outcome = bench.compare(cfg, bench.TwinSettings(budget="seconds_with_teacher", grpo=TWIN_GRPO))

    twin, summary = outcome["twin"], outcome["comparison"]
    assert twin["budget"]["seconds"] == pytest.approx(summary["student_train_seconds"] + 1.5)
    assert 1 <= twin["train"]["steps"] < 100_000
    # Stopped before the step that would overrun: over by less than one mean step (timing noise), never more.
    mean_step = twin["train"]["seconds"] / twin["train"]["steps"]
    assert twin["train"]["seconds"] <= twin["budget"]["seconds"] + mean_step or twin["train"]["steps"] == 1

