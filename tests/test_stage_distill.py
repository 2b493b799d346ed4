"""Distill stage: teacher-data filtering and stats, student SFT learning and resuming, artifacts.

(The RL-only twin comparison is benchmarks/distill_vs_rl.py: tests/test_distill_vs_rl.py.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1_trl.configs import RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.models import TinyBaseSpec, random_tiny_model
from r1_trl.recipes import load_recipe, recipe_path
from r1_trl.rundir import save_dataset_atomic
from r1_trl.stages import distill
from r1_trl.stages.distill import DistillConfig, filter_teacher_samples, teacher_rows
from r1_trl.trainers import R1SFTTrainer

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
        ({"student_tiny_spec": {"layers": 2}}, "student_tiny_spec"),
        ({"student_tiny_spec": {"num_layers": 2}, "model_name_or_path": "some/model"}, "student_tiny_spec"),
        ({"on_policy_kwargs": {"betta": 0.5}}, "on_policy_kwargs"),
        ({"teacher_num_samples": 0}, "teacher_num_samples"),
        ({"prefill_think": True}, "prefill_think"),
    ],
)
def test_config_errors_name_the_field(tmp_path, overrides, field):
    with pytest.raises(RecipeError, match=f"^{field}:"):
        config(tmp_path, **overrides)


def test_tiny_recipe_parses_with_a_smaller_student():
    recipe = load_recipe(recipe_path("tiny/distill.yaml"), ["--teacher_model", "/tmp/teacher"], DistillConfig)
    student, teacher = TinyBaseSpec(**recipe.student_tiny_spec), TinyBaseSpec()
    assert student.hidden_size < teacher.hidden_size and student.num_layers <= teacher.num_layers
    assert recipe.teacher_filters == ["format", "accuracy"] and recipe.evaluate_teacher
    assert recipe.torch_num_threads == 1 and recipe.use_cpu and not recipe.bf16


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


def test_student_sft_learns_the_teacher_completions(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, prompt_template="none",
                 teacher_num_samples=1, train_size=16, max_steps=30, learning_rate=1e-2,
                 per_device_train_batch_size=8, logging_steps=10)

    results = distill.run(cfg, sampler=solving_sampler(cfg))

    dataset = load_from_disk(results["datasets"]["teacher"])
    assert len(dataset) == 16
    before, after = completion_nll(models.student, dataset), completion_nll(results["checkpoint"], dataset)
    assert results["train"]["steps"] == 30 and results["train"]["seconds"] > 0 and results["train"]["cpu_seconds"] > 0
    assert after < 0.5 * before, (before, after)
    losses = [row["loss"] for row in results["log_history"] if "loss" in row]
    assert losses[-1] < losses[0]


def test_stage_writes_the_contract_artifacts(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, teacher_num_samples=3,
                 on_policy_steps=1, on_policy_kwargs={"max_completion_length": 8, "beta": 0.5})
    sampler = solving_sampler(cfg)

    results = distill.run(cfg, sampler=sampler)

    out = Path(cfg.output_dir)
    assert json.loads((out / "results.json").read_text())["teacher_data"] == json.loads(
        json.dumps(results["teacher_data"]))
    assert results["stage"] == "distill" and results["checkpoint"] == str((out / "checkpoint").resolve())
    assert (out / "checkpoint" / "config.json").is_file() and (out / "checkpoint" / "tokenizer.json").is_file()
    assert (out / "curves.png").stat().st_size > 0 and (out / "recipe.yaml").is_file()
    for key in ("accuracy", "format_rate", "mean_length", "pass@2", "maj@2", "language_consistency"):
        assert key in results["metrics"] and key in results["before"] and key in results["after_sft"]
    assert results["on_policy"]["steps"] == 1 and results["train"]["steps"] == 2
    assert "rl_only_twin" not in results and "comparison" not in results  # benchmarks/distill_vs_rl.py's job

    # The teacher saw its own (R1-Zero) template; the dataset carries the student's prompts.
    assert all(p.endswith("Assistant:") for p in sampler.calls[0])
    teacher = Path(results["datasets"]["teacher"])
    assert teacher == (out / "datasets" / "teacher").resolve()
    stats = json.loads((teacher / "stats.json").read_text())
    prompts = results["train"]["train_prompts"]
    assert stats["generated"] == 3 * prompts and stats["kept"] == prompts
    assert stats["rejected"] == {"format": 0, "accuracy": prompts, "duplicate": prompts, "per_prompt_cap": 0}
    assert stats["teacher_model"] == models.teacher and stats["sampling"]["num_samples"] == 3
    assert math.isfinite(stats["generation_seconds"]) and stats["generation_cpu_seconds"] >= 0
    rows = load_from_disk(str(teacher))
    assert len(rows) == prompts and {"prompt", "completion", "solution"} <= set(rows.column_names)
    assert not [p for p in teacher.parent.iterdir() if p.name.startswith(".")]  # no staging leftovers

    # the held-out samples behind the student's final metrics, one row per prompt
    assert set(results["datasets"]) == {"teacher", "eval_details"}
    details = load_from_disk(results["datasets"]["eval_details"])
    assert len(details) == results["train"]["held_out_prompts"] == 4
    flags = [flag for row in details["correct"] for flag in row]
    assert len(flags) == 8 and sum(flags) / len(flags) == pytest.approx(results["metrics"]["accuracy"])
    details_stats = json.loads((Path(results["datasets"]["eval_details"]) / "stats.json").read_text())
    assert details_stats["source_checkpoint"] == results["checkpoint"]
    assert details_stats["metrics"] == pytest.approx(results["metrics"])
    assert results["parameters"]["student_smaller_than_teacher"]


def test_stage_reuses_a_teacher_set_without_sampling_the_teacher(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, teacher_num_samples=1)
    train, _ = build_prompt_datasets(PromptSpec.from_config(cfg))
    saved = tmp_path / "earlier" / "teacher"
    rows = teacher_rows([(i, tagged(train[i]["steps"], train[i]["solution"])) for i in range(8)], train)
    save_dataset_atomic(rows, saved, {"generation_seconds": 1.5, "generation_cpu_seconds": 1.0, "kept": 8})
    cfg.teacher_dataset = str(saved)

    results = distill.run(cfg)  # no sampler: sampling the (random) teacher would keep nothing

    stats = json.loads((Path(results["datasets"]["teacher"]) / "stats.json").read_text())
    assert stats["reused_from"] == str(saved.resolve()) and results["train"]["rows"] == 8
    assert results["teacher_data"]["generation_seconds"] == 1.5


def test_student_sft_resumes_from_its_newest_checkpoint(tmp_path, models, monkeypatch):
    """A stopped run (here: max_steps 2) rerun with a larger budget trains only the missing steps, from checkpoint-2."""
    taken: list[int] = []
    original = R1SFTTrainer.training_step

    def counted(self, *args, **kwargs):
        taken.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(R1SFTTrainer, "training_step", counted)

    def stage(max_steps: int) -> dict:
        cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher, max_steps=max_steps,
                     save_strategy="steps", save_steps=2, lr_scheduler_type="constant")
        return distill.run(cfg, sampler=solving_sampler(cfg))

    first = stage(2)
    out = Path(first["checkpoint"]).parent
    assert taken == [0, 1] and (out / "checkpoint-2" / "trainer_state.json").is_file()
    taken.clear()
    second = stage(4)
    assert taken == [2, 3], taken  # resumed at step 2: the first two steps are not trained again
    assert second["train"]["steps"] == 4 and (out / "checkpoint-4").is_dir()
    logged = [row for row in first["log_history"] if "loss" in row]
    assert [row for row in second["log_history"] if "loss" in row][:2] == logged  # history carried over


def test_stage_fails_clearly_when_the_teacher_solves_nothing(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=models.teacher)
    with pytest.raises(RuntimeError, match="^teacher_model: none of the teacher's"):
        distill.run(cfg, sampler=lambda prompts: [["no idea"] * cfg.teacher_num_samples for _ in prompts])
    stats = json.loads((Path(cfg.output_dir) / "datasets" / "teacher" / "stats.json").read_text())
    assert stats["kept"] == 0 and stats["rejected"]["format"] == stats["generated"]


def test_missing_local_teacher_is_reported(tmp_path, models):
    cfg = config(tmp_path, model_name_or_path=models.student, teacher_model=str(tmp_path / "nope"))
    with pytest.raises(RecipeError, match="^teacher_model: no such local model folder"):  # before any compute
        distill.run(cfg)
