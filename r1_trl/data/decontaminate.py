"""Drop training rows that overlap an evaluation set, by word n-grams.

Text is normalised (lowercase, punctuation replaced by spaces, whitespace collapsed) and split
into words. A training prompt is contaminated when it shares a word ``n``-gram with any
evaluation prompt. An evaluation prompt shorter than ``n`` words falls back to its whole
normalised text: a training prompt is contaminated if it contains that exact word sequence (so a
short training prompt equal to a short evaluation prompt is caught too). A short training
prompt that is merely a fragment of a long evaluation prompt is kept.

The evaluation side is indexed once (:class:`NgramIndex`, a dict of n-gram hashes) and can be
reused across several training sets.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset

DEFAULT_NGRAM = 8
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise_words(text: Any) -> list[str]:
    """Lowercased words with punctuation removed; conversational prompts use their message contents.

    >>> normalise_words("What is $2+3$, exactly?")
    ['what', 'is', '2', '3', 'exactly']
    """
    if isinstance(text, list):
        text = " ".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in text)
    return _PUNCTUATION.sub(" ", str(text or "").lower()).split()


def _ngram_hashes(words: list[str], n: int) -> Iterable[int]:
    return (hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1))


class NgramIndex:
    """Hashes of the word n-grams of a set of evaluation prompts (short prompts kept whole)."""

    def __init__(self, texts: Iterable[Any], n: int = DEFAULT_NGRAM) -> None:
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        self.n = n
        self.size = 0
        # n-gram (or whole short prompt) hash -> index of the first evaluation prompt that has it
        self._owner: dict[int, int] = {}
        self._short_lengths: set[int] = set()  # word counts of evaluation prompts shorter than n
        for index, text in enumerate(texts):
            self.size += 1
            words = normalise_words(text)
            if not words:
                continue
            if len(words) < n:
                self._short_lengths.add(len(words))
                self._owner.setdefault(hash(tuple(words)), index)
                continue
            for key in _ngram_hashes(words, n):
                self._owner.setdefault(key, index)

    def match(self, text: Any) -> int | None:
        """Index of an evaluation prompt that ``text`` overlaps, or None.

        >>> index = NgramIndex(["Find the sum of all positive integers n such that n^2 + 1 divides n + 7."])
        >>> index.match("Prove it. Find the sum of all positive integers n such that n squared is odd.")
        0
        >>> index.match("Find the product of two primes.") is None
        True
        """
        words = normalise_words(text)
        for length in (self.n, *sorted(self._short_lengths)):
            for key in _ngram_hashes(words, length):
                owner = self._owner.get(key)
                if owner is not None:
                    return owner
        return None


@dataclass
class DecontaminationStats:
    total: int
    ngram: int
    dropped_indices: list[int] = field(default_factory=list)  # rows of the training set
    matched_eval_indices: list[int] = field(default_factory=list)  # the eval prompt each one hit

    @property
    def num_dropped(self) -> int:
        return len(self.dropped_indices)

    @property
    def num_kept(self) -> int:
        return self.total - self.num_dropped

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "ngram": self.ngram,
            "dropped": self.num_dropped,
            "kept": self.num_kept,
            "dropped_indices": list(self.dropped_indices),
            "matched_eval_indices": list(self.matched_eval_indices),
        }


def decontaminate(
    train: Dataset,
    evaluation: NgramIndex | Dataset | Iterable[Any],
    column: str = "prompt",
    eval_column: str | None = None,
    n: int | None = None,
) -> tuple[Dataset, DecontaminationStats]:
    """``train`` without the rows whose ``column`` overlaps an evaluation prompt, and what was dropped.

    ``evaluation`` is a prebuilt :class:`NgramIndex`, a ``Dataset`` (its ``eval_column``, default
    ``column``) or any iterable of prompts (e.g. ``itertools.chain`` of several eval sets).
    ``n`` defaults to the index's size, or :data:`DEFAULT_NGRAM` when the index is built here.

    >>> train = Dataset.from_dict({"prompt": ["What is 2 + 3?", "What is 7 * 6?"]})
    >>> kept, stats = decontaminate(train, ["what is 2+3"])
    >>> list(kept["prompt"]), stats.dropped_indices
    (['What is 7 * 6?'], [0])
    """
    if column not in train.column_names:
        raise ValueError(f"training set has no column {column!r}; columns: {train.column_names}")
    if isinstance(evaluation, NgramIndex):
        if n is not None and n != evaluation.n:
            raise ValueError(f"the index was built with n={evaluation.n}, but n={n} was requested")
        index = evaluation
    elif isinstance(evaluation, Dataset):
        eval_column = eval_column or column
        if eval_column not in evaluation.column_names:
            raise ValueError(f"evaluation set has no column {eval_column!r}; columns: {evaluation.column_names}")
        index = NgramIndex(evaluation[eval_column], n or DEFAULT_NGRAM)
    else:
        index = NgramIndex(evaluation, n or DEFAULT_NGRAM)

    stats = DecontaminationStats(total=len(train), ngram=index.n)
    for row_index, text in enumerate(train[column]):
        owner = index.match(text)
        if owner is not None:
            stats.dropped_indices.append(row_index)
            stats.matched_eval_indices.append(owner)
    if not stats.dropped_indices:
        return train, stats
    dropped = set(stats.dropped_indices)
    kept = train.select([i for i in range(len(train)) if i not in dropped])
    return kept, stats
