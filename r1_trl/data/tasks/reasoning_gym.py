"""reasoning-gym task families as prompt datasets: ``dataset_name: reasoning_gym:<task>[,<task>...]``.

Each row keeps the generator's entry (question, answer, metadata) and the task config as a JSON string in
the ``reasoning_gym`` column; TRL passes that column to the rewards, and the ``reasoning_gym`` reward
scores an answer with the entry's own verifier (``dataset.score_answer(answer, entry)``).

Train and held-out are disjoint by question: a hash of the question text decides its split (1 bucket in
``TEST_SHARE_BUCKETS`` is held-out), whatever the seed or size. Within a split, questions are distinct.

``task_kwargs`` configures the tasks. One task: the task's own config fields (``{min_terms: 2}``). Several
tasks: one entry per task name holding its config plus an optional ``weight`` (share of the rows)::

    dataset_name: reasoning_gym:chain_sum,basic_arithmetic
    task_kwargs: {chain_sum: {weight: 3, max_terms: 3}, basic_arithmetic: {weight: 1, max_digits: 1}}

A task's ``question_template`` (``"What is {expression}?"``) rephrases the prompt from the entry's
metadata fields (and ``{question}``), e.g. to match the phrasing a small base model was pretrained on;
the entry the verifier sees is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset

PREFIX = "reasoning_gym:"
COLUMN = "reasoning_gym"
TEST_SHARE_BUCKETS = 10
_GENERATION_FACTOR = 2  # entries generated per needed row (and per split share) in the first round
_MAX_ROUNDS = 6


@dataclass(frozen=True)
class TaskSpec:
    """One reasoning-gym task: its registered name, config overrides and share of the rows."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    question_template: str | None = None

    def prompt(self, entry: Mapping[str, Any]) -> str:
        """The prompt of an entry: its question, or the ``question_template`` filled from its metadata."""
        question = str(entry["question"])
        if self.question_template is None:
            return question
        fields = {**(entry.get("metadata") or {}), "question": question}
        try:
            return self.question_template.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"question_template {self.question_template!r} of task {self.name!r}: {error!r}; "
                             f"fields available: {sorted(fields)}") from None


def _reasoning_gym() -> Any:
    try:
        import reasoning_gym
    except ModuleNotFoundError:
        raise ImportError("reasoning_gym:<task> datasets need reasoning-gym: pip install 'r1-trl[tasks]'") from None
    return reasoning_gym


def is_reasoning_gym(dataset_name: str) -> bool:
    """Whether a recipe's ``dataset_name`` names reasoning-gym tasks.

    >>> is_reasoning_gym("reasoning_gym:chain_sum"), is_reasoning_gym("arithmetic")
    (True, False)
    """
    return dataset_name.startswith(PREFIX)


def parse_tasks(dataset_name: str, task_kwargs: Mapping[str, Any] | None = None) -> list[TaskSpec]:
    """The tasks a ``reasoning_gym:a,b`` name and its ``task_kwargs`` describe.

    >>> parse_tasks("reasoning_gym:chain_sum", {"max_terms": 3})
    [TaskSpec(name='chain_sum', config={'max_terms': 3}, weight=1.0, question_template=None)]
    >>> [(t.name, t.weight) for t in parse_tasks("reasoning_gym:chain_sum,leg_counting", {"chain_sum": {"weight": 3}})]
    [('chain_sum', 3.0), ('leg_counting', 1.0)]
    """
    reasoning_gym = _reasoning_gym()
    names = [n.strip() for n in dataset_name.removeprefix(PREFIX).split(",") if n.strip()]
    if not names:
        raise ValueError(f"dataset_name: {dataset_name!r} names no reasoning-gym task (reasoning_gym:<task>)")
    unknown = [n for n in names if n not in reasoning_gym.factory.DATASETS]
    if unknown:
        raise ValueError(f"dataset_name: unknown reasoning-gym task(s) {unknown}; "
                         f"known: {', '.join(sorted(reasoning_gym.factory.DATASETS))}")
    kwargs = dict(task_kwargs or {})
    per_task = len(names) > 1 or any(key in names for key in kwargs)
    if not per_task:
        template = kwargs.pop("question_template", None)
        return [TaskSpec(names[0], kwargs, question_template=template)]
    extra = sorted(set(kwargs) - set(names))
    if extra:
        raise ValueError(f"task_kwargs: {extra} are not among the tasks {names}; give each task's config "
                         "under its name")
    specs = []
    for name in names:
        config = dict(kwargs.get(name) or {})
        weight = float(config.pop("weight", 1.0))
        if not weight > 0:
            raise ValueError(f"task_kwargs: {name}.weight must be > 0, got {weight}")
        specs.append(TaskSpec(name, config, weight, config.pop("question_template", None)))
    return specs


