"""Recipe -> (train, held-out) prompt datasets: task or loader, template, decontamination."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, Value, concatenate_datasets, load_dataset

from r1_trl.data.decontaminate import decontaminate
from r1_trl.data.loaders import LOADERS, load_task_dataset
from r1_trl.data.tasks.arithmetic import arithmetic_dataset
from r1_trl.data.tasks.countdown import countdown_dataset
from r1_trl.data.tasks.reasoning_gym import is_reasoning_gym, parse_tasks, reasoning_gym_dataset
from r1_trl.data.templates import apply_template

logger = logging.getLogger(__name__)

SYNTHETIC_TASKS = ("arithmetic", "countdown")
DEFAULT_SYNTHETIC_TRAIN_SIZE = 2000
BENCHMARK_SEPARATOR = "+"
# What held-out evaluation reads from a row; every other column is dropped when benchmarks are combined.
EVAL_COLUMNS = ("prompt", "problem", "solution", "verification_info", "reasoning_gym", "language")


@dataclass(frozen=True)
class PromptSpec:
    """Where prompts come from and how they are rendered; built from a recipe's stage fields."""

    dataset_name: str = "arithmetic"
    dataset_path: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    task_kwargs: dict[str, Any] | None = None
    train_size: int | None = None
    eval_size: int = 200
    template: str = "r1_zero"
    system_prompt: str | None = None
    prefill_think: bool = False
    decontaminate: bool = True
    seed: int = 0

    @classmethod
    def from_config(cls, config: Any) -> PromptSpec:
        return cls(
            dataset_name=config.dataset_name,
            dataset_path=config.dataset_path,
            train_split=config.dataset_train_split,
            test_split=config.dataset_test_split,
            task_kwargs=dict(config.task_kwargs or {}),
            train_size=config.train_size,
            eval_size=config.eval_size,
            template=config.prompt_template,
            system_prompt=config.system_prompt,
            prefill_think=config.prefill_think,
            decontaminate=config.decontaminate,
            seed=config.seed,
        )


def load_problems(spec: PromptSpec, split: str, size: int | None) -> Dataset:
    """Raw problems (``prompt`` = the bare question, ``solution`` = gold answer) of one split."""
    kwargs = dict(spec.task_kwargs or {})
    name = spec.dataset_name
    if name == "arithmetic":
        levels = kwargs.pop("levels", 2)
        levels = tuple(levels) if isinstance(levels, list) else levels
        languages = tuple(kwargs.pop("languages", ("en",)))
        weights = kwargs.pop("language_weights", None)
        if kwargs:
            raise ValueError(f"task_kwargs: unknown arithmetic option(s) {sorted(kwargs)}; known: levels, languages, "
                             "language_weights")
        return arithmetic_dataset(size or DEFAULT_SYNTHETIC_TRAIN_SIZE, seed=spec.seed, levels=levels, split=split,
                                  languages=languages, language_weights=tuple(weights) if weights else None)
    if name == "countdown":
        return countdown_dataset(size or DEFAULT_SYNTHETIC_TRAIN_SIZE, seed=spec.seed, split=split, **kwargs)
    if is_reasoning_gym(name):
        return reasoning_gym_dataset(size or DEFAULT_SYNTHETIC_TRAIN_SIZE, parse_tasks(name, kwargs), seed=spec.seed,
                                     split=split)
    if name in LOADERS:
        if spec.dataset_path:
            kwargs["path"] = spec.dataset_path
        return load_task_dataset(name, split=split, max_samples=size, **kwargs)
    if Path(name).exists():
        return _load_local(Path(name), split, size)
    known = ", ".join((*SYNTHETIC_TASKS, "reasoning_gym:<task>", *sorted(LOADERS)))
    raise ValueError(f"dataset_name: {name!r} is neither a known dataset ({known}) nor an existing local file")


def _load_local(path: Path, split: str, size: int | None) -> Dataset:
    if path.is_dir():
        dataset = load_dataset(str(path), split=split)
    else:
        builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if builder is None:
            raise ValueError(f"dataset_name: unsupported file type {path.suffix!r} (json, jsonl, parquet, csv)")
        dataset = load_dataset(builder, data_files={split: str(path)}, split=split)
    missing = {"prompt", "solution"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"dataset_name: {path} lacks the column(s) {sorted(missing)}")
    return dataset.select(range(min(size, len(dataset)))) if size else dataset


