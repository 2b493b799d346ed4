"""The ``code`` / ``binary_code`` rewards: block extraction, test-case parsing, scoring, containment."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import reward_funcs
from reward_funcs.code_exec import (
    AssertTest,
    StdioTest,
    binary_code,
    code,
    extract_python_block,
    normalized_lines,
    parse_test_cases,
    score_programs,
)
from reward_funcs.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")

SUM_TESTS = {
    "language": "python",
    "test_cases": [
        {"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"},
        {"type": "stdin_stdout", "input": "10 -4\n", "output": "6\n"},
        {"type": "stdin_stdout", "input": "7 7\n", "output": "14\n"},
    ],
}
# Two output lines per test: the sum, then the product.
SUM_AND_PRODUCT_TESTS = {
    "test_cases": [
        {"type": "stdin_stdout", "input": "3 4\n", "output": "7\n12\n"},
        {"type": "stdin_stdout", "input": "2 5\n", "output": "7\n10\n"},
    ]
}
ADD_ASSERTS = {
    "test_cases": [
        {"type": "assert", "code": "assert add(1, 2) == 3"},
        {"type": "assert", "code": "assert add(-1, 1) == 0"},
    ]
}


def fenced(program: str, tag: str = "python") -> str:
    return f"Let me think.\n```{tag}\n{program}```\nThat is my answer."


CORRECT_SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


# ---------------------------------------------------------------- code block extraction


def test_takes_the_last_python_block() -> None:
    text = "```python\nfirst()\n```\nthen\n```python\nsecond()\n```\n"
    assert extract_python_block(text) == "second()\n"


def test_accepts_py_tag_and_prefers_tagged_over_bare_blocks() -> None:
    assert extract_python_block("```py\nx = 1\n```") == "x = 1\n"
    assert extract_python_block("```python\ntagged()\n```\n```\nbare()\n```") == "tagged()\n"
    assert extract_python_block("```text\nnot code\n```\n```\nbare()\n```") == "bare()\n"


def test_other_languages_and_unclosed_fences_are_not_code() -> None:
    assert extract_python_block("```cpp\nint main() {}\n```") is None
    assert extract_python_block("```python\nprint(1)\n") is None
    assert extract_python_block("inline ``` fences ``` only") is None


def test_indented_block_is_dedented() -> None:
    assert (
        extract_python_block("1. Code:\n   ```python\n   x = 1\n   print(x)\n   ```") == "x = 1\nprint(x)\n"
    )


# ---------------------------------------------------------------- test cases and comparison


def test_parses_both_shapes_from_dict_and_json() -> None:
    assert parse_test_cases(SUM_TESTS)[0] == StdioTest("1 2\n", "3\n")
    assert parse_test_cases(json.dumps(ADD_ASSERTS)) == [
        AssertTest("assert add(1, 2) == 3"),
        AssertTest("assert add(-1, 1) == 0"),
    ]


def test_parses_rows_as_datasets_stores_them_with_null_filled_keys() -> None:
    # A datasets column of mixed test shapes becomes one struct type: absent keys read back as None.
    row = {
        "language": None,
        "test_cases": [
            {"type": "stdin_stdout", "input": "1 2\n", "output": "3\n", "code": None},
            {"type": "assert", "input": None, "output": None, "code": "assert True"},
        ],
    }
    assert parse_test_cases(row) == [StdioTest("1 2\n", "3\n"), AssertTest("assert True")]


@pytest.mark.parametrize(
    "info",
    [
        None,
        "not json",
        "[1, 2]",
        {},
        {"test_cases": []},
        {"test_cases": "1 2"},
        {"language": "cpp", "test_cases": SUM_TESTS["test_cases"]},
        {"test_cases": [{"type": "stdin_stdout", "input": "1 2\n"}]},
        {"test_cases": [{"type": "stdin_stdout", "input": 1, "output": 3}]},
        {"test_cases": [{"type": "unknown", "code": "assert True"}]},
        {"test_cases": [SUM_TESTS["test_cases"][0], "not a dict"]},
    ],
)
def test_invalid_verification_info_is_rejected(info: object) -> None:
    assert parse_test_cases(info) is None


def test_normalisation_ignores_only_trailing_whitespace_and_blank_lines() -> None:
    assert normalized_lines("7 \n12\t\n\n\n") == normalized_lines("7\r\n12") == ["7", "12"]
    assert normalized_lines("7\n\n12") != normalized_lines("7\n12")
    assert normalized_lines(" 7") != normalized_lines("7")


# ---------------------------------------------------------------- scoring (runs the sandbox)


def test_correct_solution_scores_one_in_both_completion_formats() -> None:
    standard = fenced(CORRECT_SUM)
    conversational = [{"role": "assistant", "content": fenced(CORRECT_SUM, tag="py")}]
    info = [SUM_TESTS, json.dumps(SUM_TESTS)]
    assert code([standard, conversational], verification_info=info) == [1.0, 1.0]
    assert binary_code([standard, conversational], verification_info=info) == [1.0, 1.0]


def test_partially_correct_solution_scores_the_fraction_passed() -> None:
    wrong_when_equal = "a, b = map(int, input().split())\nprint(a + b if a != b else 0)\n"
    scores = code([fenced(wrong_when_equal)], verification_info=[SUM_TESTS])
    assert scores == [pytest.approx(2 / 3)]
    assert binary_code([fenced(wrong_when_equal)], verification_info=[SUM_TESTS]) == [0.0]


def test_every_output_line_is_compared() -> None:
    first_line_only = "a, b = map(int, input().split())\nprint(a + b)\n"
    both_lines = "a, b = map(int, input().split())\nprint(a + b, ' ')\nprint(a * b)\nprint()\n"
    extra_line = both_lines + "print('debug')\n"
    completions = [fenced(first_line_only), fenced(both_lines), fenced(extra_line)]
    assert code(completions, verification_info=[SUM_AND_PRODUCT_TESTS] * 3) == [0.0, 1.0, 0.0]


def test_crash_after_correct_output_fails() -> None:
    program = CORRECT_SUM + "raise SystemExit(1)\n"
    assert code([fenced(program)], verification_info=[SUM_TESTS]) == [0.0]


def test_assert_tests_run_after_the_solution() -> None:
    right = fenced("def add(a, b):\n    return a + b\n")
    half = fenced("def add(a, b):\n    return abs(a) + b\n")
    wrong = fenced("def add(a, b):\n    return a - b\n")
    assert code([right, half, wrong], verification_info=[ADD_ASSERTS] * 3) == [1.0, 0.5, 0.0]


@pytest.mark.parametrize(
    "escape",
    ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "quit()\n", "import sys\nsys.stdout.close()\n"],
    ids=["sys.exit", "os._exit", "quit", "close-stdout"],
)
def test_skipping_the_asserts_does_not_pass(escape: str) -> None:
    program = fenced("def add(a, b):\n    return 0\n" + escape)
    assert code([program], verification_info=[ADD_ASSERTS]) == [0.0]


def test_missing_code_or_tests() -> None:
    completions = [fenced(CORRECT_SUM), "I would add the numbers.", fenced(CORRECT_SUM), fenced(CORRECT_SUM)]
    scores = code(completions, verification_info=[SUM_TESTS, SUM_TESTS, "{broken", {"test_cases": []}])
    assert scores == [1.0, 0.0, None, None]
    assert code([fenced(CORRECT_SUM)]) == [None]  # no verification_info column at all
    assert binary_code(["no code"], verification_info=[SUM_TESTS]) == [0.0]


def test_timeout_scores_zero_without_hanging() -> None:
    slow = fenced("import time\ntime.sleep(60)\n")
    assert code([slow], verification_info=[{"test_cases": SUM_TESTS["test_cases"][:1]}], time_limit=1) == [
        0.0
    ]


def test_sandbox_failure_is_unscorable_not_zero() -> None:
    broken = Sandbox(Limits(wall_seconds=5), interpreter="/nonexistent/bin/python3")
    tests = [parse_test_cases(SUM_TESTS)]
    assert score_programs([CORRECT_SUM], tests, broken) == ([None], 0)


def test_registered_and_guarded_with_trl_keyword_arguments() -> None:
    assert {"code", "binary_code"} <= set(reward_funcs.names())
    reward = reward_funcs.get("binary_code", time_limit=3)
    assert reward.__name__ == "binary_code"
    scores = reward(
        [fenced(CORRECT_SUM), "nothing"],
        prompts=["p1", "p2"],
        completion_ids=[[1, 2], [3]],
        trainer_state=None,
        verification_info=[SUM_TESTS, SUM_TESTS],
    )
    assert scores == [1.0, 0.0]


# ---------------------------------------------------------------- hostile completions through the reward


@pytest.fixture
def public_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="code-reward-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_hostile_completion_scores_zero_and_leaves_the_host_untouched(public_dir: Path) -> None:
    victim = public_dir / "victim.txt"
    victim.write_text("original")
    hostile = fenced(
        f"open({str(victim)!r}, 'w').write('pwned')\na, b = map(int, input().split())\nprint(a + b)\n"
    )
    assert code([hostile], verification_info=[SUM_TESTS]) == [0.0]  # the write raises, so it never answers
    assert victim.read_text() == "original"


def test_program_sees_only_its_own_script() -> None:
    # Expected outputs live only in the parent's memory; nothing else is in the program's directory.
    snoop = fenced("import os\nprint(sorted(os.listdir('.')))\n")
    info = {"test_cases": [{"type": "stdin_stdout", "input": "", "output": "['main.py']\n"}]}
    assert code([snoop], verification_info=[info]) == [1.0]
