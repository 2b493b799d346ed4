"""Table-driven accuracy test: gold/answer pairs across the classes a policy could game or be wronged by.

``tests/fixtures/accuracy_pairs.jsonl`` holds one pair per line with its class and the score a correct judge
gives (``null``: the gold cannot be read, the row is skipped). ``benchmarks/rewards.py --pairs`` prints the
agreement per class of this reward beside plain math-verify's.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import reward_funcs
from reward_funcs.accuracy import accuracy

PAIRS_FILE = Path(__file__).parent / "fixtures" / "accuracy_pairs.jsonl"
PAIRS: list[dict[str, Any]] = [json.loads(line) for line in PAIRS_FILE.read_text().splitlines() if line.strip()]
CLASSES = sorted({pair["class"] for pair in PAIRS})


def test_the_table_covers_every_class() -> None:
    counts = Counter(pair["class"] for pair in PAIRS)
    assert len(PAIRS) >= 200
    assert set(counts) >= {"several answers", "negated", "units", "precision", "words", "unreadable gold",
                           "multiple choice", "right answers", "times", "plain math"}
    assert all(count >= 8 for count in counts.values()), counts
    for pair in PAIRS:
        assert pair["expected"] in (0.0, 1.0, None), pair


@pytest.mark.parametrize("layout", ["<answer>{}</answer>", "<think>working</think>\nSo the answer is $\\boxed{{{}}}$."])
@pytest.mark.parametrize("name", CLASSES)
def test_pairs_of_a_class(name: str, layout: str) -> None:
    pairs = [pair for pair in PAIRS if pair["class"] == name]
    scores = accuracy([layout.format(pair["answer"]) for pair in pairs], solution=[pair["gold"] for pair in pairs])
    wrong = [(pair["gold"][:40], pair["answer"][:40], score, pair["expected"])
             for pair, score in zip(pairs, scores, strict=True) if score != pair["expected"]]
    assert wrong == [], f"{len(wrong)} of {len(pairs)} pairs scored differently (gold, answer, ours, expected)"


def test_unreadable_gold_is_none_also_through_cosine_scaled_and_length() -> None:
    completions = ["<answer>42</answer>", "Answer is \\boxed{42}.", "<answer>14</answer>"]
    golds = ["forty two", "Answer is forty two.", "14"]
    cosine = reward_funcs.get("cosine_scaled", max_len=100)(completions, solution=golds)
    assert cosine[:2] == [None, None] and cosine[2] is not None and cosine[2] > 0
    length = reward_funcs.get("length")(completions, solution=golds)
    assert length[:2] == [None, None] and length[2] is not None