def render(dataset: Dataset, spec: PromptSpec) -> Dataset:
    return apply_template(dataset, spec.template, spec.system_prompt, spec.prefill_think)


def build_prompt_datasets(spec: PromptSpec) -> tuple[Dataset, Dataset]:
    """Templated (train, held-out) datasets; train is decontaminated against held-out when asked.

    reasoning-gym splits are disjoint by question already, and their questions share long fixed phrasings
    ("State the final answer to the following arithmetic problem: ..."), which n-gram decontamination
    would take for overlap: it is skipped for them.
    """
    held_out = load_problems(spec, spec.test_split, spec.eval_size)
    train = load_problems(spec, spec.train_split, spec.train_size)
    if spec.decontaminate and not is_reasoning_gym(spec.dataset_name):
        train, stats = decontaminate(train, held_out, column="prompt")
        if stats.num_dropped:
            logger.info("decontamination dropped %d of %d training prompts", stats.num_dropped, stats.total)
    return render(train, spec), render(held_out, spec)


def benchmark_names(dataset_name: str) -> list[str]:
    """The benchmarks of an evaluation ``dataset_name``: one name, or several joined by ``+``.

    >>> benchmark_names("aime2024+math500+reasoning_gym:chain_sum,leg_counting")
    ['aime2024', 'math500', 'reasoning_gym:chain_sum,leg_counting']
    """
    return [name.strip() for name in dataset_name.split(BENCHMARK_SEPARATOR) if name.strip()]


def evaluation_split(name: str) -> str:
    """A benchmark's evaluation split: its loader's default split (GPQA and aime_2024 have only ``train``),
    else ``test``.

    >>> evaluation_split("gpqa_diamond"), evaluation_split("math500"), evaluation_split("arithmetic")
    ('train', 'test', 'test')
    """
    loader = LOADERS.get(name)
    default = inspect.signature(loader).parameters.get("split") if loader else None
    return default.default if default is not None and isinstance(default.default, str) else "test"


def build_eval_dataset(spec: PromptSpec, split: str | None = None) -> Dataset:
    """Templated held-out rows of every benchmark in ``spec.dataset_name`` (``a+b+c``), ``spec.eval_size`` of
    each, with a ``benchmark`` column so that the metrics are reported per benchmark too. ``split`` None: each
    benchmark's `evaluation_split`. With several benchmarks, ``spec.task_kwargs`` maps a benchmark's name to
    its own task_kwargs (``{"reasoning_gym:chain_sum": {"max_terms": 3}}``)."""
    names = benchmark_names(spec.dataset_name)
    if not names:
        raise ValueError("dataset_name: no benchmark given")
    if len(names) > 1 and spec.dataset_path:
        raise ValueError("dataset_path applies to one benchmark; give each benchmark's files in its own run")
    per_benchmark = dict(spec.task_kwargs or {}) if len(names) > 1 else {names[0]: spec.task_kwargs}
    unknown = sorted(set(per_benchmark) - set(names))
    if unknown:
        raise ValueError(f"task_kwargs: with several benchmarks, give each one's options under its name; "
                         f"{unknown} are not among {names}")
    parts = []
    for name in names:
        name_spec = dataclasses.replace(spec, dataset_name=name, task_kwargs=per_benchmark.get(name))
        rows = render(load_problems(name_spec, split or evaluation_split(name), spec.eval_size), spec)
        if len(names) > 1:
            rows = _eval_columns(rows)
        parts.append(rows.add_column("benchmark", [name] * len(rows)))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _eval_columns(rows: Dataset) -> Dataset:
    """Only `EVAL_COLUMNS`, each present (None when missing) and, apart from chat prompts, as strings."""
    rows = rows.select_columns([c for c in EVAL_COLUMNS if c in rows.column_names])
    for column in EVAL_COLUMNS:
        if column not in rows.column_names:
            rows = rows.add_column(column, [None] * len(rows), feature=Value("string"))
        elif column != "prompt" and rows.features[column] != Value("string"):
            rows = rows.cast_column(column, Value("string"))
    if rows.features["prompt"] != Value("string"):
        raise ValueError("combining benchmarks needs plain-text prompts (prompt_template r1_zero or none)")
    return rows.select_columns(list(EVAL_COLUMNS))
