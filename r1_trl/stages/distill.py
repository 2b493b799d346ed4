"""Distillation: the final model writes reasoning traces, a smaller student is fine-tuned on them.

The paper's last step: DeepSeek-R1 generates ~800k samples and small dense models are trained on
them with plain SFT. This stage does that in miniature:

1. the teacher (``teacher_model``) samples ``teacher_num_samples`` completions for each training
   prompt; completions that pass every ``teacher_filters`` reward (default: well-formed, then
   correct) and are not duplicates are saved as ``datasets/teacher`` in the *student's* prompt template
   (the filter and dedupe are `r1_trl.data.selection`'s, shared with rejection sampling);
2. the student (``model_name_or_path``; with ``'tiny'`` and ``student_tiny_spec`` a smaller tiny base)
   is fine-tuned on that set with TRL's SFTTrainer, loss on the completion only, through the training-stage
   runner (`r1_trl.stages.runner`: held-out metrics before/after, ``datasets/eval_details``, a rerun after a
   kill resumes from the newest ``checkpoint-N``); optionally ``on_policy_steps`` of TRL's
   DistillationTrainer (on-policy generalized-JSD distillation) follow.

The paper's comparison with a same-size model trained by RL alone is a benchmark:
``benchmarks/distill_vs_rl.py`` runs this stage, then GRPO on the same student base within the budget the
student used (``results["train"]``, ``results["teacher_data"]``).

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
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback
from trl import DistillationConfig, DistillationTrainer

import reward_funcs
from r1_trl.adapters import is_adapter
from r1_trl.checkpoints import full_model_path, load_adapter_model, save_trained_model, stage_adapter_dir
from r1_trl.configs import TINY_MODEL, R1SFTConfig, RecipeError, parse_dict
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.data.selection import select_unique
from r1_trl.data.templates import TEMPLATES, format_prompt, opened_think
from r1_trl.distributed import launch_state
from r1_trl.evaluation import EvalSettings, evaluate_model
from r1_trl.generation import EngineSettings, Prompt, SamplingSettings, generate_sharded, release_engines
from r1_trl.models.tiny import TinyBaseSpec, load_or_build_tiny_base
from r1_trl.rundir import DATASETS_DIR, STATS_FILE, load_saved_dataset, save_dataset_atomic
from r1_trl.stages.common import eval_settings, resolve_model
from r1_trl.stages.runner import TrainingStage, run_training_stage
from r1_trl.trainers import R1SFTTrainer
from reward_funcs.extraction import completion_to_text
from reward_funcs.model_based import outside_zero3

logger = logging.getLogger(__name__)

STAGE = "distill"
TEACHER_DATASET = "teacher"
ON_POLICY_DIR = "on_policy"
DUPLICATE = "duplicate"
PER_PROMPT_CAP = "per_prompt_cap"

# Training fields the on-policy trainer (and the RL-only twin of benchmarks/distill_vs_rl.py) inherit from this
# recipe, so that they run with the same seed and hardware settings as the SFT student.
SHARED_TRAINING_FIELDS = ("seed", "use_cpu", "bf16", "report_to", "logging_steps", "disable_tqdm")

Sampler = Callable[[Sequence[Prompt]], list[list[str]]]


@dataclass
class DistillConfig(R1SFTConfig):
    """Teacher sampling + student SFT (TRL's SFTConfig fields) + an optional on-policy distillation step."""

    _VALID_DICT_FIELDS = R1SFTConfig._VALID_DICT_FIELDS + ["student_tiny_spec", "on_policy_kwargs"]

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
                  "the teacher; its stats.json records the sampling time."},
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

    def __post_init__(self) -> None:
        self.student_tiny_spec = parse_dict(self.student_tiny_spec, "student_tiny_spec")
        self.on_policy_kwargs = parse_dict(self.on_policy_kwargs, "on_policy_kwargs")
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
) -> tuple[Dataset, dict[str, Any]]:
    """Sample the teacher on ``rows`` (training prompts in the student's template) and filter the samples.

    Returns the dataset and its statistics (generation settings, teacher path, filter counts, the wall-clock
    and CPU seconds the sampling took).
    """
    prompts = teacher_prompts(rows, config)
    settings = teacher_sampling(config)
    with stopwatch() as elapsed:
        if sampler is None:
            tokenizer = AutoTokenizer.from_pretrained(teacher_path, revision=config.teacher_model_revision)
            samples = generate_sharded(teacher_path, tokenizer, prompts, settings, EngineSettings.from_config(config))
            release_engines()
            opened = opened_think(prompts, tokenizer)  # the teacher's template opened <think>: restore it
            samples = [[opened + sample for sample in group] for group in samples]
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
    return teacher_rows(kept, rows), stats


