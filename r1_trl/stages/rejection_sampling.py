"""R1 stage 3, rejection sampling: sample the reasoning-RL model, keep only good reasoning, mix in general data.

For every reasoning prompt the checkpoint samples ``num_generations`` completions. A completion is kept
when it passes every rule below; the FIRST rule it fails is its rejection reason (the order of
``REJECTION_RULES``, cheapest and most basic first, the generative judge last because it costs a model call):

1. ``too_short`` / ``too_long``: its token count is outside ``[min_completion_tokens, max_completion_tokens]``.
   The default maximum is ``max_new_tokens - 1``: a completion that used the whole budget was cut off.
2. ``format``: the format reward is not 1 (exactly one ``<think>`` block, then one ``<answer>`` block).
3. ``incorrect``: the accuracy reward (rule check against the gold ``solution``) is 0.
4. ``language``: the language-consistency reward of its reasoning, against the prompt's language (the
   ``language`` column, else detected from the problem; a problem with no detectable language passes), is
   below ``language_threshold``. Reasoning without any words (only equations) has no language to mix; it
   passes unless ``allow_wordless_reasoning`` is off.
5. ``repetition``: the share of repeated word n-grams (``repetition_ngram_size``) exceeds ``max_repetition``.
6. ``unverifiable``: the rules cannot check the answer (accuracy is None, e.g. no parseable gold) and no
   judge is configured.
7. ``judge_rejected``: the generative judge (``judge_model_name_or_path``), shown the problem, the
   reference answer and the response's final answer, did not say yes. Only for completions that reach
   this point with accuracy None.

The survivors are deduplicated per prompt (exact text, then whitespace-normalised text: first seen wins)
and optionally capped at ``max_per_prompt`` per prompt (first sampled wins). Then
:mod:`r1_trl.data.general` adds non-reasoning rows so that they make up ``general_share`` of the final mix
(the paper: 600k reasoning + 200k general, a share of 0.25).

Output, under ``output_dir``: ``datasets/sft_mix`` (a conversational prompt/completion ``Dataset`` with
``source``, ``language``, ``problem``, ``solution`` and ``category`` columns, plus ``stats.json``), written
atomically, and ``results.json``. The SFT prompt is the chat rendering of the problem (with
``system_prompt`` if set), whatever template the samples were generated with: the data feeds SFT of a chat
model. The completion is the generated text, stripped (with ``<think>`` restored when it was prefilled).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import reward_funcs
from r1_trl.configs import R1StageArguments, RecipeError
from r1_trl.data.builders import PromptSpec, build_prompt_datasets
from r1_trl.data.general import GENERAL_LANGUAGES, THINK_STYLES, general_rows
from r1_trl.data.selection import SelectionCounts, normalise_whitespace, select_unique  # noqa: F401
from r1_trl.data.templates import chat_prompt, opened_think
from r1_trl.distributed import launch_state
from r1_trl.generation import (
    EngineSettings,
    Prompt,
    SamplingSettings,
    generate_sharded,
    release_engines,
    resolve_backend,
)
from r1_trl.stages.common import (
    RESULTS_FILE,
    resolve_model,
    save_dataset_atomic,
    save_recipe,
    write_json_atomic,
)
from reward_funcs.language import reasoning_text, words_by_sentence

logger = logging.getLogger(__name__)

STAGE = "rejection-sampling"
DATASET_NAME = "sft_mix"
REJECTION_RULES = (
    "too_short", "too_long", "format", "incorrect", "language", "repetition", "unverifiable", "judge_rejected",
)
_MESSAGES = List({"role": Value("string"), "content": Value("string")})
MIX_FEATURES = Features({
    "prompt": _MESSAGES, "completion": _MESSAGES, "source": Value("string"), "language": Value("string"),
    "problem": Value("string"), "solution": Value("string"), "category": Value("string"),
})


@dataclass
class RejectionSamplingConfig(R1StageArguments):
    """Rejection sampling recipe: the checkpoint to sample, the filters, the judge and the general-data share."""

    output_dir: str = field(default="outputs/rejection-sampling", metadata={"help": "Where the stage writes."})
    seed: int = field(default=42, metadata={"help": "Seed of prompt selection, sampling and mixing."})
    num_generations: int = field(default=4, metadata={"help": "Completions sampled per prompt (k)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per completion."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass."})
    generation_batch_size: int = field(default=64, metadata={"help": "Sequences per generation batch."})
    min_completion_tokens: int = field(default=1, metadata={"help": "Reject completions shorter than this."})
    max_completion_tokens: int | None = field(
        default=None,
        metadata={"help": "Reject completions longer than this (None: max_new_tokens - 1, i.e. reject cut-off ones)."},
    )
    language_threshold: float = field(
        default=0.95, metadata={"help": "Minimum language-consistency score of the reasoning, in [0, 1]."}
    )
    language_candidates: list[str] | None = field(
        default=None,
        metadata={"help": "Languages the reasoning's words may belong to (None: the reward's default set)."},
    )
    allow_wordless_reasoning: bool = field(
        default=True, metadata={"help": "Let reasoning with no words at all (only equations) pass the language rule."}
    )
    repetition_ngram_size: int = field(default=3, metadata={"help": "n of the repetition rule's word n-grams."})
    max_repetition: float = field(
        default=0.2, metadata={"help": "Maximum share of repeated n-grams (1 - unique/total), in [0, 1]."}
    )
    max_per_prompt: int | None = field(
        default=None, metadata={"help": "Keep at most this many completions per prompt (None: all that pass)."}
    )
    judge_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Generative judge for answers the rules cannot check (None: such answers are rejected)."},
    )
    judge_max_new_tokens: int = field(default=16, metadata={"help": "Generation budget of a judge verdict."})
    general_share: float = field(
        default=0.25, metadata={"help": "Share of non-reasoning rows in the final mix, in [0, 1)."}
    )
    general_languages: list[str] | None = field(
        default=None,
        metadata={"help": f"Languages of the general rows, among {list(GENERAL_LANGUAGES)} "
                  "(None: the languages of the reasoning prompts)."},
    )
    general_think_style: str = field(
        default="empty",
        metadata={"help": "General rows: 'empty' (an empty think block, then the reply in answer tags) or 'none'."},
    )
    min_reasoning_rows: int = field(
        default=1, metadata={"help": "Fail, writing nothing, when fewer reasoning rows than this survive."}
    )

    def __post_init__(self) -> None:
        self.validate_stage_fields()
        self._validate_sampling_fields()
        self._validate_filter_fields()
        self._validate_mix_fields()

    def _validate_sampling_fields(self) -> None:
        for name in ("num_generations", "max_new_tokens", "generation_batch_size", "judge_max_new_tokens"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0:
            raise RecipeError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RecipeError(f"top_p: must be in (0, 1], got {self.top_p}")

    def _validate_filter_fields(self) -> None:
        if self.min_completion_tokens < 0:
            raise RecipeError(f"min_completion_tokens: must be >= 0, got {self.min_completion_tokens}")
        if self.max_completion_tokens is not None and self.max_completion_tokens < self.min_completion_tokens:
            raise RecipeError(
                f"max_completion_tokens: {self.max_completion_tokens} is below min_completion_tokens "
                f"{self.min_completion_tokens}"
            )
        for name in ("language_threshold", "max_repetition"):
            if not 0 <= getattr(self, name) <= 1:
                raise RecipeError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.repetition_ngram_size < 1:
            raise RecipeError(f"repetition_ngram_size: must be >= 1, got {self.repetition_ngram_size}")
        if self.max_per_prompt is not None and self.max_per_prompt < 1:
            raise RecipeError(f"max_per_prompt: must be >= 1 or None, got {self.max_per_prompt}")
        if self.language_candidates is not None:
            try:
                reward_funcs.language.configured_languages(tuple(self.language_candidates))
            except ValueError as error:
                raise RecipeError(f"language_candidates: {error}") from None

    def _validate_mix_fields(self) -> None:
        if not 0 <= self.general_share < 1:
            raise RecipeError(f"general_share: must be in [0, 1), got {self.general_share}")
        if self.general_think_style not in THINK_STYLES:
            raise RecipeError(f"general_think_style: must be one of {THINK_STYLES}, got {self.general_think_style!r}")
        unknown = [lang for lang in self.general_languages or () if lang not in GENERAL_LANGUAGES]
        if unknown or self.general_languages == []:
            raise RecipeError(f"general_languages: must be among {list(GENERAL_LANGUAGES)}, got {self.general_languages}")
        if self.min_reasoning_rows < 0:
            raise RecipeError(f"min_reasoning_rows: must be >= 0, got {self.min_reasoning_rows}")

    @property
    def completion_token_limit(self) -> int:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_new_tokens - 1


CONFIG_CLASS = RejectionSamplingConfig


# ---------------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class FilterSettings:
    min_tokens: int = 1
    max_tokens: int = 63
    language_threshold: float = 0.95
    language_candidates: tuple[str, ...] | None = None
    allow_wordless_reasoning: bool = True
    repetition_ngram_size: int = 3
    max_repetition: float = 0.2
    think_prefilled: bool = False

    @classmethod
    def from_config(cls, config: RejectionSamplingConfig) -> FilterSettings:
        return cls(
            min_tokens=config.min_completion_tokens,
            max_tokens=config.completion_token_limit,
            language_threshold=config.language_threshold,
            language_candidates=tuple(config.language_candidates) if config.language_candidates else None,
            allow_wordless_reasoning=config.allow_wordless_reasoning,
            repetition_ngram_size=config.repetition_ngram_size,
            max_repetition=config.max_repetition,
            think_prefilled=config.prefill_think,
        )


@dataclass(frozen=True)
class CompletionCheck:
    """The rule scores of one completion and the first rule it fails (None: it passes every rule)."""

    tokens: int
    format: float | None
    accuracy: float | None
    language: float | None
    wordless: bool
    repetition: float
    reason: str | None

    def failures(self, settings: FilterSettings) -> list[str]:
        """Every rule this completion fails, in rule order (the first is ``reason``, judge aside)."""
        failed = []
        if self.tokens < settings.min_tokens:
            failed.append("too_short")
        if self.tokens > settings.max_tokens:
            failed.append("too_long")
        if self.format != 1.0:
            failed.append("format")
        if self.accuracy is not None and self.accuracy < 1.0:
            failed.append("incorrect")
        if not self._language_ok(settings):
            failed.append("language")
        if self.repetition > settings.max_repetition:
            failed.append("repetition")
        if self.accuracy is None:
            failed.append("unverifiable")
        return failed

    def _language_ok(self, settings: FilterSettings) -> bool:
        if self.wordless:
            return settings.allow_wordless_reasoning
        return self.language is None or self.language >= settings.language_threshold


def check_completions(
    completions: Sequence[str],
    solutions: Sequence[Any],
    languages: Sequence[str | None],
    problems: Sequence[str],
    token_counts: Sequence[int],
    settings: FilterSettings,
) -> list[CompletionCheck]:
    """Score every completion with the rule rewards and name the first rule it fails.

    ``languages`` holds each row's language (None: detect it from the problem). ``unverifiable`` is the
    reason of a completion that passes every other rule but whose answer the rules cannot check; a judge
    may still accept it (see :func:`apply_judge`).
    """
    size = len(completions)
    for name, values in (("solutions", solutions), ("languages", languages), ("problems", problems),
                         ("token_counts", token_counts)):
        if len(values) != size:
            raise ValueError(f"{name}: {len(values)} values for {size} completions")
    format_scores = reward_funcs.get("format", think_prefilled=settings.think_prefilled)(list(completions))
    accuracy_scores = reward_funcs.get("accuracy")(list(completions), solution=list(solutions))
    language_kwargs: dict[str, Any] = {"language": list(languages), "prompts": list(problems)}
    if settings.language_candidates:
        language_kwargs["languages"] = settings.language_candidates
    language_scores = reward_funcs.get("language_consistency")(list(completions), **language_kwargs)
    repetition = reward_funcs.get("repetition_penalty", ngram_size=settings.repetition_ngram_size, max_penalty=-1.0)
    repetition_shares = [abs(score) if score else 0.0 for score in repetition(list(completions))]
    checks = []
    for index, text in enumerate(completions):
        reasoning = reasoning_text(_prefilled(text, settings.think_prefilled))
        check = CompletionCheck(
            tokens=token_counts[index],
            format=format_scores[index],
            accuracy=accuracy_scores[index],
            language=language_scores[index],
            wordless=not words_by_sentence(reasoning),
            repetition=repetition_shares[index],
            reason=None,
        )
        failed = check.failures(settings)
        checks.append(dataclasses.replace(check, reason=failed[0] if failed else None))
    return checks


def _prefilled(text: str, think_prefilled: bool) -> str:
    return "<think>" + text if think_prefilled else text


# ---------------------------------------------------------------------------------------------------------
# Generative judge

JUDGE_INSTRUCTION = (
    "You check answers. Decide whether the response answers the problem correctly, given the reference answer.\n"
    "Problem: {problem}\n"
    "Reference answer: {reference}\n"
    "Response: {response}\n"
    "Is the response correct? Reply with yes or no."
)
# The verdict must open the reply (after reasoning, an <answer> tag, "Verdict:" or quotes): a verdict word
# later in a sentence ("这是错的", "the reference says yes but...") is not a verdict.
_VERDICT = re.compile(
    r"\s*(?:<answer>)?[\s*\"'`]*(?:verdict\s*[:：]\s*)?[\"'`*]*(?:(yes|no)\b|(不正确|不对|不是|正确|错误|否|是|对|错))",
    re.IGNORECASE,
)
_POSITIVE = {"yes", "正确", "是", "对"}


def final_answer_text(completion: str) -> str:
    """What the judge sees of a response: the part after the reasoning (the whole text if it has no ``</think>``).

    >>> final_answer_text("<think>3 * 4 = 12</think>\\n<answer>12</answer>")
    '<answer>12</answer>'
    """
    _, closed, tail = completion.rpartition("</think>")
    return tail.strip() if closed else completion.strip()


def judge_prompt(problem: str, reference: Any, response: str, conversational: bool) -> Prompt:
    text = JUDGE_INSTRUCTION.format(
        problem=problem, reference="(none given)" if reference in (None, "") else reference,
        response=final_answer_text(response),
    )
    return [{"role": "user", "content": text}] if conversational else text + "\nVerdict:"


def parse_verdict(text: str) -> bool | None:
    """The judge's verdict: the yes/no word (English or Chinese) that opens its reply after any reasoning;
    None when the reply does not open with one.

    >>> parse_verdict(" Yes, it matches."), parse_verdict("<think>12 vs 14</think> no"), parse_verdict("不正确")
    (True, False, False)
    >>> parse_verdict("the answer is 14") is None, parse_verdict("这是错的") is None
    (True, True)
    """
    match = _VERDICT.match(final_answer_text(text))
    if match is None:
        return None
    return (match.group(1) or match.group(2)).lower() in _POSITIVE


@dataclass(frozen=True)
class JudgeSettings:
    model_name_or_path: str
    max_new_tokens: int = 16
    batch_size: int = 64
    seed: int = 0


def run_judge(
    settings: JudgeSettings, problems: Sequence[str], references: Sequence[Any], responses: Sequence[str],
    engine: EngineSettings | None = None,
) -> tuple[list[bool | None], list[str]]:
    """Ask the judge model (greedy decoding) about each response; returns the parsed verdicts and raw outputs.

    Under a launch every rank calls this with the same responses and samples a share (`generate_sharded`):
    vLLM engines are built collectively over the launch, so a judge engine on the main process alone would
    wait for the other ranks forever.
    """
    if not responses:
        return [], []
    model_path, revision = resolve_model(settings.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    conversational = bool(getattr(tokenizer, "chat_template", None))
    prompts = [judge_prompt(p, r, c, conversational) for p, r, c in zip(problems, references, responses, strict=True)]
    sampling = SamplingSettings(num_samples=1, max_new_tokens=settings.max_new_tokens, temperature=0.0,
                                batch_size=settings.batch_size, seed=settings.seed)
    outputs = [group[0] for group in generate_sharded(_loadable(model_path, revision), tokenizer, prompts, sampling,
                                                      engine or EngineSettings())]
    return [parse_verdict(output) for output in outputs], outputs


def _loadable(model_path: str, revision: str | None) -> Any:
    """A path (lets ``generate`` pick vLLM), or the loaded model when a Hub revision must be honoured."""
    if not revision:
        return model_path
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_path, revision=revision)


def apply_judge(
    reasons: list[str | None], verdicts: dict[int, bool | None]
) -> list[str | None]:
    """Judged ``unverifiable`` completions become kept (verdict yes) or ``judge_rejected`` (no, or no verdict)."""
    updated = list(reasons)
    for index, verdict in verdicts.items():
        if updated[index] != "unverifiable":
            raise ValueError(f"completion {index} was judged but its rule verdict is {updated[index]!r}")
        updated[index] = None if verdict is True else "judge_rejected"
    return updated


# ---------------------------------------------------------------------------------------------------------
# Deduplication, per-prompt cap and mixing


def general_rows_needed(reasoning_rows: int, share: float) -> int:
    """The number of general rows whose share of the mix is closest to ``share`` (ties: fewer rows).

    >>> general_rows_needed(600_000, 0.25), general_rows_needed(7, 0.25), general_rows_needed(0, 0.25)
    (200000, 2, 0)
    """
    if not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1), got {share}")
    if reasoning_rows < 0:
        raise ValueError(f"reasoning_rows must be >= 0, got {reasoning_rows}")
    ideal = reasoning_rows * share / (1 - share)
    low, high = math.floor(ideal), math.ceil(ideal)

    def error(general: int) -> float:
        total = reasoning_rows + general
        return abs(general / total - share) if total else 0.0

    return high if error(high) < error(low) else low


# ---------------------------------------------------------------------------------------------------------
# Atomic dataset write




# ---------------------------------------------------------------------------------------------------------
# The stage


def sft_prompt(row: dict[str, Any], config: RejectionSamplingConfig) -> list[dict[str, str]]:
    """The conversational SFT prompt of a reasoning row: the generation prompt itself when it was chat."""
    if config.prompt_template == "chat" and isinstance(row["prompt"], list):
        return row["prompt"]
    return chat_prompt(row["problem"], config.system_prompt)


def _token_counts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run(config: RejectionSamplingConfig) -> dict[str, Any]:
    """Sample, filter, deduplicate and mix; write ``datasets/sft_mix`` (with ``stats.json``), ``results.json``
    and ``recipe.yaml`` under ``config.output_dir``.

    Launched on several processes (``accelerate launch``), each samples a share of the prompts; the main
    process gathers them, runs the rules and the judge and writes everything; the others return
    ``{"stage": ...}`` once it has finished.
    """
    started = time.perf_counter()
    config.apply_runtime_settings()
    # cpu=True lets CPU-only processes started by torchrun / accelerate share the prompts over gloo
    state = launch_state()
    output_dir = Path(config.output_dir).absolute()
    model_path, revision = resolve_model(config.model_name_or_path, config.model_revision)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    prompts, _ = build_prompt_datasets(PromptSpec.from_config(config))
    rows = prompts.to_list()
    if not rows:
        raise ValueError(f"dataset_name: no reasoning prompts left from {config.dataset_name!r}")
    has_language = "language" in prompts.column_names
    k = config.num_generations

    sampling = SamplingSettings(num_samples=k, max_new_tokens=config.max_new_tokens,
                                temperature=config.temperature, top_p=config.top_p,
                                batch_size=config.generation_batch_size, seed=config.seed)
    generation_started = time.perf_counter()
    groups = generate_sharded(_loadable(model_path, revision), tokenizer, list(prompts["prompt"]), sampling,
                              EngineSettings.from_config(config))
    generation_seconds = time.perf_counter() - generation_started
    if len(groups) != len(rows) or any(len(group) != k for group in groups):
        raise RuntimeError(f"generation returned {[len(g) for g in groups]} completions for {len(rows)} prompts x {k}")
    owners = [index for index in range(len(rows)) for _ in range(k)]
    texts = [text for group in groups for text in group]
    opened = opened_think(list(prompts["prompt"]), tokenizer)  # a prefilling chat template, or prefill_think
    settings = dataclasses.replace(FilterSettings.from_config(config),
                                   think_prefilled=config.prefill_think or bool(opened))
    if not state.is_main_process:
        if config.judge_model_name_or_path:
            judge_unverifiable(config, rows, owners, texts, None, settings.think_prefilled)  # its share of the judge
        state.wait_for_everyone()  # until the main process has written the dataset
        release_engines()
        return {"stage": STAGE}

    checks = check_completions(
        texts,
        solutions=[rows[i].get("solution") for i in owners],
        languages=[rows[i]["language"] if has_language else None for i in owners],
        problems=[rows[i]["problem"] for i in owners],
        token_counts=_token_counts(tokenizer, texts),
        settings=settings,
    )
    reasons: list[str | None] = [check.reason for check in checks]
    judge_stats: dict[str, Any] | None = None
    if config.judge_model_name_or_path:
        reasons, judge_stats = judge_unverifiable(config, rows, owners, texts, reasons, settings.think_prefilled)

    passing = [i for i, reason in enumerate(reasons) if reason is None]
    # stored whole: with the <think> the prompt opened, as the template rendered it
    stored = [(opened + texts[i] if opened else _prefilled(texts[i], settings.think_prefilled)).strip()
              for i in range(len(texts))]
    kept_positions, selection = select_unique([(owners[i], stored[i]) for i in passing], config.max_per_prompt)
    kept = [passing[p] for p in kept_positions]
    if len(kept) < config.min_reasoning_rows:
        raise RuntimeError(
            f"only {len(kept)} reasoning completions survived rejection sampling (min_reasoning_rows="
            f"{config.min_reasoning_rows}); rejections by rule: {dict(Counter(r for r in reasons if r))}"
        )

    reasoning = [
        {
            "prompt": sft_prompt(rows[owners[i]], config),
            "completion": [{"role": "assistant", "content": stored[i]}],
            "source": "reasoning",
            "language": rows[owners[i]]["language"] if has_language else None,
            "problem": rows[owners[i]]["problem"],
            "solution": None if rows[owners[i]].get("solution") is None else str(rows[owners[i]]["solution"]),
            "category": rows[owners[i]].get("task") or config.dataset_name,
        }
        for i in kept
    ]
    general_count = general_rows_needed(len(reasoning), config.general_share)
    general_languages = config.general_languages or _prompt_languages(rows, has_language)
    general = general_rows(general_count, general_languages, config.seed, config.general_think_style,
                           config.system_prompt)
    mix = mix_dataset(reasoning + general).shuffle(seed=config.seed)

    stats = _stats(config, model_path, rows, owners, checks, reasons, settings, selection, kept, general,
                   general_languages, judge_stats, has_language, generation_seconds, len(mix))
    dataset_path = save_dataset_atomic(mix, output_dir / "datasets" / DATASET_NAME, stats)
    results = {
        "stage": STAGE,
        "model": config.model_name_or_path,
        "source_checkpoint": model_path,
        "checkpoint": None,
        "metrics": _metrics(stats, checks),
        "datasets": {DATASET_NAME: str(dataset_path)},
        "stats": stats,
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(output_dir / RESULTS_FILE, results)
    save_recipe(config, output_dir)
    logger.info("rejection sampling kept %d of %d completions, added %d general rows -> %s",
                len(kept), len(texts), len(general), dataset_path)
    state.wait_for_everyone()
    release_engines()
    return results


def judge_unverifiable(
    config: RejectionSamplingConfig, rows: list[dict[str, Any]], owners: list[int], texts: list[str],
    reasons: list[str | None] | None, think_prefilled: bool,
) -> tuple[list[str | None], dict[str, Any]]:
    """The judge's verdicts on the completions the rules could not check (``unverifiable``): kept or
    ``judge_rejected``; returns the updated reasons and the judge's counts.

    Every rank of a launch calls this; only the main process has ``reasons`` (the others pass None and get
    empty results back): it sends the judged positions to the others, and all ranks sample the judge together.
    """
    from accelerate.utils import broadcast_object_list

    pending = None if reasons is None else [i for i, reason in enumerate(reasons) if reason == "unverifiable"]
    pending = broadcast_object_list([pending], from_process=0)[0]
    verdicts, _ = run_judge(
        JudgeSettings(config.judge_model_name_or_path or "", config.judge_max_new_tokens,
                      config.generation_batch_size, config.seed),
        problems=[rows[owners[i]]["problem"] for i in pending],
        references=[rows[owners[i]].get("solution") for i in pending],
        responses=[_prefilled(texts[i], think_prefilled) for i in pending],
        engine=EngineSettings.from_config(config),
    )
    if reasons is None:
        return [], {}
    stats = {
        "model": config.judge_model_name_or_path,
        "judged": len(pending),
        "yes": sum(v is True for v in verdicts),
        "no": sum(v is False for v in verdicts),
        "unclear": sum(v is None for v in verdicts),
    }
    return apply_judge(reasons, dict(zip(pending, verdicts, strict=True))), stats


def mix_dataset(rows: list[dict[str, Any]]) -> Dataset:
    if not rows:  # from_list([]) would lose the columns
        return Dataset.from_dict({name: [] for name in MIX_FEATURES}, features=MIX_FEATURES)
    return Dataset.from_list(rows, features=MIX_FEATURES)


def _prompt_languages(rows: list[dict[str, Any]], has_language: bool) -> list[str]:
    found = sorted({row["language"] for row in rows if row["language"] in GENERAL_LANGUAGES}) if has_language else []
    return found or ["en"]


def _stats(
    config: RejectionSamplingConfig,
    model_path: str,
    rows: list[dict[str, Any]],
    owners: list[int],
    checks: list[CompletionCheck],
    reasons: list[str | None],
    settings: FilterSettings,
    selection: SelectionCounts,
    kept: list[int],
    general: list[dict[str, Any]],
    general_languages: list[str],
    judge_stats: dict[str, Any] | None,
    has_language: bool,
    generation_seconds: float,
    final_size: int,
) -> dict[str, Any]:
    generated = len(checks)
    rejected = Counter(reason for reason in reasons if reason)
    passed = generated - sum(rejected.values())
    failures = Counter(rule for check in checks for rule in check.failures(settings))
    languages: dict[str, dict[str, int]] = {}
    if has_language:
        for row in rows:
            entry = languages.setdefault(row["language"], {"prompts": 0, "generated": 0, "kept": 0})
            entry["prompts"] += 1
            entry["generated"] += config.num_generations
        for i in kept:
            languages[rows[owners[i]]["language"]]["kept"] += 1
    reasoning_rows = len(kept)
    # the backend `generate_sharded` sampled with (a Hub revision is sampled from the loaded model)
    backend = "transformers" if config.model_revision else resolve_backend(model_path, EngineSettings.from_config(config))
    return {
        "stage": STAGE,
        "source_checkpoint": model_path,
        "model_name_or_path": config.model_name_or_path,
        "prompts": len(rows),
        "generation": {
            "num_generations": config.num_generations,
            "max_new_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
            "prompt_template": config.prompt_template,
            "backend": backend,
            "processes": launch_state().num_processes,
            "dataset_name": config.dataset_name,
            "task_kwargs": config.task_kwargs,
            "seconds": generation_seconds,
        },
        "filters": {
            "order": list(REJECTION_RULES),
            "min_tokens": settings.min_tokens,
            "max_tokens": settings.max_tokens,
            "language_threshold": settings.language_threshold,
            "allow_wordless_reasoning": settings.allow_wordless_reasoning,
            "repetition_ngram_size": settings.repetition_ngram_size,
            "max_repetition": settings.max_repetition,
            "max_per_prompt": config.max_per_prompt,
        },
        "generated": generated,
        "rejected": {rule: rejected.get(rule, 0) for rule in REJECTION_RULES},
        "rejected_total": sum(rejected.values()),
        "failing_each_rule": {rule: failures.get(rule, 0) for rule in REJECTION_RULES[:-1]},
        "passed_filters": passed,
        "duplicates_removed": {"exact": selection.exact_duplicates, "whitespace": selection.whitespace_duplicates},
        "over_per_prompt_cap": selection.over_cap,
        "kept_reasoning": reasoning_rows,
        "prompts_with_kept": len({owners[i] for i in kept}),
        "general_rows": len(general),
        "general_unique": len({(row["problem"], row["completion"][0]["content"]) for row in general}),
        "general_languages": list(general_languages),
        "general_think_style": config.general_think_style,
        "general_share_target": config.general_share,
        "general_share": _rate(len(general), final_size),
        "final_size": final_size,
        "languages": languages,
        "judge": judge_stats,
    }


def _metrics(stats: dict[str, Any], checks: list[CompletionCheck]) -> dict[str, Any]:
    generated = stats["generated"]
    language_scores = [c.language for c in checks if c.language is not None and not c.wordless]
    return {
        "acceptance_rate": _rate(stats["kept_reasoning"], generated),
        "pass_filters_rate": _rate(stats["passed_filters"], generated),
        "prompt_coverage": _rate(stats["prompts_with_kept"], stats["prompts"]),
        "accuracy": _rate(sum(c.accuracy == 1.0 for c in checks), generated),
        "format_rate": _rate(sum(c.format == 1.0 for c in checks), generated),
        "language_consistency": _mean(language_scores),
        "mean_tokens": _mean([float(c.tokens) for c in checks]),
        "kept_reasoning": stats["kept_reasoning"],
        "general_rows": stats["general_rows"],
        "final_size": stats["final_size"],
        "general_share": stats["general_share"],
    }
