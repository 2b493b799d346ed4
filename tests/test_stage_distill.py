"""Distill stage: teacher-data filtering and stats, student SFT learning, artifacts and the RL-only twin."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl

from r1_trl.configs import RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.models import TinyBaseSpec, random_tiny_model
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.stages import distill
from r1_trl.stages.cold_start_data import save_dataset_atomic
from r1_trl.stages.distill import DistillConfig, TimeBudget, filter_teacher_samples, teacher_rows

TEACHER_SPEC = TinyBaseSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
STUDENT_SPEC = TinyBaseSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


def tagged(steps: list[str], answer: str) -> str:
    return " <think>\n" + "\n".join(steps) + f"\n</think>\n<answer>\n{answer}\n</answer>"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("distill-models")
    return SimpleNamespace(
        teacher=str(random_tiny_model(root / "teacher", TEACHER_SPEC)),
        student=str(random_tiny_model(root / "student", STUDENT_SPEC)),
    )


def config(tmp_path: Path, **overrides) -> DistillConfig:
    values = dict(
        output_dir=str(tmp_path / "distill"), teacher_model="unused", task_kwargs={"levels": [2]}, train_size=24,
        eval_size=4, eval_num_samples=2, eval_max_new_tokens=8, teacher_num_samples=2, teacher_max_new_tokens=8,
        per_device_train_batch_size=4, max_steps=2, learning_rate=1e-3, use_cpu=True, report_to="none",
        save_strategy="no", gradient_checkpointing=False, logging_steps=1, disable_tqdm=True, seed=3,
        twin_budget="steps",
        twin_grpo={"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 8,
                   "gradient_checkpointing": False},
    )
    values.update(overrides)
    return DistillConfig(**values)


# --- teacher data ---------------------------------------------------------------------------------------


def test_filter_keeps_correct_well_formed_unique_samples_and_counts_each_rejection_reason():
    rows = Dataset.from_list([{"solution": "14"}, {"solution": "3"}, {"solution": "7"}])
    right_14 = tagged(["3 * 4 = 12", "2 + 12 = 14"], "14")
    samples = [
        [right_14, right_14, tagged(["2 + 3 = 5"], "20"), "the answer is 15"],  # ok, duplicate, wrong, malformed
        [tagged(["1 + 2 = 3"], "3"), tagged(["2 + 1 = 3"], "3"), tagged(["3 = 3"], "3")],  # third is over the cap
        ["<think>x</think><answer>8</answer>"],  # wrong
    ]
    kept, stats = filter_teacher_samples(samples, rows, ["format", "accuracy"], max_per_prompt=2)

    assert kept == [(0, right_14), (1, samples[1][0]), (1, samples[1][1])]
    assert stats["generated"] == 8 and stats["kept"] == 3 and stats["prompts"] == 3
    assert stats["rejected"] == {"format": 1, "accuracy": 2, "duplicate": 1, "per_prompt_cap": 1}
    assert stats["failed"] == {"format": 1, "accuracy": 3}  # the malformed sample is wrong too
    assert stats["prompts_with_kept_samples"] == 2
    assert stats["keep_rate"] == pytest.approx(3 / 8)


def test_filter_options_change_what_is_kept():
    rows = Dataset.from_list([{"solution": "4"}])
    right = tagged(["2 + 2 = 4"], "4")
    wrong_but_formatted = tagged(["2 + 2 = 5"], "5")
    kept, stats = filter_teacher_samples([[right, right, wrong_but_formatted]], rows, ["format"], dedupe=False)
    assert [text for _, text in kept] == [right, right, wrong_but_formatted]
    assert stats["rejected"] == {"format": 0, "duplicate": 0, "per_prompt_cap": 0}
    with pytest.raises(ValueError, match="2 sample groups for 1 rows"):
        filter_teacher_samples([[right], [right]], rows, ["format"])


def test_teacher_rows_use_the_students_prompt_format():
    plain = Dataset.from_list([{"prompt": "User: What is 2 + 2?. Assistant:", "problem": "What is 2 + 2?",
                                "solution": "4", "language": "en"}])
    (row,) = teacher_rows([(0, "<think>\n2 + 2 = 4\n</think>\n<answer>\n4\n</answer>\n")], plain)
    assert row["completion"] == " <think>\n2 + 2 = 4\n</think>\n<answer>\n4\n</answer>"
    assert (row["problem"], row["solution"], row["language"]) == ("What is 2 + 2?", "4", "en")

    chat = Dataset.from_list([{"prompt": [{"role": "user", "content": "What is 2 + 2?"}], "solution": "4"}])
    (row,) = teacher_rows([(0, " <think>a</think><answer>4</answer>")], chat)
    assert row["completion"] == [{"role": "assistant", "content": "<think>a</think><answer>4</answer>"}]
    assert row["prompt"] == [{"role": "user", "content": "What is 2 + 2?"}]


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"teacher_model": None}, "teacher_model"),
        ({"teacher_filters": ["format", "nope"]}, "teacher_filters"),
        ({"twin_budget": "flops"}, "twin_budget"),
        ({"twin_budget_clock": "gpu"}, "twin_budget_clock"),
        ({"student_tiny_spec": {"layers": 2}}, "student_tiny_spec"),
        ({"student_tiny_spec": {"num_layers": 2}, "model_name_or_path": "some/model"}, "student_tiny_spec"),
        ({"twin_grpo": {"seed": 1}}, "twin_grpo"),
        ({"twin_grpo": {"train_size": 9}}, "twin_grpo"),
        ({"on_policy_kwargs": {"betta": 0.5}}, "on_policy_kwargs"),
        ({"teacher_num_samples": 0}, "teacher_num_samples"),
        ({"twin_budget_scale": 0}, "twin_budget_scale"),
        ({"prefill_think": True}, "prefill_think"),
    ],
)
def test_config_errors_name_the_field(tmp_path, overrides, field):
    with pytest.raises(RecipeError, match=f"^{field}:"):
        config(tmp_path, **overrides)


def test_tiny_recipe_parses_with_a_smaller_student_and_a_budgeted_twin():
    recipe = load_recipe(recipe_path("tiny/distill.yaml"), ["--teacher_model", "/tmp/teacher"], DistillConfig)
    student, teacher = TinyBaseSpec(**recipe.student_tiny_spec), TinyBaseSpec()
    assert student.hidden_size < teacher.hidden_size and student.num_layers <= teacher.num_layers
    assert recipe.twin_budget == "seconds_with_teacher" and recipe.twin_grpo["reward_funcs"] == ["accuracy", "format"]
    assert recipe.torch_num_threads == 1 and recipe.use_cpu and not recipe.bf16
    twin = distill.twin_config(recipe, "/tmp/student", max_steps=None)
    assert (twin.seed, twin.train_size, twin.eval_size) == (recipe.seed, recipe.train_size, recipe.eval_size)
    assert twin.output_dir.endswith("rl_twin") and twin.model_name_or_path == "/tmp/student"
    assert twin.max_steps == recipe.twin_grpo["max_steps"]  # the cap of a seconds budget
    assert distill.twin_config(recipe, "/tmp/student", max_steps=5).max_steps == 5  # a steps budget replaces it


# --- budget ---------------------------------------------------------------------------------------------


def test_time_budget_stops_before_the_next_step_would_overrun():
    now = [100.0]
    budget = TimeBudget(10.0, clock=lambda: now[0])
    control = TrainerControl()
    budget.on_train_begin(None, SimpleNamespace(global_step=0), control)
    now[0] = 104.0  # 2 steps of 2 s: the next ends at 6 s
    budget.on_step_end(None, SimpleNamespace(global_step=2), control)
    assert not control.should_training_stop
    now[0] = 109.0  # 3 steps of 3 s: the next would end at 12 s
    budget.on_step_end(None, SimpleNamespace(global_step=3), control)
    assert control.should_training_stop


def test_twin_budget_modes(tmp_path):
    student = distill.TrainingRun(steps=7, elapsed=distill.Elapsed(wall=20.0, cpu=12.0), log_history=[])
    sampling = distill.Elapsed(wall=5.0, cpu=4.0)
    assert distill.twin_budget(config(tmp_path), student, sampling) == {"mode": "steps", "scale": 1.0, "steps": 7}
    assert distill.twin_budget(config(tmp_path, twin_budget_scale=2.0), student, sampling)["steps"] == 14
    with_teacher = config(tmp_path, twin_budget="seconds_with_teacher", twin_budget_clock="cpu")
    assert distill.twin_budget(with_teacher, student, sampling)["seconds"] == 16.0
    alone = config(tmp_path, twin_budget="seconds", twin_budget_scale=0.5)
    assert distill.twin_budget(alone, student, sampling) == {
        "mode": "seconds", "scale": 0.5, "clock": "wall", "seconds": 10.0}


# --- training -------------------------------------------------------------------------------------------


def completion_nll(model_path: str, dataset: Dataset) -> float:
    """Mean negative log-likelihood per completion token, given the prompt."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in dataset:
            prompt = tokenizer(row["prompt"])["input_ids"]
            completion = tokenizer(row["completion"] + tokenizer.eos_token)["input_ids"]
            ids = torch.tensor([prompt + completion])
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
            total += torch.nn.functional.cross_entropy(logits, ids[0, len(prompt):], reduction="sum").item()
            count += len(completion)
    return total / count


