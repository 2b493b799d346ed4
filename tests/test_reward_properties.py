"""Property tests over every registered reward: no input can break a reward or stall a training step.

The property, for each name in ``reward_funcs.names()`` (after importing every reward module that exists)
and for any batch of completions, in either TRL completion format, with the keyword arguments TRL passes
(``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra``, ``log_metric`` and every dataset
column, as TRL passes all columns to every reward):

* the reward itself (unguarded, ``guard=False``) returns without raising;
* it returns one score per completion, each a finite ``float`` or ``None``, within the reward's range;
* the call finishes within the reward's time budget.

Inputs are arbitrary unicode (lone surrogates, NUL, zero-width and private-use characters included),
fragments of the tags and syntax the rewards parse (``<think>``, ``<answer>``, ``\\boxed{``, code fences,
step markers, towers of exponents), tags nested in one another, fenced Python blocks made of those
fragments, malformed conversational messages, and, about once in fifty completions, a string of
200,000 characters. Dataset columns are valid most of the time and junk otherwise.

Each generated batch is scored by every reward, so each reward sees all 2,000 examples while hypothesis
generates them once. The rewards that run expensive work (the math-verify worker, sandboxed programs)
get tighter timeouts so that this stays affordable, and the reward-model rewards get a stand-in scorer
(what is under test is everything around the model: row routing, text extraction, the score mapping).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reward_funcs
from reward_funcs.extraction import completion_to_text

# Every reward module; the ones written in parallel may not exist yet.
for _module in ("formatting", "length", "repetition", "language", "accuracy", "code_exec", "countdown", "model_based"):
    with contextlib.suppress(ImportError):
        importlib.import_module(f"reward_funcs.{_module}")

EXAMPLES = 2000
HUGE_SIZE = 200_000

# --- completions -------------------------------------------------------------------------------------------

PIECES = [
    "<think>", "</think>", "<answer>", "</answer>", "<think", "</answer", "think>", "<", ">", "/", "</", "<>",
    "\\boxed{", "\\boxed", "{", "}", "$", "$$", "\\frac{", "\\frac{1}{2}", "^{", "9^{9^{9^{9}}}", "10**10**10",
    "\\sqrt{", "\\left(", "\\right)", "\\text{", "```python\n", "```py\n", "```", "\n", " ", "\t", "\r\n",
    "Step 1:", "1. ", "- ", "* ", "First,", "第1步", "首先，", "print(input())", "import os\nos.system('true')\n",
    "while True:\n    pass\n", "def f(a, b):\n    return a + b\n", "答案", "。", "ñ", "é", "Ω", "θ", "ж", "の",
    "한", "🙂", "\x00", "\u200b", "\ufeff", "\u202e", "\ud800", "\udfff", "\U0010ffff", "\ue000", "0", "42",
    "-1", "1e308", "3.14", "1/0", "(", ")", "+", "-", "*", "/", "=", "####", "\\", "%", "x", "nan", "inf",
    "So the answer is", "Entonces", "所以", "(7 - 3) * 5 + 2", "(1, 2)", "[1, 2)", "B", "x = 3", "\\infty",
]

fragments = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40).map("".join)
arbitrary = st.text(st.characters(exclude_categories=()), max_size=300)
nested_tags = st.recursive(
    st.one_of(st.text(max_size=10), st.sampled_from(PIECES)),
    lambda inner: st.one_of(
        st.builds(lambda tag, body: f"<{tag}>{body}</{tag}>", st.sampled_from(["think", "answer"]), inner),
        st.builds(lambda tag, body: f"<{tag}>{body}", st.sampled_from(["think", "answer", "/think"]), inner),
        st.lists(inner, max_size=3).map("".join),
    ),
    max_leaves=15,
)
fenced_code = st.builds(lambda before, body: f"{before}\n```python\n{body}\n```\n", fragments, fragments)


def rarely(common: st.SearchStrategy, rare: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``rare`` about once in ``one_in`` draws, else ``common``.

    The gate is a value in the middle of the range: hypothesis favours the ends (0 comes up 3-4x too often).
    """
    return st.integers(0, one_in - 1).flatmap(lambda value: rare if value == one_in // 2 else common)


normal_text = rarely(st.one_of(fragments, arbitrary, nested_tags), fenced_code, 10)


def _huge(unit: str) -> str:
    unit = unit or "<think>"
    return (unit * (HUGE_SIZE // len(unit) + 1))[:HUGE_SIZE]


text = rarely(normal_text, normal_text.map(_huge), 50)

odd_messages = st.one_of(
    st.just([]),
    st.builds(lambda t: [{"role": "assistant", "content": None}, {"role": "assistant", "content": t}], text),
    st.builds(lambda t: [{"role": "assistant", "content": [{"type": "text", "text": t}, {"type": "image"}]}], text),
    st.builds(lambda t: [{"role": "tool", "content": t}], text),
    st.builds(lambda t: [{"content": t}, "not a message", None], text),
)


@st.composite
def completion_batches(draw: st.DrawFn, max_size: int = 4) -> list[Any]:
    """A batch in one format: plain strings, or single assistant messages, or (rarely) odd message lists."""
    texts = draw(st.lists(text, min_size=1, max_size=max_size))
    layout = draw(st.sampled_from(["standard", "conversational", "odd"]))
    if layout == "standard":
        return texts
    if layout == "conversational":
        return [[{"role": "assistant", "content": t}] for t in texts]
    return [draw(odd_messages) for _ in texts]


# --- the kwargs TRL passes ---------------------------------------------------------------------------------

short_text = st.one_of(st.sampled_from(PIECES), st.text(max_size=20))
junk = st.one_of(st.none(), st.integers(), st.floats(), short_text, st.lists(st.integers(), max_size=3), st.just({}))
questions = st.one_of(short_text, st.sampled_from(["What is 2+2?", "¿Cuánto es 2+2?", "2加2等于几？"]))
prompt = st.one_of(
    questions,
    st.builds(lambda system, q: [{"role": "system", "content": system}, {"role": "user", "content": q}],
              short_text, questions),
)
gold = st.one_of(
    st.sampled_from(["4", "14", "\\frac{1}{2}", "0.5", "(1, 2)", "B", "x = 3", "#### 72", "\\boxed{3}", "\\frac{"]),
    short_text,
)
VALID_CODE_INFO = {"language": "python", "test_cases": [{"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"}]}
ASSERT_CODE_INFO = '{"test_cases": [{"type": "assert", "code": "assert f(1, 2) == 3"}]}'
# Test cases are usable in about one row in ten, so the code rewards start a sandboxed program (0.1-0.5 s
# each) about 70 times in 2,000 examples; code blocks themselves are frequent (fenced texts, fence pieces).
code_info = rarely(junk, st.sampled_from([VALID_CODE_INFO, ASSERT_CODE_INFO]), 10)
numbers = st.one_of(st.lists(st.integers(-5, 100), max_size=6), junk)
target = st.one_of(st.integers(-1000, 1000), junk)
language = st.sampled_from([None, "", "en", "zh", "es", "ja", "ru", "ar", "zh-CN", "Spanish"])
prompt_type = st.one_of(st.sampled_from([None, "general", "reasoning"]), short_text)  # a string column
# A reasoning-gym entry as the builder stores it (JSON), usable in about one row in three.
GYM_ENTRY = json.dumps({"task": "chain_sum", "config": {}, "entry": {
    "question": "State the final answer to the following arithmetic problem: 2 + 2 =", "answer": "4",
    "metadata": {"source_dataset": "chain_sum", "expression": "2 + 2"}}})
gym_entry = rarely(junk, st.just(GYM_ENTRY), 3)

# Every column of every reward, as TRL passes all dataset columns to every reward.
COLUMNS = {
    "prompts": prompt,
    "solution": gold,
    "verification_info": code_info,
    "numbers": numbers,
    "target": target,
    "language": language,
    "prompt_type": prompt_type,
    "reasoning_gym": gym_entry,
}
TRL_KWARGS = {"trainer_state": None, "log_extra": lambda *args: None, "log_metric": lambda *args: None}


def draw_kwargs(data: st.DataObject, size: int) -> dict[str, Any]:
    kwargs = {
        name: data.draw(st.lists(strategy, min_size=size, max_size=size), label=name)
        for name, strategy in COLUMNS.items()
    }
    lengths = data.draw(st.one_of(st.none(), st.lists(st.integers(0, 3000), min_size=size, max_size=size)))
    kwargs["completion_ids"] = None if lengths is None else [[7] * length for length in lengths]
    return {**kwargs, **TRL_KWARGS}


# Latin, Han and kana reasoning, and a prompt whose language is detected: this loads the lingua models
# the rewards need (a first use costs 1-5 s), so that no example pays for it.
WARM_COMPLETIONS = [
    "<think>二加二等于四。二に二を足すと四になります。</think><answer>4</answer>",
    "<think>We add two and two and get four. Sumamos dos y dos.</think><answer>4</answer>",
]
WARM_KWARGS = {
    "prompts": ["2加2等于几？", "What is two plus two?"],
    "solution": ["4", "4"],
    "verification_info": [VALID_CODE_INFO, VALID_CODE_INFO],
    "numbers": [[2, 2], [2, 2]],
    "target": [4, 4],
    "language": ["zh", None],
    "prompt_type": ["general", "reasoning"],
    "reasoning_gym": [GYM_ENTRY, GYM_ENTRY],
    **TRL_KWARGS,
}

# --- the rewards -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardCase:
    """How to build one reward for the test, its range, and its time budget per completion of a batch.

    Budgets are wall-clock and generous (about 10x the slowest call measured on an idle machine), since
    the 2-core machine may be shared: they catch hangs, not slowness.
    """

    config: Callable[[], dict[str, Any]] = dict
    low: float = -math.inf
    high: float = math.inf
    seconds_per_completion: float = 5.0
    stats: dict[str, float] = field(default_factory=lambda: {"slowest": 0.0, "total": 0.0}, compare=False)


def _fast_accuracy() -> Callable[..., list[float | None]]:
    return reward_funcs.get("accuracy", guard=False, timeout=1.0)


def length_scorer(prompts: list[Any], responses: list[Any]) -> list[float]:
    """Stands in for a reward model (loading and running one is tested with the model-based rewards)."""
    assert len(prompts) == len(responses) and all(isinstance(response, str) for response in responses)
    return [len(response) / 100.0 - 1.0 for response in responses]


CASES: dict[str, RewardCase] = {
    "format": RewardCase(low=0.0, high=1.0),
    "tag_count": RewardCase(low=0.0, high=1.0),
    "reasoning_steps": RewardCase(low=0.0, high=1.0),
    "repetition_penalty": RewardCase(low=-1.0, high=0.0),
    "soft_overlong_punishment": RewardCase(
        config=lambda: {"max_completion_len": 1000, "soft_punish_cache": 200}, low=-1.0, high=0.0
    ),
    "language_consistency": RewardCase(low=0.0, high=1.0),
    "countdown": RewardCase(low=0.0, high=1.0),
    "reasoning_gym": RewardCase(low=0.0, high=1.0),
    # The math-verify worker gets 1 s per answer (the default is 5 s), plus a worker restart after a timeout.
    "accuracy": RewardCase(config=lambda: {"timeout": 1.0}, low=0.0, high=1.0, seconds_per_completion=10.0),
    "length": RewardCase(
        config=lambda: {"correctness": _fast_accuracy()}, low=-0.5, high=0.5, seconds_per_completion=10.0
    ),
    "cosine_scaled": RewardCase(
        config=lambda: {"correctness": _fast_accuracy()}, low=-1.0, high=1.0, seconds_per_completion=10.0
    ),
    # One test case per row, each program may run for its 1 s limit.
    "code": RewardCase(config=lambda: {"time_limit": 1.0}, low=0.0, high=1.0, seconds_per_completion=10.0),
    "binary_code": RewardCase(config=lambda: {"time_limit": 1.0}, low=0.0, high=1.0, seconds_per_completion=10.0),
    # Sigmoid of the scorer's value: a preference probability.
    "helpfulness_rm": RewardCase(config=lambda: {"scorer": length_scorer}, low=0.0, high=1.0),
    "harmlessness_rm": RewardCase(config=lambda: {"scorer": length_scorer}, low=0.0, high=1.0),
}


def check_scores(name: str, scores: Any, size: int, case: RewardCase) -> None:
    assert isinstance(scores, list), f"{name} returned {type(scores).__name__}, not a list"
    assert len(scores) == size, f"{name} returned {len(scores)} scores for {size} completions"
    for score in scores:
        if score is None:
            continue
        assert type(score) is float, f"{name} returned {score!r} ({type(score).__name__})"
        assert math.isfinite(score), f"{name} returned {score!r}"
        assert case.low <= score <= case.high, f"{name} returned {score!r} outside [{case.low}, {case.high}]"


def score_with(name: str, reward: Callable[..., Any], completions: list[Any], kwargs: dict[str, Any]) -> None:
    case = CASES.get(name, RewardCase())
    start = time.perf_counter()
    try:
        scores = reward(completions, **kwargs)
    except Exception as error:
        raise AssertionError(f"reward {name!r} raised {error!r}") from error
    elapsed = time.perf_counter() - start
    case.stats["slowest"] = max(case.stats["slowest"], elapsed)
    case.stats["total"] += elapsed
    check_scores(name, scores, len(completions), case)
    budget = case.seconds_per_completion * len(completions)
    assert elapsed <= budget, f"{name} took {elapsed:.2f}s on a batch of {len(completions)} (budget {budget:.0f}s)"


def test_every_registered_reward_has_a_case() -> None:
    missing = [name for name in reward_funcs.names() if name not in CASES]
    assert not missing, f"add property-test cases for {missing}"


@pytest.fixture(scope="module")
def rewards() -> dict[str, Callable[..., Any]]:
    """Every registered reward, unguarded, warmed up (workers started, language models loaded)."""
    built = {name: reward_funcs.get(name, guard=False, **CASES.get(name, RewardCase()).config())
             for name in reward_funcs.names()}
    for name, reward in built.items():
        check_scores(name, reward(WARM_COMPLETIONS, **WARM_KWARGS), 2, CASES.get(name, RewardCase()))
    return built


def test_every_reward_survives_any_batch(rewards: dict[str, Callable[..., Any]]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,  # budgets are per reward call (see CASES), not per example of all rewards
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,  # the same 2,000 examples on every run: no flaky CI
        database=None,
    )
    @given(data=st.data())
    def property_holds(data: st.DataObject) -> None:
        completions = data.draw(completion_batches(), label="completions")
        kwargs = draw_kwargs(data, len(completions))
        seen["examples"] += 1
        seen["huge"] += sum(len(completion_to_text(c)) >= HUGE_SIZE for c in completions)
        for name, reward in rewards.items():
            score_with(name, reward, completions, kwargs)

    seen = {"examples": 0, "huge": 0}
    property_holds()
    print(f"{seen['examples']} batches, {seen['huge']} completions of {HUGE_SIZE:,} characters")
    assert seen["examples"] >= EXAMPLES and seen["huge"] >= 20
    for name in rewards:
        stats = CASES.get(name, RewardCase()).stats
        print(f"{name}: slowest call {stats['slowest']:.3f}s, total {stats['total']:.1f}s")
