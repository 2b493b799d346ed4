"""Name -> reward function registry, and the guard that keeps one bad completion from crashing a step.

Recipes list rewards by name (``reward_funcs: [accuracy, format]``) or by import path, as TRL's scripts
accept them (``my_pkg.rewards:my_reward`` or ``my_pkg.rewards.my_reward``); ``get`` resolves either to a
callable with TRL's reward signature ``f(completions, **kwargs) -> list[float | None]``, guarded alike.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from reward_funcs._text import row_kwargs

logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list[float | None]]
RewardBuilder = Callable[..., RewardFunc]

_BUILDERS: dict[str, RewardBuilder] = {}


class UnknownRewardError(KeyError):
    """A reward name that is not registered, or an import path that does not lead to a callable."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(name: str, *, factory: bool = False) -> Callable[[Callable], Callable]:
    """Register a reward function (or, with ``factory=True``, a function that builds one) under ``name``.

    >>> import reward_funcs
    >>> @reward_funcs.register("shorter_is_better")
    ... def shorter_is_better(completions, **kwargs):
    ...     return [1.0 / (1 + len(str(c))) for c in completions]
    >>> reward_funcs.get("shorter_is_better")(["ab"])
    [0.3333333333333333]
    """

    def decorator(obj: Callable) -> Callable:
        if name in _BUILDERS and _BUILDERS[name] is not obj:
            logger.warning("reward %r is registered again; the newer definition wins", name)
        _BUILDERS[name] = obj if factory else _plain_builder(obj)
        return obj

    return decorator


def _plain_builder(func: RewardFunc) -> RewardBuilder:
    def build(**kwargs: Any) -> RewardFunc:
        return functools.partial(func, **kwargs) if kwargs else func

    return build


def names() -> list[str]:
    """The registered reward names, sorted."""
    return sorted(_BUILDERS)


def is_import_path(name: str) -> bool:
    """Whether a reward entry is an import path (``module:attr`` or ``module.attr``) rather than a registry name."""
    return ":" in name or "." in name


def _import_reward(path: str) -> RewardFunc:
    """The callable at ``module:attr`` (or ``module.attr``); the working directory is importable, as for
    ``python script.py``, also when started through the ``r1-trl`` console script."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise UnknownRewardError(f"reward {path!r}: expected 'module:function' or 'module.function'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - a user module may fail to import in any way
        raise UnknownRewardError(f"reward {path!r}: cannot import {module_name!r} ({type(error).__name__}: {error})") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise UnknownRewardError(f"reward {path!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UnknownRewardError(f"reward {path!r}: {attribute!r} is a {type(obj).__name__}, not a function")
    return obj


def check(name: str) -> None:
    """Raise `UnknownRewardError` (naming the entry) unless ``name`` resolves: registered, or importable."""
    if name in _BUILDERS:
        return
    if is_import_path(name):
        _import_reward(name)
        return
    raise UnknownRewardError(f"unknown reward {name!r}; known: {', '.join(names())}; or an import path such as "
                             "my_pkg.rewards:my_reward")


def get(name: str, guard: bool = True, **kwargs: Any) -> RewardFunc:
    """Resolve a reward by registry name or import path; ``kwargs`` configure it (e.g.
    ``get("cosine_scaled", max_len=512)``).

    The result is guarded (see :func:`guarded`) unless ``guard=False``.
    Its ``__name__`` is the registry name or the import path as given, which is what TRL logs it under
    (``rewards/<name>/mean``).
    """
    if name in _BUILDERS:
        builder = _BUILDERS[name]
    else:
        check(name)
        builder = _plain_builder(_import_reward(name))
    func = builder(**kwargs)
    return guarded(func, name) if guard else _named(func, name)


def _named(func: RewardFunc, name: str) -> RewardFunc:
    @functools.wraps(func)
    def call(completions: list[Any], **kwargs: Any) -> list[float | None]:
        return func(completions, **kwargs)

    call.__name__ = name
    return call


def guarded(func: RewardFunc, name: str | None = None) -> RewardFunc:
    """Wrap a reward so that it always returns one finite float or None per completion.

    TRL does not catch reward exceptions, so a single malformed completion would crash a training
    step. When the batched call raises, each completion is retried alone; a completion that still
    fails is logged and scored None (TRL skips None). NaN/inf and wrong-length results are fixed
    the same way.

    >>> def fragile(completions, **kwargs):
    ...     return [1.0 / len(c) for c in completions]
    >>> guarded(fragile)(["ab", ""])
    [0.5, None]
    """
    reward_name = name or getattr(func, "__name__", "reward")

    def call(completions: list[Any], **kwargs: Any) -> list[float | None]:
        size = len(completions)
        try:
            return _clean(func(completions, **kwargs), size, reward_name)
        except Exception:  # noqa: BLE001 - any user reward may raise anything
            if size == 1:
                logger.exception("reward %r raised on completion %r; scored None", reward_name, _preview(completions[0]))
                return [None]
        scores: list[float | None] = []
        for index, completion in enumerate(completions):
            try:
                scores.extend(_clean(func([completion], **row_kwargs(kwargs, index, size)), 1, reward_name))
            except Exception:  # noqa: BLE001
                logger.exception("reward %r raised on completion %r; scored None", reward_name, _preview(completion))
                scores.append(None)
        return scores

    call.__name__ = reward_name
    call.__qualname__ = reward_name
    call.__doc__ = func.__doc__
    call.__wrapped__ = func  # type: ignore[attr-defined]
    return call


def _clean(scores: Any, size: int, name: str) -> list[float | None]:
    scores = list(scores)
    if len(scores) != size:
        raise ValueError(f"reward {name!r} returned {len(scores)} scores for {size} completions")
    cleaned: list[float | None] = []
    for score in scores:
        if score is None:
            cleaned.append(None)
            continue
        value = float(score)
        cleaned.append(value if math.isfinite(value) else None)
    return cleaned


def _preview(completion: Any, limit: int = 300) -> str:
    text = str(completion)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text)} chars]"
