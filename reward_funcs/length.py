"""Length rewards: Kimi 1.5's group length reward, the cosine-scaled reward, and DAPO's overlong punishment.

Lengths are token counts when TRL passes ``completion_ids``, else character counts (see each reward for
its fallback).

``length`` and ``cosine_scaled`` depend on correctness. By default it comes from the ``accuracy`` reward
(a score of at least 0.5 is correct; None, an unparseable gold, leaves the completion unscored). Pass
``correctness=`` any reward-like callable to use another judge, e.g. the ``countdown`` reward. The default
judge takes the ``batch_timeout`` and ``num_workers`` of these rewards (see the ``accuracy`` reward).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from reward_funcs._text import Completion, completion_to_text
from reward_funcs.registry import RewardFunc, get, register

Correctness = Callable[..., list[float | None]]

CORRECT_THRESHOLD = 0.5
# Logging hooks are stripped before calling the judge, so accuracy does not log its columns twice.
_LOGGING_KWARGS = ("log_extra", "log_metric")


def accuracy_correctness(completions: list[Completion], **kwargs: Any) -> list[float | None]:
    """The default judge: the ``accuracy`` reward, imported on first use."""
    import reward_funcs.accuracy  # noqa: F401 - registers "accuracy"

    return get("accuracy", guard=False)(completions, **kwargs)


def judge(completions: list[Completion], correctness: Correctness | None, kwargs: dict[str, Any]) -> list[bool | None]:
    """Run the correctness judge: True (score >= 0.5), False, or None when the judge could not decide."""
    judge_kwargs = {key: value for key, value in kwargs.items() if key not in _LOGGING_KWARGS}
    scores = (correctness or accuracy_correctness)(completions, **judge_kwargs)
    if len(scores) != len(completions):
        raise ValueError(f"the correctness judge returned {len(scores)} scores for {len(completions)} completions")
    verdicts: list[bool | None] = []
    for score in scores:
        value = None if score is None else float(score)
        verdicts.append(None if value is None or not math.isfinite(value) else value >= CORRECT_THRESHOLD)
    return verdicts


def completion_lengths(completions: list[Completion], completion_ids: Sequence[Sequence[int]] | None) -> list[int]:
    """Token counts from ``completion_ids`` when they match the batch, else character counts.

    >>> completion_lengths(["abc", "de"], None)
    [3, 2]
    >>> completion_lengths(["abc", "de"], [[1], [2, 3, 4, 5]])
    [1, 4]
    """
    if completion_ids is not None and len(completion_ids) == len(completions):
        return [len(ids) for ids in completion_ids]
    return [len(completion_to_text(completion)) for completion in completions]


def kimi_length_scores(lengths: list[int], verdicts: list[bool | None]) -> list[float | None]:
    """Kimi 1.5 length reward for one group of completions of the same prompt.

    With ``lam = 0.5 - (len - min_len) / (max_len - min_len)``: a correct completion gets ``lam``, a
    wrong one ``min(0, lam)``, an undecided one None. All lengths equal: 0.0 for everyone.

    >>> kimi_length_scores([10, 20, 30, 30], [True, True, False, True])
    [0.5, 0.0, -0.5, -0.5]
    >>> kimi_length_scores([10, 30], [False, None])
    [0.0, None]
    """
    shortest, longest = min(lengths, default=0), max(lengths, default=0)
    if shortest == longest:
        return [0.0] * len(lengths)
    scores: list[float | None] = []
    for length, correct in zip(lengths, verdicts, strict=True):
        lam = 0.5 - (length - shortest) / (longest - shortest)
        scores.append(None if correct is None else lam if correct else min(0.0, lam))
    return scores


def _group_keys(prompts: Any, size: int) -> list[str]:
    if isinstance(prompts, list) and len(prompts) == size:
        return [prompt if isinstance(prompt, str) else repr(prompt) for prompt in prompts]
    return [""] * size


def kimi_length(
    completions: list[Completion],
    *,
    correctness: Correctness | None = None,
    prompts: list[Any] | None = None,
    completion_ids: list[list[int]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Kimi 1.5 length reward (arXiv:2501.12599), computed per group of completions that share a prompt.

    Groups are formed from the ``prompts`` of this call. TRL passes each process its own slice of the
    generation batch, so a group split across processes is scored within each slice. Without ``prompts``
    the whole batch is one group (as open-r1's ``len_reward`` always does).

    >>> def exact(completions, solution, **kwargs):
    ...     return [float(c.endswith(s)) for c, s in zip(completions, solution)]
    >>> kimi_length(["= 4", "so it is 4", "so it is 5"], solution=["4"] * 3, prompts=["2+2?"] * 3,
    ...             correctness=exact)
    [0.5, -0.5, -0.5]
    """
    size = len(completions)
    verdicts = judge(completions, correctness, {"prompts": prompts, "completion_ids": completion_ids, **kwargs})
    lengths = completion_lengths(completions, completion_ids)
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(_group_keys(prompts, size)):
        groups.setdefault(key, []).append(index)
    scores: list[float | None] = [None] * size
    for members in groups.values():
        group_scores = kimi_length_scores([lengths[i] for i in members], [verdicts[i] for i in members])
        for index, score in zip(members, group_scores, strict=True):
            scores[index] = score
    return scores