def load_teacher_dataset(path: str | Path) -> tuple[Dataset, dict[str, Any]]:
    """A teacher set saved by an earlier run and its stats (with the sampling time recorded there)."""
    path = Path(path)
    stats_file = path / STATS_FILE
    if not stats_file.is_file():
        raise FileNotFoundError(f"teacher_dataset: {path} is not a saved teacher set (no {STATS_FILE})")
    stats = json.loads(stats_file.read_text())
    stats["reused_from"] = str(path.resolve())
    return load_saved_dataset(path), stats


def teacher_dataset(
    config: DistillConfig, teacher_path: str, train: Dataset, sampler: Sampler | None = None
) -> tuple[Dataset, dict[str, Any], Path]:
    """The teacher set (sampled now, or reused from ``teacher_dataset``), saved once as ``datasets/teacher``;
    a clear error when no sample passed the filters."""
    if config.teacher_dataset:
        dataset, stats = load_teacher_dataset(config.teacher_dataset)
    else:
        dataset, stats = build_teacher_dataset(config, teacher_path, train, sampler)
    path = Path(config.output_dir) / DATASETS_DIR / TEACHER_DATASET
    reused_in_place = bool(config.teacher_dataset) and Path(str(config.teacher_dataset)).resolve() == path.resolve()
    state = launch_state()
    if state.is_main_process and not reused_in_place:
        save_dataset_atomic(dataset, path, stats)
    state.wait_for_everyone()
    if len(dataset) == 0:
        raise RuntimeError(
            f"teacher_model: none of the teacher's {stats['generated']} samples passed the filters "
            f"{config.teacher_filters} (rejected: {stats['rejected']}); see {path}/{STATS_FILE}"
        )
    return dataset, stats, path


def evaluate_teacher(config: DistillConfig, teacher_path: str, held_out: Dataset, settings: EvalSettings) -> dict:
    """The teacher's held-out metrics, prompted in its own template."""
    rows = held_out.map(lambda row: {
        "prompt": format_prompt(row["problem"], config.teacher_prompt_template, config.teacher_system_prompt)
    })
    tokenizer = AutoTokenizer.from_pretrained(teacher_path, revision=config.teacher_model_revision)
    metrics = evaluate_model(teacher_path, tokenizer, rows, settings, show_progress=True,
                             engine=EngineSettings.from_config(config), sharded=True)  # fmt: skip
    release_engines()
    return metrics


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


# --- training -------------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    steps: int
    elapsed: Elapsed
    log_history: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": self.elapsed.wall, "cpu_seconds": self.elapsed.cpu}


def train_run(trainer: Any) -> TrainingRun:
    """``trainer.train()``, timed on the wall clock and as this process's CPU time."""
    with stopwatch() as elapsed:
        trainer.train()
    return TrainingRun(trainer.state.global_step, elapsed, trainer.state.log_history)


