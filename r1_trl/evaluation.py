"""Held-out evaluation with the paper's protocol: k samples per prompt at temperature 0.6 and top-p 0.95;
pass@1 (the mean over the k samples), cons@k (majority vote; ``maj@k`` is kept as an alias) and pass@k
(unbiased estimator), format rate, length, language; per benchmark when the rows mix several.

Each row is verified by what it carries: ``verification_info`` (code: all tests must pass in the sandbox),
a ``reasoning_gym`` entry (the task's own verifier), else its gold ``solution`` (``accuracy``; a letter gold
is a multiple-choice answer). Usable on its own (``r1-trl eval``) and as a training callback that logs
``eval/*`` every N steps.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, Features, List, Value
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

import reward_funcs
from r1_trl.generation import (
    EngineSettings,
    SamplingSettings,
    generate,
    generate_sharded,
    is_zero3_partitioned,
)
from reward_funcs.code_exec import extract_python_block
from reward_funcs.extraction import completion_answer, gold_choice


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
    """cons@k (maj@k): is the most frequent extracted answer a correct one? (ties: first seen wins)

    >>> majority_correct(["14", "12", "14", None], [True, False, True, False])
    True
    """
    votes = Counter(a for a in answers if a)
    if not votes:
        return False
    winner = votes.most_common(1)[0][0]
    return any(ok for a, ok in zip(answers, correct, strict=True) if a == winner)


# Keys `evaluate_model(..., return_completions=True)` adds to the metrics.
COMPLETIONS_KEY = "completions"
SAMPLE_SCORES_KEY = "sample_scores"


@dataclass(frozen=True)
class EvalSettings:
    num_samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 1234
    language_metric: bool = False
    pass_k: tuple[int, ...] = ()  # extra k of pass@k to report (pass@1 and pass@num_samples always are)


# Which check decides a row's correctness; see `row_verifier`.
VERIFIERS = ("accuracy", "code", "reasoning_gym")


def row_verifier(row: dict[str, Any]) -> str:
    """``code`` for rows with ``verification_info``, ``reasoning_gym`` for rows with an entry, else ``accuracy``.

    >>> row_verifier({"solution": "5"}), row_verifier({"solution": None, "verification_info": "{}"})
    ('accuracy', 'code')
    """
    if row.get("verification_info"):
        return "code"
    if row.get("reasoning_gym"):
        return "reasoning_gym"
    return "accuracy"


def sample_answer(completion: str, verifier: str, solution: Any = None) -> str | None:
    """The answer a sample votes for in cons@k: the final answer (a letter when the gold is one), the
    reasoning-gym answer, or the program (lines stripped) for code.

    >>> sample_answer("so the answer is (B)", "accuracy", "B"), sample_answer("<answer>7</answer>", "reasoning_gym")
    ('B', '7')
    """
    if verifier == "code":
        program = extract_python_block(completion)
        return "\n".join(line.rstrip() for line in program.strip().splitlines()) if program else None
    choice = verifier == "accuracy" and isinstance(solution, str) and gold_choice(solution) is not None
    return completion_answer(completion, choice=choice)


def verify_samples(flat: list[str], rows: Dataset, k: int) -> tuple[list[bool], list[str | None]]:
    """(correct, answer) of every sample; ``flat`` holds row ``i``'s ``k`` samples at ``i*k .. i*k+k-1``."""
    columns = {name: list(rows[name]) for name in ("solution", "verification_info", "reasoning_gym")
               if name in rows.column_names}
    verifiers = [row_verifier({name: values[i] for name, values in columns.items()}) for i in range(len(rows))]
    correct = [False] * len(flat)
    for verifier in VERIFIERS:
        indices = [i * k + j for i, v in enumerate(verifiers) if v == verifier for j in range(k)]
        if not indices:
            continue
        kwargs = {name: [values[index // k] for index in indices] for name, values in columns.items()}
        reward = reward_funcs.get("binary_code" if verifier == "code" else verifier)
        for index, score in zip(indices, reward([flat[index] for index in indices], **kwargs), strict=True):
            correct[index] = score is not None and score >= 1.0
    solutions = columns.get("solution", [None] * len(rows))
    answers = [sample_answer(c, verifiers[i // k], solutions[i // k]) for i, c in enumerate(flat)]
    return correct, answers


# The column that holds a reference for each verifier (see `row_verifier`).
REFERENCE_COLUMNS = {"accuracy": "solution", "code": "verification_info", "reasoning_gym": "reasoning_gym"}


def reference_metrics(
    predictions: Sequence[Sequence[str]],
    references: Sequence[Any],
    verifier: str = "accuracy",
    pass_k: Sequence[int] = (),
) -> dict[str, float]:
    """pass@1 (``accuracy``), pass@j and cons@k of ``k`` completions per prompt against one reference each,
    verified and aggregated exactly as ``r1-trl eval`` does (what the ``evaluate`` modules compute).

    ``references`` are gold answers (``accuracy``; a letter for multiple choice), ``verification_info`` test
    specs (``code``) or reasoning-gym entries (``reasoning_gym``).

    >>> reference_metrics([["<answer>4</answer>", "<answer>5</answer>"]], ["4"])
    {'accuracy': 0.5, 'pass@1': 0.5, 'pass@2': 1.0, 'cons@2': 1.0}
    """
    if verifier not in REFERENCE_COLUMNS:
        raise ValueError(f"verifier must be one of {sorted(REFERENCE_COLUMNS)}, got {verifier!r}")
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"got {len(predictions)} prediction groups for {len(references)} references")
    k = len(predictions[0])
    if k == 0 or any(len(group) != k for group in predictions):
        raise ValueError("every prompt needs the same number k >= 1 of predictions")
    rows = Dataset.from_dict({REFERENCE_COLUMNS[verifier]: [None if r is None else str(r) for r in references]})
    correct, answers = verify_samples([str(c) for group in predictions for c in group], rows, k)
    return {name: _mean(values) for name, values in prompt_metrics(correct, answers, k, pass_k).items()}


@dataclass(frozen=True)
class SampleScores:
    """What the rewards said about every sample: flat lists, prompt ``i``'s ``k`` samples at ``i*k .. i*k+k-1``."""

    correct: list[bool]
    formatted: list[bool]
    lengths: list[int]  # completion tokens
    answers: list[str | None]  # the extracted final answer
    language_consistency: list[float | None]  # empty unless ``settings.language_metric``


def score_samples(
    completions: list[list[str]], rows: Dataset, settings: EvalSettings, tokenizer: PreTrainedTokenizerBase
) -> SampleScores:
    """Score each of the ``k`` completions of every held-out row (the inputs of `score_completions`)."""
    from r1_trl.data.templates import prompts_prefill_think

    # Prompts that open <think> (a prefilling chat template, or prefill_think): completions start inside it.
    format_reward = reward_funcs.get("format", think_prefilled=prompts_prefill_think(rows["prompt"], tokenizer))
    k = settings.num_samples
    flat = [c for group in completions for c in group]
    correct, answers = verify_samples(flat, rows, k)
    consistency: list[float | None] = []
    if settings.language_metric:
        language_reward = reward_funcs.get("language_consistency")
        kwargs: dict[str, Any] = {"prompts": [p for p in rows["prompt"] for _ in range(k)]}
        if "language" in rows.column_names:
            kwargs["language"] = [lang for lang in rows["language"] for _ in range(k)]
        consistency = list(language_reward(flat, **kwargs))
    return SampleScores(
        correct=correct,
        formatted=[score == 1.0 for score in format_reward(flat)],
        lengths=[len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]],
        answers=answers,
        language_consistency=consistency,
    )


def score_completions(
    completions: list[list[str]],
    rows: Dataset,
    settings: EvalSettings,
    tokenizer: PreTrainedTokenizerBase,
    scores: SampleScores | None = None,
) -> dict[str, float]:
    """The held-out metrics of ``k`` completions per row; ``scores``: their `score_samples`, if already known."""
    if scores is None:
        scores = score_samples(completions, rows, settings, tokenizer)
    k = settings.num_samples
    formatted, lengths = scores.formatted, scores.lengths
    per_prompt = prompt_metrics(scores.correct, scores.answers, k, settings.pass_k)
    pass1 = per_prompt["accuracy"]
    metrics = {
        **{name: _mean(values) for name, values in per_prompt.items()},
        "accuracy_stderr": _standard_error(pass1),
        f"maj@{k}": _mean(per_prompt[f"cons@{k}"]),  # the earlier name of cons@k, kept for existing results
        "format_rate": _mean([float(f) for f in formatted]),
        "mean_length": _mean([float(n) for n in lengths]),
        "num_prompts": float(len(completions)),
        "num_samples": float(k),
    }
    languages = list(rows["language"]) if "language" in rows.column_names else []
    consistency = scores.language_consistency
    if settings.language_metric:
        metrics["language_consistency"] = _mean([s for s in consistency if s is not None])
    if len(set(languages) - {None}) > 1:  # rows of a benchmark without languages (combined runs) have None
        metrics.update(_per_language(languages, pass1, consistency, k))
    benchmarks = benchmark_column(rows)
    if len(set(benchmarks)) > 1:
        for benchmark in sorted(set(benchmarks)):
            chosen = [i for i, name in enumerate(benchmarks) if name == benchmark]
            for name, values in per_prompt.items():
                metrics[f"{name}/{benchmark}"] = _mean([values[i] for i in chosen])
            metrics[f"num_prompts/{benchmark}"] = float(len(chosen))
    return metrics


def benchmark_column(rows: Dataset) -> list[str]:
    """Each row's benchmark: its ``benchmark`` column, else its ``task``, else one unnamed benchmark."""
    for name in ("benchmark", "task"):
        if name in rows.column_names:
            return [str(value) for value in rows[name]]
    return [""] * len(rows)


def reported_ks(num_samples: int, extra: Sequence[int] = ()) -> list[int]:
    """The k of pass@k to report: 1, ``num_samples`` and the ``extra`` ones that do not exceed it.

    >>> reported_ks(8, (4, 16)), reported_ks(1)
    ([1, 4, 8], [1])
    """
    return sorted({1, num_samples, *(k for k in extra if 1 <= k <= num_samples)})


def prompt_metrics(
    correct: Sequence[bool], answers: Sequence[str | None], k: int, pass_k: Sequence[int] = ()
) -> dict[str, list[float]]:
    """Per prompt: ``accuracy`` (pass@1 as the mean over the k samples), ``pass@j`` (unbiased estimator,
    Chen et al. 2021) and ``cons@k`` (majority vote over the extracted answers); samples as in `SampleScores`.

    >>> metrics = prompt_metrics([True, False, False, False, True, True], ["1", "2", "2", "5", "5", "6"], 3)
    >>> metrics["accuracy"], metrics["pass@3"], metrics["cons@3"]
    ([0.3333333333333333, 0.6666666666666666], [1.0, 1.0], [0.0, 1.0])
    """
    if len(correct) % k or len(answers) != len(correct):
        raise ValueError(f"prompt_metrics: {len(correct)} verdicts and {len(answers)} answers for groups of {k}")
    ks = reported_ks(k, pass_k)
    result: dict[str, list[float]] = {"accuracy": [], **{f"pass@{j}": [] for j in ks}, f"cons@{k}": []}
    for start in range(0, len(correct), k):
        group, votes = list(correct[start : start + k]), list(answers[start : start + k])
        result["accuracy"].append(sum(group) / k)
        for j in ks:
            result[f"pass@{j}"].append(pass_at_k(k, sum(group), j))
        result[f"cons@{k}"].append(float(majority_correct(votes, group)))
    return result


def _per_language(
    languages: list[str | None], pass1: list[float], consistency: list[float | None], k: int
) -> dict[str, float]:
    """``accuracy/<lang>`` and ``language_consistency/<lang>`` by prompt language (a bilingual held-out set
    can hide one language collapsing behind the average)."""
    metrics: dict[str, float] = {}
    for language in sorted(set(languages) - {None}):
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
    engine: EngineSettings | None = None,
    sharded: bool = False,
) -> dict[str, Any]:
    """Sample ``settings.num_samples`` answers per held-out prompt and score them.

    ``sharded``: every rank of the launch calls this together and samples a share of the prompts
    (`r1_trl.generation.generate_sharded`); every rank gets the same metrics. Otherwise this process samples
    every prompt itself.

    ``dataset`` needs ``prompt`` (already templated) and ``solution`` columns. With ``return_completions``
    the metrics also carry ``completions`` (the samples, per prompt) and ``sample_scores`` (their
    `SampleScores`); `split_eval_details` turns those into one details row per prompt.
    """
    sampling = SamplingSettings(
        num_samples=settings.num_samples,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    sample = generate_sharded if sharded else generate
    completions = sample(model, tokenizer, dataset["prompt"], sampling, engine or EngineSettings(),
                         show_progress=show_progress)
    scores = score_samples(completions, dataset, settings, tokenizer)
    metrics: dict[str, Any] = score_completions(completions, dataset, settings, tokenizer, scores)
    if return_completions:
        metrics[COMPLETIONS_KEY] = completions
        metrics[SAMPLE_SCORES_KEY] = scores
    return metrics


def split_eval_details(
    evaluation: dict[str, Any], rows: Dataset, settings: EvalSettings
) -> tuple[dict[str, Any], Dataset]:
    """(metrics, details) of an ``evaluate_model(..., return_completions=True)`` result on ``rows``: the
    metrics alone, as ``evaluate_model`` returns them without completions, and `eval_details`."""
    metrics = {k: v for k, v in evaluation.items() if k not in (COMPLETIONS_KEY, SAMPLE_SCORES_KEY)}
    return metrics, eval_details(evaluation[COMPLETIONS_KEY], rows, evaluation[SAMPLE_SCORES_KEY], settings)


def eval_details(
    completions: list[list[str]], rows: Dataset, scores: SampleScores, settings: EvalSettings
) -> Dataset:
    """One row per held-out prompt: its ``prompt``, ``problem``, gold ``solution`` and ``language`` (those
    present in ``rows``), the ``k`` sampled ``completions`` and, per sample, ``correct``, ``formatted``,
    the extracted ``answers``, ``completion_tokens`` and ``language_consistency`` (when measured), plus the
    prompt's ``accuracy`` (share of correct samples; their mean over rows is the ``accuracy`` metric).

    >>> rows = Dataset.from_dict({"prompt": ["1+1?"], "solution": ["2"]})
    >>> scores = SampleScores([True, False], [True, False], [5, 2], ["2", "3"], [])
    >>> row = eval_details([["<answer>2</answer>", "3"]], rows, scores, EvalSettings(num_samples=2))[0]
    >>> row["correct"], row["answers"], row["accuracy"]
    ([True, False], ['2', '3'], 0.5)
    """
    k = settings.num_samples
    if len(completions) != len(rows) or any(len(group) != k for group in completions):
        raise ValueError(f"eval_details: expected {len(rows)} groups of {k} completions, one per held-out row")
    if len(scores.correct) != len(rows) * k:
        raise ValueError(f"eval_details: {len(scores.correct)} sample scores for {len(rows)} x {k} samples")
    kept = [name for name in ("prompt", "problem", "solution", "language") if name in rows.column_names]
    features = Features({name: rows.features[name] for name in kept})
    per_sample: dict[str, tuple[list[Any], Any]] = {
        "correct": (scores.correct, Value("bool")),
        "formatted": (scores.formatted, Value("bool")),
        "answers": (scores.answers, Value("string")),
        "completion_tokens": (scores.lengths, Value("int64")),
    }
    if settings.language_metric:
        per_sample["language_consistency"] = (scores.language_consistency, Value("float64"))
    features["completions"] = List(Value("string"))
    for name, (_, feature) in per_sample.items():
        features[name] = List(feature)
    features["accuracy"] = Value("float64")
    columns: dict[str, list[Any]] = {name: list(rows[name]) for name in kept}
    columns["completions"] = [list(group) for group in completions]
    for name, (values, _) in per_sample.items():
        columns[name] = [list(values[i * k : (i + 1) * k]) for i in range(len(rows))]
    columns["accuracy"] = [sum(flags) / k for flags in columns["correct"]]
    return Dataset.from_dict(columns, features=features)


class HeldOutEvalCallback(TrainerCallback):
    """Evaluates on the held-out set every ``every_steps`` and logs the metrics as ``eval/<name>``.

    The metrics go out through the trainer's own logging: the callback asks for a log at that step
    (``control.should_log``) and the r1-trl trainers (`r1_trl.trainers.R1TrainerMixin`) merge
    `take_pending_metrics` into it, so ``log_history``, the console and every ``report_to`` backend (W&B,
    trackio, TensorBoard, ...) receive them with the step's training metrics.
    """

    def __init__(
        self, dataset: Dataset, tokenizer: PreTrainedTokenizerBase, settings: EvalSettings, every_steps: int
    ) -> None:
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.settings = settings
        self.every_steps = every_steps
        self.history: list[dict[str, float]] = []
        self._pending: dict[str, float] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):  # type: ignore[override]
        if self.every_steps <= 0 or state.global_step % self.every_steps != 0 or model is None:
            return control
        # Every rank logs at this step: the trainer's log gathers the loss across ranks.
        control.should_log = True
        # Under ZeRO-3 every forward gathers the partitioned weights from all ranks, so every rank generates
        # (the same samples: same prompts and seed); elsewhere the main process evaluates alone.
        if not state.is_world_process_zero and not is_zero3_partitioned(model):
            return control
        metrics = evaluate_model(model, self.tokenizer, self.dataset, self.settings)
        if not state.is_world_process_zero:
            return control
        self._pending = {f"eval/{k}": float(v) for k, v in metrics.items()}
        self.history.append({"step": float(state.global_step), **self._pending})
        return control

    def take_pending_metrics(self) -> dict[str, float]:
        """The metrics of the last evaluation not yet logged (then forgotten)."""
        pending, self._pending = self._pending, {}
        return pending
