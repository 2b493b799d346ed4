"""``code`` and ``binary_code`` rewards: run the completion's last Python block against the row's tests.

Test cases come from a ``verification_info`` column (a dict or its JSON string) in one of two shapes:

* stdin/stdout pairs (open-r1 style): ``{"language": "python", "test_cases": [{"type": "stdin_stdout",
  "input": "1 2\\n", "output": "3\\n"}]}``: the program reads ``input`` and must print ``output``
  (every line compared; trailing whitespace per line and trailing blank lines are ignored) and exit 0.
* asserts: ``{"test_cases": [{"type": "assert", "code": "assert add(1, 2) == 3"}]}``: the snippet is
  appended after the solution and must run to its end: a random marker printed after the snippet must
  appear, so exiting early (``sys.exit(0)``, ``os._exit(0)``) does not pass. The marker is in the
  program's own file, so a program that reads its own source could still fake it, and objects with a
  rigged ``__eq__`` fool ``assert f() == x``; stdin/stdout tests have neither weakness.

Every test runs in its own sandboxed process (see :mod:`reward_funcs.sandbox`), a few at a time.
Rows without usable test cases score None (unscorable); completions without a code block score 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reward_funcs._text import Completion, column, completion_to_text
from reward_funcs.registry import register
from reward_funcs.sandbox import Limits, Sandbox, is_usable

logger = logging.getLogger(__name__)

# A fence opens at the start of a line (``` plus an optional language tag) and closes at the start of a line.
_FENCED_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_PYTHON_NAMES = frozenset({"python", "python3", "py", "py3"})  # fence tags and ``language`` values


@dataclasses.dataclass(frozen=True)
class StdioTest:
    input: str
    output: str


@dataclasses.dataclass(frozen=True)
class AssertTest:
    code: str


TestCase = StdioTest | AssertTest


def extract_python_block(text: str) -> str | None:
    """The last ```python (or ```py) block of ``text``; the last untagged block if none is tagged.

    >>> extract_python_block("try\\n```python\\nprint(1)\\n```\\nbetter:\\n```py\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_python_block("no code here") is None
    True
    """
    blocks = [(tag.lower(), body) for tag, body in _FENCED_BLOCK.findall(text)]
    for wanted in (lambda tag: tag in _PYTHON_NAMES, lambda tag: tag == ""):
        chosen = [body for tag, body in blocks if wanted(tag)]
        if chosen:
            return textwrap.dedent(chosen[-1])
    return None


def parse_test_cases(verification_info: Any) -> list[TestCase] | None:
    """The test cases of one row, or None when ``verification_info`` is missing or malformed.

    >>> parse_test_cases('{"test_cases": [{"type": "assert", "code": "assert f() == 1"}]}')
    [AssertTest(code='assert f() == 1')]
    >>> parse_test_cases({"language": "cpp", "test_cases": [{"input": "", "output": "1"}]}) is None
    True
    """
    info = verification_info
    if isinstance(info, str | bytes):
        try:
            info = json.loads(info)
        except (ValueError, RecursionError):
            return None
    if not isinstance(info, dict):
        return None
    language = info.get("language") or "python"  # Arrow fills a column missing in some rows with None
    if not isinstance(language, str) or language.strip().lower() not in _PYTHON_NAMES:
        return None
    raw_cases = info.get("test_cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        return None
    cases = [_parse_case(raw) for raw in raw_cases]
    return None if any(case is None for case in cases) else cases  # type: ignore[return-value]


def _parse_case(raw: Any) -> TestCase | None:
    if not isinstance(raw, dict):
        return None
    kind = raw.get("type")
    if (
        kind in ("stdin_stdout", None)
        and isinstance(raw.get("input"), str)
        and isinstance(raw.get("output"), str)
    ):
        return StdioTest(raw["input"], raw["output"])
    if kind in ("assert", None) and isinstance(raw.get("code"), str):
        return AssertTest(raw["code"])
    return None


def normalized_lines(text: str) -> list[str]:
    """Output lines with trailing whitespace and trailing blank lines dropped (line endings unified).

    >>> normalized_lines("3 \\r\\n4\\n\\n")
    ['3', '4']
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def passes(sandbox: Sandbox, program: str, test: TestCase) -> bool | None:
    """Whether ``program`` passes ``test``; None when the sandbox itself failed (not the program)."""
    if isinstance(test, StdioTest):
        result = sandbox.run(program, stdin=test.input)
        if result.setup_error:
            return None
        return result.succeeded and normalized_lines(result.stdout) == normalized_lines(test.output)
    marker = f"all-asserts-ran-{secrets.token_hex(16)}"
    result = sandbox.run(f"{program}\n\n{test.code}\n\nprint({marker!r})\n")
    if result.setup_error:
        return None
    return result.succeeded and normalized_lines(result.stdout)[-1:] == [marker]


def score_programs(
    programs: list[str | None],
    tests: list[list[TestCase] | None],
    sandbox: Sandbox,
    max_workers: int = 2,
    stop_at_first_failure: bool = False,
) -> list[float | None]:
    """Fraction of its tests each program passes: None without tests, 0.0 without a program.

    Every (program, test) pair is an independent sandboxed run; ``max_workers`` of them run at once.
    ``stop_at_first_failure`` skips a program's remaining tests once one fails (for all-or-nothing scores).
    """
    jobs = [
        (row, test)
        for row, (program, row_tests) in enumerate(zip(programs, tests, strict=True))
        if program is not None and row_tests
        for test in row_tests
    ]
    passed = [0] * len(programs)
    broken: set[int] = set()  # rows whose sandbox run failed: unscorable
    failed: set[int] = set()
    lock = threading.Lock()

    def run(job: tuple[int, TestCase]) -> None:
        row, test = job
        with lock:
            if row in broken or (stop_at_first_failure and row in failed):
                return
        outcome = passes(sandbox, programs[row] or "", test)
        with lock:
            if outcome is None:
                broken.add(row)
            elif outcome:
                passed[row] += 1
            else:
                failed.add(row)

    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(jobs)))) as pool:
            list(pool.map(run, jobs))
    scores: list[float | None] = []
    for row, (program, row_tests) in enumerate(zip(programs, tests, strict=True)):
        if not row_tests or row in broken:
            scores.append(None)
        elif program is None:
            scores.append(0.0)
        else:
            scores.append(passed[row] / len(row_tests))
    return scores