def default_judge(batch_timeout: float | None, num_workers: int | None) -> Correctness:
    """The ``accuracy`` judge with a batch bound and worker count (a partial of a module function: it pickles)."""
    return functools.partial(accuracy_correctness, batch_timeout=batch_timeout, num_workers=num_workers)


@register("length", factory=True)
def build_length(
    correctness: Correctness | None = None, batch_timeout: float | None = None, num_workers: int | None = None
) -> RewardFunc:
    """The ``length`` reward (:func:`kimi_length`) with an optional ``correctness`` judge (else ``accuracy``
    with ``batch_timeout`` and ``num_workers``)."""
    judge_func = correctness if correctness is not None else default_judge(batch_timeout, num_workers)
    return functools.wraps(kimi_length)(functools.partial(kimi_length, correctness=judge_func))


def cosine_schedule(length: int, max_len: int, at_zero: float, at_max_len: float) -> float:
    """Move from ``at_zero`` (length 0) to ``at_max_len`` along half a cosine; flat past ``max_len``.

    The progress is clamped to 1: without the clamp (open-r1's ``get_cosine_scaled_reward``) the cosine
    climbs back after ``max_len`` and a completion of twice ``max_len`` gets the short-completion value.
    TRL 1.16's ``get_cosine_scaled_reward`` clamps too, but needs ``completion_ids`` and TRL's own
    accuracy check.

    >>> cosine_schedule(0, 100, 1.0, 0.5), cosine_schedule(50, 100, 1.0, 0.5), cosine_schedule(200, 100, 1.0, 0.5)
    (1.0, 0.75, 0.5)
    """
    progress = min(length / max_len, 1.0)
    return at_max_len + 0.5 * (at_zero - at_max_len) * (1.0 + math.cos(progress * math.pi))


