"""Held-out evaluation: pass@1 (mean over k samples), maj@k, pass@k, format rate, length, language.

Usable on its own (``r1-trl eval``) and as a training callback that logs ``eval/*`` every N steps.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

import reward_funcs
from r1_trl.generation import SamplingSettings, generate
from reward_funcs._math_extract import completion_answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al., 2021): 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(n=4, c=1, k=1)
    0.25
    >>> pass_at_k(n=4, c=0, k=4), pass_at_k(n=4, c=1, k=4)
    (0.0, 1.0)
    """
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """maj@k: is the most frequent extracted answer a correct one? (ties: first seen wins)"""
    votes = Counter(a for a in answers if a)
    if not votes:
        return False
    winner = votes.most_common(1)[0][0]
    return any(ok for a, ok in zip(answers, correct, strict=True) if a == winner)


@dataclass(frozen=True)
class EvalSettings:
    num_samples: int = 4
    temperature: float = 0.6
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 1234
    language_metric: bool = False


def score_completions(
    completions: list[list[str]], rows: Dataset, settings: EvalSettings, tokenizer: PreTrainedTokenizerBase
) -> dict[str, float]:
    accuracy = reward_funcs.get("accuracy")
    format_reward = reward_funcs.get("format")
    k = settings.num_samples
    flat = [c for group in completions for c in group]
    solutions = [s for s in rows["solution"] for _ in range(k)]
    correct = [score == 1.0 for score in accuracy(flat, solution=solutions)]
    formatted = [score == 1.0 for score in format_reward(flat)]
    lengths = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]]
    pass1, passk, majk = [], [], []
    for i in range(len(completions)):
        group_correct = correct[i * k : (i + 1) * k]
        answers = [completion_answer(c) for c in completions[i]]
        pass1.append(sum(group_correct) / k)
        passk.append(pass_at_k(k, sum(group_correct), k))
        majk.append(float(majority_correct(answers, group_correct)))
    metrics = {
        "accuracy": _mean(pass1),
        "accuracy_stderr": _standard_error(pass1),
        f"pass@{k}": _mean(passk),
        f"maj@{k}": _mean(majk),
        "format_rate": _mean([float(f) for f in formatted]),
        "mean_length": _mean([float(n) for n in lengths]),
        "num_prompts": float(len(completions)),
        "num_samples": float(k),
    }
    languages = list(rows["language"]) if "language" in rows.column_names else []
    consistency: list[float | None] = []
    if settings.language_metric:
        language_reward = reward_funcs.get("language_consistency")
        kwargs: dict[str, Any] = {"prompts": [p for p in rows["prompt"] for _ in range(k)]}
        if languages:
            kwargs["language"] = [lang for lang in languages for _ in range(k)]
        consistency = list(language_reward(flat, **kwargs))
        metrics["language_consistency"] = _mean([s for s in consistency if s is not None])
    if len(set(languages)) > 1:
        metrics.update(_per_language(languages, pass1, consistency, k))
    return metrics


def _per_language(
    languages: list[str], pass1: list[float], consistency: list[float | None], k: int
) -> dict[str, float]:
    """``accuracy/<lang>`` and ``language_consistency/<lang>`` by prompt language (a bilingual held-out set
    can hide one language collapsing behind the average)."""
    metrics: dict[str, float] = {}
    for language in sorted(set(languages)):
        prompts = [i for i, lang in enumerate(languages) if lang == language]
        metrics[f"accuracy/{language}"] = _mean([pass1[i] for i in prompts])
        if consistency:
            scores = [consistency[i * k + j] for i in prompts for j in range(k)]
            metrics[f"language_consistency/{language}"] = _mean([s for s in scores if s is not None])
    return metrics


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean over prompts: the noise of a held-out accuracy, for comparing stages.

    >>> round(_standard_error([0.0, 1.0, 0.0, 1.0]), 3)
    0.289
    """
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return (variance / len(values)) ** 0.5


def evaluate_model(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    settings: EvalSettings = EvalSettings(),
    show_progress: bool = False,
    return_completions: bool = False,
) -> dict[str, Any]:
    """Sample ``settings.num_samples`` answers per held-out prompt and score them.

    ``dataset`` needs ``prompt`` (already templated) and ``solution`` columns.
    """
    sampling = SamplingSettings(
        num_samples=settings.num_samples,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    completions = generate(model, tokenizer, dataset["prompt"], sampling, show_progress=show_progress)
    metrics: dict[str, Any] = score_completions(completions, dataset, settings, tokenizer)
    if return_completions:
        metrics["completions"] = completions
    return metrics


class HeldOutEvalCallback(TrainerCallback):
    """Evaluates on the held-out set every ``every_steps`` and logs the metrics as ``eval/<name>``."""

    def __init__(
        self, dataset: Dataset, tokenizer: PreTrainedTokenizerBase, settings: EvalSettings, every_steps: int
    ) -> None:
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.settings = settings
        self.every_steps = every_steps
        self.history: list[dict[str, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):  # type: ignore[override]
        if self.every_steps <= 0 or state.global_step % self.every_steps != 0 or model is None:
            return control
        if not state.is_world_process_zero:
            return control
        metrics = evaluate_model(model, self.tokenizer, self.dataset, self.settings)
        record = {"step": float(state.global_step), **{f"eval/{k}": float(v) for k, v in metrics.items()}}
        self.history.append(record)
        state.log_history.append(record)
        return control
