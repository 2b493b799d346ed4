"""Tests of the math ``accuracy`` reward: answer extraction, math-verify equivalences, timeouts, threads, processes."""

from __future__ import annotations

import doctest
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reward_funcs
import reward_funcs._math_closed_form
import reward_funcs._math_extract
import reward_funcs._math_judge
import reward_funcs._math_local
import reward_funcs._math_numbers
import reward_funcs._math_text
import reward_funcs._math_units
import reward_funcs._verify_client
import reward_funcs._verify_worker
import reward_funcs.accuracy
from reward_funcs._math_extract import completion_answer, gold_answer, last_boxed_content
from reward_funcs._math_local import local_verdict, parse_locally
from reward_funcs._math_numbers import parse_plain_number
from reward_funcs._verify_client import verify_pairs
from reward_funcs._verify_worker import Verifier
from reward_funcs.accuracy import accuracy

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1.0  # seconds per answer in the timeout tests
MARGIN = 2.5  # slack for a loaded 2-core machine (process kill and restart, scheduling)
TOWER = r"9^{9^{9^{9}}}"
NEEDS_WORKER = (["<answer>1+x</answer>"], ["x+1"])  # a symbolic answer: not judged in-process


def conversational(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def score(completion: str, gold: object, **kwargs: object) -> float | None:
    """Score one completion in both TRL formats; they must agree."""
    plain = accuracy([completion], solution=[gold], **kwargs)
    chat = accuracy([conversational(completion)], solution=[gold], **kwargs)
    assert plain == chat, (completion, gold, plain, chat)
    return plain[0]


@pytest.fixture(scope="module", autouse=True)
def warm_worker() -> None:
    """Start the verification worker once so that timing assertions do not include its start-up."""
    assert verify_pairs([("x+1", "1+x")], timeout=60).scores == [1.0]


# --- answer extraction -------------------------------------------------------------------------------

EXTRACTION_CASES = [
    (
        "<think>maybe \\boxed{3}</think><answer>14</answer>",
        "14",
        1.0,
    ),  # the tag wins over a boxed in the reasoning
    ("<think>so 14</think><answer>13</answer>", "14", 0.0),
    ("<answer>12</answer> on second thought <answer>14</answer>", "14", 1.0),  # the last tag counts
    ("<answer>The answer is $\\boxed{14}$.</answer>", "14", 1.0),  # boxed inside the tag
    ("<answer>\\(14\\)</answer>", "14", 1.0),
    ("first \\boxed{12}, finally \\boxed{14}", "14", 1.0),  # the last boxed
    ("\\boxed{14} is wrong, \\boxed{\\frac{1}{2}", "14", 1.0),  # an unclosed box is skipped
    ("3 apples and 11 pears make 14", "14", 1.0),  # the last number
    ("14 apples, minus 1, is 13", "14", 0.0),
    (
        "The probability is $\\frac{1}{3}$.",
        "\\frac{1}{3}",
        1.0,
    ),  # the last math span ends after the last number
    ("<answer></answer>", "14", 0.0),
    ("<answer>   </answer> 14", "14", 0.0),  # an empty answer does not fall back to the rest
    ("", "14", 0.0),
    ("no answer here", "14", 0.0),
]


@pytest.mark.parametrize(("completion", "gold", "expected"), EXTRACTION_CASES)
def test_extraction(completion: str, gold: str, expected: float) -> None:
    assert score(completion, gold) == expected


# --- equivalence classes (math-verify semantics) --------------------------------------------------------

EQUIVALENCE_CASES = {
    "latex vs plain": [
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", 1.0),
        ("2\\sqrt{3}", "\\sqrt{12}", 1.0),
        ("2\\pi", "2\\pi", 1.0),
    ],
    "symbolic": [("(x+1)^2", "x^2+2x+1", 1.0), ("x^2+1", "x^2+2x+1", 0.0)],
    "fraction vs decimal": [
        ("0.5", "\\frac{1}{2}", 1.0),
        ("1/2", "0.5", 1.0),
        ("\\dfrac{2}{6}", "\\frac13", 1.0),
        ("0.333333", "\\frac{1}{3}", 1.0),
        ("0.33", "\\frac{1}{3}", 0.0),
        ("\\frac{1}{2}", "\\frac{1}{3}", 0.0),
    ],
    "thousands separators": [
        ("1,234", "1234", 1.0),
        ("1234", "1,234", 1.0),
        ("1{,}234", "1234", 1.0),
        ("1.234", "1,234", 0.0),
        ("\\$1,234.50", "1234.5", 1.0),
    ],
    "units percent degrees": [
        ("5 cm", "5", 1.0),
        ("5\\text{ cm}", "5", 1.0),
        ("12 apples", "12", 1.0),
        ("\\$5", "5", 1.0),
        ("50\\%", "50", 1.0),
        ("50%", "0.5", 1.0),
        ("0.5", "50\\%", 1.0),
        ("5000\\%", "50\\%", 0.0),
        ("30^\\circ", "30", 1.0),
        ("30^{\\circ}", "30^\\circ", 1.0),
        ("30 degrees", "30", 1.0),
        ("2 pi", "2", 0.0),  # not a unit
        ("5 million", "5", 0.0),
    ],
    "sets tuples intervals": [
        ("(1, 2)", "(1,2)", 1.0),
        ("(2, 1)", "(1,2)", 0.0),  # tuples are ordered
        ("\\{2, 1\\}", "\\{1,2\\}", 1.0),  # sets are not
        ("[1, 2)", "[1,2)", 1.0),
        ("(1, 2]", "[1,2)", 0.0),
        ("(-\\infty, 3]", "(-\\infty,3]", 1.0),
    ],
    "equations": [("x = 3", "3", 1.0), ("3", "x=3", 1.0), ("x = 4", "3", 0.0), ("y = 2x+1", "y=1+2x", 1.0)],
    "multiple choice": [
        ("B", "B", 1.0),
        ("(B)", "B", 1.0),
        ("B) 42", "(B)", 1.0),
        ("\\text{(B)}", "B", 1.0),
        ("b", "B", 1.0),
        ("C", "B", 0.0),
        ("42", "B", 0.0),
    ],
    "signs": [("-3", "3", 0.0), ("-3", "-3", 1.0), ("-\\frac{1}{2}", "-0.5", 1.0)],
}


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        pytest.param(*case, id=f"{name}: {case[0]} vs {case[1]}")
        for name, cases in EQUIVALENCE_CASES.items()
        for case in cases
    ],
)
def test_equivalence_classes(answer: str, gold: str, expected: float) -> None:
    assert score(f"<think>working</think><answer>{answer}</answer>", gold) == expected
    assert score(f"So the answer is $\\boxed{{{answer}}}$.", gold) == expected