def test_student_sft_learns_the_teacher_completions(tmp_path, models):
    cfg = config(tmp_path, prompt_template="none", max_steps=30, learning_rate=1e-2, per_device_train_batch_size=8,
                 logging_steps=10)
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    rows = train.select(range(16))
    dataset = teacher_rows([(i, tagged(rows[i]["steps"], rows[i]["solution"])) for i in range(len(rows))], rows)
    before = completion_nll(models.student, dataset)

    run = distill.train_student_sft(cfg, models.student, dataset, tmp_path / "sft")

    after = completion_nll(str(tmp_path / "sft"), dataset)
    assert run.steps == 30 and run.elapsed.wall > 0
    assert after < 0.5 * before, (before, after)
    losses = [row["loss"] for row in run.log_history if "loss" in row]
    assert losses[-1] < losses[0]


def solving_sampler(cfg: DistillConfig, wrong_every: int = 2):
    """Fake teacher: per prompt one correct tagged answer, then a well-formed wrong one, then a duplicate."""
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    answers = {row["problem"]: (row["steps"], row["solution"]) for row in train}
    calls: list[list] = []

    def sample(prompts):
        calls.append(list(prompts))
        groups = []
        for prompt in prompts:
            problem = next(p for p in answers if p in prompt)
            steps, solution = answers[problem]
            right = tagged(steps, solution)
            groups.append([right, tagged(steps, str(int(solution) + 1)), right][: cfg.teacher_num_samples])
        return groups

    sample.calls = calls
    return sample


