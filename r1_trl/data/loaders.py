"""Load real math datasets and normalise them to ``prompt`` (raw problem) + ``solution`` (gold answer).

Each loader keeps a few useful extra columns (``reference_solution``, ``level``, ``type``,
``source``...) and adds ``task``. Templating is done elsewhere (``r1_trl.data.templates``).

``path`` is a Hub id by default, but may be a local directory, a local data file, or a packaged
builder name ("json", "parquet", "csv") used together with ``data_files``::

    load_task_dataset("gsm8k", split="test")
    load_task_dataset("math", data_files="math_test.jsonl", split="test", levels=[3, 4, 5])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, concatenate_datasets, load_dataset

GSM8K_ID = "openai/gsm8k"
HENDRYCKS_MATH_ID = "EleutherAI/hendrycks_math"
MATH500_ID = "HuggingFaceH4/MATH-500"
NUMINA_COT_ID = "AI-MO/NuminaMath-CoT"
AIME_ID = "AI-MO/aimo-validation-aime"
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
# Hub datasets that need a config name: one fixed default, or one config per subset and no combined one.
_DEFAULT_CONFIG = {GSM8K_ID: "main"}
_SUBSET_CONFIGS = {HENDRYCKS_MATH_ID: MATH_SUBJECTS}
_BUILDER_BY_SUFFIX = {
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow",
}
_PACKAGED_BUILDERS = frozenset(_BUILDER_BY_SUFFIX.values())
_BOX_COMMANDS = ("\\boxed", "\\fbox")

DataFiles = str | Sequence[str] | Mapping[str, str | Sequence[str]]


# --- gold-answer extraction -------------------------------------------------------------------------


def last_boxed(text: str | None) -> str | None:
    """Content of the last well-formed ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x`` in ``text``.

    >>> last_boxed(r"so $x = \\boxed{\\frac{1}{2}}$, not \\boxed{3}... wait: $\\boxed{\\{1, 2\\}}$")
    '\\\\{1, 2\\\\}'
    >>> last_boxed(r"The answer is $\\boxed 5$.")
    '5'
    >>> last_boxed("no box here") is None
    True
    """
    if not text:
        return None
    end = len(text)
    while True:
        start = max(text.rfind(command, 0, end) for command in _BOX_COMMANDS)
        if start == -1:
            return None
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        content = _box_content(text, start + len(command))
        if content:
            return content
        end = start


def _box_content(text: str, index: int) -> str | None:
    """The argument of a box command whose name ends at ``index``: ``{balanced}`` or `` token``."""
    after = text[index:]
    stripped = after.lstrip()
    if stripped.startswith("{"):
        depth = 0
        position = index + len(after) - len(stripped)
        begin = position + 1
        while position < len(text):
            char = text[position]
            if char == "\\":  # an escaped character (\{, \}) never opens or closes the group
                position += 2
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[begin:position].strip() or None
            position += 1
        return None
    if stripped is after:  # "\boxedx" is another command, not "\boxed x"
        return None
    token = re.match(r"[^\s$]+", stripped)
    content = token.group(0).rstrip(".,") if token else ""
    return content or None


def gsm8k_final_answer(answer: str | None) -> str | None:
    """GSM8K gold: the text after the last ``####``, without thousands separators.

    >>> gsm8k_final_answer("She pays 1,200 + 34 = <<1200+34=1234>>1,234 dollars.\\n#### 1,234")
    '1234'
    """
    if not answer or "####" not in answer:
        return None
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "").rstrip(".")
    return gold or None


def parse_level(level: Any) -> int | None:
    """``"Level 5"`` or ``5`` -> 5; ``"Level ?"`` (present in MATH) -> None.

    >>> parse_level("Level 3"), parse_level(4), parse_level("Level ?")
    (3, 4, None)
    """
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    match = re.search(r"\d+", str(level or ""))
    return int(match.group(0)) if match else None


def _integer_or_text(answer: Any) -> str | None:
    text = str(answer).strip() if answer is not None else ""
    if re.fullmatch(r"\d+", text):
        return str(int(text))  # AIME answers are integers 0..999: "033" and "33" are the same
    return text or None


# --- raw loading ------------------------------------------------------------------------------------


def load_raw(
    path: str,
    split: str,
    name: str | None = None,
    data_files: DataFiles | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """``datasets.load_dataset`` for a Hub id, a local directory, a local data file or ``data_files``.

    A plain file (or list of files) is loaded as ``split``, so ``split="test"`` works with one file.
    """
    if data_files is None and _suffix(path) in _BUILDER_BY_SUFFIX and Path(path).is_file():
        path, data_files = _builder_for(path), path
    if data_files is not None:
        builder = path if path in _PACKAGED_BUILDERS else _builder_for(data_files)
        if not isinstance(data_files, Mapping):
            data_files = {split: data_files}
        return load_dataset(builder, data_files=data_files, split=split, **load_kwargs)
    name = name or _DEFAULT_CONFIG.get(path)
    if name is None and path in _SUBSET_CONFIGS:
        parts = [load_dataset(path, subset, split=split, **load_kwargs) for subset in _SUBSET_CONFIGS[path]]
        return concatenate_datasets(parts)
    return load_dataset(path, name, split=split, **load_kwargs)


def _builder_for(data_files: DataFiles | Path) -> str:
    if isinstance(data_files, Mapping):
        files = [f for value in data_files.values() for f in ([value] if isinstance(value, str) else value)]
    else:
        files = [data_files] if isinstance(data_files, str | Path) else list(data_files)
    suffixes = {_suffix(str(file)) for file in files}
    builders = {_BUILDER_BY_SUFFIX.get(suffix) for suffix in suffixes}
    if len(builders) != 1 or None in builders:
        raise ValueError(
            f"cannot tell the format of data files {files}: use one of "
            f"{', '.join(sorted(_BUILDER_BY_SUFFIX))} or pass path='json'/'parquet'/'csv'"
        )
    return builders.pop()  # type: ignore[return-value]


def _suffix(file: str) -> str:
    suffixes = Path(file).suffixes
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _normalise(
    dataset: Dataset,
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    max_samples: int | None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    description: str = "normalise",
) -> Dataset:
    column_order = list(to_row(dataset[0])) if len(dataset) else None
    dataset = dataset.map(to_row, remove_columns=dataset.column_names, desc=description)
    if column_order:  # map puts reused names (e.g. "source") first; keep the loader's order
        dataset = dataset.select_columns(column_order)
    dataset = dataset.filter(
        lambda row: bool(row["prompt"]) and row["solution"] is not None and (keep is None or keep(row)),
        desc=f"{description}: drop rows without a gold answer",
    )
    if max_samples is not None:
        if max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {max_samples}")
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset


def _require(dataset: Dataset, *alternatives: Sequence[str]) -> None:
    for names in alternatives:
        if not any(name in dataset.column_names for name in names):
            raise ValueError(
                f"dataset has columns {dataset.column_names}; expected one of {list(names)}"
            )


# --- loaders ----------------------------------------------------------------------------------------


def load_gsm8k(
    path: str = GSM8K_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """GSM8K (``question``, ``answer`` ending in ``#### 72``) -> prompt / solution / reference_solution.

    The Hub id loads config ``"main"`` unless ``name`` says otherwise (``"socratic"``).
    """
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["question"], ["answer"])

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": row["question"].strip(),
            "solution": gsm8k_final_answer(row["answer"]),
            "reference_solution": row["answer"],
            "task": "gsm8k",
        }

    return _normalise(raw, to_row, max_samples, description="gsm8k")


def load_math(
    path: str = HENDRYCKS_MATH_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    levels: Iterable[int] | None = None,
    task: str = "math",
    **load_kwargs: Any,
) -> Dataset:
    """MATH (``problem``, ``solution``, ``level``, ``type``/``subject``, optional ``answer``).

    Gold is the ``answer`` column when present (MATH-500), else the last ``\\boxed`` of the
    solution. ``levels`` keeps only those difficulty levels (e.g. ``[3, 4, 5]``). With the
    default Hub id and no ``name``, all seven subject configs are loaded and concatenated.
    """
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["problem"], ["solution", "answer"])
    subject_column = next((c for c in ("type", "subject") if c in raw.column_names), None)
    keep_unique_id = "unique_id" in raw.column_names

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        answer = row.get("answer")
        gold = str(answer).strip() if answer not in (None, "") else last_boxed(row.get("solution"))
        normalised = {
            "prompt": row["problem"].strip(),
            "solution": gold or None,
            "reference_solution": row.get("solution") or "",
            "level": parse_level(row.get("level")),
            "type": row[subject_column] if subject_column else None,
            "task": task,
        }
        if keep_unique_id:
            normalised["unique_id"] = row["unique_id"]
        return normalised

    wanted = None if levels is None else frozenset(levels)
    keep = None if wanted is None else (lambda row: row["level"] in wanted)
    return _normalise(raw, to_row, max_samples, keep, description=task)


def load_math500(
    path: str = MATH500_ID,
    split: str = "test",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    levels: Iterable[int] | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """MATH-500 (the 500-problem MATH test subset; ``answer`` column holds the gold)."""
    return load_math(path, split, name, data_files, max_samples, levels, task="math500", **load_kwargs)


def load_numina(
    path: str = NUMINA_COT_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    sources: Iterable[str] | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """NuminaMath-CoT (``source``, ``problem``, ``solution``, ``messages``); rows without a boxed answer dropped.

    ``sources`` keeps only those origins (e.g. ``["amc_aime", "olympiads"]``).
    """
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["problem"], ["solution"])
    has_source = "source" in raw.column_names

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": row["problem"].strip(),
            "solution": last_boxed(row["solution"]),
            "reference_solution": row["solution"],
            "source": row["source"] if has_source else None,
            "task": "numina",
        }

    wanted = None if sources is None else frozenset(sources)
    keep = None if wanted is None else (lambda row: row["source"] in wanted)
    return _normalise(raw, to_row, max_samples, keep, description="numina")


def load_aime(
    path: str = AIME_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """AIME (``problem``/``question``, ``answer`` and/or ``solution``; e.g. aimo-validation-aime, aime_2024).

    Integer answers are normalised (``"033"`` -> ``"33"``); without an answer column the last
    ``\\boxed`` of the solution is used. ``id``, ``year`` and ``url`` are kept when present.
    """
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["problem", "question"], ["answer", "solution"])
    problem_column = "problem" if "problem" in raw.column_names else "question"
    extras = [c for c in ("id", "year", "url") if c in raw.column_names]

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        gold = _integer_or_text(row["answer"]) if "answer" in row else None
        return {
            "prompt": row[problem_column].strip(),
            "solution": gold or last_boxed(row.get("solution")),
            "reference_solution": row.get("solution") or "",
            "task": "aime",
            **{column: row[column] for column in extras},
        }

    return _normalise(raw, to_row, max_samples, description="aime")


LOADERS: dict[str, Callable[..., Dataset]] = {
    "gsm8k": load_gsm8k,
    "math": load_math,
    "math500": load_math500,
    "numina": load_numina,
    "aime": load_aime,
}


def load_task_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by its short name (see ``LOADERS``); ``kwargs`` go to that loader."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(LOADERS))}") from None
    return loader(**kwargs)