def test_multiple_choice_without_tags_or_box() -> None:
    assert score("Comparing the options, the answer is (C).", "C") == 1.0
    assert score("Comparing the options, the answer is (D).", "C") == 0.0


# --- gold answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold",
    [
        "14",
        14,
        "$14$",
        "We add 2 and 12, so the answer is $\\boxed{14}$.",
        "2 + 12 = 14\n#### 14",
        ["13.9", "14"],  # several acceptable answers
    ],
)
def test_gold_forms(gold: object) -> None:
    assert score("<answer>14</answer>", gold) == 1.0
    assert score("<answer>15</answer>", gold) == 0.0


def test_full_solution_gold_with_latex_answer() -> None:
    solution = "The two roots are $x=1$ and $x=2$, in order $\\boxed{(1, 2)}$."
    assert score("<answer>(1,2)</answer>", solution) == 1.0
    assert score("<answer>(2,1)</answer>", solution) == 0.0


@pytest.mark.parametrize("gold", ["", "   ", None, "\\frac{", "}{", "\\boxed{}", "#### ", []])
@pytest.mark.parametrize("prediction", ["14", "\\frac{", "}{", ""])
def test_unparseable_gold_is_skipped_never_rewarded(gold: object, prediction: str) -> None:
    assert score(f"<answer>{prediction}</answer>", gold) is None


def test_missing_solution_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="solution"):
        accuracy(["<answer>1</answer>"])
    assert reward_funcs.get("accuracy")(["<answer>1</answer>"]) == [None]  # the guard keeps training alive


