"""N-gram decontamination of training sets against evaluation prompts."""

from __future__ import annotations

import itertools
import time

import pytest
from datasets import Dataset

from r1_trl.data.decontaminate import NgramIndex, decontaminate, normalise_words

EVAL = [
    "Let $N$ be the greatest four-digit positive integer with the property that whenever one of its digits "
    "is changed to 1, the resulting number is divisible by 7. Find the remainder when N is divided by 1000.",
    "How many positive divisors does 36 have?",  # 7 words: shorter than n=8
    "A rectangle has a perimeter of 30 units and its length is twice its width. What is its area?",
]

TRAIN = [
    # 0: exact duplicate of EVAL[0] apart from case and punctuation
    "let N be the greatest four digit positive integer with the property that whenever one of its digits "
    "is changed to 1 the resulting number is divisible by 7; find the remainder when N is divided by 1000",
    # 1: paraphrase that still shares an 8-gram with EVAL[2]
    "Suppose a rectangle has a perimeter of 30 units and its length is three times the width. Find the area.",
    # 2: unrelated
    "Compute the sum of the first 100 odd positive integers.",
    # 3: contains the short EVAL[1] verbatim
    "Answer quickly: how many positive divisors does 36 have? Explain.",
    # 4: short prompt, only 7 shared words in a row with EVAL[2] -> kept
    "of 30 units and its length is",
    # 5: shares only words, not an 8-word run, with EVAL[0]
    "The greatest integer N divisible by 7 has digits that change; find the remainder of N.",
    # 6: equal to the short EVAL[1]
    "HOW MANY POSITIVE DIVISORS DOES 36 HAVE",
    # 7: a short prompt that differs from the short eval prompt
    "How many positive divisors does 48 have?",
]


@pytest.fixture
def train() -> Dataset:
    return Dataset.from_dict({"prompt": TRAIN, "solution": [str(i) for i in range(len(TRAIN))]})


def test_normalise_words() -> None:
    assert normalise_words("Four-digit, N; $x^2$!") == ["four", "digit", "n", "x", "2"]
    assert normalise_words([{"role": "user", "content": "Hi there"}]) == ["hi", "there"]
    assert normalise_words(None) == []


def test_drops_duplicates_paraphrases_and_short_matches(train: Dataset) -> None:
    kept, stats = decontaminate(train, EVAL)
    assert stats.dropped_indices == [0, 1, 3, 6]
    assert stats.matched_eval_indices == [0, 2, 1, 1]
    assert (stats.total, stats.num_dropped, stats.num_kept, stats.ngram) == (8, 4, 4, 8)
    assert list(kept["prompt"]) == [TRAIN[2], TRAIN[4], TRAIN[5], TRAIN[7]]
    assert list(kept["solution"]) == ["2", "4", "5", "7"]  # other columns follow their rows
    assert stats.as_dict()["dropped"] == 4 and stats.as_dict()["dropped_indices"] == [0, 1, 3, 6]


def test_smaller_n_catches_more(train: Dataset) -> None:
    _, stats = decontaminate(train, EVAL, n=5)
    assert 4 in stats.dropped_indices and 5 not in stats.dropped_indices
    assert stats.ngram == 5


def test_evaluation_dataset_with_its_own_column(train: Dataset) -> None:
    evaluation = Dataset.from_dict({"problem": EVAL})
    kept, stats = decontaminate(train, evaluation, eval_column="problem")
    assert stats.dropped_indices == [0, 1, 3, 6]
    assert len(kept) == 4
    with pytest.raises(ValueError, match="no column 'prompt'"):
        decontaminate(train, evaluation)


def test_prebuilt_index_reused_and_several_eval_sets(train: Dataset) -> None:
    index = NgramIndex(itertools.chain(EVAL[:1], EVAL[1:]))
    assert index.size == 3
    _, stats = decontaminate(train, index)
    assert stats.dropped_indices == [0, 1, 3, 6]
    with pytest.raises(ValueError, match="n=8"):
        decontaminate(train, index, n=13)


def test_clean_training_set_is_returned_unchanged() -> None:
    clean = Dataset.from_dict({"prompt": ["What is 2 + 2?", "Name a prime larger than 10."]})
    kept, stats = decontaminate(clean, EVAL)
    assert kept is clean and stats.num_dropped == 0 and stats.num_kept == 2


def test_empty_eval_prompt_matches_nothing(train: Dataset) -> None:
    _, stats = decontaminate(train, ["", "?!"])
    assert stats.num_dropped == 0


def test_custom_train_column_and_errors() -> None:
    ds = Dataset.from_dict({"problem": ["how many positive divisors does 36 have"]})
    assert decontaminate(ds, EVAL, column="problem")[1].dropped_indices == [0]
    with pytest.raises(ValueError, match="no column 'prompt'"):
        decontaminate(ds, EVAL)
    with pytest.raises(ValueError, match=">= 1"):
        NgramIndex(EVAL, n=0)


def test_scales_to_thousands_of_rows() -> None:
    evaluation = [
        f"problem number {i} asks for the value of the expression {i} times {i + 1} plus seven"
        for i in range(2000)
    ]
    training = [
        f"training item {i}: find the value of {i} squared minus three, then add one" for i in range(20_000)
    ]
    training[12_345] = evaluation[1_999].upper()
    start = time.perf_counter()
    kept, stats = decontaminate(Dataset.from_dict({"prompt": training}), evaluation)
    elapsed = time.perf_counter() - start
    assert stats.dropped_indices == [12_345] and stats.matched_eval_indices == [1_999]
    assert len(kept) == 19_999
    assert elapsed < 10