def _score_completions(
    completions: list[Completion],
    kwargs: dict[str, Any],
    limits: Limits,
    max_workers: int,
    all_or_nothing: bool,
) -> list[float | None]:
    size = len(completions)
    tests = [parse_test_cases(info) for info in column(kwargs, "verification_info", size)]
    if any(tests) and not is_usable():
        logger.error("the code sandbox does not work on this machine; code rewards are unscorable (None)")
        return [None] * size
    programs = [extract_python_block(completion_to_text(completion)) for completion in completions]
    scores = score_programs(
        programs, tests, Sandbox(limits), max_workers, stop_at_first_failure=all_or_nothing
    )
    if all_or_nothing:
        return [None if score is None else float(score == 1.0) for score in scores]
    return scores


def _limits(time_limit: float, memory_limit_mb: int) -> Limits:
    return Limits(wall_seconds=time_limit, memory_mb=memory_limit_mb)


@register("code")
def code(
    completions: list[Completion],
    *,
    time_limit: float = 5.0,
    memory_limit_mb: int = 512,
    max_workers: int = 2,
    **kwargs: Any,
) -> list[float | None]:
    """Fraction of the row's tests passed by the last Python block of each completion.

    >>> completion = "```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```"
    >>> info = {"test_cases": [{"type": "stdin_stdout", "input": "1 2\\n", "output": "3\\n"},
    ...                        {"type": "stdin_stdout", "input": "5 5\\n", "output": "11\\n"}]}
    >>> code([completion, "no code"], verification_info=[info, info])
    [0.5, 0.0]
    """
    return _score_completions(completions, kwargs, _limits(time_limit, memory_limit_mb), max_workers, False)


@register("binary_code")
def binary_code(
    completions: list[Completion],
    *,
    time_limit: float = 5.0,
    memory_limit_mb: int = 512,
    max_workers: int = 2,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the last Python block of a completion passes all of the row's tests, else 0.0.

    >>> completion = [{"role": "assistant", "content": "```py\\ndef add(a, b):\\n    return a + b\\n```"}]
    >>> info = '{"test_cases": [{"type": "assert", "code": "assert add(1, 2) == 3"}]}'
    >>> binary_code([completion], verification_info=[info])
    [1.0]
    """
    return _score_completions(completions, kwargs, _limits(time_limit, memory_limit_mb), max_workers, True)