def test_gold_list_of_the_wrong_length_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="2 gold solutions for 3 completions"):
        accuracy(["<answer>1</answer>"] * 3, solution=["1", "2"])
    # a single gold (not a list) applies to every completion
    assert accuracy(["<answer>1</answer>", "<answer>2</answer>"], solution="1") == [1.0, 0.0]


# --- registry ----------------------------------------------------------------------------------------


def test_registered_and_configurable() -> None:
    assert "accuracy" in reward_funcs.names()
    reward = reward_funcs.get("accuracy", timeout=2.0)
    assert reward.__name__ == "accuracy"
    assert reward(["<answer>\\frac{1}{3}</answer>", "<answer>0.5</answer>"], solution=["1/3", "1/3"]) == [
        1.0,
        0.0,
    ]
    with pytest.raises(ValueError, match="timeout"):
        reward_funcs.get("accuracy", timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        reward_funcs.get("accuracy", timeout=float("nan"))


def test_trl_keyword_arguments_are_accepted_and_logged() -> None:
    extra: dict[str, list] = {}
    metrics: dict[str, float] = {}
    scores = accuracy(
        ["<answer>14</answer>", "<answer>\\sqrt{4}</answer>"],
        solution=["14", "2"],
        prompts=["p1", "p2"],
        completion_ids=[[1], [2]],
        trainer_state=None,
        log_extra=lambda name, values: extra.setdefault(name, []).extend(values),
        log_metric=lambda name, value: metrics.__setitem__(name, value),
    )
    assert scores == [1.0, 1.0]
    assert extra == {"accuracy/answer": ["14", "\\sqrt{4}"]}
    assert metrics == {"accuracy/timeouts": 0.0}


# --- timeouts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "gold"),
    [
        (f"<answer>{TOWER}</answer>", "x+1"),
        (rf"so \boxed{{{TOWER} - {TOWER} + 5}}", "5"),
        (rf"\boxed{{{TOWER}}}", "\\frac{1}{2}\\pi + y"),
    ],
)
def test_pathological_answer_scores_zero_within_the_timeout(completion: str, gold: str) -> None:
    metrics: dict[str, float] = {}
    start = time.monotonic()
    scores = accuracy([completion], solution=[gold], timeout=TIMEOUT, log_metric=metrics.__setitem__)
    assert scores == [0.0]
    assert time.monotonic() - start < TIMEOUT + MARGIN
    assert metrics == {"accuracy/timeouts": 1.0}


@pytest.mark.parametrize("tower", [TOWER, r"9^{9^{9^{9^{9}}}}", r"2^{2^{2^{2^{2^{9}}}}}"])
def test_power_tower_against_a_number_is_rejected_at_once(tower: str) -> None:
    metrics: dict[str, float] = {}
    start = time.monotonic()
    scores = accuracy(
        [f"<answer>{tower}</answer>", f"\\boxed{{{tower}}}"],
        solution=["5", "(1, 2)"],
        log_metric=metrics.__setitem__,
    )
    assert scores == [0.0, 0.0]
    assert time.monotonic() - start < 0.5 * TIMEOUT  # no timeout was waited for
    assert metrics == {"accuracy/timeouts": 0.0}


def test_timeout_costs_only_its_own_answer_in_a_batch() -> None:
    completions = [
        "<answer>14</answer>",
        f"<answer>{TOWER}</answer>",
        "<answer>\\frac{2}{4}</answer>",
        "<answer>2x+1</answer>",
    ]
    metrics: dict[str, float] = {}
    start = time.monotonic()
    scores = accuracy(
        completions * 3,
        solution=["14", "x+1", "0.5", "1+2x"] * 3,
        timeout=TIMEOUT,
        log_metric=metrics.__setitem__,
    )
    assert scores == [1.0, 0.0, 1.0, 1.0] * 3
    # identical (gold, answer) pairs are verified once, so three copies of the tower cost one timeout
    assert time.monotonic() - start < TIMEOUT + MARGIN
    assert metrics == {"accuracy/timeouts": 1.0}


