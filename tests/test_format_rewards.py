"""The structure rewards: ``format``, ``tag_count`` and ``reasoning_steps``, in both completion formats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import reward_funcs
import reward_funcs.formatting  # noqa: F401 - registers the rewards
from reward_funcs.formatting import count_steps, has_r1_format, well_placed_tags


def as_standard(text: str) -> str:
    return text


def as_conversational(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(params=[as_standard, as_conversational], ids=["standard", "conversational"])
def wrap(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    return request.param


def score(name: str, texts: list[str], wrap: Callable[[str], Any], **options: Any) -> list[float | None]:
    return reward_funcs.get(name, **options)([wrap(text) for text in texts])


# --- format ------------------------------------------------------------------------------------------------

GOOD_FORMAT = [
    "<think>2+2=4</think><answer>4</answer>",
    "<think>\n2+2=4\n</think>\n<answer>\n4\n</answer>\n",
    "  \n<think></think> <answer>4</answer>",  # empty reasoning is still the format
    "<think>a < b and b > c</think><answer>x</answer>",
]
BAD_FORMAT = [
    "",
    "4",
    "<answer>4</answer>",
    "<think>2+2=4</think>",
    "<think>2+2=4</think>4",
    "Sure! <think>a</think><answer>4</answer>",  # text before the think block
    "<think>a</think><answer>4</answer> and more",  # text after the answer
    "<think>a</think> so <answer>4</answer>",  # text between the blocks
    "<think>a</think><think>b</think><answer>4</answer>",  # repeated think block
    "<think>a</think><answer>4</answer><answer>5</answer>",  # repeated answer block
    "<think>a<answer>4</answer></think>",  # answer nested in the reasoning
    "<think>a</think><answer><think>b</think></answer>",  # reasoning nested in the answer
    "<think>a</think><answer>   </answer>",  # blank answer
    "<answer>4</answer><think>a</think>",  # wrong order
    "</think><think>a<answer>4</answer>",
    "<think>a</think><answer>4",  # unclosed answer
    "<THINK>a</THINK><ANSWER>4</ANSWER>",  # tags are case-sensitive
]


@pytest.mark.parametrize("text", GOOD_FORMAT)
def test_format_accepts_one_think_then_one_answer(text: str, wrap: Callable[[str], Any]) -> None:
    assert score("format", [text], wrap) == [1.0]


@pytest.mark.parametrize("text", BAD_FORMAT)
def test_format_rejects_anything_else(text: str, wrap: Callable[[str], Any]) -> None:
    assert score("format", [text], wrap) == [0.0]


def test_format_scores_each_completion_of_a_batch(wrap: Callable[[str], Any]) -> None:
    assert score("format", [GOOD_FORMAT[0], BAD_FORMAT[2], GOOD_FORMAT[1]], wrap) == [1.0, 0.0, 1.0]


def test_format_with_prefilled_think(wrap: Callable[[str], Any]) -> None:
    good = "2+2=4\n</think>\n<answer>4</answer>"
    reopened = "<think>2+2=4</think><answer>4</answer>"  # the prompt already opened <think>
    no_close = "2+2=4 <answer>4</answer>"
    assert score("format", [good, reopened, no_close], wrap, think_prefilled=True) == [1.0, 0.0, 0.0]
    assert score("format", [good], wrap) == [0.0]  # without the option the opening tag is missing


def test_format_without_answer_tag_takes_free_text_after_think(wrap: Callable[[str], Any]) -> None:
    texts = [
        "<think>2+2=4</think>\nThe answer is $\\boxed{4}$.",
        "<think>2+2=4</think>\n   ",  # no answer at all
        "<think>a</think> 4 <think>b</think>",
    ]
    assert score("format", texts, wrap, answer_tag=False) == [1.0, 0.0, 0.0]
    prefilled = ["thinking...</think>\n\n**4**", "thinking...\n\n**4**"]
    assert score("format", prefilled, wrap, answer_tag=False, think_prefilled=True) == [1.0, 0.0]


def test_format_is_linear_on_huge_tag_soup() -> None:
    soup = "<think>" * 50_000 + "</answer>" * 50_000
    start = time.perf_counter()
    assert not has_r1_format(soup)
    assert not has_r1_format("<think>" + "a" * 1_000_000 + "</think><answer>" + "b" * 1_000_000)
    assert time.perf_counter() - start < 3.0  # ~0.1 s measured; a quadratic scan would take minutes


# --- tag_count ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>b</answer>", 1.0),
        ("<think>a</think> trailing text <answer>b</answer> more", 1.0),  # placement, not exact format
        ("<think>a</think>", 0.5),
        ("<answer>b</answer>", 0.5),
        ("no tags", 0.0),
        ("", 0.0),
        ("<think>a</think><think>b</think><answer>c</answer>", 0.5),  # repeated think block earns nothing
        ("<think>a</think><answer>b</answer><answer>c</answer>", 0.5),
        ("<answer>b</answer><think>a</think>", 0.5),  # only one pair can be in order
        ("</answer><answer></think><think>", 0.25),  # reversed: any single tag is in order by itself
        ("<think><think><think></think></think></think>", 0.0),
    ],
)
def test_tag_count(text: str, expected: float, wrap: Callable[[str], Any]) -> None:
    assert score("tag_count", [text], wrap) == [expected]


def test_tag_count_with_prefilled_think(wrap: Callable[[str], Any]) -> None:
    texts = ["a</think><answer>b</answer>", "<think>a</think><answer>b</answer>", "a"]
    assert score("tag_count", texts, wrap, think_prefilled=True) == [1.0, 0.75, 0.25]  # a 2nd <think> earns 0


def test_well_placed_tags_takes_the_longest_ordered_subset() -> None:
    assert well_placed_tags("</think> <think> <answer> </answer>") == 3  # <think> <answer> </answer>
    assert well_placed_tags("<answer> <think> </think> </answer>") == 3  # <think> </think> </answer>


# --- reasoning_steps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("Step 1: read. Step 2: add. Step 3: check.", 3),
        ("step 1. read\nstep 2) add", 2),
        ("1. read\n2. add\n3. check\n4. answer", 4),
        ("  1) read\n  2) add", 2),
        ("- read\n* add\n• check", 3),
        ("First, read. Second, add. Next, check. Finally, answer.", 4),
        ("第1步：读题。第二步：计算。", 2),
        ("首先，读题。然后，计算。最后，作答。", 3),
        ("Paso 1: leer. Paso 2: sumar.", 2),
        ("The answer is 3.14 and 2.5.\n3.14 is pi\n-5 is negative\nfirst, not capitalized", 0),
        ("", 0),
    ],
)
def test_count_steps(text: str, steps: int) -> None:
    assert count_steps(text) == steps


def test_reasoning_steps_reaches_full_credit_at_three_steps(wrap: Callable[[str], Any]) -> None:
    texts = ["no structure", "Step 1: a", "Step 1: a\nStep 2: b", "1. a\n2. b\n3. c", "1. a\n2. b\n3. c\n4. d\n5. e"]
    assert score("reasoning_steps", texts, wrap) == [0.0, 1 / 3, 2 / 3, 1.0, 1.0]


def test_reasoning_steps_is_linear_on_pathological_whitespace() -> None:
    texts = ["\n" * 200_000, " \t" * 100_000 + "1", "Step" + " " * 200_000, "第" + "一" * 200_000]
    start = time.perf_counter()
    assert reward_funcs.get("reasoning_steps")(texts) == [0.0, 0.0, 0.0, 0.0]
    assert time.perf_counter() - start < 3.0  # ~0.1 s measured; a quadratic scan would take minutes
