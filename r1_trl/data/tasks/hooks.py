"""Task-specific hooks of generic stages, by ``dataset_name``.

The cold-start stage's ``refine`` method rewrites correct R1-Zero outputs in the readable format; that
rule-based rewrite (the paper uses human post-processing) needs a program that can read and check a task's
derivations, and showing a problem in another language (``refine_sampling_language``) needs the task's question
forms. A task provides both here; a task without hooks cannot use ``refine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from r1_trl.data.tasks import arithmetic

# (reasoning, problem, gold answer) -> (the derivation's step lines, None) or (None, why it was rejected)
Derivation = Callable[[str, str, str], tuple[list[str] | None, str | None]]
# (problem, language) -> the problem posed in that language, or None when it cannot be
Translation = Callable[[str, str], str | None]


@dataclass(frozen=True)
class RefineHooks:
    derivation: Derivation
    translate: Translation
    languages: tuple[str, ...]  # the languages ``translate`` can pose problems in


REFINE_HOOKS: dict[str, RefineHooks] = {
    "arithmetic": RefineHooks(arithmetic.derivation, arithmetic.translate_question, tuple(arithmetic.QUESTION_FORMS)),
}


def refine_hooks(dataset_name: str) -> RefineHooks | None:
    """The refine hooks of a task, or None when it has none."""
    return REFINE_HOOKS.get(dataset_name)