def test_worker_stuck_in_c_code_is_killed_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    # A soft timeout far beyond the hard one: the worker never interrupts itself, so the client must kill it.
    monkeypatch.setattr(reward_funcs._verify_client, "SOFT_TIMEOUT_FRACTION", 100.0)
    client = reward_funcs._verify_client
    first_pids = _warm_pool()
    metrics: dict[str, float] = {}
    start = time.monotonic()
    scores = accuracy(
        [f"<answer>{TOWER}</answer>", "<answer>x+1</answer>"],
        solution=["x+1", "1+x"],
        timeout=TIMEOUT,
        num_workers=1,  # one worker: the answer after the killed one waits for the replacement
        log_metric=lambda name, value: metrics.__setitem__(name, value),
    )
    assert scores == [0.0, 1.0]  # the answer after the killed one is verified by the replacement worker
    assert time.monotonic() - start < TIMEOUT + MARGIN + client.STARTUP_TIMEOUT / 10
    assert metrics == {"accuracy/timeouts": 1.0}
    now = client.worker_pids()
    assert len(now) == len(first_pids) and now[0] != first_pids[0] and now[1:] == first_pids[1:]
    assert not _process_exists(first_pids[0])


def test_crashed_worker_is_restarted() -> None:
    client = reward_funcs._verify_client
    first_pids = _warm_pool()
    for pid in first_pids:
        os.kill(pid, 9)
    for pid in first_pids:
        while _process_exists(pid):
            time.sleep(0.01)
    assert accuracy(*NEEDS_WORKER) == [1.0]
    assert client.worker_pids() and not set(client.worker_pids()) & set(first_pids)


def test_interrupted_call_does_not_leave_replies_for_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    client = reward_funcs._verify_client
    pids = _warm_pool()

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(client._WorkerProcess, "receive", interrupted)
        with pytest.raises(KeyboardInterrupt):
            accuracy(["<answer>x</answer>", "<answer>1+x</answer>"], solution=["x", "x+2"])
    assert client.worker_pids() == [] and not any(_process_exists(pid) for pid in pids)
    assert accuracy(["<answer>x+2</answer>", "<answer>x</answer>"], solution=["x", "x"]) == [0.0, 1.0]


def test_shutdown_stops_the_worker_and_the_next_call_restarts_it() -> None:
    client = reward_funcs._verify_client
    pids = _warm_pool()
    client.shutdown()
    assert client.worker_pids() == [] and not any(_process_exists(pid) for pid in pids)
    assert accuracy(*NEEDS_WORKER) == [1.0]


