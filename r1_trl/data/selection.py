"""Choosing among sampled completions once they passed their checks: one module for rejection sampling and
the distillation teacher set (per prompt: no duplicates, at most N kept)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


def normalise_whitespace(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends.

    >>> normalise_whitespace("  a\\n\\n b\\tc ")
    'a b c'
    """
    return " ".join(text.split())


@dataclass(frozen=True)
class SelectionCounts:
    exact_duplicates: int = 0
    whitespace_duplicates: int = 0
    over_cap: int = 0


def select_unique(
    candidates: Sequence[tuple[int, str]], max_per_prompt: int | None = None, dedupe: bool = True
) -> tuple[list[int], SelectionCounts]:
    """Positions of the ``(prompt_index, text)`` candidates to keep: per prompt, drop exact duplicates, then
    whitespace-normalised duplicates (unless ``dedupe`` is off), then everything past the first
    ``max_per_prompt`` (order is kept).

    >>> select_unique([(0, "a b"), (0, "a b"), (0, "a  b"), (0, "c"), (1, "a b")], max_per_prompt=1)
    ([0, 4], SelectionCounts(exact_duplicates=1, whitespace_duplicates=1, over_cap=1))
    """
    exact_seen: set[tuple[int, str]] = set()
    normal_seen: set[tuple[int, str]] = set()
    per_prompt: Counter[int] = Counter()
    kept: list[int] = []
    exact = whitespace = over_cap = 0
    for position, (prompt_index, text) in enumerate(candidates):
        if dedupe and (prompt_index, text) in exact_seen:
            exact += 1
            continue
        exact_seen.add((prompt_index, text))
        normal = (prompt_index, normalise_whitespace(text))
        if dedupe and normal in normal_seen:
            whitespace += 1
            continue
        normal_seen.add(normal)
        if max_per_prompt is not None and per_prompt[prompt_index] >= max_per_prompt:
            over_cap += 1
            continue
        per_prompt[prompt_index] += 1
        kept.append(position)
    return kept, SelectionCounts(exact, whitespace, over_cap)