def split_of(question: str) -> str:
    """``"test"`` for 1 question in ``TEST_SHARE_BUCKETS`` (by hash), else ``"train"``."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_SHARE_BUCKETS == 0 else "train"


def _derived_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


def _entries(task: TaskSpec, seed: int, split: str, count: int) -> Iterator[dict[str, Any]]:
    """Distinct entries of ``task`` whose question falls in ``split``, generated in growing rounds."""
    reasoning_gym = _reasoning_gym()
    seen: set[str] = set()
    for round_index in range(_MAX_ROUNDS):
        share = TEST_SHARE_BUCKETS if split == "test" else 1
        size = 16 + count * share * _GENERATION_FACTOR * 2**round_index
        generated = reasoning_gym.create_dataset(
            task.name, size=size, seed=_derived_seed(seed, task.name, split, round_index), **task.config
        )
        for entry in generated:
            question = task.prompt(entry)
            if question in seen or split_of(question) != split:
                continue
            seen.add(question)
            yield entry


def _row(task: TaskSpec, entry: Mapping[str, Any]) -> dict[str, Any]:
    record = {"task": task.name, "config": task.config,
              "entry": {"question": entry["question"], "answer": entry["answer"], "metadata": entry["metadata"]}}
    return {
        "prompt": task.prompt(entry),
        "solution": None if entry["answer"] is None else str(entry["answer"]),
        COLUMN: json.dumps(record, default=str),
        "task": task.name,
    }


def reasoning_gym_dataset(
    size: int, tasks: list[TaskSpec], seed: int = 0, split: str = "train"
) -> Dataset:
    """``size`` rows mixing ``tasks`` by weight: ``prompt``, ``solution``, ``reasoning_gym`` (JSON), ``task``.

    >>> ds = reasoning_gym_dataset(4, [TaskSpec("chain_sum", {"max_terms": 2, "max_digits": 1})], split="test")
    >>> ds.column_names, len(set(ds["prompt"])), all(split_of(p) == "test" for p in ds["prompt"])
    (['prompt', 'solution', 'reasoning_gym', 'task'], 4, True)
    >>> tasks = parse_tasks("reasoning_gym:chain_sum", {"max_terms": 2, "question_template": "What is {expression}?"})
    >>> reasoning_gym_dataset(1, tasks, split="test")["prompt"][0].startswith("What is ")
    True
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    rng = random.Random(_derived_seed(seed, split, "mix"))
    assignment = rng.choices(range(len(tasks)), weights=[t.weight for t in tasks], k=size)
    counts = [assignment.count(i) for i in range(len(tasks))]
    per_task: list[list[dict[str, Any]]] = []
    for task, count in zip(tasks, counts, strict=True):
        rows = []
        if count:
            for entry in _entries(task, seed, split, count):
                rows.append(_row(task, entry))
                if len(rows) == count:
                    break
        if len(rows) < count:
            raise ValueError(f"reasoning-gym task {task.name!r} gave only {len(rows)} distinct {split} questions "
                             f"(asked for {count}); widen its config or lower the size")
        per_task.append(rows)
    iterators = [iter(rows) for rows in per_task]
    return Dataset.from_list([next(iterators[i]) for i in assignment])