def test_worker_stops_when_the_interpreter_exits() -> None:
    program = textwrap.dedent(
        """
        from reward_funcs import _verify_client
        from reward_funcs.accuracy import accuracy
        assert accuracy(["<answer>1+x</answer>"], solution=["x+1"]) == [1.0]
        print(" ".join(map(str, _verify_client.worker_pids())))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        check=True,
    )
    pids = [int(pid) for pid in result.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    while any(_process_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_process_exists(pid) for pid in pids)


def _warm_pool(num_workers: int = 2) -> list[int]:
    """Start (or keep) a pool of ``num_workers`` ready workers; their process ids, in slot order."""
    client = reward_funcs._verify_client
    assert client.start_workers(num_workers, timeout=120)
    pids = client.worker_pids()
    assert len(pids) >= num_workers
    return pids


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; it is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- threads and processes ---------------------------------------------------------------------------

BATCH = [
    "<answer>14</answer>",
    "<answer>\\frac{1}{3}</answer>",
    f"<answer>{TOWER}</answer>",
    "<answer>(2,1)</answer>",
    "<answer>2x+1</answer>",
]
# the tower against x+1 needs the worker, where it times out
BATCH_GOLD = ["14", "0.333333", "x+1", "(1,2)", "1+2x"]
BATCH_SCORES = [1.0, 1.0, 0.0, 0.0, 1.0]


def _score_batch() -> tuple[list[float | None], float]:
    start = time.monotonic()
    scores = accuracy(BATCH, solution=BATCH_GOLD, timeout=TIMEOUT)
    return scores, time.monotonic() - start


def test_works_off_the_main_thread() -> None:
    results: list[tuple[list[float | None], float]] = []
    thread = threading.Thread(target=lambda: results.append(_score_batch()))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    scores, elapsed = results[0]
    assert scores == BATCH_SCORES
    assert elapsed < TIMEOUT + MARGIN


def test_concurrent_threads_share_the_worker_safely() -> None:
    completions = [f"<answer>{n} + x</answer>" for n in range(1, 9)]  # symbolic: needs the worker
    golds = [f"x + {n}" for n in range(1, 9)]
    results: dict[int, list[float | None]] = {}

    def run(offset: int) -> None:
        rotated_golds = golds[offset:] + golds[:offset]
        results[offset] = accuracy(completions, solution=rotated_golds)

    threads = [threading.Thread(target=run, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {offset: [1.0 if offset == 0 else 0.0] * 8 for offset in range(4)}


def _score_batch_into(results: multiprocessing.Queue) -> None:
    results.put(_score_batch())


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_works_in_a_daemonic_process(start_method: str) -> None:
    parent_pids = _warm_pool()  # running workers a fork inherits
    context = multiprocessing.get_context(start_method)
    results = context.Queue()
    process = context.Process(target=_score_batch_into, args=(results,), daemon=True)
    process.start()
    try:
        scores, elapsed = results.get(timeout=120)
    finally:
        process.join(timeout=30)
    assert scores == BATCH_SCORES
    assert elapsed < TIMEOUT + MARGIN + (
        10 if start_method == "spawn" else 5
    )  # the child starts its own worker
    assert reward_funcs._verify_client.worker_pids() == parent_pids  # the child left ours alone
    assert accuracy(*NEEDS_WORKER) == [1.0]


def test_forked_child_does_not_reuse_the_parent_worker() -> None:
    client = reward_funcs._verify_client
    parent_pids = _warm_pool()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            inherited = client.worker_pids()
            scores = accuracy(*NEEDS_WORKER)
            own = client.worker_pids()
            os.write(write_end, f"{inherited == []} {scores == [1.0]} {not set(own) & set(parent_pids)}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as reader:
        assert reader.read() == "True True True"
    assert client.worker_pids() == parent_pids
    assert accuracy(*NEEDS_WORKER) == [1.0]


# --- the in-process judge agrees with math-verify --------------------------------------------------------

CLOSED_FORM_CASES = [
    ("\\sqrt{12}", "2\\sqrt{3}", True),
    ("\\frac{6}{\\sqrt{3}}", "2\\sqrt3", True),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
    ("(1+\\sqrt{2})^2", "3 + 2\\sqrt{2}", True),
    ("\\sqrt{2} + \\sqrt{8}", "3\\sqrt{2}", True),
    ("\\frac{\\pi}{4}", "\\pi/4", True),
    ("\\frac{1}{2}\\pi", "\\frac{\\pi}{2}", True),
    ("2^{10}", "1024", True),
    ("\\sqrt{2}", "\\sqrt{3}", False),
    ("\\pi", "3", False),
    ("\\pi^2", "\\pi", False),
    ("\\sqrt{2}", "1.414", None),  # decimals vs irrationals follow math-verify's rounding: not judged here
    ("x + 1", "1 + x", None),
    ("1\\frac{1}{2}", "\\frac{3}{2}", None),  # a mixed number or a product: left to math-verify
    ("9^{9^{9}}", "1", None),
    ("\\sqrt[3]{8}", "2", None),
]


@pytest.mark.parametrize(("gold", "answer", "expected"), CLOSED_FORM_CASES)
def test_local_judge_on_closed_forms(gold: str, answer: str, expected: bool | None) -> None:
    parsed_gold = parse_locally(gold)
    verdict = None if parsed_gold is None else local_verdict(parsed_gold, answer)
    assert verdict is expected


@pytest.fixture(scope="module")
def math_verify_in_process() -> Verifier:
    return Verifier()


def _atom() -> st.SearchStrategy[str]:
    small = st.integers(1, 12)
    return st.one_of(
        st.integers(0, 30).map(str),
        st.tuples(small, small).map(lambda ab: f"\\frac{{{ab[0]}}}{{{ab[1]}}}"),
        st.tuples(st.integers(1, 4), st.integers(0, 50)).map(lambda km: f"{km[0]}\\sqrt{{{km[1]}}}"),
        st.integers(0, 50).map(lambda n: f"\\sqrt{{{n}}}"),
        st.sampled_from(["\\pi", "2\\pi", "\\frac{\\pi}{3}", "\\frac{2\\pi}{6}", "\\pi/3"]),
    )


@st.composite
def _answer_pairs(draw: st.DrawFn) -> tuple[str, str]:
    first, second, third = draw(_atom()), draw(_atom()), draw(_atom())
    operator = draw(st.sampled_from([" + ", " - ", " \\cdot "]))
    shape = draw(st.sampled_from(["atom", "sum", "swapped sum", "tuple", "swapped tuple", "set"]))
    if shape == "atom":
        return first, second
    if shape == "sum":
        return f"{first}{operator}{second}", f"{third}{operator}{second}"
    if shape == "swapped sum":  # equal for + and \\cdot
        return f"{first}{operator}{second}", f"{second}{operator}{first}"
    if shape == "tuple":
        return f"({first}, {second})", f"({first}, {third})"
    if shape == "swapped tuple":
        return f"({first}, {second})", f"({second}, {first})"
    return f"\\{{{first}, {second}\\}}", f"\\{{{second}, {draw(st.sampled_from([first, third]))}\\}}"


@settings(max_examples=120, deadline=None)
@given(_answer_pairs())
def test_local_judge_agrees_with_math_verify(math_verify_in_process: Verifier, pair: tuple[str, str]) -> None:
    gold, answer = pair
    parsed_gold = parse_locally(gold)
    assert parsed_gold is not None, gold
    verdict = local_verdict(parsed_gold, answer)
    assert verdict is not None, pair
    assert float(verdict) == math_verify_in_process.score(gold, answer, soft_timeout=30), pair


# --- robustness --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<answer>" * 50_000,
        "</answer>" * 50_000,
        "\\boxed{" * 50_000,
        "{" * 100_000 + "\\boxed{1}" + "}" * 10,
        "1" * 200_000,
        "1," * 100_000,
        "$" * 100_000,
        "\\(" * 50_000 + "\\)",
        "5" + " cm" * 50_000,
    ],
    ids=["open-tags", "close-tags", "open-boxes", "braces", "digits", "commas", "dollars", "parens", "units"],
)
def test_extraction_is_fast_on_adversarial_text(text: str) -> None:
    start = time.monotonic()
    answer = completion_answer(text)
    if answer is not None:
        parse_plain_number(answer)
    gold_answer(text)
    assert time.monotonic() - start < 2.0


def test_huge_and_odd_inputs_never_raise() -> None:
    completions = [
        "<answer>" + "9" * 5000 + "</answer>",
        "<answer>\x00\ud800</answer>",
        None,
        42,
        [{"content": None}],
    ]
    scores = accuracy(completions, solution=["9", "1", "1", "42", "1"], timeout=TIMEOUT)
    assert scores == [0.0, 0.0, 0.0, 1.0, 0.0]


@settings(max_examples=150, deadline=None)
@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), st.booleans())
def test_integers_match_exactly(predicted: int, gold: int, separators: bool) -> None:
    text = f"{predicted:,}" if separators else str(predicted)
    assert accuracy([f"<answer>{text}</answer>"], solution=[str(gold)]) == [float(predicted == gold)]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_extraction_never_raises(text: str) -> None:
    answer = completion_answer(text)
    assert answer is None or isinstance(answer, str)
    if answer is not None:
        parse_plain_number(answer)
        parse_locally(answer)
    assert isinstance(gold_answer(text), str)
    last_boxed_content(text)


# --- docstrings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        reward_funcs.accuracy,
        reward_funcs._math_extract,
        reward_funcs._math_numbers,
        reward_funcs._math_closed_form,
        reward_funcs._math_local,
        reward_funcs._math_text,
        reward_funcs._math_judge,
        reward_funcs._math_units,
        reward_funcs._verify_client,
        reward_funcs._verify_worker,
    ],
    ids=lambda module: module.__name__,
)
def test_docstring_examples(module: object) -> None:
    failures, attempted = doctest.testmod(module, raise_on_error=False)
    assert failures == 0
    if module not in (reward_funcs._verify_client, reward_funcs._verify_worker):
        assert attempted > 0
