"""Dataset loaders on small local files with the real Hub column layouts (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pytest
from datasets import Dataset

from r1_trl.data import loaders
from r1_trl.data.loaders import (
    LOADERS,
    gsm8k_final_answer,
    last_boxed,
    load_aime,
    load_gsm8k,
    load_math,
    load_math500,
    load_numina,
    load_task_dataset,
    parse_level,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture
def cache(tmp_path: Path) -> dict[str, str]:
    return {"cache_dir": str(tmp_path / "cache")}


# --- answer extraction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"$\fbox{a, b}$", "a, b"),
        (r"the answer is $\boxed 7$.", "7"),
        (r"the answer is \boxed 7.", "7"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\text{(C)}\ 5}", r"\text{(C)}\ 5"),
        (r"good \boxed{3} then broken \boxed{4", "3"),
        (r"\boxed {12}", "12"),
        (r"\boxed{}", None),
        (r"\boxedx", None),
        ("no box", None),
        ("", None),
        (None, None),
    ],
)
def test_last_boxed(text: str | None, expected: str | None) -> None:
    assert last_boxed(text) == expected


def test_gsm8k_final_answer() -> None:
    assert gsm8k_final_answer("steps\n#### 1,840") == "1840"
    assert gsm8k_final_answer("steps #### -3") == "-3"
    assert gsm8k_final_answer("no marker 12") is None
    assert gsm8k_final_answer("####   ") is None


def test_parse_level() -> None:
    assert [parse_level(x) for x in ("Level 1", "Level 5", 3, "Level ?", None)] == [1, 5, 3, None, None]


# --- loaders on local files -------------------------------------------------------------------------


def test_gsm8k_local_jsonl(cache: dict[str, str]) -> None:
    ds = load_gsm8k(data_files=str(FIXTURES / "gsm8k_main_test.jsonl"), split="test", **cache)
    assert ds.column_names == ["prompt", "solution", "reference_solution", "task"]
    assert list(ds["solution"]) == ["72", "1840", "180"]
    assert ds[2]["prompt"] == "A train travels 60 miles per hour for 3 hours. How far does it go?"
    assert ds[1]["reference_solution"].endswith("#### 1,840")
    assert set(ds["task"]) == {"gsm8k"}


def test_gsm8k_file_path_and_max_samples(cache: dict[str, str]) -> None:
    ds = load_gsm8k(path=str(FIXTURES / "gsm8k_main_test.jsonl"), split="train", max_samples=2, **cache)
    assert len(ds) == 2
    assert list(ds["solution"]) == ["72", "1840"]


def test_several_files_and_split_mapping(cache: dict[str, str]) -> None:
    files = [str(FIXTURES / "gsm8k_main_test.jsonl")] * 2
    assert len(load_gsm8k(data_files=files, split="train", **cache)) == 6
    mapping = {"test": str(FIXTURES / "gsm8k_main_test.jsonl")}
    assert len(load_gsm8k(data_files=mapping, split="test", **cache)) == 3


def test_math_gold_from_last_box_and_levels(cache: dict[str, str]) -> None:
    ds = load_math(data_files=str(FIXTURES / "hendrycks_math_algebra_test.jsonl"), split="test", **cache)
    # the row without any boxed answer is dropped
    assert len(ds) == 5
    assert list(ds["solution"]) == [r"\frac{5}{2}", "7", "(-2, 4)", "1, 2, 3, 4, 6, 12", "7"]
    assert list(ds["level"]) == [1, 3, 4, 5, None]
    assert set(ds["type"]) == {"Algebra"}
    assert "reference_solution" in ds.column_names and "unique_id" not in ds.column_names

    hard = load_math(
        data_files=str(FIXTURES / "hendrycks_math_algebra_test.jsonl"),
        split="test",
        levels=[3, 4, 5],
        **cache,
    )
    assert list(hard["level"]) == [3, 4, 5]


def test_math500_uses_answer_column(cache: dict[str, str]) -> None:
    ds = load_math500(data_files=str(FIXTURES / "math500_test.jsonl"), **cache)
    assert ds[0]["solution"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert list(ds["level"]) == [2, 3, 5]
    assert list(ds["type"]) == ["Precalculus", "Number Theory", "Algebra"]
    assert ds[1]["unique_id"] == "test/number_theory/12.json"
    assert set(ds["task"]) == {"math500"}
    assert len(load_math500(data_files=str(FIXTURES / "math500_test.jsonl"), levels=[5], **cache)) == 1


def test_math500_from_local_directory(tmp_path: Path, cache: dict[str, str]) -> None:
    directory = tmp_path / "MATH-500"
    directory.mkdir()
    (directory / "test.jsonl").write_text((FIXTURES / "math500_test.jsonl").read_text())
    ds = load_math500(path=str(directory), split="test", **cache)
    assert list(ds["solution"]) == [r"\left( 3, \frac{\pi}{2} \right)", "9", "2"]


def _numina_rows() -> list[dict[str, Any]]:
    def row(source: str, problem: str, solution: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]
        return {"source": source, "problem": problem, "solution": solution, "messages": messages}

    return [
        row("cn_k12", "Given $a = 3$, find $a^2 + 1$.", r"We get $9 + 1 = \boxed{10}$."),
        row(
            "olympiads",
            "Prove that there are infinitely many primes.",
            "Assume finitely many... contradiction.",
        ),
        row("amc_aime", "What is $\\frac{6}{4}$ in lowest terms?", r"Dividing by 2: $\boxed{\frac{3}{2}}$."),
        row("synthetic_math", "Compute $5!$.", r"$5! = 120$, so the answer is $\boxed{120}$."),
    ]


def test_numina_parquet_drops_unboxed_rows(tmp_path: Path, cache: dict[str, str]) -> None:
    parquet = tmp_path / "numina_train.parquet"
    Dataset.from_list(_numina_rows()).to_parquet(str(parquet))
    ds = load_numina(data_files=str(parquet), **cache)
    assert ds.column_names == ["prompt", "solution", "reference_solution", "source", "task"]
    assert list(ds["solution"]) == ["10", r"\frac{3}{2}", "120"]
    assert list(ds["source"]) == ["cn_k12", "amc_aime", "synthetic_math"]

    only_contest = load_numina(data_files=str(parquet), sources=["amc_aime", "olympiads"], **cache)
    assert list(only_contest["prompt"]) == ["What is $\\frac{6}{4}$ in lowest terms?"]
    assert len(load_numina(data_files=str(parquet), max_samples=1, **cache)) == 1


def test_aime_answer_normalised_and_extras_kept(cache: dict[str, str]) -> None:
    ds = load_aime(data_files=str(FIXTURES / "aime_2024_train.jsonl"), **cache)
    assert list(ds["solution"]) == ["40", "996"]
    assert list(ds["id"]) == [60, 61]
    assert list(ds["year"]) == ["2024", "2024"]
    assert ds[0]["url"].startswith("https://artofproblemsolving.com/")


def test_aime_without_answer_column_uses_boxed(tmp_path: Path, cache: dict[str, str]) -> None:
    parquet = tmp_path / "aime.parquet"
    Dataset.from_dict(
        {"question": ["Find $2^{10} \\bmod 1000$."], "solution": [r"$1024 \equiv \boxed{24}$"]}
    ).to_parquet(str(parquet))
    ds = load_aime(path="parquet", data_files=str(parquet), **cache)
    assert ds[0]["prompt"] == "Find $2^{10} \\bmod 1000$."
    assert ds[0]["solution"] == "24"


def test_wrong_schema_is_a_clear_error(cache: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="question"):
        load_gsm8k(data_files=str(FIXTURES / "math500_test.jsonl"), split="test", **cache)


def test_unknown_file_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_gsm8k(data_files="problems.txt")


# --- registry -----------------------------------------------------------------------------------------


def test_registry_dispatch(cache: dict[str, str]) -> None:
    assert set(LOADERS) == {"gsm8k", "math", "math500", "numina", "aime", "aime2024", "gpqa_diamond", "humaneval",
                            "livecodebench"}
    ds = load_task_dataset("aime", data_files=str(FIXTURES / "aime_2024_train.jsonl"), **cache)
    assert list(ds["solution"]) == ["40", "996"]


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'gsm9k'.*aime, aime2024, gpqa_diamond, gsm8k, humaneval, "
                       "livecodebench, math, math500, numina"):
        load_task_dataset("gsm9k")


# --- Hub ids and configs (load_dataset replaced by a recorder) ------------------------------------------


class RecordingLoader:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Dataset:
        self.calls.append((args, kwargs))
        return Dataset.from_list(self.rows)


def test_hendrycks_math_hub_loads_every_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    row = {"problem": "Compute $1+1$.", "level": "Level 1", "type": "Prealgebra", "solution": r"$\boxed{2}$"}
    recorder = RecordingLoader([row])
    monkeypatch.setattr(loaders, "load_dataset", recorder)
    ds = load_math(split="test")
    assert [call[0] for call in recorder.calls] == [
        ("EleutherAI/hendrycks_math", subject) for subject in loaders.MATH_SUBJECTS
    ]
    assert all(call[1]["split"] == "test" for call in recorder.calls)
    assert len(ds) == 7

    load_math(name="geometry")
    assert recorder.calls[-1][0] == ("EleutherAI/hendrycks_math", "geometry")


def test_hub_ids_and_default_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = RecordingLoader([{"question": "q?", "answer": "a\n#### 1"}])
    monkeypatch.setattr(loaders, "load_dataset", recorder)
    load_gsm8k(split="test")
    assert recorder.calls[-1][0] == ("openai/gsm8k", "main")
    load_gsm8k(name="socratic")
    assert recorder.calls[-1][0] == ("openai/gsm8k", "socratic")

    recorder.rows = [
        {"problem": "p", "solution": r"\boxed{1}", "answer": "1", "subject": "Algebra", "level": 1}
    ]
    load_math500()
    assert recorder.calls[-1][0] == ("HuggingFaceH4/MATH-500", None)
    assert recorder.calls[-1][1]["split"] == "test"

    recorder.rows = [{"source": "math", "problem": "p", "solution": r"\boxed{1}", "messages": []}]
    load_numina()
    assert recorder.calls[-1][0] == ("AI-MO/NuminaMath-CoT", None)

    recorder.rows = [{"id": 1, "problem": "p", "solution": "s", "answer": "7", "url": "u"}]
    load_aime(path="HuggingFaceH4/aime_2024")
    assert recorder.calls[-1][0] == ("HuggingFaceH4/aime_2024", None)


def test_benchmark_hub_ids_and_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    from r1_trl.data import benchmarks

    recorder = RecordingLoader([{"id": 1, "problem": "p", "solution": "s", "answer": "7", "url": "u", "year": "2024"}])
    monkeypatch.setattr(loaders, "load_dataset", recorder)
    assert list(benchmarks.load_aime_2024()["solution"]) == ["7"]
    assert recorder.calls[-1][0] == ("HuggingFaceH4/aime_2024", None) and recorder.calls[-1][1]["split"] == "train"

    recorder.rows = [{"Question": "q", "Correct Answer": "c", "Incorrect Answer 1": "x", "Incorrect Answer 2": "y",
                      "Incorrect Answer 3": "z", "Record ID": "rec1"}]
    assert benchmarks.load_gpqa_diamond()[0]["record_id"] == "rec1"
    assert recorder.calls[-1][0] == ("Idavidrein/gpqa", "gpqa_diamond")

    recorder.rows = [{"question_content": "q", "public_test_cases": '[{"input": "", "output": "1", "testtype": "stdin"}]',
                      "private_test_cases": "", "starter_code": "", "metadata": "{}"}]
    benchmarks.load_livecodebench(name="release_v5")
    assert recorder.calls[-1][0] == ("livecodebench/code_generation_lite", "release_v5")
