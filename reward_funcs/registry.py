"""Name -> reward function registry, and the guard that keeps one bad completion from crashing a step.

Recipes list rewards by name (``reward_funcs: [accuracy, format]``) or by import path, as TRL's scripts
accept them (``my_pkg.rewards:my_reward`` or ``my_pkg.rewards.my_reward``); ``get`` resolves either to a
callable with TRL's reward signature ``f(completions, **kwargs) -> list[float | None]``, guarded alike.
"""

from __future__ import annotations

import functools
import importlib
import inspect
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
    return functools.partial(_configured, func)


def _configured(func: RewardFunc, **kwargs: Any) -> RewardFunc:
    """A plain reward with its configuration bound (a module-level function, so that builders pickle)."""
    return functools.partial(func, **kwargs) if kwargs else func


def accepted_kwargs(name: str) -> frozenset[str]:
    """The keyword arguments reward ``name`` is configured with (its builder's named parameters).

    >>> import reward_funcs
    >>> sorted(reward_funcs.accepted_kwargs("accuracy"))
    ['batch_timeout', 'num_workers', 'timeout']
    """
    if name in _BUILDERS:
        builder = _BUILDERS[name]
    else:
        check(name)
        builder = _plain_builder(_import_reward(name))
    target = builder.args[0] if isinstance(builder, functools.partial) and builder.func is _configured else builder
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(target).parameters
    configurable = [key for key, parameter in parameters.items() if parameter.kind in named]
    if target is not builder:  # a plain reward: its first parameter is the completions, not configuration
        configurable = configurable[1:]
    return frozenset(configurable)


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
    return NamedReward(func, name)


def guarded(func: RewardFunc, name: str | None = None) -> RewardFunc:
    """Wrap a reward so that it always returns one finite float or None per completion.

    TRL does not catch reward exceptions, so a single malformed completion would crash a training
    step. When the batched call raises, each completion is retried alone; a completion that still
    fails is logged and scored None (TRL skips None). NaN/inf and wrong-length results are fixed
    the same way. What the reward logs through TRL's ``log_extra``/``log_metric`` stays aligned with the
    rows (see :class:`GuardedReward`).

    >>> def fragile(completions, **kwargs):
    ...     return [1.0 / len(c) for c in completions]
    >>> guarded(fragile)(["ab", ""])
    [0.5, None]
    """
    return GuardedReward(func, name or getattr(func, "__name__", "reward"))


class NamedReward:
    """A reward under its registry name (what TRL logs it as); a class, not a closure, so that it pickles.

    TRL sends rewards to other processes (async GRPO, multiprocess reward workers) by pickling them.
    """

    def __init__(self, func: RewardFunc, name: str) -> None:
        self.func = func
        self.__name__ = self.__qualname__ = name
        self.__doc__ = getattr(func, "__doc__", None)
        self.__wrapped__ = func

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        return self.func(completions, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__name__!r})"


class GuardedReward(NamedReward):
    """A reward that always returns one finite float or None per completion (see :func:`guarded`).

    Logging stays aligned with the rows in every case: ``log_extra`` columns are held back until the
    reward returns, then passed on with exactly one value per completion (padded with None or cut), and
    dropped when the batched call raises; the per-completion retries are then logged as one column of
    the whole batch (None for rows that failed). ``log_metric`` values are passed on once per call and
    metric name; in the retries they are summed over the rows (the rewards' metrics are counts).
    """

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        size = len(completions)
        log = _LogBuffer(kwargs)
        try:
            scores = _clean(self.func(completions, **log.hooks(kwargs)), size, self.__name__)
        except Exception:  # noqa: BLE001 - any user reward may raise anything
            if size == 1:
                logger.exception("reward %r raised on completion %r; scored None", self.__name__, _preview(completions[0]))
                log.flush_rows([None], 1)
                return [None]
        else:
            log.flush(size)
            return scores
        scores = []
        rows: list[_LogBuffer | None] = []
        for index, completion in enumerate(completions):
            row_log = _LogBuffer(kwargs)
            try:
                one_row = row_log.hooks(row_kwargs(kwargs, index, size))
                scores.extend(_clean(self.func([completion], **one_row), 1, self.__name__))
                rows.append(row_log)
            except Exception:  # noqa: BLE001
                logger.exception("reward %r raised on completion %r; scored None", self.__name__, _preview(completion))
                scores.append(None)
                rows.append(None)
        log.flush_rows(rows, size)
        return scores


class _LogBuffer:
    """Holds what one reward call logs through TRL's hooks until the call's rows are known."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.log_extra = kwargs.get("log_extra") if callable(kwargs.get("log_extra")) else None
        self.log_metric = kwargs.get("log_metric") if callable(kwargs.get("log_metric")) else None
        self.columns: dict[str, list[Any]] = {}
        self.metrics: dict[str, float] = {}

    def hooks(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the logging hooks replaced by this buffer's (absent hooks stay absent)."""
        replaced = dict(kwargs)
        if self.log_extra is not None:
            replaced["log_extra"] = self._extra
        if self.log_metric is not None:
            replaced["log_metric"] = self._metric
        return replaced

    def _extra(self, column: str, values: list[Any]) -> None:
        self.columns[column] = list(values)  # a column logged twice in one call: the last one counts

    def _metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    def flush(self, size: int) -> None:
        """Pass on one value per row for every column and one value per metric."""
        if self.log_extra is not None:
            for column, values in self.columns.items():
                self.log_extra(column, (values + [None] * size)[:size])
        if self.log_metric is not None:
            for name, value in self.metrics.items():
                self.log_metric(name, value)

    def flush_rows(self, rows: list[_LogBuffer | None], size: int) -> None:
        """Pass on what the per-row retries logged, as one call over the whole batch."""
        columns = sorted({column for row in rows if row is not None for column in row.columns})
        if self.log_extra is not None:
            for column in columns:
                self.log_extra(
                    column, [row.columns[column][0] if row is not None and row.columns.get(column) else None for row in rows]
                )
        if self.log_metric is not None:
            names = sorted({name for row in rows if row is not None for name in row.metrics})
            for name in names:
                self.log_metric(name, float(sum(row.metrics.get(name, 0.0) for row in rows if row is not None)))


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
