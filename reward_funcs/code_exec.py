"""``code`` and ``binary_code`` rewards: run the completion's last Python block against the row's tests.

Test cases come from a ``verification_info`` column (a dict or its JSON string) in one of two shapes:

* stdin/stdout pairs (open-r1 style): ``{"language": "python", "test_cases": [{"type": "stdin_stdout",
  "input": "1 2\\n", "output": "3\\n"}]}``: the program reads ``input`` and must print ``output``
  (every line compared; trailing whitespace per line and trailing blank lines are ignored) and exit 0.
* asserts: ``{"test_cases": [{"type": "assert", "code": "assert add(1, 2) == 3"}]}``: judged in two
  sandboxed runs (:mod:`reward_funcs._call_trace`). The first runs the solution and the test's calls into
  it (each ``assert`` reduced to its non-literal operands, so expected values stay out of the solution's
  process) and logs every call's arguments and returned value as plain data. The second never runs the
  solution: it runs the test code with the solution's names answering from that log, and its verdict is
  whether the test ran to its end. Nothing the solution prints, patches or intercepts (markers, exit
  codes, ``sys.excepthook``, ``sys.settrace``, builtins, objects with a rigged ``__eq__``, ``int``
  subclasses) reaches the verdict; only the plain values it returns do (instances of builtin subclasses
  such as ``Counter`` or named tuples count by their base value). Objects that are not plain data
  (instances of the solution's classes) cross as opaque handles whose methods can be called but which
  equal nothing. The test's calls must be deterministic (``random`` is seeded alike in both runs).

Every test runs in its own sandboxed process (see :mod:`reward_funcs.sandbox`), ``num_workers`` at a
time, the whole batch under ``batch_timeout`` seconds (rows left unfinished score None).
Rows without usable test cases score None (unscorable); completions without a code block score 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import secrets
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reward_funcs import _call_trace
from reward_funcs._text import Completion, column, completion_to_text
from reward_funcs.registry import register
from reward_funcs.sandbox import Limits, RunResult, Sandbox, is_usable

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


_CALL_TRACE_RUNTIME = Path(_call_trace.__file__).read_text(encoding="utf-8")
# Rows whose tests did not finish before the batch deadline are unscorable (None), not failures.
UNFINISHED = "unfinished"
Outcome = bool | None | str  # True/False: passed or not; None: the sandbox failed; UNFINISHED: out of time


def passes(sandbox: Sandbox, program: str, test: TestCase, deadline: float | None = None) -> Outcome:
    """Whether ``program`` passes ``test``: True/False, None when the sandbox itself failed (not the
    program), :data:`UNFINISHED` when ``deadline`` (``time.monotonic()``) ran out first."""
    if isinstance(test, StdioTest):
        result = _run_before(sandbox, deadline, program, test.input)
        if isinstance(result, str) or result.setup_error:
            return result if isinstance(result, str) else None
        return result.succeeded and normalized_lines(result.stdout) == normalized_lines(test.output)
    return _passes_asserts(sandbox, program, test, deadline)


def _passes_asserts(sandbox: Sandbox, program: str, test: AssertTest, deadline: float | None) -> Outcome:
    """Two runs (see :mod:`reward_funcs._call_trace`): the solution answers the test's calls, then a run
    that never executes the solution replays those answers through the test and gives the verdict."""
    nonce = f"call-log-{secrets.token_hex(16)}:"
    try:
        view = _call_trace.candidate_view(test.code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False  # the test itself does not compile; the verifier could not run it either
    candidate = _run_before(
        sandbox, deadline, f"{_CALL_TRACE_RUNTIME}\nrun_candidate({program!r}, {view!r}, {nonce!r})\n"
    )
    if isinstance(candidate, str) or candidate.setup_error:
        return candidate if isinstance(candidate, str) else None
    position = candidate.stdout.rfind(nonce)
    if candidate.timed_out or candidate.output_truncated or position < 0:
        return False
    call_log = candidate.stdout[position + len(nonce) :].split("\n", 1)[0]
    marker = f"test-ran-to-its-end-{secrets.token_hex(16)}"
    verifier = _run_before(
        sandbox, deadline, f"{_CALL_TRACE_RUNTIME}\nrun_verifier({test.code!r}, {marker!r})\n", call_log
    )
    if isinstance(verifier, str) or verifier.setup_error:
        return verifier if isinstance(verifier, str) else None
    return verifier.succeeded and normalized_lines(verifier.stdout)[-1:] == [marker]


def _run_before(sandbox: Sandbox, deadline: float | None, source: str, stdin: str = "") -> RunResult | str:
    """One sandboxed run, its wall-clock limit cut to what is left before ``deadline``."""
    if deadline is None:
        return sandbox.run(source, stdin)
    left = deadline - time.monotonic()
    if left <= 0.05:
        return UNFINISHED
    if left >= sandbox.limits.wall_seconds:
        return sandbox.run(source, stdin)
    cut = dataclasses.replace(sandbox.limits, wall_seconds=left, cpu_seconds=sandbox.limits.cpu_limit)
    result = dataclasses.replace(sandbox, limits=cut).run(source, stdin)
    return UNFINISHED if result.timed_out else result


def score_programs(
    programs: list[str | None],
    tests: list[list[TestCase] | None],
    sandbox: Sandbox,
    num_workers: int = 4,
    stop_at_first_failure: bool = False,
    deadline: float | None = None,
) -> tuple[list[float | None], int]:
    """Fraction of its tests each program passes (None without tests, 0.0 without a program), and how
    many rows the ``deadline`` (``time.monotonic()``) left unfinished (scored None).

    Every (program, test) pair is an independent sandboxed job, ``num_workers`` of them at once. With
    ``stop_at_first_failure`` (all-or-nothing scores) a job is a whole row instead, its tests run one
    after another up to the first failure, so that a failed row costs no further runs.
    """
    rows = [
        row
        for row, (program, row_tests) in enumerate(zip(programs, tests, strict=True))
        if program is not None and row_tests
    ]
    jobs: list[tuple[int, list[TestCase]]] = (
        [(row, list(tests[row] or ())) for row in rows]
        if stop_at_first_failure
        else [(row, [test]) for row in rows for test in tests[row] or ()]
    )
    passed = [0] * len(programs)
    broken: set[int] = set()  # rows whose sandbox run failed: unscorable
    unfinished: set[int] = set()
    failed: set[int] = set()
    lock = threading.Lock()

    def run(job: tuple[int, list[TestCase]]) -> None:
        row, job_tests = job
        for test in job_tests:
            with lock:
                if row in broken or row in unfinished or (stop_at_first_failure and row in failed):
                    return
            outcome = passes(sandbox, programs[row] or "", test, deadline)
            with lock:
                if outcome is None:
                    broken.add(row)
                elif outcome == UNFINISHED:
                    unfinished.add(row)
                elif outcome:
                    passed[row] += 1
                else:
                    failed.add(row)

    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(num_workers, len(jobs)))) as pool:
            list(pool.map(run, jobs))
    scores: list[float | None] = []
    for row, (program, row_tests) in enumerate(zip(programs, tests, strict=True)):
        decided_by_failure = stop_at_first_failure and row in failed
        if not row_tests or row in broken or (row in unfinished and not decided_by_failure):
            scores.append(None)
        elif program is None:
            scores.append(0.0)
        else:
            scores.append(passed[row] / len(row_tests))
    late = len([row for row in unfinished if not (stop_at_first_failure and row in failed)])
    return scores, late


def _score_completions(
    completions: list[Completion],
    kwargs: dict[str, Any],
    settings: _Settings,
    all_or_nothing: bool,
) -> list[float | None]:
    started = time.monotonic()
    size = len(completions)
    tests = [parse_test_cases(info) for info in column(kwargs, "verification_info", size)]
    if any(tests) and not is_usable():
        logger.error("the code sandbox does not work on this machine; code rewards are unscorable (None)")
        return [None] * size
    programs = [extract_python_block(completion_to_text(completion)) for completion in completions]
    deadline = None if settings.batch_timeout is None else started + settings.batch_timeout
    scores, late = score_programs(
        programs, tests, Sandbox(settings.limits), settings.num_workers, all_or_nothing, deadline
    )
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):
        log_metric(f"{'binary_code' if all_or_nothing else 'code'}/unfinished", float(late))
    if late:
        logger.warning(
            "code reward: %d of %d rows unfinished after %.0fs (None)", late, size, settings.batch_timeout
        )
    if all_or_nothing:
        return [None if score is None else float(score == 1.0) for score in scores]
    return scores


@dataclasses.dataclass(frozen=True)
class _Settings:
    limits: Limits
    num_workers: int
    batch_timeout: float | None


def _settings(
    time_limit: float, memory_limit_mb: int, num_workers: int | None, batch_timeout: float | None
) -> _Settings:
    workers = DEFAULT_NUM_WORKERS if num_workers is None else num_workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"code reward: num_workers must be a positive integer, got {num_workers!r}")
    if batch_timeout is not None and not (
        isinstance(batch_timeout, int | float) and 0 < batch_timeout < math.inf
    ):
        raise ValueError(
            f"code reward: batch_timeout must be positive seconds or None, got {batch_timeout!r}"
        )
    return _Settings(Limits(wall_seconds=time_limit, memory_mb=memory_limit_mb), workers, batch_timeout)


# Sandboxed runs mostly wait on process setup and I/O, so a few more than the cores keeps them busy.
DEFAULT_NUM_WORKERS = min(8, 2 * (os.cpu_count() or 1))
# No batch deadline unless asked (training passes the recipe's `reward_batch_timeout`): evaluation
# verifies whole benchmarks in one call, and every run is bounded by `time_limit` anyway.
DEFAULT_BATCH_TIMEOUT: float | None = None


@register("code")
def code(
    completions: list[Completion],
    *,
    time_limit: float = 5.0,
    memory_limit_mb: int = 512,
    num_workers: int | None = None,
    batch_timeout: float | None = DEFAULT_BATCH_TIMEOUT,
    **kwargs: Any,
) -> list[float | None]:
    """Fraction of the row's tests passed by the last Python block of each completion.

    ``num_workers`` sandboxed runs at once; rows not done ``batch_timeout`` seconds after the call score
    None and are counted in the ``code/unfinished`` metric (through TRL's ``log_metric``; for
    :func:`binary_code` it is ``binary_code/unfinished``).

    >>> completion = "```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```"
    >>> info = {"test_cases": [{"type": "stdin_stdout", "input": "1 2\\n", "output": "3\\n"},
    ...                        {"type": "stdin_stdout", "input": "5 5\\n", "output": "11\\n"}]}
    >>> code([completion, "no code"], verification_info=[info, info])
    [0.5, 0.0]
    """
    settings = _settings(time_limit, memory_limit_mb, num_workers, batch_timeout)
    return _score_completions(completions, kwargs, settings, False)


@register("binary_code")
def binary_code(
    completions: list[Completion],
    *,
    time_limit: float = 5.0,
    memory_limit_mb: int = 512,
    num_workers: int | None = None,
    batch_timeout: float | None = DEFAULT_BATCH_TIMEOUT,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the last Python block of a completion passes all of the row's tests, else 0.0.

    Same ``num_workers`` / ``batch_timeout`` as :func:`code`; a row that already failed a test is
    decided (0.0) even if its other tests did not run in time.

    >>> completion = [{"role": "assistant", "content": "```py\\ndef add(a, b):\\n    return a + b\\n```"}]
    >>> info = '{"test_cases": [{"type": "assert", "code": "assert add(1, 2) == 3"}]}'
    >>> binary_code([completion], verification_info=[info])
    [1.0]
    """
    settings = _settings(time_limit, memory_limit_mb, num_workers, batch_timeout)
    return _score_completions(completions, kwargs, settings, True)