def test_stage_writes_the_contract_artifacts_and_the_twin_comparison(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, teacher_num_samples=3,
                 on_policy_steps=1, on_policy_kwargs={"max_completion_length": 8, "beta": 0.5})
    sampler = solving_sampler(cfg)

    results = distill.run(cfg, sampler=sampler)

    out = Path(cfg.output_dir)
    assert json.loads((out / "results.json").read_text())["comparison"] == json.loads(
        json.dumps(results["comparison"]))
    assert results["stage"] == "distill" and results["checkpoint"] == str(out / "checkpoint")
    assert (out / "checkpoint" / "config.json").is_file() and (out / "checkpoint" / "tokenizer.json").is_file()
    assert (out / "curves.png").stat().st_size > 0 and (out / "recipe.yaml").is_file()
    for key in ("accuracy", "format_rate", "mean_length", "pass@2", "maj@2", "language_consistency"):
        assert key in results["metrics"] and key in results["before"] and key in results["rl_only_twin"]["metrics"]
    assert results["after_sft"] is not None and results["on_policy"]["steps"] == 1

    # The teacher saw its own (R1-Zero) template; the dataset carries the student's prompts.
    assert all(p.endswith("Assistant:") for p in sampler.calls[0])
    teacher = Path(results["datasets"]["teacher"])
    assert teacher == (out / "datasets" / "teacher").resolve()
    stats = json.loads((teacher / "stats.json").read_text())
    prompts = results["train"]["train_prompts"]
    assert stats["generated"] == 3 * prompts and stats["kept"] == prompts
    assert stats["rejected"] == {"format": 0, "accuracy": prompts, "duplicate": prompts, "per_prompt_cap": 0}
    assert stats["teacher_model"] == models.teacher and stats["sampling"]["num_samples"] == 3
    rows = load_from_disk(str(teacher))
    assert len(rows) == prompts and {"prompt", "completion", "solution"} <= set(rows.column_names)
    assert not [p for p in teacher.parent.iterdir() if p.name.startswith(".")]  # no staging leftovers

    # the held-out samples behind the student's and the twin's final metrics, one row per prompt
    assert set(results["datasets"]) == {"teacher", "eval_details", "eval_details_rl_twin"}
    for name, metrics, checkpoint in (
        ("eval_details", results["metrics"], results["checkpoint"]),
        ("eval_details_rl_twin", results["rl_only_twin"]["metrics"], results["rl_only_twin"]["checkpoint"]),
    ):
        details = load_from_disk(results["datasets"][name])
        assert len(details) == results["train"]["held_out_prompts"] == 4, name
        flags = [flag for row in details["correct"] for flag in row]
        assert len(flags) == 8 and sum(flags) / len(flags) == pytest.approx(metrics["accuracy"]), name
        details_stats = json.loads((Path(results["datasets"][name]) / "stats.json").read_text())
        assert details_stats["source_checkpoint"] == str(Path(checkpoint).resolve()), name
        assert details_stats["metrics"] == pytest.approx(metrics), name

    twin = results["rl_only_twin"]
    assert twin["budget"] == {"mode": "steps", "scale": 1.0, "steps": 3}  # 2 SFT steps + 1 on-policy step
    assert twin["train"]["steps"] == 3 and Path(twin["checkpoint"], "config.json").is_file()
    comparison = results["comparison"]
    assert comparison["accuracy_gain_of_distillation"] == pytest.approx(
        results["metrics"]["accuracy"] - twin["metrics"]["accuracy"])
    assert results["parameters"]["student_smaller_than_teacher"]
    assert set(results["timings"]) == {"evaluation", "teacher_generation", "student_sft", "on_policy", "rl_twin"}
    assert all(math.isfinite(v) and v >= 0 for v in results["cpu_timings"].values())


