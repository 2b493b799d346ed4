"""N-gram repetition penalty (Demystifying Long CoT, arXiv:2502.03373, Appendix C.2).

``penalty = (1 - unique n-grams / total n-grams) * max_penalty``: 0.0 without repeats, approaching
``max_penalty`` for a fully repetitive completion.

By default the n-grams are over the lower-cased words of the completion text, like open-r1's version,
so the reward works in both completion formats and without token ids. Words are whitespace-separated
runs, except that each CJK ideograph or kana counts as a word on its own (Chinese and Japanese have no
spaces: otherwise a looping Chinese answer would be one "word" and never penalized).

``unit="tokens"`` counts n-grams of ``completion_ids`` instead, reusing TRL's
``get_repetition_penalty_reward`` (same formula; it takes the ids as its first argument, not the
completions, so it cannot be registered as is).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

from reward_funcs._text import Completion, completion_to_text
from reward_funcs.registry import RewardFunc, register

_CJK = "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")

Unit = Literal["words", "tokens"]


def text_words(text: str) -> list[str]:
    """Lower-cased words; each CJK character is a word.

    >>> text_words("So so  THE 答案是")
    ['so', 'so', 'the', '答', '案', '是']
    """
    return _WORD.findall(text.lower())


def repetition_share(items: Sequence[Hashable], ngram_size: int) -> float:
    """The share of n-grams that repeat an earlier one: ``1 - unique / total``; 0.0 for too-short inputs.

    >>> repetition_share(["a", "b", "a", "b", "a", "b"], 2)
    0.6
    """
    total = len(items) - ngram_size + 1
    if total <= 0:
        return 0.0
    unique = len(set(zip(*(items[offset:] for offset in range(ngram_size)), strict=False)))
    return 1.0 - unique / total


def word_repetition_penalty(
    completions: list[Completion], *, ngram_size: int, max_penalty: float, **kwargs: Any
) -> list[float | None]:
    """Repetition penalty over the words of each completion (see the module docstring)."""
    scores: list[float | None] = []
    for completion in completions:
        share = repetition_share(text_words(completion_to_text(completion)), ngram_size)
        scores.append(share * max_penalty if share else 0.0)
    return scores


def token_repetition_penalty(
    completions: list[Completion],
    *,
    token_penalty: Callable[..., list[float]],
    completion_ids: list[list[int]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Repetition penalty over ``completion_ids`` (TRL's implementation)."""
    if completion_ids is None or len(completion_ids) != len(completions):
        raise ValueError("repetition_penalty with unit='tokens' needs completion_ids, one list per completion")
    return list(token_penalty(completion_ids))


@register("repetition_penalty", factory=True)
def build_repetition_penalty(ngram_size: int = 3, max_penalty: float = -1.0, unit: Unit = "words") -> RewardFunc:
    """The ``repetition_penalty`` reward: ``get("repetition_penalty", ngram_size=3, max_penalty=-1.0)``.

    >>> penalty = build_repetition_penalty(ngram_size=2, max_penalty=-1.0)
    >>> penalty(["a b c d", "go go go go go", [{"role": "assistant", "content": "好好好好好"}]])
    [0.0, -0.75, -0.75]
    >>> build_repetition_penalty(ngram_size=2, unit="tokens")(["x", "y"], completion_ids=[[1, 2, 3], [5, 5, 5, 5, 5]])
    [0.0, -0.75]
    """
    if isinstance(ngram_size, bool) or not isinstance(ngram_size, int) or ngram_size < 1:
        raise ValueError(f"ngram_size must be a positive integer, got {ngram_size!r}")
    if not (math.isfinite(max_penalty) and max_penalty <= 0):
        raise ValueError(f"max_penalty must be a finite number <= 0, got {max_penalty!r}")
    if unit == "words":
        return functools.wraps(word_repetition_penalty)(
            functools.partial(word_repetition_penalty, ngram_size=ngram_size, max_penalty=max_penalty)
        )
    if unit == "tokens":
        from trl.rewards import get_repetition_penalty_reward  # importing trl takes ~0.3 s

        token_penalty = get_repetition_penalty_reward(ngram_size=ngram_size, max_penalty=max_penalty)
        return functools.wraps(token_repetition_penalty)(
            functools.partial(token_repetition_penalty, token_penalty=token_penalty)
        )
    raise ValueError(f"unit must be 'words' or 'tokens', got {unit!r}")