class CpuClock(TrainerCallback):
    """This process's CPU seconds inside the training loop (a comparison on a shared machine counts these)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[override]
        self.started = time.process_time()
        return control

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[override]
        if self.started is not None:
            self.seconds += time.process_time() - self.started
        return control


def on_policy_config(config: DistillConfig, output_dir: Path) -> DistillationConfig:
    values: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "max_completion_length": config.eval_max_new_tokens,
        "gradient_checkpointing": False,
        "save_strategy": "no",
    }
    values.update({name: getattr(config, name) for name in SHARED_TRAINING_FIELDS})
    values.update(config.on_policy_kwargs)
    values.update({"output_dir": str(output_dir), "max_steps": config.on_policy_steps})
    return DistillationConfig(**values)


def train_on_policy(
    config: DistillConfig, student_checkpoint: Path, teacher_path: str, prompts: Dataset
) -> TrainingRun:
    """On-policy distillation (TRL's DistillationTrainer) from the SFT checkpoint, saved over it.

    With ``use_peft`` the SFT student's adapter trains on (the same adapter on the same frozen base), and is
    saved as the SFT step saved it: the adapter as ``checkpoint/``, or merged with ``merge_adapter``."""
    tokenizer = AutoTokenizer.from_pretrained(student_checkpoint, padding_side="left")
    adapter_dir = stage_adapter_dir(student_checkpoint) if config.use_peft else None
    student: Any = full_model_path(str(student_checkpoint))  # an adapter of a full-weight run's base: merged
    if adapter_dir is not None:
        student = load_adapter_model(adapter_dir, dtype=torch.float32 if config.use_cpu else None, trainable=True)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher_path,
        args=on_policy_config(config, Path(config.output_dir) / ON_POLICY_DIR),
        train_dataset=prompts.select_columns(["prompt"]), processing_class=tokenizer,
    )
    run = train_run(trainer)
    if adapter_dir is not None:
        saved_tokenizer = AutoTokenizer.from_pretrained(student_checkpoint)  # as SFT saved it (padding side)
        save_trained_model(trainer, student_checkpoint, saved_tokenizer, config)
        return run
    if trainer.accelerator.is_main_process and is_adapter(student_checkpoint):
        shutil.rmtree(student_checkpoint)  # the on-policy student is a full model: no adapter files beside it
        tokenizer.save_pretrained(student_checkpoint)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(student_checkpoint))
    return run


# --- the stage ------------------------------------------------------------------------------------------


def run(config: DistillConfig, sampler: Sampler | None = None) -> dict[str, Any]:
    """Teacher data -> student SFT (-> on-policy distillation), through the training-stage runner.

    ``sampler(teacher_prompts) -> samples per prompt`` replaces the teacher's sampling (tests).
    """
    config.apply_runtime_settings()
    teacher_path, _ = resolve_model(str(config.teacher_model), config.teacher_model_revision, "teacher_model")
    if sampler is None and _looks_local(teacher_path) and not Path(teacher_path).exists():
        raise FileNotFoundError(f"teacher_model: {teacher_path} does not exist")
    student_path, revision, tiny_spec = resolve_student(config)
    if revision:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "revision": revision}
    train, held_out = build_prompt_datasets(PromptSpec.from_config(config))
    settings = eval_settings(config, language_metric=True)
    tokenizer = AutoTokenizer.from_pretrained(student_path, revision=revision)
    teacher_metrics = evaluate_teacher(config, teacher_path, held_out, settings) if config.evaluate_teacher else None
    dataset, data_stats, dataset_path = teacher_dataset(config, teacher_path, train, sampler)
    clock = CpuClock()

    def build_trainer(args: DistillConfig, callbacks: list) -> Trainer:
        return R1SFTTrainer(model=student_path, args=args, train_dataset=dataset.select_columns(["prompt", "completion"]),
                            processing_class=tokenizer, callbacks=[*callbacks, clock])  # fmt: skip

    def describe(trainer: Trainer) -> dict[str, Any]:
        return {"cpu_seconds": clock.seconds, "rows": len(dataset), "train_prompts": len(train),
                "held_out_prompts": len(held_out)}  # fmt: skip

    def on_policy(checkpoint: Path) -> dict[str, Any]:
        after_sft = evaluate_model(str(checkpoint), tokenizer, held_out, settings, show_progress=True,
                                   engine=EngineSettings.from_config(config), sharded=True)  # fmt: skip
        release_engines()
        trained = train_on_policy(config, checkpoint, teacher_path, train)
        return {"after_sft": after_sft, "on_policy": {**trained.summary(), "log_history": trained.log_history}}

    def plot(history: list, path: Path, before: dict, after: dict) -> Path:
        return plot_distill(history, path, before, after, teacher_metrics)

    student_parameters = count_parameters(student_path, revision)
    teacher_parameters = count_parameters(teacher_path, config.teacher_model_revision)
    return run_training_stage(TrainingStage(
        name=STAGE, config=config, model_path=student_path, tokenizer=tokenizer, held_out=held_out,
        settings=settings, build_trainer=build_trainer, plot=plot, describe=describe,
        post_train=on_policy if config.on_policy_steps > 0 else None,
        results={
            "student_base_path": student_path,
            "student_tiny_spec": tiny_spec,
            "teacher_model": teacher_path,
            "teacher_metrics": teacher_metrics,
            "teacher_data": data_stats,
            "parameters": {"student": student_parameters, "teacher": teacher_parameters,
                           "student_smaller_than_teacher": student_parameters < teacher_parameters},
            "datasets": {TEACHER_DATASET: str(dataset_path.resolve())},
            "after_sft": None,
            "on_policy": None,
        },
    ))  # fmt: skip


def _looks_local(name: str) -> bool:
    """Absolute or ./relative paths are local; 'org/name' may be a Hub id."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def plot_distill(
    log_history: list[dict[str, Any]], path: Path, before: dict[str, Any], after: dict[str, Any],
    teacher: dict[str, Any] | None,
) -> Path:
    """Left: the student's SFT loss per step. Right: held-out accuracy of the student base, the distilled
    student and (when evaluated) the teacher."""
    from r1_trl.plotting import (  # the plotting module selects the Agg backend
        accuracy_bars,
        plt,
        save_figure,
        series,
    )

    figure, (curve_axis, bar_axis) = plt.subplots(1, 2, figsize=(11, 4))
    steps, losses = series(log_history, "loss")
    if steps:
        curve_axis.plot(steps, losses, label="student SFT loss")
        curve_axis.legend()
    curve_axis.set_xlabel("optimizer step")
    bars = {"student base": before["accuracy"], "distilled": after["accuracy"]}
    if teacher:
        bars["teacher"] = teacher["accuracy"]
    accuracy_bars(bar_axis, bars)
    figure.suptitle("distill: SFT of the student on teacher samples")
    return save_figure(figure, path)
