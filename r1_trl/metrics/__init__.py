"""The project's metrics as Hugging Face ``evaluate`` modules, shipped in the package and loaded offline.

    >>> import r1_trl.metrics
    >>> pass_at_k = r1_trl.metrics.load("pass_at_k")
    >>> pass_at_k.compute(predictions=[["<answer>4</answer>", "<answer>5</answer>"]], references=["4"])
    {'pass@1': 0.5, 'pass@2': 1.0}

``verified_accuracy`` (pass@1: the mean over the k samples of a prompt, verified), ``pass_at_k`` (the
unbiased estimator of Chen et al., 2021, for every ``k`` asked) and ``cons_at_k`` (majority vote over the
extracted answers) verify and aggregate with the same code as ``r1-trl eval`` (``r1_trl.evaluation``), so
they give the same numbers. Each takes ``predictions`` (the k completions of every prompt) and
``references`` (one per prompt: a gold answer, or with ``verifier="code"`` a ``verification_info`` test spec,
or with ``verifier="reasoning_gym"`` a reasoning-gym entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).parent
NAMES = ("verified_accuracy", "pass_at_k", "cons_at_k")


def path(name: str) -> Path:
    """The directory of a shipped ``evaluate`` module (what ``evaluate.load`` takes)."""
    if name not in NAMES:
        raise ValueError(f"unknown r1-trl metric {name!r}; known: {', '.join(NAMES)}")
    return METRICS_DIR / name


def load(name: str, **kwargs: Any) -> Any:
    """``evaluate.load`` of a shipped module: a local path, so nothing is fetched from the Hub."""
    import evaluate

    return evaluate.load(str(path(name)), **kwargs)
