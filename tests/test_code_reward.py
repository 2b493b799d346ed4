"""The ``code`` / ``binary_code`` rewards: block extraction, test-case parsing, scoring, containment."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
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
    program = fenced("def add(a, b):\n    return None\n" + escape)
    assert code([program], verification_info=[ADD_ASSERTS]) == [0.0]


def test_only_returned_values_count_not_the_output_streams() -> None:
    closes_stdout = fenced("import sys\nsys.stdout.close()\ndef add(a, b):\n    return a + b\n")
    chatty = fenced("import sys\nprint('debug', end='')\nsys.stderr.write('x')\ndef add(a, b):\n    return a + b\n")
    assert code([closes_stdout, chatty], verification_info=[ADD_ASSERTS] * 2) == [1.0, 1.0]


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


# ---------------------------------------------------------------- assert tests: only returned values count

# Each program tries to pass ``add`` tests without computing a + b; all scored 1.0 or 0.5 under the former
# single-process harness (marker printed after the asserts) or would against a naive one.
ATTACKS = {
    "reads-own-source-prints-every-token": (
        "import os, re, sys\n"
        "def add(a, b):\n    return None\n"
        "for token in re.findall(r'[\\w-]*[0-9a-f]{32}[\\w:-]*', open(sys.argv[0]).read()):\n"
        "    os.write(1, ('\\n' + token + '\\n').encode())\n"
        "os._exit(0)\n"
    ),
    "always-equal-object": (
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0\n"
        "    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()\n"
    ),
    "excepthook-prints-strings-of-co_consts": (
        "import sys, os\n"
        "def hook(kind, error, tb):\n"
        "    while tb.tb_next:\n        tb = tb.tb_next\n"
        "    frame = tb.tb_frame\n"
        "    while frame:\n"
        "        for const in frame.f_code.co_consts:\n"
        "            if isinstance(const, str):\n                os.write(1, ('\\n' + const + '\\n').encode())\n"
        "        frame = frame.f_back\n"
        "    os._exit(0)\n"
        "sys.excepthook = hook\n"
        "def add(a, b):\n    return None\n"
    ),
    "settrace-jumps-over-asserts": (
        "import sys\n"
        "def tracer(frame, event, arg):\n"
        "    if event == 'line' and frame.f_code.co_filename.endswith('.py'):\n"
        "        try:\n            source = open(frame.f_code.co_filename).read().splitlines()\n"
        "        except OSError:\n            source = []\n"
        "        if frame.f_lineno <= len(source) and source[frame.f_lineno - 1].lstrip().startswith('assert'):\n"
        "            try:\n                frame.f_lineno = frame.f_lineno + 1\n"
        "            except ValueError:\n                pass\n"
        "    return tracer\n"
        "sys.settrace(tracer)\n"
        "sys._getframe().f_trace = tracer\n"
        "def add(a, b):\n    return None\n"
    ),
    "int-subclass-with-rigged-eq": (
        "class Int(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0\n"
        "    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Int(0)\n"
    ),
    "fake-__class__-claims-int": (
        "class Fake:\n"
        "    __class__ = property(lambda self: int)\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0\n"
        "    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Fake()\n"
    ),
    "patches-builtins": (
        "import builtins\n"
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0\n"
        "    __hash__ = object.__hash__\n"
        "builtins.isinstance = lambda value, kind: True\n"
        "builtins.type = lambda value: int\n"
        "builtins.abs = lambda value: 0\n"
        "builtins.AssertionError = type('Ignored', (BaseException,), {})\n"
        "def add(a, b):\n    return Anything()\n"
    ),
    "raises-a-baseexception-subclass": "class Skip(BaseException):\n    pass\ndef add(a, b):\n    raise Skip()\n",
    "raises-systemexit-zero-inside-the-call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "gc-rewrites-harness-records": (
        "import gc\n"
        "def add(a, b):\n"
        "    for thing in gc.get_objects():\n"
        "        if isinstance(thing, dict) and 'callee' in thing:\n"
        "            thing['result'] = {'i': hex(a + b)}\n"
        "    return None\n"
    ),
    "reads-expected-values-from-the-test-code": (
        "import gc, sys\n"
        "def add(a, b):\n"
        "    codes = [thing for thing in gc.get_objects() if type(thing).__name__ == 'code']\n"
        "    frame = sys._getframe(1)\n"
        "    while frame:\n        codes.append(frame.f_code)\n        frame = frame.f_back\n"
        "    for code in codes:\n"
        "        numbers = [c for c in code.co_consts if type(c) is int]\n"
        "        if numbers[:2] == [a, b] and len(numbers) >= 3:\n"
        "            return numbers[2]\n"
        "    return None\n"
    ),
    "writes-its-source-to-fd-1-and-2-then-exits": (
        "import os, sys\n"
        "def add(a, b):\n"
        "    source = open(sys.argv[0]).read().encode()\n"
        "    os.write(1, source)\n    os.write(2, source)\n    os._exit(0)\n"
    ),
    "forks-and-exits-the-parent": "import os\ndef add(a, b):\n    if os.fork():\n        os._exit(0)\n    return None\n",
    "atexit-prints-every-token": (
        "import atexit, os, re, sys\n"
        "def dump():\n"
        "    for token in re.findall(r'[\\w-]*[0-9a-f]{32}[\\w:-]*', open(sys.argv[0]).read()):\n"
        "        os.write(1, ('\\n' + token + '\\n').encode())\n"
        "    os._exit(0)\n"
        "atexit.register(dump)\n"
        "def add(a, b):\n    return None\n"
    ),
    "alarm-signal-exits-zero-mid-test": (
        "import os, signal, time\n"
        "signal.signal(signal.SIGALRM, lambda *args: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.01)\n"
        "def add(a, b):\n    time.sleep(1)\n    return None\n"
    ),
}
ADD_ASSERTS_WITH_TOLERANCE = {
    "test_cases": [
        {"type": "assert", "code": "assert add(1, 2) == 3"},
        {"type": "assert", "code": "assert abs(add(5, 7) - 12) < 1e-9"},
    ]
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_bypassing_assert_tests_scores_zero(attack: str) -> None:
    assert code([fenced(attack)], verification_info=[ADD_ASSERTS_WITH_TOLERANCE]) == [0.0]


def test_the_attacks_score_when_they_also_solve() -> None:
    # Sanity check of the table above: the same tricks plus a correct add pass, so the zeros are verdicts.
    solved = fenced("class Anything(int):\n    def __eq__(self, other):\n        return True\n"
                    "    __hash__ = int.__hash__\ndef add(a, b):\n    return a + b\n")
    assert code([solved], verification_info=[ADD_ASSERTS_WITH_TOLERANCE]) == [1.0]


def assert_tests(*snippets: str) -> dict:
    return {"test_cases": [{"type": "assert", "code": snippet} for snippet in snippets]}


def test_class_based_solutions_and_methods() -> None:
    tests = assert_tests("assert Solution().runningSum([1, 2, 3]) == [1, 3, 6]",
                         "s = Solution()\nassert s.count == 0\nassert s.runningSum([]) == []")
    right = fenced("import itertools\nclass Solution:\n    count = 0\n"
                   "    def runningSum(self, xs):\n        return list(itertools.accumulate(xs))\n")
    wrong = fenced("class Solution:\n    count = 0\n    def runningSum(self, xs):\n        return xs\n")
    assert code([right, wrong], verification_info=[tests] * 2) == [1.0, 0.5]


def test_exceptions_mutations_and_random_inputs_replay() -> None:
    tests = assert_tests(
        "try:\n    root(-1)\nexcept ValueError:\n    pass\nelse:\n    assert False",
        "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]",
        "import random\nfor _ in range(20):\n    n = random.randint(0, 10**30)\n    assert root(n * n) == n",
    )
    right = fenced("import math, random\ndef root(n):\n    random.random()\n    if n < 0:\n"
                   "        raise ValueError(n)\n    return math.isqrt(n)\n"
                   "def sort_in_place(xs):\n    xs.sort()\n")
    wrong = fenced("def root(n):\n    if n < 0:\n        raise KeyError(n)\n    return int(n ** 0.5)\n"
                   "def sort_in_place(xs):\n    return sorted(xs)\n")
    assert code([right, wrong], verification_info=[tests] * 2) == [1.0, 0.0]


def test_short_circuited_calls_of_the_candidate_run_are_skipped() -> None:
    tests = assert_tests("assert add(1, 2) == 3 or add(2, 2) == 5\nassert add(5, 7) == 12 and add(0, 0) == 0")
    right, wrong = fenced("def add(a, b):\n    return a + b\n"), fenced("def add(a, b):\n    return 12\n")
    assert code([right, wrong], verification_info=[tests] * 2) == [1.0, 0.0]


def test_builtin_subclasses_are_compared_by_their_plain_value() -> None:
    tests = assert_tests("assert histogram('a b a') == {'a': 2, 'b': 1}", "assert point() == (1, 2)",
                         "assert half(3) == 1.5", "assert name() == 'ok'")
    honest = fenced("import collections\ndef histogram(text):\n    return collections.Counter(text.split())\n"
                    "def point():\n    return collections.namedtuple('P', 'x y')(1, 2)\n"
                    "class Half(float):\n    pass\ndef half(n):\n    return Half(n / 2)\n"
                    "class Name(str):\n    def __eq__(self, other):\n        return True\n"
                    "    __hash__ = str.__hash__\ndef name():\n    return Name('ok')\n")
    rigged = fenced("class Name(str):\n    def __eq__(self, other):\n        return True\n"
                    "    __hash__ = str.__hash__\ndef name():\n    return Name('no')\n")
    assert code([honest, rigged], verification_info=[tests] * 2) == [1.0, 0.0]


def test_unplain_return_values_have_no_value_to_test() -> None:
    tests = assert_tests("assert make() == 3", "assert make() != 3", "assert make()", "assert len(make()) == 1")
    returns_object = fenced("class Three:\n    def __eq__(self, other):\n        return True\n"
                            "    def __ne__(self, other):\n        return True\n"
                            "    def __len__(self):\n        return 1\n"
                            "def make():\n    return Three()\n")
    # An object of the solution's is opaque to the verifier: comparing it or asking its truth fails.
    assert code([returns_object], verification_info=[tests]) == [0.0]


def test_forged_call_log_cannot_replace_builtins_or_test_names() -> None:
    forger = fenced(
        "import json, os, re, sys\n"
        "nonce = re.findall(r'call-log-[0-9a-f]{32}:', open(sys.argv[0]).read())[-1]\n"
        "def call(name, args, result):\n"
        "    encoded = [[{'i': hex(arg)} for arg in args], []]\n"
        "    return {'callee': ['name', name], 'call': encoded, 'after': encoded, 'result': {'i': hex(result)}}\n"
        "log = {'names': ['add', 'abs', 'check'], 'values': {},\n"
        "       'records': [call('add', [5, 7], 0), call('abs', [-12], 0)]}\n"
        "os.write(1, ('\\n' + nonce + json.dumps(log) + '\\n').encode())\n"
        "os._exit(0)\n"
    )
    tests = assert_tests("assert abs(add(5, 7) - 12) < 1e-9")
    assert code([forger], verification_info=[tests]) == [0.0]


def test_stop_iteration_cannot_end_a_test_loop_early() -> None:
    tests = assert_tests("for total in map(add, [1, 5], [2, 7]):\n    assert total in (3, 12)")
    stops = fenced("def add(a, b):\n    raise StopIteration\n")
    assert code([stops, fenced("def add(a, b):\n    return a + b\n")], verification_info=[tests] * 2) == [0.0, 1.0]


# ---------------------------------------------------------------- bounded time, parallel runs


SLEEPER = fenced("import time\ntime.sleep(60)\n")
FOUR_TESTS = {"test_cases": [{"type": "stdin_stdout", "input": f"{i}\n", "output": f"{i}\n"} for i in range(4)]}


def test_batch_deadline_leaves_unfinished_rows_none_and_logs_them() -> None:
    metrics: dict[str, float] = {}
    started = time.monotonic()
    scores = code([SLEEPER] * 4 + [fenced("print(input())\n")], verification_info=[FOUR_TESTS] * 5,
                  time_limit=30, num_workers=2, batch_timeout=3, log_metric=metrics.__setitem__)
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert scores[:4] == [None] * 4 and scores[4] in (1.0, None)
    assert metrics["code/unfinished"] == float(scores.count(None))


def test_completions_run_in_parallel() -> None:
    started = time.monotonic()
    scores = binary_code([SLEEPER] * 4, verification_info=[FOUR_TESTS] * 4, time_limit=2, num_workers=4)
    elapsed = time.monotonic() - started
    assert scores == [0.0] * 4
    assert elapsed < 7, elapsed  # one round of four first tests in parallel; one after another took 8 s


@pytest.mark.parametrize(("field", "value"), [("num_workers", 0), ("batch_timeout", -1.0)])
def test_bad_settings_fail_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        code([SLEEPER], verification_info=[FOUR_TESTS], **{field: value})