def test_stage_reuses_a_teacher_set_and_stops_a_timed_twin_within_budget(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, max_steps=4,
                 twin_budget="seconds_with_teacher", teacher_num_samples=1)
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    saved = tmp_path / "earlier" / "teacher"
    rows = teacher_rows([(i, tagged(train[i]["steps"], train[i]["solution"])) for i in range(8)], train)
    save_dataset_atomic(rows, saved, {"generation_seconds": 1.5, "generation_cpu_seconds": 1.0, "kept": 8})
    cfg.teacher_dataset = str(saved)

    results = distill.run(cfg)  # no sampler: the teacher is never sampled

    stats = json.loads((Path(results["datasets"]["teacher"]) / "stats.json").read_text())
    assert stats["reused_from"] == str(saved.resolve()) and results["train"]["rows"] == 8
    assert results["timings"]["teacher_generation"] == 1.5
    twin, comparison = results["rl_only_twin"], results["comparison"]
    assert twin["budget"]["seconds"] == pytest.approx(comparison["student_train_seconds"] + 1.5)
    assert 1 <= twin["train"]["steps"] < 100_000
    # Stopped before the step that would overrun: over by less than one mean step (timing noise), never more.
    mean_step = twin["train"]["seconds"] / twin["train"]["steps"]
    assert twin["train"]["seconds"] <= twin["budget"]["seconds"] + mean_step or twin["train"]["steps"] == 1


def test_stage_fails_clearly_when_the_teacher_solves_nothing(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, rl_twin=False)
    with pytest.raises(RuntimeError, match="^teacher_model: none of the teacher's"):
        distill.run(cfg, sampler=lambda prompts: [["no idea"] * cfg.teacher_num_samples for _ in prompts])
    stats = json.loads((Path(cfg.output_dir) / "datasets" / "teacher" / "stats.json").read_text())
    assert stats["kept"] == 0 and stats["rejected"]["format"] == stats["generated"]


def test_missing_local_teacher_is_reported(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=str(tmp_path / "nope"))
    with pytest.raises(RecipeError, match="^teacher_model: no such local model folder"):  # before any compute
        distill.run(cfg)
