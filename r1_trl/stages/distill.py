"""Distillation: the final model writes reasoning traces, a smaller student is fine-tuned on them.

The paper's last step: DeepSeek-R1 generates ~800k samples and small dense models are trained on
them with plain SFT; a same-size model trained with large-scale RL alone does worse. This stage runs
that comparison in miniature, on the same student base, the same training prompts, the same seed and
the same held-out set:

1. the teacher (``teacher_model``) samples ``teacher_num_samples`` completions for each training
   prompt; completions that pass every ``teacher_filters`` reward (default: well-formed, then
   correct) and are not duplicates are saved as ``datasets/teacher`` in the *student's* prompt template;
2. the student (``model_name_or_path``; with ``'tiny'`` and ``student_tiny_spec`` a smaller tiny base)
   is fine-tuned on that set with TRL's SFTTrainer, loss on the completion only; optionally
   ``on_policy_steps`` of TRL's DistillationTrainer (on-policy generalized-JSD distillation) follow;
3. the RL-only twin: R1-Zero GRPO on the same student base with the same budget as the student
   (``twin_budget``: optimizer steps, or seconds with or without the teacher's sampling, measured on
   the wall clock or as this process's CPU time: ``twin_budget_clock``).

The held-out samples behind the student's and the twin's final metrics are saved as ``datasets/eval_details``
and ``datasets/eval_details_rl_twin`` (one row per held-out prompt).

With ``push_to_hub`` the stage pushes the distilled student like the SFT stages: checkpoints the student's
SFT trainer saves go to ``distill-step-{N}`` branches in the background, the final student (card, results,
lineage) to the ``distill`` branch; TRL's own push to ``main`` stays off. The teacher set and the evaluation
details are pushed with the run (``r1-trl push`` / the pipeline's ``push``), like every generated dataset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DistillationConfig, DistillationTrainer

import reward_funcs
from r1_trl.adapters import full_model_path, is_adapter, save_trained_model
from r1_trl.configs import TINY_MODEL, R1GRPOConfig, R1SFTConfig, RecipeError, parse_dict
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.data.selection import select_unique
from r1_trl.data.templates import TEMPLATES, format_prompt
from r1_trl.distributed import launch_state
from r1_trl.evaluation import evaluate_model
from r1_trl.generation import EngineSettings, Prompt, SamplingSettings, generate_sharded, release_engines
from r1_trl.models.tiny import TinyBaseSpec, load_or_build_tiny_base
from r1_trl.rundir import load_saved_dataset
from r1_trl.stages.cold_start_data import STATS_FILE, save_dataset_atomic
from r1_trl.stages.common import (
    CHECKPOINT_DIR,
    CURVES_FILE,
    DATASETS_DIR,
    EVAL_DETAILS_DATASET,
    RESULTS_FILE,
    eval_settings,
    evaluate_with_details,
    publish_stage,
    resolve_model,
    save_recipe,
    stage_publisher,
    trainer_args,
    write_json_atomic,
)
from r1_trl.trainers import R1GRPOTrainer, R1SFTTrainer
from reward_funcs._text import completion_to_text
from reward_funcs.model_based import outside_zero3

if TYPE_CHECKING:
    from r1_trl.hub import StagePublisher

logger = logging.getLogger(__name__)

STAGE = "distill"
TEACHER_DATASET = "teacher"
TWIN_EVAL_DETAILS_DATASET = f"{EVAL_DETAILS_DATASET}_rl_twin"
TWIN_DIR = "rl_twin"
ON_POLICY_DIR = "on_policy"
TWIN_BUDGETS = ("steps", "seconds", "seconds_with_teacher")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
DUPLICATE = "duplicate"
PER_PROMPT_CAP = "per_prompt_cap"

# Fields the RL twin and the on-policy trainer inherit from this recipe, so both run on the same prompts,
# seed and hardware settings as the SFT student.
_SHARED_STAGE_FIELDS = (
    "dataset_name", "dataset_path", "dataset_train_split", "dataset_test_split", "task_kwargs", "train_size",
    "eval_size", "prompt_template", "system_prompt", "prefill_think", "decontaminate", "eval_num_samples",
    "eval_temperature", "eval_max_new_tokens", "torch_num_threads",
)
_SHARED_TRAINING_FIELDS = ("seed", "use_cpu", "bf16", "report_to", "logging_steps", "disable_tqdm")

Sampler = Callable[[Sequence[Prompt]], list[list[str]]]


@dataclass
class DistillConfig(R1SFTConfig):
    """Teacher sampling + student SFT (TRL's SFTConfig fields) + the RL-only twin comparison."""

    _VALID_DICT_FIELDS = R1SFTConfig._VALID_DICT_FIELDS + ["student_tiny_spec", "on_policy_kwargs", "twin_grpo"]

    teacher_model: str | None = field(
        default=None, metadata={"help": "The teacher: the final checkpoint of the pipeline (path or Hub id)."}
    )
    teacher_model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the teacher."})
    teacher_prompt_template: str = field(
        default="r1_zero",
        metadata={"help": f"Template the teacher is prompted with ({', '.join(TEMPLATES)}); the saved dataset "
                  "uses the student's prompt_template."},
    )
    teacher_system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt of the teacher's chat template."}
    )
    teacher_num_samples: int = field(default=4, metadata={"help": "Samples per training prompt (k)."})
    teacher_temperature: float = field(default=1.0, metadata={"help": "Teacher sampling temperature."})
    teacher_top_p: float = field(default=1.0, metadata={"help": "Teacher nucleus sampling threshold."})
    teacher_max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per teacher sample."})
    teacher_batch_size: int = field(default=64, metadata={"help": "Sequences per generation batch."})
    teacher_filters: list[str] = field(
        default_factory=lambda: ["format", "accuracy"],
        metadata={"help": "Rewards a sample must pass (score >= teacher_min_reward) to be kept, checked in this "
                  "order; a rejected sample is counted under the first one it fails."},
    )
    teacher_min_reward: float = field(default=1.0, metadata={"help": "Least score that passes a filter."})
    teacher_dedupe: bool = field(default=True, metadata={"help": "Keep each distinct completion once per prompt."})
    teacher_max_per_prompt: int | None = field(
        default=None, metadata={"help": "Most kept samples per prompt (None: all that pass)."}
    )
    teacher_dataset: str | None = field(
        default=None,
        metadata={"help": "Reuse the teacher set of an earlier run (a datasets/teacher folder) instead of sampling "
                  "the teacher; its stats.json supplies the sampling time of seconds_with_teacher budgets."},
    )
    evaluate_teacher: bool = field(
        default=False, metadata={"help": "Also evaluate the teacher on the held-out set (its own template)."}
    )
    student_tiny_spec: dict | str | None = field(
        default=None,
        metadata={"help": "With model_name_or_path 'tiny': TinyBaseSpec fields overriding the default tiny base, "
                  "e.g. {\"hidden_size\": 96, \"num_layers\": 2} for a student smaller than the teacher "
                  "(pretrained once on the same corpus and cached by spec)."},
    )
    on_policy_steps: int = field(
        default=0,
        metadata={"help": "After SFT, this many steps of TRL's DistillationTrainer (on-policy generalized JSD "
                  "to the teacher's token distribution; needs a shared vocabulary). 0 disables it."},
    )
    on_policy_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "DistillationConfig fields for the on-policy step, e.g. {\"beta\": 0.5, "
                  "\"learning_rate\": 1e-4, \"max_completion_length\": 48}."},
    )
    rl_twin: bool = field(
        default=True, metadata={"help": "Train the RL-only twin (GRPO on the student base) for comparison."}
    )
    twin_budget: str = field(
        default="seconds_with_teacher",
        metadata={"help": "The twin's budget: 'steps' (as many optimizer steps as the student), 'seconds' (the "
                  "student's training wall-clock) or 'seconds_with_teacher' (that plus the teacher's sampling "
                  "time: the whole distillation cost inside this stage)."},
    )
    twin_budget_scale: float = field(
        default=1.0,
        metadata={"help": "Multiplier of the twin's budget (e.g. 4: RL gets four times the student's budget)."},
    )
    twin_budget_clock: str = field(
        default="wall",
        metadata={"help": "How seconds budgets are measured: 'wall' (wall clock) or 'cpu' (this process's CPU "
                  "time: robust on a shared CPU machine when torch runs one thread; reward worker processes "
                  "are not counted, which favours the twin)."},
    )
    twin_grpo: dict | str | None = field(
        default=None,
        metadata={"help": "R1GRPOConfig fields of the twin (rewards, num_generations, learning_rate, ...); "
                  "max_steps caps a seconds budget (a steps budget replaces it). Data, eval, seed and hardware "
                  "fields come from this recipe."},
    )

    def __post_init__(self) -> None:
        self.student_tiny_spec = parse_dict(self.student_tiny_spec, "student_tiny_spec")
        self.on_policy_kwargs = parse_dict(self.on_policy_kwargs, "on_policy_kwargs")
        self.twin_grpo = parse_dict(self.twin_grpo, "twin_grpo")
        self._validate_distill_fields()
        super().__post_init__()

    def _validate_distill_fields(self) -> None:
        if not self.teacher_model:
            raise RecipeError("teacher_model: a teacher checkpoint is required (the pipeline's final model)")
        if self.teacher_prompt_template not in TEMPLATES:
            raise RecipeError(f"teacher_prompt_template: unknown template {self.teacher_prompt_template!r}; "
                              f"known: {', '.join(TEMPLATES)}")
        if self.prefill_think:
            raise RecipeError("prefill_think: not supported by the distill stage (teacher completions open "
                              "<think> themselves)")
        for name in ("teacher_num_samples", "teacher_max_new_tokens", "teacher_batch_size"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.teacher_temperature < 0:
            raise RecipeError(f"teacher_temperature: must be >= 0, got {self.teacher_temperature}")
        if not 0 < self.teacher_top_p <= 1:
            raise RecipeError(f"teacher_top_p: must be in (0, 1], got {self.teacher_top_p}")
        if self.teacher_max_per_prompt is not None and self.teacher_max_per_prompt < 1:
            raise RecipeError(f"teacher_max_per_prompt: must be >= 1, got {self.teacher_max_per_prompt}")
        for name in self.teacher_filters:
            try:
                reward_funcs.check(name)  # a registry name or an import path
            except reward_funcs.UnknownRewardError as error:
                raise RecipeError(f"teacher_filters: {error}") from None
        _check_fields("student_tiny_spec", self.student_tiny_spec, TinyBaseSpec)
        if self.student_tiny_spec and self.model_name_or_path != TINY_MODEL:
            raise RecipeError(f"student_tiny_spec: only applies to model_name_or_path '{TINY_MODEL}', "
                              f"got {self.model_name_or_path!r}")
        if self.on_policy_steps < 0:
            raise RecipeError(f"on_policy_steps: must be >= 0, got {self.on_policy_steps}")
        _check_fields("on_policy_kwargs", self.on_policy_kwargs, DistillationConfig)
        if self.twin_budget not in TWIN_BUDGETS:
            raise RecipeError(f"twin_budget: must be one of {', '.join(TWIN_BUDGETS)}, got {self.twin_budget!r}")
        if self.twin_budget_scale <= 0:
            raise RecipeError(f"twin_budget_scale: must be > 0, got {self.twin_budget_scale}")
        if self.twin_budget_clock not in CLOCKS:
            raise RecipeError(f"twin_budget_clock: must be one of {', '.join(CLOCKS)}, got {self.twin_budget_clock!r}")
        _check_fields("twin_grpo", self.twin_grpo, R1GRPOConfig)
        reserved = {"model_name_or_path", "output_dir", *_SHARED_STAGE_FIELDS, "seed"}
        clash = sorted(reserved & set(self.twin_grpo))
        if clash:
            raise RecipeError(f"twin_grpo: {clash} are set by the stage (same data, seed and budget as the student)")


def _check_fields(name: str, values: dict[str, Any], target: type) -> None:
    known = {f.name for f in dataclasses.fields(target)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecipeError(f"{name}: unknown field(s) {unknown} of {target.__name__}")


CONFIG_CLASS = DistillConfig


# --- teacher dataset ------------------------------------------------------------------------------------


def filter_teacher_samples(
    samples: Sequence[Sequence[str]],
    rows: Dataset,
    filters: Sequence[str],
    min_reward: float = 1.0,
    dedupe: bool = True,
    max_per_prompt: int | None = None,
    teacher_prompts: Sequence[Prompt] | None = None,
) -> tuple[list[tuple[int, str]], dict[str, Any]]:
    """Keep the samples that pass every filter reward, once each, at most ``max_per_prompt`` per prompt.

    ``samples[i]`` are the teacher's completions for ``rows[i]`` (which has ``solution`` and optionally
    ``language``). Returns the kept ``(row index, completion text)`` pairs and the filter statistics:
    ``rejected`` counts each rejected sample once, under the first filter it fails (then ``duplicate``,
    ``per_prompt_cap``); ``failed`` counts every filter's failures independently.
    """
    if len(samples) != len(rows):
        raise ValueError(f"filter_teacher_samples: {len(samples)} sample groups for {len(rows)} rows")
    flat = [(i, completion_to_text(text)) for i, group in enumerate(samples) for text in group]
    texts = [text for _, text in flat]
    kwargs: dict[str, Any] = {"solution": [rows[i]["solution"] for i, _ in flat]}
    if "language" in rows.column_names:
        kwargs["language"] = [rows[i]["language"] for i, _ in flat]
    if teacher_prompts is not None:
        kwargs["prompts"] = [teacher_prompts[i] for i, _ in flat]
    passes = {
        name: [score is not None and score >= min_reward for score in reward_funcs.get(name)(texts, **kwargs)]
        for name in filters
    }
    rejected = {name: 0 for name in filters} | {DUPLICATE: 0, PER_PROMPT_CAP: 0}
    passing: list[int] = []
    for position in range(len(flat)):
        failed = next((name for name in filters if not passes[name][position]), None)
        if failed is None:
            passing.append(position)
        else:
            rejected[failed] += 1
    chosen, counts = select_unique([(flat[p][0], flat[p][1].strip()) for p in passing], max_per_prompt, dedupe)
    rejected[DUPLICATE] = counts.exact_duplicates + counts.whitespace_duplicates
    rejected[PER_PROMPT_CAP] = counts.over_cap
    kept = [flat[passing[c]] for c in chosen]
    per_prompt = Counter(row for row, _ in kept)
    stats = {
        "prompts": len(rows),
        "generated": len(flat),
        "kept": len(kept),
        "keep_rate": len(kept) / len(flat) if flat else 0.0,
        "prompts_with_kept_samples": len(per_prompt),
        "rejected": rejected,
        "failed": {name: passes[name].count(False) for name in filters},
        "filters": list(filters),
        "min_reward": min_reward,
        "dedupe": dedupe,
        "max_per_prompt": max_per_prompt,
    }
    return kept, stats


def teacher_rows(kept: Sequence[tuple[int, str]], rows: Dataset) -> Dataset:
    """Prompt/completion rows in the student's template (``rows['prompt']``): a string completion after a
    plain-text prompt, an assistant message after a conversational one."""
    extra = [name for name in ("problem", "solution", "language") if name in rows.column_names]
    records = []
    for index, text in kept:
        row = rows[index]
        prompt = row["prompt"]
        completion: Any = " " + text.strip() if isinstance(prompt, str) else [
            {"role": "assistant", "content": text.strip()}
        ]
        records.append({"prompt": prompt, "completion": completion, **{name: row[name] for name in extra}})
    if not records:
        return Dataset.from_dict({"prompt": [], "completion": [], **{name: [] for name in extra}})
    return Dataset.from_list(records)


def teacher_prompts(rows: Dataset, config: DistillConfig) -> list[Prompt]:
    return [format_prompt(p, config.teacher_prompt_template, config.teacher_system_prompt) for p in rows["problem"]]


def teacher_sampling(config: DistillConfig) -> SamplingSettings:
    return SamplingSettings(
        num_samples=config.teacher_num_samples,
        max_new_tokens=config.teacher_max_new_tokens,
        temperature=config.teacher_temperature,
        top_p=config.teacher_top_p,
        batch_size=config.teacher_batch_size,
        seed=config.seed,
    )


@dataclass
class Elapsed:
    """Seconds spent in a phase, on the wall clock and as this process's CPU time."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Elapsed) -> Elapsed:
        return Elapsed(self.wall + other.wall, self.cpu + other.cpu)

    def on(self, clock: str) -> float:
        return self.wall if clock == "wall" else self.cpu


@contextmanager
def stopwatch() -> Iterator[Elapsed]:
    """``with stopwatch() as elapsed: ...`` fills ``elapsed`` when the block ends."""
    elapsed = Elapsed()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield elapsed
    finally:
        elapsed.wall, elapsed.cpu = time.perf_counter() - wall, time.process_time() - cpu


def build_teacher_dataset(
    config: DistillConfig, teacher_path: str, rows: Dataset, sampler: Sampler | None = None
) -> tuple[Dataset, dict[str, Any], Elapsed]:
    """Sample the teacher on ``rows`` (training prompts in the student's template) and filter the samples.

    Returns the dataset, its statistics (generation settings, teacher path, filter counts) and the time
    the sampling took.
    """
    prompts = teacher_prompts(rows, config)
    settings = teacher_sampling(config)
    with stopwatch() as elapsed:
        if sampler is None:
            tokenizer = AutoTokenizer.from_pretrained(teacher_path, revision=config.teacher_model_revision)
            samples = generate_sharded(teacher_path, tokenizer, prompts, settings, EngineSettings.from_config(config))
            release_engines()
        else:
            samples = sampler(prompts)
    kept, stats = filter_teacher_samples(
        samples, rows, config.teacher_filters, config.teacher_min_reward, config.teacher_dedupe,
        config.teacher_max_per_prompt, prompts,
    )
    stats.update(
        {
            "teacher_model": teacher_path,
            "teacher_revision": config.teacher_model_revision,
            "sampling": dataclasses.asdict(settings),
            "teacher_prompt_template": config.teacher_prompt_template,
            "student_prompt_template": config.prompt_template,
            "generation_seconds": elapsed.wall,
            "generation_cpu_seconds": elapsed.cpu,
        }
    )
    return teacher_rows(kept, rows), stats, elapsed


def load_teacher_dataset(path: str | Path) -> tuple[Dataset, dict[str, Any], Elapsed]:
    """A teacher set saved by an earlier run, its stats, and the sampling time recorded there."""
    path = Path(path)
    stats_file = path / STATS_FILE
    if not stats_file.is_file():
        raise FileNotFoundError(f"teacher_dataset: {path} is not a saved teacher set (no {STATS_FILE})")
    stats = json.loads(stats_file.read_text())
    stats["reused_from"] = str(path.resolve())
    elapsed = Elapsed(stats["generation_seconds"], stats.get("generation_cpu_seconds", stats["generation_seconds"]))
    return load_saved_dataset(path), stats, elapsed


# --- models ---------------------------------------------------------------------------------------------


def resolve_student(config: DistillConfig) -> tuple[str, str | None, dict[str, Any] | None]:
    """(path, revision, tiny spec) of the student base; a smaller tiny base is built once and cached."""
    if config.model_name_or_path == TINY_MODEL and config.student_tiny_spec:
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in config.student_tiny_spec.items()}
        spec = TinyBaseSpec(**overrides)
        return str(load_or_build_tiny_base(spec)), None, dataclasses.asdict(spec)
    path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    return path, revision, None


def count_parameters(path: str, revision: str | None = None) -> int:
    """Parameters of a checkpoint, from its config alone (the weights are built on the meta device)."""
    model_config = AutoConfig.from_pretrained(path, revision=revision)
    with outside_zero3(), torch.device("meta"):  # under ZeRO-3, from_config would initialise real shards
        model = AutoModelForCausalLM.from_config(model_config)
    return sum(p.numel() for p in model.parameters())


class TimeBudget(TrainerCallback):
    """Stops training before the next step would take it past ``seconds`` on ``clock`` (judged by the mean
    step time so far), so the twin never gets more time than its budget; it always takes one step.

    The budget runs from ``start()`` (call it right before ``trainer.train()``, where the student's training
    time starts too) or else from the start of the training loop.
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


# --- training -------------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    steps: int
    elapsed: Elapsed
    log_history: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": self.elapsed.wall, "cpu_seconds": self.elapsed.cpu}


def _train(trainer: Any, budget: TimeBudget | None = None) -> TrainingRun:
    with stopwatch() as elapsed:
        if budget is not None:
            budget.start()
        trainer.train()
    return TrainingRun(trainer.state.global_step, elapsed, trainer.state.log_history)


def train_student_sft(
    config: DistillConfig, student_path: str, dataset: Dataset, checkpoint: Path, revision: str | None = None,
    publisher: StagePublisher | None = None,
) -> TrainingRun:
    """SFT of the student on the teacher set (completion-only loss); saves model + tokenizer to ``checkpoint``.

    With a `publisher`, saved checkpoints are pushed to step branches and TRL's own push is off."""
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(student_path, revision=revision)
    trainer = R1SFTTrainer(
        model=student_path, args=trainer_args(config, publisher),
        train_dataset=dataset.select_columns(["prompt", "completion"]), processing_class=tokenizer,
        callbacks=publisher.callbacks() if publisher else [],
    )
    run = _train(trainer)
    save_trained_model(trainer, checkpoint, tokenizer)  # with use_peft: the adapter (merged on request)
    return run


def on_policy_config(config: DistillConfig, output_dir: Path) -> DistillationConfig:
    values: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "max_completion_length": config.eval_max_new_tokens,
        "gradient_checkpointing": False,
        "save_strategy": "no",
    }
    values.update({name: getattr(config, name) for name in _SHARED_TRAINING_FIELDS})
    values.update(config.on_policy_kwargs)
    values.update({"output_dir": str(output_dir), "max_steps": config.on_policy_steps})
    return DistillationConfig(**values)


def train_on_policy(
    config: DistillConfig, student_checkpoint: Path, teacher_path: str, prompts: Dataset
) -> TrainingRun:
    """On-policy distillation (TRL's DistillationTrainer) from the SFT checkpoint, saved over it."""
    tokenizer = AutoTokenizer.from_pretrained(student_checkpoint, padding_side="left")
    trainer = DistillationTrainer(
        model=full_model_path(str(student_checkpoint)), teacher_model=teacher_path,  # an adapter: merged
        args=on_policy_config(config, Path(config.output_dir) / ON_POLICY_DIR),
        train_dataset=prompts.select_columns(["prompt"]), processing_class=tokenizer,
    )
    run = _train(trainer)
    if trainer.accelerator.is_main_process and is_adapter(student_checkpoint):
        shutil.rmtree(student_checkpoint)  # the on-policy student is a full model: no adapter files beside it
        tokenizer.save_pretrained(student_checkpoint)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(student_checkpoint))
    return run


def twin_config(config: DistillConfig, student_path: str, max_steps: int | None) -> R1GRPOConfig:
    """The RL-only twin's recipe: ``twin_grpo`` plus this recipe's data, eval, seed and hardware fields."""
    values: dict[str, Any] = {"save_strategy": "no", **config.twin_grpo}
    values.update({name: getattr(config, name) for name in (*_SHARED_STAGE_FIELDS, *_SHARED_TRAINING_FIELDS)})
    values.update({"model_name_or_path": student_path, "output_dir": str(Path(config.output_dir) / TWIN_DIR)})
    if max_steps is not None:
        values["max_steps"] = max_steps
    elif values.get("max_steps", -1) <= 0:
        values["max_steps"] = 100_000  # the time budget stops it; the cap only sizes the LR schedule
    return R1GRPOConfig(**values)


def twin_budget(config: DistillConfig, student: TrainingRun, teacher_sampling_time: Elapsed) -> dict[str, Any]:
    """The twin's budget: the student's optimizer steps, or its training time (plus the teacher's sampling)."""
    scale = config.twin_budget_scale
    if config.twin_budget == "steps":
        return {"mode": "steps", "scale": scale, "steps": max(1, round(student.steps * scale))}
    spent = student.elapsed + (teacher_sampling_time if config.twin_budget == "seconds_with_teacher" else Elapsed())
    return {"mode": config.twin_budget, "scale": scale, "clock": config.twin_budget_clock,
            "seconds": spent.on(config.twin_budget_clock) * scale}


def train_rl_twin(
    config: DistillConfig, student_path: str, train: Dataset, budget: dict[str, Any], revision: str | None = None
) -> tuple[TrainingRun, str]:
    """R1-Zero GRPO on the student base within ``budget``; returns the run and ``rl_twin/checkpoint``."""
    args = twin_config(config, student_path, budget.get("steps"))
    if revision:
        args.model_init_kwargs = {**(args.model_init_kwargs or {}), "revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(student_path, revision=revision)
    time_budget = TimeBudget(budget["seconds"], CLOCKS[budget["clock"]]) if "seconds" in budget else None
    trainer = R1GRPOTrainer(model=student_path, args=args, train_dataset=train, processing_class=tokenizer,
                            callbacks=[time_budget] if time_budget else [])
    run = _train(trainer, time_budget)
    checkpoint = Path(args.output_dir) / CHECKPOINT_DIR
    trainer.save_model(str(checkpoint))
    tokenizer.save_pretrained(checkpoint)
    return run, str(checkpoint)


# --- the stage ------------------------------------------------------------------------------------------


def run(config: DistillConfig, sampler: Sampler | None = None) -> dict[str, Any]:
    """Teacher data -> student SFT (-> on-policy distillation) -> RL-only twin; writes the stage artifacts.

    ``sampler(teacher_prompts) -> samples per prompt`` replaces the teacher's sampling (tests).
    """
    config.apply_runtime_settings()
    state = launch_state()
    publisher = stage_publisher(config, STAGE)
    with stopwatch() as total:
        results = _run(config, sampler, publisher)
    if not state.is_main_process:
        state.wait_for_everyone()
        return {"stage": STAGE}
    results["seconds"] = total.wall
    results["cpu_seconds"] = total.cpu
    output_dir = Path(config.output_dir)
    write_json_atomic(output_dir / RESULTS_FILE, results)
    plot_comparison(results, output_dir / CURVES_FILE)
    save_recipe(config, output_dir)
    publish_stage(publisher, config, output_dir, results)
    state.wait_for_everyone()
    return results


def _run(config: DistillConfig, sampler: Sampler | None, publisher: StagePublisher | None) -> dict[str, Any]:
    output_dir = Path(config.output_dir)
    teacher_path, _ = resolve_model(str(config.teacher_model), config.teacher_model_revision, "teacher_model")
    if sampler is None and _looks_local(teacher_path) and not Path(teacher_path).exists():
        raise FileNotFoundError(f"teacher_model: {teacher_path} does not exist")
    student_path, revision, tiny_spec = resolve_student(config)
    train, held_out = build_prompt_datasets(PromptSpec.from_config(config))
    settings = eval_settings(config, language_metric=True)
    engine = EngineSettings.from_config(config)
    student_tokenizer = AutoTokenizer.from_pretrained(student_path, revision=revision)
    timings: dict[str, Elapsed] = {}

    generated = {TEACHER_DATASET: output_dir / DATASETS_DIR / TEACHER_DATASET}

    def evaluate(
        path: str, rows: Dataset = held_out, tokenizer: Any = student_tokenizer, details: str | None = None
    ) -> dict[str, Any]:
        """Held-out metrics of ``path``; with ``details``, its samples are saved as ``datasets/<details>``."""
        with stopwatch() as elapsed:
            if details is None:
                metrics = evaluate_model(path, tokenizer, rows, settings, show_progress=True, engine=engine,
                                         sharded=True)  # fmt: skip
            else:
                metrics, generated[details] = evaluate_with_details(
                    path, tokenizer, rows, settings, output_dir, path, name=details, engine=engine
                )
        timings["evaluation"] = timings.get("evaluation", Elapsed()) + elapsed
        return metrics

    before = evaluate(student_path)
    teacher_metrics = None
    if config.evaluate_teacher:
        teacher_held_out = held_out.map(lambda row: {
            "prompt": format_prompt(row["problem"], config.teacher_prompt_template, config.teacher_system_prompt)
        })
        teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path, revision=config.teacher_model_revision)
        teacher_metrics = evaluate(teacher_path, teacher_held_out, teacher_tokenizer)

    if config.teacher_dataset:
        dataset, data_stats, timings["teacher_generation"] = load_teacher_dataset(config.teacher_dataset)
    else:
        dataset, data_stats, timings["teacher_generation"] = build_teacher_dataset(
            config, teacher_path, train, sampler)
    dataset_path = generated[TEACHER_DATASET]
    state = launch_state()
    if state.is_main_process and not (
        config.teacher_dataset and Path(config.teacher_dataset).resolve() == dataset_path.resolve()
    ):
        save_dataset_atomic(dataset, dataset_path, data_stats)
    state.wait_for_everyone()
    if len(dataset) == 0:
        raise RuntimeError(
            f"teacher_model: none of the teacher's {data_stats['generated']} samples passed the filters "
            f"{config.teacher_filters} (rejected: {data_stats['rejected']}); see {dataset_path}/stats.json"
        )

    checkpoint = output_dir / CHECKPOINT_DIR
    sft = train_student_sft(config, student_path, dataset, checkpoint, revision, publisher)
    timings["student_sft"] = sft.elapsed
    student = TrainingRun(sft.steps, sft.elapsed, list(sft.log_history))
    after_sft = on_policy = None
    if config.on_policy_steps > 0:
        after_sft = evaluate(str(checkpoint))
        on_policy = train_on_policy(config, checkpoint, teacher_path, train)
        timings["on_policy"] = on_policy.elapsed
        student = TrainingRun(sft.steps + on_policy.steps, sft.elapsed + on_policy.elapsed,
                              sft.log_history + on_policy.log_history)
    after = evaluate(str(checkpoint), details=EVAL_DETAILS_DATASET)

    twin: dict[str, Any] | None = None
    if config.rl_twin:
        budget = twin_budget(config, student, timings["teacher_generation"])
        twin_run, twin_checkpoint = train_rl_twin(config, student_path, train, budget, revision)
        timings["rl_twin"] = twin_run.elapsed
        twin = {
            "metrics": evaluate(twin_checkpoint, details=TWIN_EVAL_DETAILS_DATASET),
            "checkpoint": twin_checkpoint,
            "budget": budget,
            "train": twin_run.summary(),
            "log_history": twin_run.log_history,
        }

    student_parameters = count_parameters(student_path, revision)
    teacher_parameters = count_parameters(teacher_path, config.teacher_model_revision)
    return {
        "stage": STAGE,
        "model": config.model_name_or_path,
        "student_base_path": student_path,
        "student_tiny_spec": tiny_spec,
        "teacher_model": teacher_path,
        "checkpoint": str(checkpoint),
        "datasets": {name: str(path.resolve()) for name, path in generated.items()},
        "before": before,
        "after_sft": after_sft,
        "after": after,
        "metrics": after,
        "teacher_metrics": teacher_metrics,
        "rl_only_twin": twin,
        "comparison": _comparison(after, twin, student),
        "parameters": {"student": student_parameters, "teacher": teacher_parameters,
                       "student_smaller_than_teacher": student_parameters < teacher_parameters},
        "teacher_data": data_stats,
        "train": {**sft.summary(), "rows": len(dataset), "train_prompts": len(train),
                  "held_out_prompts": len(held_out)},
        "on_policy": None if on_policy is None else on_policy.summary(),
        "timings": {name: elapsed.wall for name, elapsed in timings.items()},
        "cpu_timings": {name: elapsed.cpu for name, elapsed in timings.items()},
        "log_history": student.log_history,
    }


def _looks_local(name: str) -> bool:
    """Absolute or ./relative paths are local; 'org/name' may be a Hub id."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _comparison(after: dict[str, Any], twin: dict[str, Any] | None, student: TrainingRun) -> dict[str, Any]:
    """Distilled student vs RL-only twin: the budgets each used and the held-out accuracy/format gap."""
    summary: dict[str, Any] = {
        "student_steps": student.steps,
        "student_train_seconds": student.elapsed.wall,
        "student_train_cpu_seconds": student.elapsed.cpu,
    }
    if twin is None:
        return summary
    summary.update(
        {
            "budget": twin["budget"],
            "twin_steps": twin["train"]["steps"],
            "twin_train_seconds": twin["train"]["seconds"],
            "twin_train_cpu_seconds": twin["train"]["cpu_seconds"],
            "accuracy": {"distilled": after["accuracy"], "rl_only_twin": twin["metrics"]["accuracy"]},
            "accuracy_gain_of_distillation": after["accuracy"] - twin["metrics"]["accuracy"],
            "format_rate": {"distilled": after["format_rate"], "rl_only_twin": twin["metrics"]["format_rate"]},
        }
    )
    return summary


def plot_comparison(results: dict[str, Any], path: Path) -> Path:
    """Left: the student's SFT loss and the twin's mean reward per step. Right: held-out accuracy bars."""
    from r1_trl.plotting import plt, save_figure  # the plotting module selects the Agg backend

    figure, (curve_axis, bar_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss = [(row["step"], row["loss"]) for row in results["log_history"] if "loss" in row and "step" in row]
    if loss:
        curve_axis.plot(*zip(*loss, strict=True), label="student SFT loss")
    twin = results["rl_only_twin"]
    if twin:
        reward = [(row["step"], row["reward"]) for row in twin["log_history"] if "reward" in row and "step" in row]
        if reward:
            curve_axis.plot(*zip(*reward, strict=True), label="RL-only twin reward")
    curve_axis.set_xlabel("optimizer step")
    curve_axis.legend()
    bars = {"student base": results["before"]["accuracy"], "distilled": results["metrics"]["accuracy"]}
    if twin:
        bars["RL-only twin"] = twin["metrics"]["accuracy"]
    if results["teacher_metrics"]:
        bars["teacher"] = results["teacher_metrics"]["accuracy"]
    bar_axis.bar(list(bars), list(bars.values()), color="tab:blue")
    for x, value in enumerate(bars.values()):
        bar_axis.text(x, value, f"{value:.3f}", ha="center", va="bottom")
    bar_axis.set_ylim(0, 1.05)
    bar_axis.set_ylabel("held-out accuracy (pass@1)")
    figure.suptitle("distill: SFT on teacher samples vs RL alone, same student base")
    return save_figure(figure, path)