def cosine_scaled(
    completions: list[Completion],
    *,
    max_len: int,
    min_value_wrong: float,
    max_value_wrong: float,
    min_value_correct: float,
    max_value_correct: float,
    correctness: Correctness | None = None,
    completion_ids: list[list[int]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Cosine length scaling of correctness (Demystifying Long CoT, arXiv:2502.03373, Appendix C.1).

    Correct: from ``max_value_correct`` (empty) down to ``min_value_correct`` (``max_len`` and beyond).
    Wrong: from ``min_value_wrong`` up to ``max_value_wrong``, so short wrong answers cost the most.
    Undecided (judge says None): None.
    """
    verdicts = judge(completions, correctness, {"completion_ids": completion_ids, **kwargs})
    scores: list[float | None] = []
    for length, correct in zip(completion_lengths(completions, completion_ids), verdicts, strict=True):
        if correct is None:
            scores.append(None)
        elif correct:
            scores.append(cosine_schedule(length, max_len, max_value_correct, min_value_correct))
        else:
            scores.append(cosine_schedule(length, max_len, min_value_wrong, max_value_wrong))
    return scores


@register("cosine_scaled", factory=True)
def build_cosine_scaled(
    max_len: int = 1000,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    correctness: Correctness | None = None,
    batch_timeout: float | None = None,
    num_workers: int | None = None,
) -> RewardFunc:
    """The ``cosine_scaled`` reward; ``max_len`` is in tokens (with ``completion_ids``) or characters.

    Correctness comes from ``correctness`` if given, else from ``accuracy`` with ``batch_timeout``/``num_workers``.

    >>> def exact(completions, solution, **kwargs):
    ...     return [float(c.endswith(s)) for c, s in zip(completions, solution)]
    >>> reward = build_cosine_scaled(max_len=10, correctness=exact)
    >>> reward(["4", "4", "5"], solution=["4"] * 3, completion_ids=[[0] * 5, [0] * 50, [0] * 5])
    [0.75, 0.5, -0.75]
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    values = (min_value_wrong, max_value_wrong, min_value_correct, max_value_correct)
    if not all(math.isfinite(float(value)) for value in values):
        raise ValueError(f"the cosine_scaled values must be finite numbers, got {values}")
    return functools.wraps(cosine_scaled)(
        functools.partial(
            cosine_scaled,
            max_len=max_len,
            min_value_wrong=min_value_wrong,
            max_value_wrong=max_value_wrong,
            min_value_correct=min_value_correct,
            max_value_correct=max_value_correct,
            correctness=correctness if correctness is not None else default_judge(batch_timeout, num_workers),
        )
    )


def soft_overlong_punishment(
    completions: list[Completion],
    *,
    punishment: Callable[..., list[float]],
    chars_per_token: float,
    completion_ids: list[list[int]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """DAPO soft overlong punishment (arXiv:2503.14476, Eq. 13) on the completion length in tokens.

    ``punishment`` is TRL's ``get_soft_overlong_punishment``, which implements Eq. 13 exactly (0 up to
    ``L_max - L_cache``, then linear down to -1 at ``L_max``, -1 beyond). Without ``completion_ids`` the
    token count is estimated as ``ceil(characters / chars_per_token)``.
    """
    if completion_ids is not None and len(completion_ids) == len(completions):
        return list(punishment(completion_ids=completion_ids))
    # TRL's punishment only takes len() of each entry, so a range stands in for the estimated token ids.
    estimated = [range(math.ceil(len(completion_to_text(c)) / chars_per_token)) for c in completions]
    return list(punishment(completion_ids=estimated))


@register("soft_overlong_punishment", factory=True)
def build_soft_overlong_punishment(
    max_completion_len: int, soft_punish_cache: int, chars_per_token: float = 4.0
) -> RewardFunc:
    """The DAPO overlong punishment; set ``max_completion_len`` to GRPOConfig's ``max_completion_length``.

    >>> reward = build_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)
    >>> reward(["a", "b", "c"], completion_ids=[[0] * 80, [0] * 90, [0] * 120])
    [0.0, -0.5, -1.0]
    >>> reward(["x" * 360])  # no ids: 360 characters are estimated as 90 tokens
    [-0.5]
    """
    for name, value in (("max_completion_len", max_completion_len), ("soft_punish_cache", soft_punish_cache)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if max_completion_len <= 0 or not 0 <= soft_punish_cache <= max_completion_len:
        raise ValueError(
            "need max_completion_len > 0 and 0 <= soft_punish_cache <= max_completion_len, got "
            f"{max_completion_len} and {soft_punish_cache}"
        )
    if not (math.isfinite(chars_per_token) and chars_per_token > 0):
        raise ValueError(f"chars_per_token must be a positive number, got {chars_per_token!r}")
    from trl.rewards import get_soft_overlong_punishment  # importing trl takes ~0.3 s; only pay it when used

    punishment = get_soft_overlong_punishment(max_completion_len, soft_punish_cache)
    return functools.wraps(soft_overlong_punishment)(
        functools.partial(soft_overlong_punishment, punishment=punishment, chars_per_token=chars_per_token)
    )
